//! The Teams channel against a strict fake of a Workflows webhook taking an Adaptive Card.

use std::time::Duration;

use lookout_collector::notify::{AlertNote, Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{
    assert_clean, build, config, firing, firing_with, message, note, send, send_the_three_states,
    with,
};
use crate::support::free_port;
use crate::support::http_peer::{Answer, Peer};
use crate::support::teams::{MAX_BYTES, PATH, SIG, query, shown, throttled, validate};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "ops-teams",
        "type": "teams",
        "url": peer.url(&format!("{PATH}?{}", query())),
        "timeout": "2s",
    })
}

async fn teams() -> (Peer, Channel) {
    let peer = crate::support::teams::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request was a valid card; their cards (the attachment's `content`).
fn cards(peer: &Peer) -> Vec<Value> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(validate(&r.body), Ok(()), "{}", r.json());
            let v = r.json();
            assert_eq!(v["attachments"].as_array().unwrap().len(), 1);
            v["attachments"][0]["content"].clone()
        })
        .collect()
}

/// A `FactSet`'s facts as (title, shown value).
fn facts(set: &Value) -> Vec<(String, String)> {
    assert_eq!(set["type"], "FactSet");
    set["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let value = shown(f["value"].as_str().unwrap()).expect("escaped");
            (f["title"].as_str().unwrap().to_string(), value)
        })
        .collect()
}

fn text(block: &Value) -> String {
    assert_eq!(block["type"], "TextBlock", "{block}");
    shown(block["text"].as_str().unwrap()).expect("escaped")
}

