//! The Opsgenie channel against a strict fake of the Alert API v2.

use std::time::Duration;

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{build, config, fails_retried, firing, message, note, send};
use crate::support::http_peer::{Answer, Peer, Request};
use crate::support::opsgenie::{API_KEY, Action, throttled, throttled_without_headers, validate};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "og",
        "type": "opsgenie",
        "api_key": API_KEY,
        "url": peer.url("/"),
        "responders": ["team:ops", "user:alice@example.com"],
        "timeout": "2s",
    })
}

async fn opsgenie() -> (Peer, Channel) {
    let peer = crate::support::opsgenie::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request, each accepted by the fake: what it did and its body.
fn actions(peer: &Peer) -> Vec<(Action, Value)> {
    peer.requests()
        .iter()
        .map(|r: &Request| {
            let action = validate(r).unwrap_or_else(|e| panic!("{e:?}: {:?}", r.json()));
            assert_eq!(
                r.header("authorization"),
                Some(format!("GenieKey {API_KEY}").as_str())
            );
            (action, r.json())
        })
        .collect()
}

#[tokio::test]
async fn firing_creates_acknowledged_acknowledges_and_resolved_closes_one_alias() {
    let (peer, channel) = opsgenie().await;
    send(&channel, &firing()).await.unwrap();
    let mut acked = note(NoteKind::Acknowledged, "api", "api down");
    acked.acked_by = Some("alice".into());
    send(&channel, &message(vec![acked])).await.unwrap();
    send(
        &channel,
        &message(vec![note(NoteKind::Resolved, "api", "api down")]),
    )
    .await
    .unwrap();

    let [(create, c), (ack, a), (close, r)] = actions(&peer).try_into().unwrap();
    assert_eq!(create, Action::Create(Some("uptime/api".into())));
    assert_eq!(ack, Action::Acknowledge("uptime/api".into()));
    assert_eq!(close, Action::Close("uptime/api".into()));
    let paths: Vec<String> = peer
        .requests()
        .iter()
        .map(|r| format!("{}?{}", r.path, r.query))
        .collect();
    assert_eq!(
        paths,
        [
            "/v2/alerts?",
            "/v2/alerts/uptime%2Fapi/acknowledge?identifierType=alias",
            "/v2/alerts/uptime%2Fapi/close?identifierType=alias",
        ]
    );
    assert_eq!(c["message"], "api down: 2 of 3 locations, 503");
    assert_eq!(c["priority"], "P1");
    assert_eq!(c["entity"], "api");
    assert_eq!(c["source"], "Lookout");
    assert_eq!(c["tags"], json!(["lookout", "uptime", "critical"]));
    assert_eq!(
        c["responders"],
        json!([{"type": "team", "name": "ops"}, {"type": "user", "username": "alice@example.com"}])
    );
    let d = &c["details"];
    assert_eq!(d["check"], "api");
    assert_eq!(d["fingerprint"], "uptime/api");
    assert_eq!(d["fired_at"], "2026-11-26T10:00:00+00:00");
    assert_eq!(d["link"], "https://status.example.com/checks/api");
    let desc = c["description"].as_str().unwrap();
    for part in [
        "api down: 2 of 3 locations, 503",
        "Labels: check=api, location=eu-west, severity=critical",
        "Fired: 2026-11-26 10:00:00 UTC",
        "Open in Lookout: https://status.example.com/checks/api",
    ] {
        assert!(desc.contains(part), "{part:?} not in {desc:?}");
    }
    assert_eq!(
        a,
        json!({"user": "alice", "source": "Lookout", "note": "Acknowledged in Lookout by alice"})
    );
    assert_eq!(
        r,
        json!({"source": "Lookout", "note": "Resolved in Lookout after 4m 12s"})
    );
}

#[tokio::test]
async fn a_grouped_message_is_one_request_per_alert_with_its_priority() {
    let (peer, channel) = opsgenie().await;
    let mut warn = note(NoteKind::Firing, "web", "web slow");
    warn.labels.insert("severity".into(), "warning".into());
    let mut unlabelled = note(NoteKind::Reminder, "db", "db down");
    unlabelled.labels.remove("severity");
    let msg = message(vec![
        note(NoteKind::Firing, "api", "api down"),
        warn,
        unlabelled,
        note(NoteKind::Resolved, "cache", "cache down"),
    ]);
    send(&channel, &msg).await.unwrap();
    let got: Vec<(Action, String)> = actions(&peer)
        .into_iter()
        .map(|(a, b)| (a, b["priority"].as_str().unwrap_or("-").to_string()))
        .collect();
    let create = |k: &str| Action::Create(Some(format!("uptime/{k}")));
    assert_eq!(
        got,
        [
            (create("api"), "P1".to_string()),
            (create("web"), "P3".to_string()),
            (create("db"), "P2".to_string()),
            (Action::Close("uptime/cache".into()), "-".to_string()),
        ]
    );
    // A reminder says so in its tags.
    let reminder = peer.requests()[2].json();
    assert_eq!(
        reminder["tags"],
        json!(["lookout", "uptime", "error", "reminder"])
    );
}

#[tokio::test]
async fn long_texts_and_fingerprints_fit_opsgenies_limits() {
    let (peer, channel) = opsgenie().await;
    let mut n = note(NoteKind::Firing, &"c".repeat(600), &"é".repeat(20_000));
    n.fingerprint = format!("uptime/{}", "x/".repeat(300));
    n.rule = "r".repeat(80);
    for i in 0..40 {
        n.labels.insert(format!("label{i}"), "v".repeat(400));
    }
    n.acked_by = None;
    send(&channel, &message(vec![n.clone()])).await.unwrap();
    n.kind = NoteKind::Acknowledged;
    n.acked_by = Some("a".repeat(300));
    send(&channel, &message(vec![n.clone()])).await.unwrap();
    n.kind = NoteKind::Resolved;
    send(&channel, &message(vec![n])).await.unwrap();
    let [(create, c), (ack, a), (close, _)] = actions(&peer).try_into().unwrap();
    assert_eq!(c["message"].as_str().unwrap().chars().count(), 130);
    assert_eq!(c["description"].as_str().unwrap().chars().count(), 15_000);
    let Action::Create(Some(alias)) = create else {
        panic!("{create:?}")
    };
    assert!(alias.starts_with("lookout:sha256:"), "{alias}");
    assert_eq!(ack, Action::Acknowledge(alias.clone()));
    assert_eq!(close, Action::Close(alias));
    assert_eq!(a["user"].as_str().unwrap().chars().count(), 100);
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_key_never_shows() {
    let (peer, channel) = opsgenie().await;
    // No Retry-After: the wait is the period its rate-limit headers name; without them, none
    // (the outbox's backoff).
    for (answer, wait) in [
        (throttled(60), Some(Duration::from_secs(60))),
        (throttled(1), Some(Duration::from_secs(1))),
        (throttled_without_headers(), None),
    ] {
        peer.then_answer(answer);
        match send(&channel, &firing()).await.unwrap_err() {
            SendError::Retry { after, reason } => {
                assert_eq!(after, wait, "{reason}");
                assert!(reason.contains("Opsgenie answered 429"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }
    fails_retried(
        &peer,
        &channel,
        &format!("GenieKey {API_KEY}"),
        &[API_KEY, "eb243592"],
    )
    .await;
    // A wrong key: 401, given up, and the key is not in the reason.
    let mut wrong = settings(&peer);
    wrong["api_key"] = json!("0000dead-beef-0000-0000-wrongwrongkey");
    match send(&build(wrong), &firing()).await.unwrap_err() {
        SendError::Permanent(reason) => {
            assert!(
                reason.contains("401") && reason.contains("Could not authenticate"),
                "{reason}"
            );
            assert!(!reason.contains("wrongwrongkey"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    // An invalid body: 422, given up, with Opsgenie's reason.
    let mut empty = firing();
    empty.alerts[0].summary = " ".into();
    empty.alerts[0].labels.clear();
    empty.alerts[0].rule = String::new();
    peer.then_answer(Answer::new(
        422,
        r#"{"message":"Request body is not valid","errors":{"message":"Message can not be empty."}}"#,
    ));
    let e = send(&channel, &empty).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("422") && r.contains("Message can not be empty")),
        "{e:?}"
    );
    // The last 2: the two 429s above besides the first.
    assert_eq!(peer.requests().len(), 2 + 2 + 1 + 1 + 2);
}

#[test]
fn build_errors_name_the_setting_and_the_region_picks_the_endpoint() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(
        bad(json!({"name": "og", "type": "opsgenie"})),
        "api_key: required"
    );
    let e =
        bad(json!({"name": "og", "type": "opsgenie", "api_key": "k", "url": "ftp://x/SECRET123"}));
    assert!(e.starts_with("url:") && !e.contains("SECRET123"), "{e}");
    let e = bad(json!({"name": "og", "type": "opsgenie", "api_key": "k", "responders": ["ops"]}));
    assert!(e.starts_with("responders: \"ops\""), "{e}");
    let e = bad(json!({"name": "og", "type": "opsgenie", "api_key": "k", "region": "asia"}));
    assert!(e.starts_with("region:"), "{e}");
    for region in [json!("eu"), json!("us"), Value::Null] {
        let c = Channel::build(
            &config(
                json!({"name": "og", "type": "opsgenie", "api_key": API_KEY, "region": region}),
            ),
            reqwest::Client::new(),
        )
        .unwrap();
        assert!(c.keeps_alerts_open());
        assert!(!format!("{c:?}").contains(API_KEY));
    }
}

/// `url` overrides the region's host: with both set, the request reaches the `url`.
#[tokio::test]
async fn url_overrides_the_region() {
    let peer = crate::support::opsgenie::start().await;
    let mut s = settings(&peer);
    s["region"] = json!("eu");
    send(&build(s), &firing()).await.unwrap();
    assert_eq!(peer.requests().len(), 1);
}

#[tokio::test]
async fn notify_test_creates_and_closes_a_test_alert() {
    let peer = crate::support::opsgenie::start().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "og")
        .await
        .unwrap();
    assert!(said.contains("og (opsgenie) and resolved it"), "{said}");
    let [(create, c), (close, _)] = actions(&peer).try_into().unwrap();
    assert_eq!(create, Action::Create(Some("test/notify-test".into())));
    assert_eq!(close, Action::Close("test/notify-test".into()));
    assert_eq!(c["priority"], "P5");
    peer.then_answer(Answer::new(401, r#"{"message":"Could not authenticate"}"#));
    let err = lookout_collector::notify::send_test(&channels, "og")
        .await
        .unwrap_err();
    assert!(
        err.contains("not delivered") && !err.contains(API_KEY),
        "{err}"
    );
}

/// The fake is only worth its passes if it fails what Opsgenie fails.
#[test]
fn fake_refuses_what_opsgenie_refuses() {
    let req = |path: &str, query: &str, body: Value| Request {
        method: "POST".into(),
        path: path.into(),
        query: query.into(),
        headers: [("content-type", "application/json")]
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect(),
        body: body.to_string().into(),
    };
    let good = json!({
        "message": "m", "alias": "a", "description": "d",
        "responders": [{"type": "team", "name": "ops"}, {"type": "user", "id": "u1"}],
        "visibleTo": [{"type": "schedule", "name": "s"}],
        "actions": ["Restart"], "tags": ["t"], "details": {"k": "v"},
        "entity": "e", "source": "s", "priority": "P4", "user": "u", "note": "n",
    });
    assert_eq!(
        validate(&req("/v2/alerts", "", good.clone())),
        Ok(Action::Create(Some("a".into())))
    );
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let bad = [
        with("message", Value::Null),
        with("message", json!("m".repeat(131))),
        with("message", json!(" ")),
        with("alias", json!("a".repeat(513))),
        with("description", json!("d".repeat(15_001))),
        with("responders", json!([{"type": "group", "name": "x"}])),
        with("responders", json!([{"type": "user", "name": "x"}])),
        with("responders", json!([{"type": "team"}])),
        with("actions", json!(vec!["a"; 11])),
        with("tags", json!(["t".repeat(51)])),
        with("tags", json!(vec!["t"; 21])),
        with("details", json!({"k": 1})),
        with("details", json!({"k": "v".repeat(8_000)})),
        with("entity", json!("e".repeat(513))),
        with("source", json!("s".repeat(101))),
        with("priority", json!("P0")),
        with("severity", json!("critical")),
    ];
    for body in bad {
        assert!(
            validate(&req("/v2/alerts", "", body.clone())).is_err(),
            "{body}"
        );
    }
    let ok_close = req(
        "/v2/alerts/a%2Fb/close",
        "identifierType=alias",
        json!({"source": "s", "note": "n"}),
    );
    assert_eq!(validate(&ok_close), Ok(Action::Close("a/b".into())));
    assert!(validate(&req("/v2/alerts/a/close", "identifierType=name", json!({}))).is_err());
    assert!(validate(&req("/v2/alerts/a/close", "", json!({"priority": "P1"}))).is_err());
    assert!(validate(&req("/v2/alerts/a/snooze", "", json!({}))).is_err());
    assert!(
        validate(&req(
            "/v2/alerts/a/acknowledge",
            "identifierType=alias",
            json!({"user": "u".repeat(101)})
        ))
        .is_err()
    );
}
