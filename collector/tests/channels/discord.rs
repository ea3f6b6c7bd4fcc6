//! The Discord channel against a strict fake of Discord's Execute Webhook.

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{
    assert_clean, build, config, firing, firing_with, message, note, send, send_the_three_states,
    with,
};
use crate::support::discord::{
    ID, MAX_CONTENT, MAX_DESCRIPTION, MAX_EMBEDS, MAX_TITLE, MAX_TOTAL, TOKEN, error, path,
    too_many_requests, validate,
};
use crate::support::http_peer::{Answer, Peer};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "chat",
        "type": "discord",
        "url": peer.url(&path()),
        "timeout": "2s",
    })
}

async fn discord() -> (Peer, Channel) {
    let peer = crate::support::discord::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request went to the webhook with `wait=true` and was accepted by the fake; their
/// bodies.
fn sent(peer: &Peer) -> Vec<Value> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.path, path());
            assert_eq!(r.query, "wait=true");
            validate(&r.body).unwrap_or_else(|e| panic!("{e:?}: {:?}", r.json()))
        })
        .collect()
}

/// An embed's field values by name.
fn field(embed: &Value, name: &str) -> Option<String> {
    embed["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| f["value"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn firing_acknowledged_and_resolved_are_coloured_embeds() {
    let (peer, channel) = discord().await;
    let fire = firing_with(
        "connecting to 10.0.0.5:443: Connection refused (os error 111)",
        Some("https://lookout.example.com/ack/42.1.2.abc"),
    );
    send_the_three_states(&channel, &fire).await;
    let [f, a, r] = sent(&peer).try_into().unwrap();
    assert_eq!(f["content"], "\\[FIRING\\] api down: 2 of 3 locations, 503");
    assert_eq!(f["allowed_mentions"], json!({"parse": []}));
    let [e]: [Value; 1] = f["embeds"].as_array().unwrap().clone().try_into().unwrap();
    assert_eq!(e["color"], 0xd73a49);
    assert_eq!(e["title"], "\\[FIRING\\] api down: 2 of 3 locations, 503");
    assert_eq!(e["url"], "https://status.example.com/checks/api");
    assert_eq!(
        e["description"],
        "api down: 2 of 3 locations, 503\n\
         **Error:** connecting to 10.0.0.5:443: Connection refused \\(os error 111\\)\n\
         [Acknowledge](https://lookout.example.com/ack/42.1.2.abc)"
    );
    assert_eq!(
        field(&e, "Labels").unwrap(),
        "check=api, location=eu\\-west, severity=critical"
    );
    assert_eq!(field(&e, "Fired").unwrap(), "2026\\-11\\-26 10:00:00 UTC");
    assert_eq!(field(&e, "Error"), None, "the error is in the description");
    assert_eq!(e["fields"][1]["inline"], true);
    assert_eq!(e["timestamp"], "2026-11-26T10:00:00.000Z");
    assert_eq!(e["footer"]["text"], "Lookout · rule uptime");

    let e = &a["embeds"][0];
    assert_eq!(e["color"], 0xffbf00, "amber");
    assert_eq!(field(e, "Acknowledged by").unwrap(), "alice");
    let e = &r["embeds"][0];
    assert_eq!(e["color"], 0x28a745);
    assert_eq!(field(e, "Lasted").unwrap(), "4m 12s");
    assert_eq!(
        e["timestamp"], "2026-11-26T10:04:12.000Z",
        "when it resolved"
    );
}

#[tokio::test]
async fn user_text_is_escaped_and_pings_nobody() {
    let (peer, channel) = discord().await;
    let mut fire = firing();
    fire.alerts[0].summary = "@everyone **api** `down` [x](https://evil.example) <@123>".into();
    send(&channel, &fire).await.unwrap();
    let [f] = sent(&peer).try_into().unwrap();
    assert_eq!(f["allowed_mentions"]["parse"], json!([]));
    assert_eq!(
        f["embeds"][0]["description"],
        "\\@everyone \\*\\*api\\*\\* \\`down\\` \\[x\\]\\(https://evil.example\\) \\<\\@123\\>"
    );
    assert!(f["content"].as_str().unwrap().contains("\\@everyone"));
}

#[tokio::test]
async fn a_grouped_message_has_an_embed_per_alert_up_to_ten_and_counts_the_rest() {
    let (peer, channel) = discord().await;
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
        (0..14)
            .map(|i| note(NoteKind::Firing, &format!("c{i}"), "down"))
            .chain([note(NoteKind::Resolved, "db", "db down")])
            .collect(),
    );
    send(&channel, &many).await.unwrap();
    let [two, big] = sent(&peer).try_into().unwrap();
    assert_eq!(
        two["content"],
        "\\[FIRING\\] 1 alert, \\[RESOLVED\\] 1 alert"
    );
    let colours: Vec<&Value> = two["embeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["color"])
        .collect();
    assert_eq!(colours, [&json!(0xd73a49), &json!(0x28a745)]);
    assert_eq!(big["embeds"].as_array().unwrap().len(), MAX_EMBEDS);
    assert!(
        big["content"]
            .as_str()
            .unwrap()
            .ends_with("\n…and 5 more alerts (4 firing, 1 resolved)"),
        "{}",
        big["content"]
    );
}

#[tokio::test]
async fn long_texts_fit_every_limit_and_6000_over_the_embeds() {
    let (peer, channel) = discord().await;
    let long = |i: usize| {
        let mut n = note(NoteKind::Firing, &format!("c{i}"), &"*".repeat(5000));
        n.detail = Some("é".repeat(5000));
        n.labels.insert("team".into(), "_".repeat(3000));
        n.ack_link = Some(format!("https://lookout.example.com/ack/{i}"));
        n
    };
    send(&channel, &message(vec![long(0)])).await.unwrap();
    send(&channel, &message((0..6).map(long).collect()))
        .await
        .unwrap();
    let [one, six] = sent(&peer).try_into().unwrap();
    let e = &one["embeds"][0];
    assert!(e["title"].as_str().unwrap().chars().count() <= MAX_TITLE);
    let d = e["description"].as_str().unwrap();
    assert!(d.chars().count() <= MAX_DESCRIPTION, "{}", d.len());
    assert!(
        d.ends_with("[Acknowledge](https://lookout.example.com/ack/0)"),
        "{d}"
    );
    assert!(one["content"].as_str().unwrap().chars().count() <= MAX_CONTENT);
    // The 6,000 over all embeds lets one of these through, and counts the others.
    let shown = six["embeds"].as_array().unwrap().len();
    assert!((1..6).contains(&shown), "{shown}");
    assert!(
        six["content"].as_str().unwrap().ends_with(&format!(
            "…and {} more alerts ({} firing)",
            6 - shown,
            6 - shown
        )),
        "{}",
        six["content"]
    );
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_url_never_shows() {
    let (peer, channel) = discord().await;
    peer.then_answer(too_many_requests(1.25));
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { reason, after } => {
            assert!(reason.contains("Discord answered 429"), "{reason}");
            assert_eq!(after, Some(std::time::Duration::from_secs(2)));
        }
        e => panic!("{e:?}"),
    }
    // Without the header, the body's float wait, rounded up.
    peer.then_answer(Answer::new(
        429,
        r#"{"message":"You are being rate limited.","retry_after":3.2,"global":true}"#,
    ));
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { after, .. } => {
            assert_eq!(after, Some(std::time::Duration::from_secs(4)))
        }
        e => panic!("{e:?}"),
    }
    peer.then_answer(Answer::new(
        502,
        &format!("bad gateway for /api/webhooks/{ID}/{TOKEN} (token {TOKEN})"),
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
    assert_clean(&e, &[TOKEN, ID]);
    // A webhook deleted or a token changed: given up, with Discord's reason.
    peer.then_answer(error(404, 10015, "Unknown Webhook"));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("404") && r.contains("Unknown Webhook")),
        "{e:?}"
    );
    let mut s = settings(&peer);
    s["url"] = peer.url(&format!("/api/webhooks/{ID}/wrongtoken")).into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("401") && r.contains("Invalid Webhook Token")),
        "{e:?}"
    );
    assert_clean(&e, &["wrongtoken", ID]);
    // No answer at all: retried, and the URL is not in the text either.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut s = settings(&peer);
    s["url"] = format!("http://{gone}{}", path()).into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[TOKEN, ID]);
}

