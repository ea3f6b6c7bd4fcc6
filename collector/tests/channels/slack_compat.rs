//! The Mattermost and Rocket.Chat channels against strict fakes of their Slack-compatible
//! incoming webhooks; each test runs for both.

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{
    assert_clean, build, config, firing, firing_with, message, note, send, send_the_three_states,
    with,
};
use crate::support::http_peer::{Answer, Peer};
use crate::support::slack_compat::{HOOK_SECRET, Vendor, start, too_many_requests, validate};

const BOTH: [Vendor; 2] = [Vendor::Mattermost, Vendor::RocketChat];

fn kind(v: Vendor) -> &'static str {
    match v {
        Vendor::Mattermost => "mattermost",
        Vendor::RocketChat => "rocketchat",
    }
}

fn settings(v: Vendor, peer: &Peer) -> Value {
    json!({"name": "chat", "type": kind(v), "url": peer.url(&v.path()), "timeout": "2s"})
}

async fn channel(v: Vendor) -> (Peer, Channel) {
    let peer = start(v).await;
    let channel = build(settings(v, &peer));
    (peer, channel)
}

/// Every request went to the hook and was accepted by the fake; their bodies.
fn sent(v: Vendor, peer: &Peer) -> Vec<Value> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.path, v.path());
            validate(v, &r.body).unwrap_or_else(|e| panic!("{v:?} {e:?}: {:?}", r.json()))
        })
        .collect()
}

