//! The Slack channel against a strict fake of Slack's incoming webhook.

use std::time::Duration;

use lookout_collector::notify::{AlertNote, Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{assert_clean, build, firing, message, note, send};
use crate::support::free_port;
use crate::support::http_peer::{Answer, Peer};

async fn slack() -> (Peer, Channel) {
    let peer = crate::support::slack::start().await;
    let channel = build(json!({
        "name": "ops-slack",
        "type": "slack",
        "webhook_url": peer.url(crate::support::slack::HOOK_PATH),
        "timeout": "2s",
    }));
    (peer, channel)
}

/// Every block of every attachment.
fn blocks(payload: &Value) -> Vec<Value> {
    payload["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["blocks"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn one_firing_note() {
    let (peer, channel) = slack().await;
    let mut msg = firing();
    msg.alerts[0].summary = "api down: <script> & 503 > 500".into();
    send(&channel, &msg).await.unwrap();

    let [req] = peer.requests().try_into().unwrap();
    let p = req.json();
    assert_eq!(
        p["text"],
        "[FIRING] api down: &lt;script&gt; &amp; 503 &gt; 500"
    );
    let atts = p["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0]["color"], "#d73a49");
    let b = blocks(&p);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0]["type"], "header");
    assert_eq!(b[0]["text"]["type"], "plain_text");
    assert_eq!(
        b[0]["text"]["text"],
        "[FIRING] api down: <script> & 503 > 500"
    );
    assert_eq!(b[1]["type"], "section");
    assert_eq!(b[1]["text"]["type"], "mrkdwn");
    let text = b[1]["text"]["text"].as_str().unwrap();
    for part in [
        "*FIRING* · *api*",
        "api down: &lt;script&gt; &amp; 503 &gt; 500",
        "check=api, location=eu-west, severity=critical",
        "2026-11-26 10:00:00 UTC",
        "<https://status.example.com/checks/api|Open in Lookout>",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
    assert!(!text.contains("Lasted"), "{text}");
}

#[tokio::test]
async fn a_firing_note_links_to_acknowledge_and_an_acknowledged_one_says_who() {
    let (peer, channel) = slack().await;
    let mut firing = note(NoteKind::Firing, "api", "api down: 503");
    firing.ack_link = Some("https://lookout.example/ack/3.17.18.ab?x=<1>&y|z".into());
    let mut acked = note(NoteKind::Acknowledged, "db", "db down: refused");
    acked.acked_by = Some("alice <alice@example.com>".into());
    send(&channel, &message(vec![firing, acked])).await.unwrap();
    let b = blocks(&peer.requests()[0].json());
    let sections: Vec<&str> = b
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    let [firing, acked] = sections.as_slice() else {
        panic!("{sections:?}")
    };
    assert!(
        firing.ends_with(
            "\n<https://lookout.example/ack/3.17.18.ab?x=%3C1%3E&amp;y%7Cz|Acknowledge>"
        ),
        "{firing}"
    );
    assert!(!firing.contains("Acknowledged by"), "{firing}");
    assert!(
        acked.contains("*Acknowledged by:* alice &lt;alice@example.com&gt;"),
        "{acked}"
    );
    assert!(!acked.contains("|Acknowledge>"), "{acked}");
}

#[tokio::test]
async fn groups_firing_and_resolved_in_coloured_attachments() {
    let (peer, channel) = slack().await;
    let msg = message(vec![
        note(NoteKind::Resolved, "db", "db down"),
        note(NoteKind::Firing, "api", "api down"),
        note(NoteKind::Firing, "web", "web down"),
    ]);
    send(&channel, &msg).await.unwrap();
    let p = peer.requests()[0].json();
    assert_eq!(p["text"], "[FIRING] 2 alerts, [RESOLVED] 1 alert");
    let atts = p["attachments"].as_array().unwrap();
    let colours: Vec<&str> = atts.iter().map(|a| a["color"].as_str().unwrap()).collect();
    assert_eq!(colours, ["#d73a49", "#28a745"]);
    assert_eq!(atts[0]["blocks"][0]["text"]["text"], "[FIRING] 2 alerts");
    assert_eq!(atts[0]["blocks"].as_array().unwrap().len(), 3);
    assert_eq!(atts[1]["blocks"][0]["text"]["text"], "[RESOLVED] db down");
    let resolved = atts[1]["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(resolved.contains("*RESOLVED* · *db*"), "{resolved}");
    assert!(resolved.contains("*Lasted:* 4m 12s"), "{resolved}");
}

#[tokio::test]
async fn eighty_notes_stay_within_50_blocks() {
    let (peer, channel) = slack().await;
    let mut alerts: Vec<AlertNote> = (0..70)
        .map(|i| note(NoteKind::Firing, &format!("check-{i}"), "down"))
        .collect();
    alerts.extend((0..10).map(|i| note(NoteKind::Resolved, &format!("old-{i}"), "was down")));
    send(&channel, &message(alerts)).await.unwrap();
    let p = peer.requests()[0].json();
    let b = blocks(&p);
    assert_eq!(b.len(), 50);
    let sections = b.iter().filter(|b| b["type"] == "section").count();
    assert_eq!(sections, 47);
    // Every resolved note fits; the firing ones take the rest.
    let atts = p["attachments"].as_array().unwrap();
    assert_eq!(atts[1]["blocks"].as_array().unwrap().len(), 1 + 10 + 1);
    let last = b.last().unwrap();
    assert_eq!(last["type"], "context");
    assert_eq!(
        last["elements"][0]["text"],
        "…and 33 more alerts (33 firing)"
    );
}

#[tokio::test]
async fn long_texts_are_cut_to_slacks_limits() {
    let (peer, channel) = slack().await;
    let mut n = note(NoteKind::Firing, &"c".repeat(400), &"<&>".repeat(2_000));
    n.labels.insert("detail".into(), "x & y ".repeat(500));
    send(&channel, &message(vec![n])).await.unwrap();
    let b = blocks(&peer.requests()[0].json());
    assert_eq!(b[0]["text"]["text"].as_str().unwrap().chars().count(), 150);
    let section = b[1]["text"]["text"].as_str().unwrap();
    assert!(section.chars().count() <= 3000, "{}", section.len());
    assert!(section.contains('…'));
}

#[tokio::test]
async fn answers_decide_retry_or_give_up() {
    let (peer, channel) = slack().await;
    let token = "XXXXSECRETXXXX";

    peer.then_answer(Answer::new(429, "rate_limited").header("retry-after", "30"));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Retry {
            reason: "Slack answered 429 Too Many Requests: rate_limited".into(),
            after: Some(Duration::from_secs(30)),
        }
    );

    peer.then_answer(Answer::new(503, "service unavailable"));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");

    peer.then_answer(Answer::new(404, "no_service"));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert_eq!(
        e,
        SendError::Permanent("Slack answered 404 Not Found: no_service".into())
    );

    // A hook at another path: the fake answers as Slack does, and the URL stays out.
    let wrong = build(json!({
        "name": "s", "type": "slack",
        "webhook_url": peer.url("/services/T0000/B0000/WRONGSECRET"),
    }));
    let e = send(&wrong, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("no_service")),
        "{e:?}"
    );
    assert_clean(&e, &["WRONGSECRET", token]);

    // Nothing listens: retried, no URL.
    let nobody = free_port();
    let gone = build(json!({
        "name": "s", "type": "slack",
        "webhook_url": format!("http://127.0.0.1:{nobody}/services/T/B/{token}"),
    }));
    let e = send(&gone, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[token]);
}

/// The fake is only worth its passes if it fails what Slack fails.
#[tokio::test]
async fn fake_refuses_what_slack_refuses() {
    let (peer, _) = slack().await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let http = http.clone();
        let url = peer.url(crate::support::slack::HOOK_PATH);
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let header =
        |text: &str| json!({"type": "header", "text": {"type": "plain_text", "text": text}});
    let section = |text: &str| json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
    let with = |blocks: Vec<Value>| json!({"text": "t", "attachments": [{"color": "#d73a49", "blocks": blocks}]});

    assert_eq!(
        post(with(vec![header("h"), section("s")])).await,
        (200, "ok".into())
    );
    let bad_blocks = [
        with(vec![header(&"h".repeat(151))]),
        with(vec![section(&"s".repeat(3001))]),
        with(vec![
            json!({"type": "banner", "text": {"type": "plain_text", "text": "x"}}),
        ]),
        with(vec![
            json!({"type": "header", "text": {"type": "mrkdwn", "text": "x"}}),
        ]),
        with(vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": ""}}),
        ]),
        with(vec![json!({"type": "section", "text": "not an object"})]),
        with(vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "colour": 1}),
        ]),
        with(vec![json!({"type": "context", "elements": []})]),
        with(vec![section("a < b")]),
        with(vec![section("a & b")]),
        with((0..51).map(|_| json!({"type": "divider"})).collect()),
    ];
    for body in bad_blocks {
        assert_eq!(
            post(body.clone()).await,
            (400, "invalid_blocks".into()),
            "{body}"
        );
    }
    let bad_payloads = [
        json!([]),
        json!({"attachments": []}),
        json!({"text": "", "attachments": []}),
        json!({"text": "t", "username": "bot"}),
        json!({"text": "t", "attachments": [{"color": "red", "blocks": []}]}),
        json!({"text": "t", "attachments": [{"blocks": []}]}),
    ];
    for body in bad_payloads {
        assert_eq!(
            post(body.clone()).await,
            (400, "invalid_payload".into()),
            "{body}"
        );
    }
    // Not JSON at all.
    let r = http
        .post(peer.url(crate::support::slack::HOOK_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("payload=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // And what the channel sends passes the same checks.
    let payload = lookout_collector::notify::slack::payload(&firing());
    assert!(crate::support::slack::validate(payload.to_string().as_bytes()).is_ok());
}
