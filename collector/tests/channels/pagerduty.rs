//! The PagerDuty channel against a strict fake of the Events API v2.

use std::time::Duration;

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{build, config, fails_retried, firing, message, note, send, with};
use crate::support::http_peer::{Answer, Peer};
use crate::support::pagerduty::{PATH, ROUTING_KEY, validate};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "pd",
        "type": "pagerduty",
        "routing_key": ROUTING_KEY,
        "url": peer.url(PATH),
        "timeout": "2s",
    })
}

async fn pagerduty() -> (Peer, Channel) {
    let peer = crate::support::pagerduty::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request was accepted by the fake; their bodies.
fn events(peer: &Peer) -> Vec<Value> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(validate(&r.body).map(|_| ()), Ok(()), "{:?}", r.json());
            r.json()
        })
        .collect()
}

#[tokio::test]
async fn a_trigger_links_to_acknowledge_in_lookout() {
    let (peer, channel) = pagerduty().await;
    let mut msg = firing();
    msg.alerts[0].ack_link = Some("https://status.example.com/ack/1.2.3.abc".into());
    send(&channel, &msg).await.unwrap();
    let [trigger] = events(&peer).try_into().unwrap();
    assert_eq!(
        trigger["links"],
        json!([
            {"href": "https://status.example.com/checks/api", "text": "Open in Lookout"},
            {"href": "https://status.example.com/ack/1.2.3.abc", "text": "Acknowledge in Lookout"},
        ])
    );
}

#[tokio::test]
async fn a_firing_note_triggers_and_its_resolve_resolves_the_same_alert() {
    let (peer, channel) = pagerduty().await;
    let mut msg = firing();
    msg.alerts[0].labels.insert("group".into(), "shop".into());
    send(&channel, &msg).await.unwrap();
    let resolved = message(vec![note(NoteKind::Resolved, "api", "api down")]);
    send(&channel, &resolved).await.unwrap();

    let [trigger, resolve] = events(&peer).try_into().unwrap();
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "uptime/api");
    let p = &trigger["payload"];
    assert_eq!(p["summary"], "api down: 2 of 3 locations, 503");
    assert_eq!(p["source"], "api");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["timestamp"], "2026-11-26T10:00:00+00:00");
    assert_eq!(p["class"], "uptime");
    assert_eq!(p["group"], "shop");
    let d = &p["custom_details"];
    assert_eq!(d["summary"], "api down: 2 of 3 locations, 503");
    assert_eq!(
        d["labels"],
        "check=api, group=shop, location=eu-west, severity=critical"
    );
    assert_eq!(d["fingerprint"], "uptime/api");
    assert_eq!(
        trigger["links"],
        json!([{"href": "https://status.example.com/checks/api", "text": "Open in Lookout"}])
    );
    assert_eq!(trigger["client"], "Lookout");
    assert_eq!(
        resolve,
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "uptime/api"})
    );
}