fn field(a: &Value, name: &str) -> Option<String> {
    a["fields"]
        .as_array()?
        .iter()
        .find(|f| f["title"] == name)
        .map(|f| f["value"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn firing_acknowledged_and_resolved_are_coloured_attachments() {
    for v in BOTH {
        let (peer, channel) = channel(v).await;
        let fire = firing_with(
            "connecting to 10.0.0.5:443: refused (os error 111)",
            Some("https://lookout.example.com/ack/42.1.2.abc"),
        );
        send_the_three_states(&channel, &fire).await;
        let [f, a, r] = sent(v, &peer).try_into().unwrap();
        let att = &f["attachments"][0];
        assert_eq!(att["color"], "#d73a49", "{v:?}");
        assert_eq!(att["title"], "[FIRING] api");
        assert_eq!(att["title_link"], "https://status.example.com/checks/api");
        assert_eq!(
            field(att, "Fired").unwrap(),
            match v {
                Vendor::Mattermost => "2026\\-11\\-26 10:00:00 UTC",
                Vendor::RocketChat => "2026-11-26 10:00:00 UTC",
            }
        );
        assert_eq!(att["fields"][1]["short"], true);
        let text = att["text"].as_str().unwrap();
        match v {
            Vendor::Mattermost => {
                assert_eq!(f["text"], "\\[FIRING\\] api down: 2 of 3 locations, 503");
                assert_eq!(
                    text,
                    "api down: 2 of 3 locations, 503\n\
                     **Error:** connecting to 10.0.0.5:443: refused \\(os error 111\\)\n\
                     [Acknowledge](https://lookout.example.com/ack/42.1.2.abc)"
                );
                assert_eq!(att["fallback"], "[FIRING] api down: 2 of 3 locations, 503");
                assert_eq!(att["footer"], "Lookout · rule uptime");
            }
            Vendor::RocketChat => {
                assert_eq!(f["text"], "[FIRING] api down: 2 of 3 locations, 503");
                assert_eq!(
                    text,
                    "api down: 2 of 3 locations, 503\n\
                     **Error:** connecting to 10.0.0.5:443: refused (os error 111)\n\
                     [Acknowledge](https://lookout.example.com/ack/42.1.2.abc)"
                );
                assert!(att.get("fallback").is_none() && att.get("footer").is_none());
            }
        }
        let att = &a["attachments"][0];
        assert_eq!(att["color"], "#6f42c1");
        assert_eq!(field(att, "Acknowledged by").unwrap(), "alice");
        let att = &r["attachments"][0];
        assert_eq!(att["color"], "#28a745");
        assert_eq!(field(att, "Lasted").unwrap(), "4m 12s");
    }
}

#[tokio::test]
async fn mentions_in_alerts_notify_nobody() {
    for v in BOTH {
        let (peer, channel) = channel(v).await;
        let mut fire = firing();
        fire.alerts[0].summary = "@channel @all @here api down".into();
        fire.alerts[0].labels.insert("check".into(), "@here".into());
        send(&channel, &fire).await.unwrap();
        let [f] = sent(v, &peer).try_into().unwrap();
        let all = f.to_string();
        for m in ["@channel", "@all", "@here"] {
            assert!(!all.contains(m), "{v:?}: {m} in {all}");
        }
        assert!(all.contains("@\u{200B}channel"), "{all}");
    }
}

#[tokio::test]
async fn grouped_messages_have_an_attachment_each_within_the_limit_and_count_the_rest() {
    for v in BOTH {
        let (peer, channel) = channel(v).await;
        send(
            &channel,
            &message(vec![
                note(NoteKind::Firing, "web", "web slow"),
                note(NoteKind::Resolved, "db", "db down"),
            ]),
        )
        .await
        .unwrap();
        let many = message(
            (0..30)
                .map(|i| note(NoteKind::Firing, &format!("c{i}"), "down"))
                .collect(),
        );
        send(&channel, &many).await.unwrap();
        let long = message(
            (0..20)
                .map(|i| {
                    let mut n = note(NoteKind::Firing, &format!("c{i}"), &"*".repeat(3000));
                    n.detail = Some("é".repeat(3000));
                    n
                })
                .collect(),
        );
        send(&channel, &long).await.unwrap();
        let [two, thirty, long] = sent(v, &peer).try_into().unwrap();
        let colours: Vec<&Value> = two["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["color"])
            .collect();
        assert_eq!(colours, [&json!("#d73a49"), &json!("#28a745")]);
        assert_eq!(thirty["attachments"].as_array().unwrap().len(), 20, "{v:?}");
        assert!(
            thirty["text"]
                .as_str()
                .unwrap()
                .ends_with("\n…and 10 more alerts (10 firing)"),
            "{}",
            thirty["text"]
        );
        // The fake has checked the whole fits the vendor's limit; some were left out for it.
        let shown = long["attachments"].as_array().unwrap().len();
        assert!((1..20).contains(&shown), "{v:?}: {shown}");
        assert!(
            long["text"]
                .as_str()
                .unwrap()
                .ends_with(&format!("more alerts ({} firing)", 20 - shown)),
            "{}",
            long["text"]
        );
    }
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_url_never_shows() {
    for v in BOTH {
        let (peer, channel) = channel(v).await;
        peer.then_answer(too_many_requests(v, 30));
        match send(&channel, &firing()).await.unwrap_err() {
            SendError::Retry { reason, after } => {
                assert!(reason.contains("answered 429"), "{reason}");
                assert_eq!(after, Some(std::time::Duration::from_secs(30)), "{v:?}");
            }
            e => panic!("{e:?}"),
        }
        peer.then_answer(Answer::new(
            502,
            &format!("bad gateway for /hooks/{HOOK_SECRET}"),
        ));
        let e = send(&channel, &firing()).await.unwrap_err();
        assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
        assert_clean(&e, &[HOOK_SECRET]);
        // Another hook: refused for good, with the server's reason, and the URL not shown.
        let mut s = settings(v, &peer);
        s["url"] = peer.url("/hooks/notmyhook0000000000000000").into();
        let e = send(&build(s), &firing()).await.unwrap_err();
        assert!(
            matches!(&e, SendError::Permanent(r) if r.contains("Invalid")),
            "{v:?}: {e:?}"
        );
        assert_clean(&e, &["notmyhook"]);
    }
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_url() {
    for v in BOTH {
        let bad = |j: Value| Channel::build(&config(j), reqwest::Client::new()).unwrap_err();
        assert_eq!(bad(json!({"name": "n", "type": kind(v)})), "url: required");
        let e = bad(json!({"name": "n", "type": kind(v), "url": format!("ftp://x/{HOOK_SECRET}")}));
        assert_eq!(e, "url: expected an http:// or https:// URL");
        let url = format!("https://chat.example.com/hooks/{HOOK_SECRET}");
        let c = build(json!({"name": "n", "type": kind(v), "url": url}));
        assert!(!format!("{c:?}").contains(HOOK_SECRET));
        let shown = format!(
            "{:?}",
            config(json!({"name": "n", "type": kind(v), "url": url}))
        );
        assert!(
            !shown.contains(HOOK_SECRET) && shown.contains("https://chat.example.com/***"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn notify_test_sends_one_message() {
    for v in BOTH {
        let peer = start(v).await;
        let channels = vec![config(settings(v, &peer))];
        let said = lookout_collector::notify::send_test(&channels, "chat")
            .await
            .unwrap();
        assert!(said.contains(&format!("chat ({})", kind(v))), "{said}");
        let [m] = sent(v, &peer).try_into().unwrap();
        assert!(
            m["text"].as_str().unwrap().contains("channel chat works"),
            "{m}"
        );
    }
}

/// The fakes are only worth their passes if they fail what the servers fail.
#[test]
fn fakes_refuse_what_the_servers_refuse() {
    let att = json!({"color": "#d73a49", "title": "t", "title_link": "https://x/", "text": "x",
                     "fields": [{"title": "a", "value": "b", "short": true}]});
    for v in BOTH {
        let good = json!({"text": "t", "attachments": [att]});
        assert!(validate(v, good.to_string().as_bytes()).is_ok(), "{v:?}");
        let long = "x".repeat(v.max_chars() + 1);
        for body in [
            with(&good, &["blocks"], json!([{"type": "section"}])),
            with(&good, &["text"], json!(long)),
            with(&good, &["text"], json!(7)),
            with(&good, &["attachments"], json!({"text": "x"})),
            with(&good, &["attachments"], json!([{"colour": "red"}])),
            with(&good, &["attachments"], json!([{"color": "red"}])),
            with(
                &good,
                &["attachments"],
                json!([{"title_link": "javascript:x"}]),
            ),
            with(
                &good,
                &["attachments"],
                json!([{"fields": [{"title": "a"}]}]),
            ),
            with(
                &good,
                &["attachments"],
                json!([{"fields": [{"title": "a", "value": "b", "short": "yes"}]}]),
            ),
            with(&good, &["attachments"], json!([{"text": long}])),
            with(&good, &["unfurl_links"], json!(true)),
            json!({}),
            json!([]),
        ] {
            assert!(
                validate(v, body.to_string().as_bytes()).is_err(),
                "{v:?}: {body}"
            );
        }
    }
    // What each keeps and drops.
    let mm = json!({"text": "t", "username": "L", "icon_url": "https://x/i.png", "channel": "ops",
                    "attachments": [{"fallback": "f", "pretext": "p", "author_name": "a",
                                     "image_url": "https://x/i.png", "footer": "f"}]});
    assert!(validate(Vendor::Mattermost, mm.to_string().as_bytes()).is_ok());
    assert!(validate(Vendor::RocketChat, mm.to_string().as_bytes()).is_err());
    let rc = json!({"text": "t", "alias": "L", "emoji": ":x:", "avatar": "https://x/i.png"});
    assert!(validate(Vendor::RocketChat, rc.to_string().as_bytes()).is_ok());
    assert!(validate(Vendor::Mattermost, rc.to_string().as_bytes()).is_err());
}