#[tokio::test]
async fn firing_with_its_acknowledge_button_acknowledged_and_resolved() {
    let (peer, channel) = teams().await;
    let fire = firing_with(
        "connecting to 10.0.0.5:443: Connection refused (os error 111)",
        Some("https://lookout.example/ack/42.1795687200000.1796292000.ab"),
    );
    send_the_three_states(&channel, &fire).await;
    let [f, a, r] = cards(&peer).try_into().unwrap();

    assert_eq!(f["type"], "AdaptiveCard");
    assert_eq!(f["version"], "1.4");
    assert_eq!(
        f["fallbackText"],
        "[FIRING] api down: 2 of 3 locations, 503"
    );
    let body = f["body"].as_array().unwrap();
    assert_eq!(body.len(), 2, "{f}");
    assert_eq!(text(&body[0]), "[FIRING] api down: 2 of 3 locations, 503");
    assert_eq!(body[0]["color"], "Attention");
    assert_eq!(body[0]["weight"], "Bolder");
    assert_eq!(
        facts(&body[1]),
        [
            ("Labels", "check=api, location=eu-west, severity=critical"),
            (
                "Error",
                "connecting to 10.0.0.5:443: Connection refused (os error 111)"
            ),
            ("Fired", "2026-11-26 10:00:00 UTC"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        f["actions"],
        json!([
            {"type": "Action.OpenUrl", "title": "Open in Lookout",
             "url": "https://status.example.com/checks/api"},
            {"type": "Action.OpenUrl", "title": "Acknowledge", "style": "positive",
             "url": "https://lookout.example/ack/42.1795687200000.1796292000.ab"},
        ])
    );

    let body = a["body"].as_array().unwrap();
    assert_eq!(text(&body[0]), "[ACKNOWLEDGED] api down");
    assert_eq!(body[0]["color"], "Accent");
    assert!(facts(&body[1]).contains(&("Acknowledged by".into(), "alice".into())));
    let titles: Vec<&Value> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["title"])
        .collect();
    assert_eq!(
        titles,
        [&json!("Open in Lookout")],
        "no button to acknowledge again"
    );

    let body = r["body"].as_array().unwrap();
    assert_eq!(text(&body[0]), "[RESOLVED] api down");
    assert_eq!(body[0]["color"], "Good");
    let rf = facts(&body[1]);
    assert!(
        rf.contains(&("Resolved".into(), "2026-11-26 10:04:12 UTC".into())),
        "{rf:?}"
    );
    assert!(rf.contains(&("Lasted".into(), "4m 12s".into())), "{rf:?}");
}

#[tokio::test]
async fn a_grouped_message_is_one_card_with_a_block_and_buttons_per_alert() {
    let (peer, channel) = teams().await;
    let mut api = note(NoteKind::Firing, "api", "api down");
    api.ack_link = Some("https://lookout.example/ack/1.2.3.aa".into());
    let msg = message(vec![
        api,
        note(NoteKind::Reminder, "web", "web slow"),
        note(NoteKind::Resolved, "db", "db down"),
    ]);
    send(&channel, &msg).await.unwrap();
    let [c] = cards(&peer).try_into().unwrap();
    assert!(c.get("actions").is_none(), "the buttons are each alert's");
    let body = c["body"].as_array().unwrap();
    assert_eq!(
        text(&body[0]),
        "[FIRING] 1 alert, [REMINDER] 1 alert, [RESOLVED] 1 alert"
    );
    assert_eq!(body[0]["color"], "Attention", "the most urgent state's");
    let headings: Vec<(String, &Value)> = body
        .iter()
        .filter(|b| b["separator"] == true)
        .map(|b| (text(b), &b["color"]))
        .collect();
    assert_eq!(
        headings,
        [
            ("FIRING · api".to_string(), &json!("Attention")),
            ("REMINDER · web".to_string(), &json!("Warning")),
            ("RESOLVED · db".to_string(), &json!("Good")),
        ]
    );
    let action_sets: Vec<Vec<&str>> = body
        .iter()
        .filter(|b| b["type"] == "ActionSet")
        .map(|b| {
            b["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["title"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        action_sets,
        [
            vec!["Open in Lookout", "Acknowledge"],
            vec!["Open in Lookout"],
            vec!["Open in Lookout"],
        ]
    );
    assert_eq!(text(&body[2]), "api down", "the summary under its heading");
}

#[tokio::test]
async fn what_does_not_fit_in_28_kb_is_left_out_whole_and_counted() {
    let (peer, channel) = teams().await;
    let mut alerts: Vec<AlertNote> = (0..150)
        .map(|i| {
            let mut n = note(
                NoteKind::Firing,
                &format!("check-{i}"),
                &"down * ".repeat(40),
            );
            n.detail = Some("é<&>".repeat(100));
            n
        })
        .collect();
    alerts.extend((0..50).map(|i| note(NoteKind::Resolved, &format!("old-{i}"), "was down")));
    send(&channel, &message(alerts)).await.unwrap();
    let [r] = peer.requests().try_into().unwrap();
    assert!(
        r.body.len() <= MAX_BYTES && r.body.len() > MAX_BYTES - 3000,
        "{}",
        r.body.len()
    );
    let [c] = cards(&peer).try_into().unwrap();
    let body = c["body"].as_array().unwrap();
    let shown_alerts = body.iter().filter(|b| b["type"] == "FactSet").count();
    let last = text(body.last().unwrap());
    assert_eq!(
        last,
        format!(
            "…and {} more alerts ({} firing, 50 resolved)",
            200 - shown_alerts,
            150 - shown_alerts
        )
    );
    assert!(shown_alerts > 5, "{shown_alerts}");
    // Every shown alert is whole: its summary and error as they were.
    let first = facts(&body[3]);
    assert_eq!(first[1], ("Error".to_string(), "é<&>".repeat(100)));
    assert_eq!(text(&body[2]), "down * ".repeat(40));
}

#[tokio::test]
async fn markdown_in_alert_text_shows_as_written() {
    let (peer, channel) = teams().await;
    let nasty = "**bold** _it_ [x](https://evil.example) <at>all</at> `code` ~~s~~ \
                 {{DATE(2026-01-01T00:00:00Z, SHORT)}} \\n";
    let mut n = note(NoteKind::Firing, "api", nasty);
    n.labels.insert("path".into(), "- /a_b_c".into());
    n.detail = Some("# not a heading\n- not a list\n1. nor this".into());
    send(&channel, &message(vec![n.clone(), n])).await.unwrap();
    let [c] = cards(&peer).try_into().unwrap();
    let body = c["body"].as_array().unwrap();
    assert_eq!(text(&body[2]), nasty);
    let f = facts(&body[3]);
    assert_eq!(
        f[0].1,
        "check=api, location=eu-west, path=- /a_b_c, severity=critical"
    );
    assert_eq!(f[1].1, "# not a heading\n- not a list\n1. nor this");
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_url_never_shows() {
    let (peer, channel) = teams().await;
    peer.then_answer(throttled(30));
    let e = send(&channel, &firing()).await.unwrap_err();
    match &e {
        SendError::Retry { reason, after } => {
            assert!(
                reason.starts_with("Teams answered 429 Too Many Requests"),
                "{reason}"
            );
            assert_eq!(*after, Some(Duration::from_secs(30)));
        }
        e => panic!("{e:?}"),
    }
    // A proxy that quotes the request's URL and the signature in its error page.
    let url = peer.url(&format!("{PATH}?{}", query()));
    peer.then_answer(Answer::new(
        502,
        &format!("bad gateway for {url} sig {SIG}"),
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
    assert_clean(&e, &[SIG, PATH, "0b5e3c1d2a4f"]);
    peer.then_answer(Answer::new(
        400,
        r#"{"error":{"code":"TriggerInputSchemaMismatch"}}"#,
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("400") && r.contains("TriggerInputSchemaMismatch")),
        "{e:?}"
    );
    // A wrong signature: 401, given up, and neither signature shows.
    let mut s = settings(&peer);
    s["url"] = peer
        .url(&format!(
            "{PATH}?{}",
            query().replace(SIG, "WRONGsig0123456789")
        ))
        .into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("401") && r.contains("DirectApiInvalidAuthorizationSignature")),
        "{e:?}"
    );
    assert_clean(&e, &["WRONGsig0123456789", PATH]);
    // Nothing listens: retried, no URL.
    let nobody = free_port();
    let gone = build(json!({
        "name": "t", "type": "teams",
        "url": format!("http://127.0.0.1:{nobody}{PATH}?{}", query()),
    }));
    let e = send(&gone, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[SIG, PATH]);
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_url() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(bad(json!({"name": "n", "type": "teams"})), "url: required");
    let e = bad(json!({"name": "n", "type": "teams", "url": "ftp://x/y?sig=abcdef"}));
    assert!(e.starts_with("url: expected an http"), "{e}");
    assert!(!e.contains("abcdef"), "{e}");
    let url = format!(
        "https://prod-12.westeurope.logic.azure.com:443{PATH}?{}",
        query()
    );
    let v = json!({"name": "n", "type": "teams", "url": url});
    for shown in [
        format!("{:?}", build(v.clone())),
        format!("{:?}", config(v)),
    ] {
        assert!(!shown.contains(SIG) && !shown.contains(PATH), "{shown}");
    }
}

#[tokio::test]
async fn notify_test_posts_one_card() {
    let (peer, _) = teams().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "ops-teams")
        .await
        .unwrap();
    assert!(said.contains("ops-teams (teams)"), "{said}");
    let [c] = cards(&peer).try_into().unwrap();
    assert!(
        text(&c["body"][0]).starts_with("[FIRING] test notification from lookout-collector"),
        "{c}"
    );
}

/// The fake is only worth its passes if it fails what Teams fails.
#[test]
fn fake_refuses_what_teams_refuses() {
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4", "msteams": {"width": "Full"},
        "body": [
            {"type": "TextBlock", "text": "t", "color": "Attention", "weight": "Bolder",
             "wrap": true, "separator": true, "spacing": "Medium"},
            {"type": "FactSet", "facts": [{"title": "a", "value": "b"}]},
            {"type": "ActionSet", "actions": [
                {"type": "Action.OpenUrl", "title": "o", "url": "https://x.example/"}]},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "o", "url": "http://x.example/a"}],
    });
    let good = json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
        "content": card}]});
    assert_eq!(validate(good.to_string().as_bytes()), Ok(()));
    let c = |path: &[&str], v: Value| {
        let mut full = vec!["attachments", "0", "content"];
        full.extend_from_slice(path);
        let mut out = good.clone();
        let mut at = &mut out;
        for p in &full[..full.len() - 1] {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        let last = full[full.len() - 1];
        if v.is_null() {
            at.as_object_mut().unwrap().remove(last);
        } else {
            at[last] = v;
        }
        out
    };
    let bad = [
        with(&good, &["type"], json!("card")),
        with(&good, &["attachments"], json!([])),
        with(
            &good,
            &["attachments"],
            json!([{"contentType": "text/plain", "content": {}}]),
        ),
        c(&["type"], json!("HeroCard")),
        c(&["version"], Value::Null),
        c(&["version"], json!("1.6")),
        c(&["version"], json!(1.4)),
        c(&["msteams"], json!({"width": "Wide"})),
        c(&["colour"], json!("red")),
        c(&["body"], json!([{"type": "Image", "url": "https://x/"}])),
        c(&["body"], json!([{"type": "TextBlock"}])),
        c(&["body"], json!([{"type": "TextBlock", "text": ""}])),
        c(
            &["body"],
            json!([{"type": "TextBlock", "text": "t", "color": "Red"}]),
        ),
        c(
            &["body"],
            json!([{"type": "TextBlock", "text": "t", "weight": "Bold"}]),
        ),
        c(
            &["body"],
            json!([{"type": "TextBlock", "text": "t", "wrap": "yes"}]),
        ),
        c(
            &["body"],
            json!([{"type": "TextBlock", "text": "t", "style": "heading"}]),
        ),
        c(
            &["body"],
            json!([{"type": "TextBlock", "text": "t", "colour": "Good"}]),
        ),
        c(&["body"], json!([{"type": "FactSet", "facts": []}])),
        c(
            &["body"],
            json!([{"type": "FactSet", "facts": [{"title": "a"}]}]),
        ),
        c(
            &["body"],
            json!([{"type": "FactSet", "facts": [{"title": "a", "value": 1}]}]),
        ),
        c(&["body"], json!([{"type": "ActionSet", "actions": []}])),
        c(
            &["actions"],
            json!([{"type": "Action.Submit", "title": "s"}]),
        ),
        c(
            &["actions"],
            json!([{"type": "Action.OpenUrl", "title": "o"}]),
        ),
        c(
            &["actions"],
            json!([{"type": "Action.OpenUrl", "title": "o", "url": "/ack/1"}]),
        ),
        c(
            &["actions"],
            json!([{"type": "Action.OpenUrl", "title": "o", "url": "javascript:alert(1)"}]),
        ),
        c(
            &["actions"],
            json!([{"type": "Action.OpenUrl", "url": "https://x/"}]),
        ),
        c(&["fallbackText"], json!("x".repeat(MAX_BYTES))),
        json!([]),
    ];
    for body in bad {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert!(validate(b"not json").is_err());
    // The text a reader would see: escapes taken out; Markdown left to format refused.
    assert_eq!(
        shown("a \\*b\\* \\_c\\_ \\{\\{DATE(x)\\}\\}").as_deref(),
        Some("a *b* _c_ {{DATE(x)}}")
    );
    for formats in [
        "**b**",
        "_i_",
        "[a](b)",
        "{{DATE(x)}}",
        "- item",
        "<at>x</at>",
    ] {
        assert_eq!(shown(formats), None, "{formats}");
    }
}