#[tokio::test]
async fn a_grouped_message_is_one_event_per_alert_with_its_severity() {
    let (peer, channel) = pagerduty().await;
    let mut warn = note(NoteKind::Firing, "web", "web slow");
    warn.labels.insert("severity".into(), "warning".into());
    let mut unlabelled = note(NoteKind::Reminder, "db", "db down");
    unlabelled.labels.remove("severity");
    unlabelled.link = None;
    let msg = message(vec![
        note(NoteKind::Firing, "api", "api down"),
        warn,
        unlabelled,
        note(NoteKind::Resolved, "cache", "cache down"),
    ]);
    send(&channel, &msg).await.unwrap();

    let got: Vec<(String, String, String)> = events(&peer)
        .iter()
        .map(|e| {
            (
                e["event_action"].as_str().unwrap().to_string(),
                e["dedup_key"].as_str().unwrap().to_string(),
                e["payload"]["severity"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let want = [
        ("trigger", "uptime/api", "critical"),
        ("trigger", "uptime/web", "warning"),
        ("trigger", "uptime/db", "error"),
        ("resolve", "uptime/cache", "-"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(got, want);
    // A note without a link has no links.
    assert!(peer.requests()[2].json().get("links").is_none());
}

#[tokio::test]
async fn long_texts_and_fingerprints_fit_pagerdutys_limits() {
    let (peer, channel) = pagerduty().await;
    let mut n = note(NoteKind::Firing, "api", &"é".repeat(3000));
    n.fingerprint = format!("uptime/{}", "x".repeat(400));
    send(&channel, &message(vec![n.clone()])).await.unwrap();
    n.kind = NoteKind::Resolved;
    send(&channel, &message(vec![n])).await.unwrap();
    let [t, r] = events(&peer).try_into().unwrap();
    let summary = t["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with('…'));
    let key = t["dedup_key"].as_str().unwrap();
    assert!(
        key.len() <= 255 && key.starts_with("lookout:sha256:"),
        "{key}"
    );
    assert_eq!(r["dedup_key"], key, "the resolve finds the trigger's alert");
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_key_never_shows() {
    let (peer, channel) = pagerduty().await;
    peer.then_answer(
        Answer::new(429, r#"{"status":"throttle event","message":"Requests for this service are arriving too quickly."}"#)
            .header("retry-after", "30"),
    );
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(30)));
            assert!(reason.contains("PagerDuty answered 429"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    fails_retried(&peer, &channel, ROUTING_KEY, &[ROUTING_KEY, "SECRETKEY"]).await;
    // Refused by the fake: given up at once, and the reason says why.
    let wrong = build(json!({
        "name": "pd", "type": "pagerduty",
        "routing_key": "Rwrongwrongwrongwrongwrongwrong0", "url": peer.url(PATH),
    }));
    match send(&wrong, &firing()).await.unwrap_err() {
        SendError::Permanent(reason) => {
            assert!(
                reason.contains("400") && reason.contains("invalid routing key"),
                "{reason}"
            );
            assert!(!reason.contains("Rwrongwrong"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    let sent = peer.requests().len();
    assert_eq!(sent, 2 + 2 + 1);
}

#[test]
fn build_errors_name_the_setting() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    let e = bad(json!({"name": "pd", "type": "pagerduty"}));
    assert_eq!(e, "routing_key: required");
    let e = bad(
        json!({"name": "pd", "type": "pagerduty", "routing_key": "k", "url": "ftp://x/SECRET123"}),
    );
    assert!(e.starts_with("url:") && !e.contains("SECRET123"), "{e}");
    // Without `url`, PagerDuty's own endpoint.
    let c = Channel::build(
        &config(json!({"name": "pd", "type": "pagerduty", "routing_key": ROUTING_KEY})),
        reqwest::Client::new(),
    )
    .unwrap();
    assert!(c.keeps_alerts_open());
    assert!(!format!("{c:?}").contains(ROUTING_KEY));
}

#[tokio::test]
async fn notify_test_triggers_and_resolves_a_test_alert() {
    let peer = crate::support::pagerduty::start().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "pd")
        .await
        .unwrap();
    assert!(said.contains("pd (pagerduty) and resolved it"), "{said}");
    let [t, r] = events(&peer).try_into().unwrap();
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(t["dedup_key"], "test/notify-test");
    assert_eq!(r["dedup_key"], t["dedup_key"]);
    assert_eq!(t["payload"]["severity"], "info");
    // Refused: the reason, without the key.
    peer.then_answer(Answer::new(400, r#"{"status":"invalid event"}"#));
    let err = lookout_collector::notify::send_test(&channels, "pd")
        .await
        .unwrap_err();
    assert!(
        err.contains("not delivered") && !err.contains(ROUTING_KEY),
        "{err}"
    );
}

/// The fake is only worth its passes if it fails what PagerDuty fails.
#[test]
fn fake_refuses_what_pagerduty_refuses() {
    let good = json!({
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "k",
        "payload": {"summary": "s", "source": "h", "severity": "info",
                    "timestamp": "2015-07-17T08:42:58.315+0000", "custom_details": {"a": 1}},
        "links": [{"href": "https://example.com/", "text": "t"}],
        "images": [{"src": "https://example.com/i.png"}],
        "client": "c",
        "client_url": "https://example.com",
    });
    assert_eq!(validate(good.to_string().as_bytes()), Ok("k".into()));
    let with = |path: &[&str], v: Value| with(&good, path, v);
    let bad = [
        with(&["routing_key"], json!("short")),
        with(&["routing_key"], Value::Null),
        with(&["event_action"], json!("open")),
        with(&["dedup_key"], json!("k".repeat(256))),
        with(&["dedup_key"], json!(7)),
        with(&["payload"], Value::Null),
        with(&["payload", "summary"], json!("s".repeat(1025))),
        with(&["payload", "summary"], Value::Null),
        with(&["payload", "source"], Value::Null),
        with(&["payload", "severity"], json!("high")),
        with(&["payload", "timestamp"], json!("yesterday")),
        with(&["payload", "custom_details"], json!("text")),
        with(&["payload", "colour"], json!("red")),
        with(&["links"], json!([{"text": "no href"}])),
        with(&["links"], json!([{"href": "https://x/", "label": "x"}])),
        with(&["images"], json!([{"src": "http://insecure/i.png"}])),
        with(&["client"], json!(1)),
        with(&["severity"], json!("critical")),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve"}),
        json!([]),
    ];
    for body in bad {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert!(validate(b"not json").is_err());
    assert!(validate(&vec![b' '; 512 * 1024 + 1]).is_err());
    // A resolve needs no payload.
    let resolve = json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "k"});
    assert!(validate(resolve.to_string().as_bytes()).is_ok());
}