#[tokio::test]
async fn a_query_of_its_own_is_kept_and_wait_added() {
    let peer = Peer::start(|_| Answer::new(204, "")).await;
    let mut s = settings(&peer);
    s["url"] = peer.url(&format!("{}?thread_id=77", path())).into();
    send(&build(s), &firing()).await.unwrap();
    let [r] = peer.requests().try_into().unwrap();
    assert_eq!(r.query, "thread_id=77&wait=true");
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_url() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(
        bad(json!({"name": "n", "type": "discord"})),
        "url: required"
    );
    let e = bad(json!({"name": "n", "type": "discord", "url": format!("ftp://x/{TOKEN}")}));
    assert_eq!(e, "url: expected an http:// or https:// URL");
    let e = bad(json!({"name": "n", "type": "discord", "url": format!("nope/{TOKEN}")}));
    assert!(
        e.starts_with("url: not a valid URL") && !e.contains(TOKEN),
        "{e}"
    );
    let url = format!("https://discord.com/api/webhooks/{ID}/{TOKEN}");
    let c = build(json!({"name": "n", "type": "discord", "url": url}));
    assert!(!format!("{c:?}").contains(TOKEN));
    let cfg = config(json!({"name": "n", "type": "discord", "url": url}));
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains(TOKEN) && shown.contains("https://discord.com/***"),
        "{shown}"
    );
}

