//! The ntfy channel against a strict fake of ntfy's JSON publishing.

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{
    assert_clean, build, config, firing, message, note, send, send_the_three_states, with,
};
use crate::support::http_peer::{Answer, Peer};
use crate::support::ntfy::{MAX_MESSAGE_BYTES, TOKEN, TOPIC, too_many_requests, validate};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "phone",
        "type": "ntfy",
        "url": peer.url(&format!("/{TOPIC}")),
        "token": TOKEN,
        "timeout": "2s",
    })
}

async fn ntfy() -> (Peer, Channel) {
    let peer = crate::support::ntfy::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request was a valid publish with the token; their bodies.
fn published(peer: &Peer) -> Vec<Value> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.path, "/");
            assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
            validate(&r.body).unwrap_or_else(|e| panic!("{e:?}: {:?}", r.json()))
        })
        .collect()
}

#[tokio::test]
async fn firing_acknowledged_and_resolved_publish_with_priority_tags_and_click() {
    let (peer, channel) = ntfy().await;
    send_the_three_states(&channel, &firing()).await;
    let [f, a, r] = published(&peer).try_into().unwrap();
    assert_eq!(
        f,
        json!({
            "topic": TOPIC,
            "title": "[FIRING] api down: 2 of 3 locations, 503",
            "message": "api down: 2 of 3 locations, 503\n\
                        check=api, location=eu-west, severity=critical\n\
                        Fired 2026-11-26 10:00:00 UTC",
            "priority": 5,
            "tags": ["rotating_light"],
            "click": "https://status.example.com/checks/api",
        })
    );
    assert_eq!(a["tags"], json!(["eyes"]));
    assert_eq!(a["priority"], 2);
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .ends_with("acknowledged by alice"),
        "{a}"
    );
    assert_eq!(r["tags"], json!(["white_check_mark"]));
    assert_eq!(r["priority"], 2);
    assert!(
        r["message"].as_str().unwrap().contains("lasted 4m 12s"),
        "{r}"
    );
}

#[tokio::test]
async fn a_grouped_message_is_one_publish_within_4096_bytes() {
    let (peer, channel) = ntfy().await;
    let mut warn = note(NoteKind::Firing, "web", "web slow");
    warn.labels.insert("severity".into(), "warning".into());
    send(
        &channel,
        &message(vec![warn, note(NoteKind::Resolved, "db", "db down")]),
    )
    .await
    .unwrap();
    let many = message(
        (0..100)
            .map(|i| note(NoteKind::Firing, &format!("c{i}"), &"é".repeat(100)))
            .collect(),
    );
    send(&channel, &many).await.unwrap();
    let [two, big] = published(&peer).try_into().unwrap();
    assert_eq!(two["title"], "[FIRING] 1 alert, [RESOLVED] 1 alert");
    assert_eq!(two["priority"], 3, "the warning's, the highest");
    assert_eq!(two["tags"], json!(["rotating_light", "white_check_mark"]));
    assert!(two.get("click").is_none());
    let text = two["message"].as_str().unwrap();
    assert!(
        text.starts_with("FIRING · web\nweb slow\n")
            && text.contains("\n\nRESOLVED · db\ndb down\n")
            && text.contains("Open in Lookout: https://status.example.com/checks/db"),
        "{text}"
    );
    let text = big["message"].as_str().unwrap();
    assert!(
        text.len() <= MAX_MESSAGE_BYTES && text.len() > 3500,
        "{}",
        text.len()
    );
    assert!(
        text.ends_with("firing)") && text.contains("more alerts"),
        "{text}"
    );
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_token_never_shows() {
    let (peer, channel) = ntfy().await;
    peer.then_answer(too_many_requests());
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { reason, .. } => {
            assert!(reason.contains("ntfy answered 429"), "{reason}")
        }
        e => panic!("{e:?}"),
    }
    peer.then_answer(Answer::new(503, &format!("down; token was {TOKEN}")));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[TOKEN]);
    // Another token: 401, given up; no token: 403, given up.
    let mut s = settings(&peer);
    s["token"] = "tk_wrongwrongwrongwrongwrongwro".into();
    let e = send(&build(s.clone()), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("401")),
        "{e:?}"
    );
    assert_clean(&e, &["tk_wrongwrong"]);
    s.as_object_mut().unwrap().remove("token");
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("403") && r.contains("forbidden")),
        "{e:?}"
    );
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_token() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(bad(json!({"name": "n", "type": "ntfy"})), "url: required");
    let e = bad(json!({"name": "n", "type": "ntfy", "url": "https://ntfy.sh/"}));
    assert!(e.starts_with("url: expected the topic's URL"), "{e}");
    let e = bad(json!({"name": "n", "type": "ntfy", "url": "https://ntfy.sh/a.b"}));
    assert!(e.starts_with("url: expected the topic's URL"), "{e}");
    let e = bad(json!({"name": "n", "type": "ntfy", "url": "https://ntfy.sh/t", "token": "a\nb"}));
    assert!(e.starts_with("token:") && !e.contains("a\nb"), "{e}");
    let c = build(json!({"name": "n", "type": "ntfy", "url": "https://ntfy.sh/t", "token": TOKEN}));
    assert!(!format!("{c:?}").contains(TOKEN));
    let cfg =
        config(json!({"name": "n", "type": "ntfy", "url": "https://ntfy.sh/t", "token": TOKEN}));
    assert!(!format!("{cfg:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_server_under_a_path_takes_the_json_at_its_root() {
    let peer = Peer::start(|_| Answer::new(200, "{}")).await;
    let mut s = settings(&peer);
    s["url"] = peer.url(&format!("/ntfy/{TOPIC}")).into();
    send(&build(s), &firing()).await.unwrap();
    let [r] = peer.requests().try_into().unwrap();
    assert_eq!(r.path, "/ntfy/");
    assert_eq!(r.json()["topic"], TOPIC);
}

#[tokio::test]
async fn notify_test_publishes_one_message() {
    let (peer, _) = ntfy().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "phone")
        .await
        .unwrap();
    assert!(said.contains("phone (ntfy)"), "{said}");
    let [m] = published(&peer).try_into().unwrap();
    assert_eq!(m["priority"], 2, "a test is info");
}

/// The fake is only worth its passes if it fails what ntfy fails.
#[test]
fn fake_refuses_what_ntfy_refuses() {
    let good = json!({"topic": TOPIC, "message": "m", "title": "t", "tags": ["a"],
                      "priority": 5, "click": "https://x/", "markdown": false, "actions": []});
    assert!(validate(good.to_string().as_bytes()).is_ok());
    let with = |k: &str, v: Value| with(&good, &[k], v);
    for body in [
        with("topic", Value::Null),
        with("topic", json!("a/b")),
        with("topic", json!(7)),
        with("message", json!("x".repeat(MAX_MESSAGE_BYTES + 1))),
        with("message", json!(["x"])),
        with("priority", json!(0)),
        with("priority", json!(6)),
        with("priority", json!("high")),
        with("tags", json!("a,b")),
        with("tags", json!([1])),
        with("click", json!("javascript:alert(1)")),
        with("markdown", json!("yes")),
        with("colour", json!("red")),
        json!([]),
    ] {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert!(validate(b"not json").is_err());
}
