//! The Matrix channel against a strict fake of a homeserver's room event endpoint.

use std::time::Duration;

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{assert_clean, build, config, firing, message, note, send, send_the_three_states};
use crate::support::http_peer::Peer;
use crate::support::matrix::{Events, PREFIX, ROOM, TOKEN, check_html, limit_exceeded, validate};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "mx",
        "type": "matrix",
        "homeserver": peer.url(""),
        "room": ROOM,
        "access_token": TOKEN,
        "timeout": "2s",
    })
}

async fn matrix() -> (Peer, Events, Channel) {
    let (peer, events) = crate::support::matrix::start().await;
    let channel = build(settings(&peer));
    (peer, events, channel)
}

/// Every request was a valid PUT of an event: (transaction id, content).
fn sent(peer: &Peer) -> Vec<(String, Value)> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.method, "PUT");
            assert_eq!(validate(&r.body), Ok(()), "{:?}", r.json());
            let txn = r
                .path
                .strip_prefix(PREFIX)
                .unwrap_or_else(|| panic!("{}", r.path));
            (txn.to_string(), r.json())
        })
        .collect()
}

#[tokio::test]
async fn firing_acknowledged_and_resolved_are_room_messages_with_html() {
    let (peer, events, channel) = matrix().await;
    let mut fire = firing();
    fire.alerts[0].summary = "api <down> & out".into();
    send_the_three_states(&channel, &fire).await;
    let [(t1, f), (t2, a), (t3, r)] = sent(&peer).try_into().unwrap();
    assert_eq!(
        f,
        json!({
            "msgtype": "m.text",
            "body": "[FIRING] api <down> & out\n\
                     check=api, location=eu-west, severity=critical\n\
                     Fired 2026-11-26 10:00:00 UTC\n\
                     Open in Lookout: https://status.example.com/checks/api",
            "format": "org.matrix.custom.html",
            "formatted_body": "<b>[FIRING] api &lt;down&gt; &amp; out</b><br>\
                               check=api, location=eu-west, severity=critical<br>\
                               Fired 2026-11-26 10:00:00 UTC<br>\
                               <a href=\"https://status.example.com/checks/api\">Open in Lookout</a>",
        })
    );
    assert!(
        a["body"]
            .as_str()
            .unwrap()
            .contains("acknowledged by alice"),
        "{a}"
    );
    assert!(
        r["body"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] api down"),
        "{r}"
    );
    assert!(t1 != t2 && t2 != t3 && t1 != t3);
    assert_eq!(events.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_retry_is_the_same_transaction_and_makes_one_event() {
    let (peer, events, channel) = matrix().await;
    peer.then_answer(limit_exceeded(2500));
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { after, reason } => {
            assert_eq!(
                after,
                Some(Duration::from_secs(3)),
                "retry_after_ms, rounded up"
            );
            assert!(reason.contains("M_LIMIT_EXCEEDED"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    send(&channel, &firing()).await.unwrap();
    // The answer was lost: sent again, the same transaction; the homeserver makes no second
    // event.
    send(&channel, &firing()).await.unwrap();
    let requests = peer.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.path == requests[0].path));
    assert_eq!(events.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_grouped_message_is_one_event_within_the_size_limit() {
    let (peer, _, channel) = matrix().await;
    let two = message(vec![
        note(NoteKind::Firing, "api", "api down"),
        note(NoteKind::Resolved, "db", "db down"),
    ]);
    send(&channel, &two).await.unwrap();
    let many = message(
        (0..400)
            .map(|i| note(NoteKind::Firing, &format!("c{i}"), &"<é&>".repeat(60)))
            .collect(),
    );
    send(&channel, &many).await.unwrap();
    let [(_, a), (_, b)] = sent(&peer).try_into().unwrap();
    let html = a["formatted_body"].as_str().unwrap();
    assert!(
        html.starts_with(
            "<b>[FIRING] 1 alert, [RESOLVED] 1 alert</b><br><br><b>FIRING · api</b><br>api down<br>"
        ),
        "{html}"
    );
    let size = b.to_string().len();
    assert!(size <= 60_000 && size > 50_000, "{size}");
    assert!(b["body"].as_str().unwrap().ends_with("firing)"));
}

#[tokio::test]
async fn refusals_are_given_up_and_the_token_never_shows() {
    let (peer, _, _) = matrix().await;
    let mut s = settings(&peer);
    s["access_token"] = "syt_wrong_wrong_wrong".into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("M_UNKNOWN_TOKEN")),
        "{e:?}"
    );
    assert_clean(&e, &["syt_wrong_wrong", TOKEN]);
    let mut s = settings(&peer);
    s["room"] = "!other:example.org".into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("403") && r.contains("M_FORBIDDEN")),
        "{e:?}"
    );
    peer.then_answer(crate::support::http_peer::Answer::new(
        502,
        &format!("proxy error; Authorization: Bearer {TOKEN}"),
    ));
    let e = send(&build(settings(&peer)), &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[TOKEN]);
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_token() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    let base = json!({"name": "m", "type": "matrix", "homeserver": "https://m.example.org",
                      "room": ROOM, "access_token": TOKEN});
    let without = |k: &str| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(k);
        v
    };
    assert_eq!(bad(without("room")), "room: required");
    assert_eq!(bad(without("access_token")), "access_token: required");
    assert_eq!(bad(without("homeserver")), "homeserver: required");
    let mut alias = base.clone();
    alias["room"] = "#ops:example.org".into();
    assert!(bad(alias).starts_with("room:"));
    let cfg = config(base);
    let c = Channel::build(&cfg, reqwest::Client::new()).unwrap();
    for text in [format!("{c:?}"), format!("{cfg:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn notify_test_sends_one_event() {
    let (peer, _, _) = matrix().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "mx")
        .await
        .unwrap();
    assert!(said.contains("mx (matrix)"), "{said}");
    assert_eq!(sent(&peer).len(), 1);
}

/// The fake is only worth its passes if it fails what a homeserver and its clients refuse.
#[test]
fn fake_refuses_what_the_spec_refuses() {
    assert_eq!(
        check_html("<b>a &amp; b</b><br><a href=\"https://x/?a=1&amp;b\">l</a>"),
        Ok(())
    );
    for bad in [
        "a < b",
        "a > b",
        "a & b",
        "&bogus;",
        "<b>x",
        "<b><i>x</b></i>",
        "<script>x</script>",
        "</b>",
    ] {
        assert!(check_html(bad).is_err(), "{bad}");
    }
    let ok = json!({"msgtype": "m.text", "body": "b", "format": "org.matrix.custom.html", "formatted_body": "<b>b</b>"});
    assert_eq!(validate(ok.to_string().as_bytes()), Ok(()));
    for body in [
        json!({"body": "b"}),
        json!({"msgtype": "m.alert", "body": "b"}),
        json!({"msgtype": "m.text"}),
        json!({"msgtype": "m.text", "body": 1}),
        json!({"msgtype": "m.text", "body": "b", "format": "html", "formatted_body": "b"}),
        json!({"msgtype": "m.text", "body": "b", "format": "org.matrix.custom.html"}),
        json!({"msgtype": "m.text", "body": "x".repeat(65_537)}),
    ] {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
}
