//! The webhook channel against a receiver that records what it gets and answers as told.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use lookout_collector::notify::{AlertNote, Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{assert_clean, build, config, firing, message, note, send};
use crate::support::free_port;
use crate::support::http_peer::{Answer, Peer};

const HOOK_TOKEN: &str = "SECRET123";
const HOOK_KEY: &str = "hmac-key-0f9e";

async fn peer() -> (Peer, Channel) {
    let peer = Peer::start(|_| Answer::new(200, "")).await;
    let channel = build(json!({
        "name": "hook",
        "type": "webhook",
        "url": peer.url(&format!("/hook/{HOOK_TOKEN}")),
        "secret": HOOK_KEY,
        "headers": {"Authorization": "Bearer for-the-receiver"},
        "timeout": "1s",
    }));
    (peer, channel)
}

#[tokio::test]
async fn posts_signed_versioned_json() {
    let (peer, channel) = peer().await;
    assert_eq!(channel.name(), "hook");
    let msg = message(vec![
        note(NoteKind::Firing, "api", "api down: 2 of 3 locations, 503"),
        note(NoteKind::Resolved, "db", "db down"),
    ]);
    send(&channel, &msg).await.unwrap();

    let [req] = peer.requests().try_into().unwrap();
    assert_eq!(req.path, format!("/hook/{HOOK_TOKEN}"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), Some("Bearer for-the-receiver"));
    // The signature, computed here over the bytes received.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_KEY.as_bytes()).unwrap();
    mac.update(&req.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        req.header("x-lookout-signature"),
        Some(format!("sha256={expected}").as_str())
    );

    let body = req.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["group_key"], "route-0/check");
    assert_eq!(body["title"], "[FIRING] 1 alert, [RESOLVED] 1 alert");
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["kind"], "firing");
    assert_eq!(alerts[0]["rule"], "uptime");
    assert_eq!(alerts[0]["fingerprint"], "uptime/api");
    assert_eq!(alerts[0]["labels"]["location"], "eu-west");
    assert_eq!(alerts[0]["summary"], "api down: 2 of 3 locations, 503");
    assert_eq!(alerts[0]["fired_at"], "2026-11-26T10:00:00Z");
    assert!(alerts[0].get("resolved_at").is_none());
    assert_eq!(alerts[1]["kind"], "resolved");
    assert_eq!(alerts[1]["resolved_at"], "2026-11-26T10:04:12Z");
    assert_eq!(alerts[1]["link"], "https://status.example.com/checks/db");
    // Each note reads back as the AlertNote it was.
    let back: AlertNote = serde_json::from_value(alerts[1].clone()).unwrap();
    assert_eq!(back, msg.alerts[1]);
}

#[tokio::test]
async fn answers_decide_retry_or_give_up() {
    let (peer, channel) = peer().await;
    let secrets = [HOOK_TOKEN, HOOK_KEY, "for-the-receiver"];

    peer.then_answer(Answer::new(500, "database is down"));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Retry { after: None, reason } if reason.contains("500")),
        "{e:?}"
    );
    assert_clean(&e, &secrets);

    peer.then_answer(Answer::new(429, "slow down").header("retry-after", "7"));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Retry {
            reason: "webhook answered 429 Too Many Requests: slow down".into(),
            after: Some(Duration::from_secs(7)),
        }
    );

    peer.then_answer(Answer::new(408, ""));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");

    // The receiver quotes the URL back: the token is taken out all the same.
    peer.then_answer(Answer::new(
        400,
        &format!("no hook at /hook/{HOOK_TOKEN}, signature for key {HOOK_KEY}?"),
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.starts_with("webhook answered 400 Bad Request: no hook at")),
        "{e:?}"
    );
    assert_clean(&e, &secrets);

    peer.then_answer(Answer::new(404, ""));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Permanent(_)), "{e:?}");
    assert_eq!(peer.requests().len(), 5);
}

#[tokio::test]
async fn network_errors_and_timeouts_are_retried_without_the_url() {
    // Nothing listens.
    let port = free_port();
    let channel = build(json!({
        "name": "hook", "type": "webhook",
        "url": format!("http://127.0.0.1:{port}/hook/{HOOK_TOKEN}?key=abc123"),
        "secret": HOOK_KEY,
    }));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
    assert_clean(&e, &[HOOK_TOKEN, "abc123", HOOK_KEY]);

    // Answers after the timeout.
    let peer = Peer::start(|_| {
        let mut a = Answer::new(200, "");
        a.delay = Duration::from_secs(3);
        a
    })
    .await;
    let channel = build(json!({
        "name": "hook", "type": "webhook",
        "url": peer.url(&format!("/hook/{HOOK_TOKEN}")), "timeout": "300ms",
    }));
    let started = std::time::Instant::now();
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        e,
        SendError::Retry {
            reason: "webhook: no answer within 300ms".into(),
            after: None
        }
    );
}

#[test]
fn build_errors_name_the_setting_not_the_url() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    let e = bad(json!({"name": "h", "type": "webhook", "url": "ftp://x/hook/SECRET123"}));
    assert!(e.starts_with("url:") && !e.contains("SECRET123"), "{e}");
    let e = bad(json!({
        "name": "h", "type": "webhook", "url": "https://x/y",
        "headers": {"Authorization": "Bearer a\nb"},
    }));
    assert!(e.contains("authorization") && !e.contains("Bearer"), "{e}");
    let e = bad(json!({
        "name": "h", "type": "webhook", "url": "https://x/y",
        "headers": {"X-Lookout-Signature": "forged"},
    }));
    assert!(e.contains("set by Lookout"), "{e}");
}