#[tokio::test]
async fn notify_test_sends_one_message() {
    let (peer, _) = discord().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "chat")
        .await
        .unwrap();
    assert!(said.contains("chat (discord)"), "{said}");
    let [m] = sent(&peer).try_into().unwrap();
    assert!(
        m["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains("channel chat works"),
        "{m}"
    );
}

/// The fake is only worth its passes if it fails what Discord fails.
#[test]
fn fake_refuses_what_discord_refuses() {
    let embed = json!({"title": "t", "description": "d", "url": "https://x/", "color": 1,
                       "timestamp": "2026-11-26T10:00:00.000Z", "footer": {"text": "f"},
                       "author": {"name": "a"},
                       "fields": [{"name": "n", "value": "v", "inline": true}]});
    let good = json!({"content": "c", "embeds": [embed], "allowed_mentions": {"parse": []},
                      "username": "Lookout", "tts": false});
    assert!(validate(good.to_string().as_bytes()).is_ok());
    let f = |_: usize| json!({"name": "n", "value": "v"});
    let big_embed = |n: usize| json!({"description": "x".repeat(n)});
    for body in [
        with(&good, &["content"], json!("x".repeat(2001))),
        with(&good, &["content"], json!(7)),
        with(&good, &["colour"], json!(1)),
        with(&good, &["username"], json!("")),
        with(&good, &["tts"], json!("no")),
        with(&good, &["embeds"], json!(vec![json!({"title": "t"}); 11])),
        with(&good, &["embeds"], json!({"title": "t"})),
        with(&good, &["embeds"], json!([{"title": "x".repeat(257)}])),
        with(&good, &["embeds"], json!([big_embed(4097)])),
        with(
            &good,
            &["embeds"],
            json!([big_embed(4000), big_embed(2001)]),
        ),
        with(
            &good,
            &["embeds"],
            json!([{"fields": (0..26).map(f).collect::<Vec<_>>()}]),
        ),
        with(
            &good,
            &["embeds"],
            json!([{"fields": [{"name": "n", "value": ""}]}]),
        ),
        with(&good, &["embeds"], json!([{"fields": [{"name": "n"}]}])),
        with(
            &good,
            &["embeds"],
            json!([{"fields": [{"name": "x".repeat(257), "value": "v"}]}]),
        ),
        with(
            &good,
            &["embeds"],
            json!([{"fields": [{"name": "n", "value": "x".repeat(1025)}]}]),
        ),
        with(
            &good,
            &["embeds"],
            json!([{"fields": [{"name": "n", "value": "v", "inline": 1}]}]),
        ),
        with(
            &good,
            &["embeds"],
            json!([{"footer": {"text": "x".repeat(2049)}}]),
        ),
        with(&good, &["embeds"], json!([{"footer": {"icon": "x"}}])),
        with(
            &good,
            &["embeds"],
            json!([{"author": {"name": "x".repeat(257)}}]),
        ),
        with(&good, &["embeds"], json!([{"color": "#ff0000"}])),
        with(&good, &["embeds"], json!([{"color": 0x100_0000}])),
        with(&good, &["embeds"], json!([{"color": -1}])),
        with(&good, &["embeds"], json!([{"timestamp": "yesterday"}])),
        with(&good, &["embeds"], json!([{"url": "javascript:alert(1)"}])),
        with(&good, &["embeds"], json!([{"colour": 1}])),
        with(&good, &["allowed_mentions"], json!({"parse": ["channels"]})),
        with(&good, &["allowed_mentions"], json!({"ping": true})),
        json!({"content": ""}),
        json!([]),
    ] {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert!(validate(b"not json").is_err());
    // The 6,000 counts titles, field names and values and footers too.
    let parts = json!([{"title": "x".repeat(256), "description": "x".repeat(4096),
                        "footer": {"text": "x".repeat(1000)},
                        "fields": [{"name": "n", "value": "x".repeat(700)}]}]);
    assert!(validate(with(&good, &["embeds"], parts).to_string().as_bytes()).is_err());
    assert_eq!(MAX_TOTAL, 6000);
}
