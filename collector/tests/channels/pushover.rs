//! The Pushover channel against a strict fake of the Message API and its cancel by tag.

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{assert_clean, build, config, firing, message, note, send, with};
use crate::support::http_peer::{Answer, Peer};
use crate::support::pushover::{TOKEN, USER, validate, validate_cancel};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "po",
        "type": "pushover",
        "token": TOKEN,
        "user": USER,
        "retry": "45s",
        "expire": "2h",
        "url": peer.url(""),
        "timeout": "2s",
    })
}

async fn pushover() -> (Peer, Channel) {
    let peer = crate::support::pushover::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request was accepted by the fake: (path, body).
fn sent(peer: &Peer) -> Vec<(String, Value)> {
    peer.requests()
        .iter()
        .map(|r| {
            let ok = match r.path.strip_prefix("/1/receipts/cancel_by_tag/") {
                Some(t) => validate_cancel(t.trim_end_matches(".json"), &r.body),
                None => validate(&r.body).map(|_| ()),
            };
            assert_eq!(ok, Ok(()), "{} {:?}", r.path, r.json());
            (r.path.clone(), r.json())
        })
        .collect()
}

#[tokio::test]
async fn a_critical_alert_is_an_emergency_that_its_resolve_cancels_by_tag() {
    let (peer, channel) = pushover().await;
    send(&channel, &firing()).await.unwrap();
    send(
        &channel,
        &message(vec![note(NoteKind::Resolved, "api", "api down")]),
    )
    .await
    .unwrap();
    let [(p1, fire), (p2, cancel), (p3, resolved)] = sent(&peer).try_into().unwrap();
    assert_eq!(p1, "/1/messages.json");
    let tag = fire["tags"].as_str().unwrap().to_string();
    assert_eq!(
        fire,
        json!({
            "token": TOKEN, "user": USER,
            "title": "[FIRING] api down: 2 of 3 locations, 503",
            "message": "api down: 2 of 3 locations, 503\n\
                        check=api, location=eu-west, severity=critical\n\
                        Fired 2026-11-26 10:00:00 UTC",
            "priority": 2, "retry": 45, "expire": 7200, "tags": tag,
            "url": "https://status.example.com/checks/api", "url_title": "Open in Lookout",
        })
    );
    assert_eq!(p2, format!("/1/receipts/cancel_by_tag/{tag}.json"));
    assert_eq!(cancel, json!({"token": TOKEN}));
    assert_eq!(p3, "/1/messages.json");
    assert_eq!(resolved["priority"], -1);
    assert!(resolved.get("tags").is_none() && resolved.get("retry").is_none());
    assert_eq!(resolved["title"], "[RESOLVED] api down");
}

#[tokio::test]
async fn an_acknowledgement_stops_the_emergency_and_a_warning_is_no_emergency() {
    let (peer, channel) = pushover().await;
    let mut ack = note(NoteKind::Acknowledged, "api", "api down");
    ack.acked_by = Some("alice".into());
    send(&channel, &message(vec![ack])).await.unwrap();
    let mut warn = note(NoteKind::Firing, "web", "web slow");
    warn.labels.insert("severity".into(), "warning".into());
    send(&channel, &message(vec![warn.clone()])).await.unwrap();
    warn.kind = NoteKind::Resolved;
    send(&channel, &message(vec![warn])).await.unwrap();
    let [(cancel, _), (_, ack), (_, w), (resolve, _)] = sent(&peer).try_into().unwrap();
    assert!(
        cancel.starts_with("/1/receipts/cancel_by_tag/lookout"),
        "{cancel}"
    );
    assert_eq!(ack["priority"], -1);
    assert!(
        ack["message"]
            .as_str()
            .unwrap()
            .ends_with("acknowledged by alice"),
        "{ack}"
    );
    assert_eq!(w["priority"], 0);
    assert!(w.get("retry").is_none());
    assert_eq!(resolve, "/1/messages.json", "no emergency to cancel");
}

#[tokio::test]
async fn a_grouped_message_is_one_message_within_1024_characters() {
    let (peer, channel) = pushover().await;
    let many = message(
        (0..30)
            .map(|i| note(NoteKind::Firing, &format!("c{i}"), &"é".repeat(80)))
            .chain([note(NoteKind::Resolved, "db", "db down")])
            .collect(),
    );
    send(&channel, &many).await.unwrap();
    let [(_, cancel), (_, m)] = sent(&peer).try_into().unwrap();
    assert_eq!(
        cancel,
        json!({"token": TOKEN}),
        "the resolved db's emergency"
    );
    let text = m["message"].as_str().unwrap();
    assert!(
        text.chars().count() <= 1024 && text.chars().count() > 800,
        "{text}"
    );
    assert!(text.starts_with("FIRING · c0\n"), "{text}");
    assert!(
        text.contains("more alerts (") && text.ends_with("resolved)"),
        "{text}"
    );
    assert_eq!(m["priority"], 2);
    assert_eq!(m["tags"].as_str().unwrap().split(',').count(), 30);
    assert!(m.get("url").is_none(), "several alerts: links in the text");
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_keys_never_show() {
    let (peer, channel) = pushover().await;
    peer.then_answer(Answer::new(
        429,
        r#"{"status":0,"errors":["application over its monthly limit"]}"#,
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Retry { reason, .. } if reason.contains("429")),
        "{e:?}"
    );
    peer.then_answer(Answer::new(500, &format!("oops {TOKEN} {USER}")));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[TOKEN, USER]);
    // A cancel that fails fails the resolve, to be retried whole.
    peer.then_answer(Answer::new(503, "busy"));
    let resolved = message(vec![note(NoteKind::Resolved, "api", "api down")]);
    assert!(matches!(
        send(&channel, &resolved).await,
        Err(SendError::Retry { .. })
    ));
    // A wrong user key: 400, given up, with Pushover's reason and no key.
    let mut s = settings(&peer);
    s["user"] = "uWRONGWRONGWRONGWRONGWRONGWRONG".into();
    match send(&build(s), &firing()).await.unwrap_err() {
        SendError::Permanent(r) => {
            assert!(
                r.contains("400") && r.contains("user identifier is invalid"),
                "{r}"
            );
            assert!(!r.contains("uWRONGWRONG"), "{r}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_keys() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(
        bad(json!({"name": "p", "type": "pushover", "user": USER})),
        "token: required"
    );
    assert_eq!(
        bad(json!({"name": "p", "type": "pushover", "token": TOKEN})),
        "user: required"
    );
    let cfg = config(json!({"name": "p", "type": "pushover", "token": TOKEN, "user": USER}));
    let c = Channel::build(&cfg, reqwest::Client::new()).unwrap();
    for text in [format!("{c:?}"), format!("{cfg:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains(USER), "{text}");
    }
}

#[tokio::test]
async fn notify_test_sends_one_quiet_message() {
    let (peer, _) = pushover().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "po")
        .await
        .unwrap();
    assert!(said.contains("po (pushover)"), "{said}");
    let [(_, m)] = sent(&peer).try_into().unwrap();
    assert_eq!(m["priority"], -1, "a test is info");
}

/// The fake is only worth its passes if it fails what Pushover fails.
#[test]
fn fake_refuses_what_pushover_refuses() {
    let good = json!({"token": TOKEN, "user": USER, "message": "m", "title": "t",
                      "url": "https://x/", "url_title": "u", "priority": 2, "retry": 30,
                      "expire": 10800, "tags": "a,b", "timestamp": 1});
    assert_eq!(validate(good.to_string().as_bytes()), Ok(true));
    let with = |k: &str, v: Value| with(&good, &[k], v);
    for body in [
        with("token", json!("x")),
        with("user", Value::Null),
        with("message", Value::Null),
        with("message", json!(" ")),
        with("message", json!("m".repeat(1025))),
        with("title", json!("t".repeat(251))),
        with("url", json!(format!("https://x/{}", "u".repeat(510)))),
        with("url_title", json!("u".repeat(101))),
        with("priority", json!(3)),
        with("retry", json!(29)),
        with("retry", Value::Null),
        with("expire", json!(10801)),
        with("expire", Value::Null),
        with("html", json!(2)),
        with("colour", json!("red")),
        json!({"token": TOKEN, "user": USER, "message": "m", "retry": 60}),
    ] {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert_eq!(
        validate_cancel(
            "lookout0a1b",
            json!({"token": TOKEN}).to_string().as_bytes()
        ),
        Ok(())
    );
    assert!(validate_cancel("a%2Cb", json!({"token": TOKEN}).to_string().as_bytes()).is_err());
    assert!(
        validate_cancel(
            "t",
            json!({"token": TOKEN, "user": USER}).to_string().as_bytes()
        )
        .is_err()
    );
}
