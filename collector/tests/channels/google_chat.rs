//! The Google Chat channel against a strict fake of a space's incoming webhook.

use lookout_collector::notify::{AlertNote, Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{
    assert_clean, build, config, firing, firing_with, message, note, send, send_the_three_states,
    with,
};
use crate::support::free_port;
use crate::support::google_chat::{
    KEY, MAX_BYTES, MAX_WIDGETS, PATH, TOKEN, exhausted, query, shown, validate,
};
use crate::support::http_peer::{Answer, Peer};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "ops-chat",
        "type": "google_chat",
        "url": peer.url(&format!("{PATH}?{}", query())),
        "timeout": "2s",
    })
}

async fn google_chat() -> (Peer, Channel) {
    let peer = crate::support::google_chat::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request was a valid message; their bodies.
fn messages(peer: &Peer) -> Vec<Value> {
    peer.requests()
        .iter()
        .map(|r| validate(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.json())))
        .collect()
}

/// The card's sections.
fn sections(m: &Value) -> Vec<Value> {
    assert_eq!(m["cardsV2"].as_array().unwrap().len(), 1, "{m}");
    m["cardsV2"][0]["card"]["sections"]
        .as_array()
        .unwrap()
        .clone()
}

/// A section's facts as (label, shown text), its summary, and its buttons' (text, url).
#[allow(clippy::type_complexity)]
fn read(section: &Value) -> (String, Vec<(String, String)>, Vec<(String, String)>) {
    let w = section["widgets"].as_array().unwrap();
    let summary = shown(w[0]["textParagraph"]["text"].as_str().unwrap()).unwrap();
    let facts = w
        .iter()
        .filter_map(|w| w.get("decoratedText"))
        .map(|d| {
            (
                d["topLabel"].as_str().unwrap().to_string(),
                shown(d["text"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let buttons = w
        .iter()
        .filter_map(|w| w.get("buttonList"))
        .flat_map(|b| b["buttons"].as_array().unwrap().clone())
        .map(|b| {
            (
                b["text"].as_str().unwrap().to_string(),
                b["onClick"]["openLink"]["url"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    (summary, facts, buttons)
}

#[tokio::test]
async fn firing_with_its_acknowledge_button_acknowledged_and_resolved() {
    let (peer, channel) = google_chat().await;
    let fire = firing_with(
        "connecting to 10.0.0.5:443: Connection refused (os error 111)",
        Some("https://lookout.example/ack/42.17956.17962.ab?x=1&y=2"),
    );
    send_the_three_states(&channel, &fire).await;
    let [f, a, r] = messages(&peer).try_into().unwrap();

    assert_eq!(f["text"], "[FIRING] api down: 2 of 3 locations, 503");
    let card = &f["cardsV2"][0];
    assert_eq!(card["cardId"], "lookout");
    assert_eq!(
        card["card"]["header"],
        json!({"title": "[FIRING] api down: 2 of 3 locations, 503", "subtitle": "Lookout"})
    );
    let [s] = sections(&f).try_into().unwrap();
    assert_eq!(
        s["header"],
        "<font color=\"#d73a49\"><b>FIRING</b></font> · api"
    );
    let (summary, facts, buttons) = read(&s);
    assert_eq!(summary, "api down: 2 of 3 locations, 503");
    assert_eq!(
        facts,
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
        buttons,
        [
            ("Open in Lookout", "https://status.example.com/checks/api"),
            (
                "Acknowledge",
                "https://lookout.example/ack/42.17956.17962.ab?x=1&y=2"
            ),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    let [s] = sections(&a).try_into().unwrap();
    assert!(
        s["header"]
            .as_str()
            .unwrap()
            .contains("#6f42c1\"><b>ACKNOWLEDGED"),
        "{s}"
    );
    let (_, facts, buttons) = read(&s);
    assert!(facts.contains(&("Acknowledged by".into(), "alice".into())));
    assert_eq!(
        buttons.len(),
        1,
        "no button to acknowledge again: {buttons:?}"
    );

    assert_eq!(r["text"], "[RESOLVED] api down");
    let [s] = sections(&r).try_into().unwrap();
    assert!(
        s["header"]
            .as_str()
            .unwrap()
            .contains("#28a745\"><b>RESOLVED"),
        "{s}"
    );
    let (_, facts, _) = read(&s);
    assert!(
        facts.contains(&("Lasted".into(), "4m 12s".into())),
        "{facts:?}"
    );
}

#[tokio::test]
async fn a_grouped_message_is_one_card_with_a_section_per_alert() {
    let (peer, channel) = google_chat().await;
    let mut api = note(NoteKind::Firing, "api", "api down");
    api.ack_link = Some("https://lookout.example/ack/1.2.3.aa".into());
    send(
        &channel,
        &message(vec![
            api,
            note(NoteKind::Reminder, "web", "web slow"),
            note(NoteKind::Resolved, "db", "db down"),
        ]),
    )
    .await
    .unwrap();
    let [m] = messages(&peer).try_into().unwrap();
    assert_eq!(
        m["text"],
        "[FIRING] 1 alert, [REMINDER] 1 alert, [RESOLVED] 1 alert"
    );
    let s = sections(&m);
    let headers: Vec<String> = s
        .iter()
        .map(|s| shown(s["header"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(headers, ["FIRING · api", "REMINDER · web", "RESOLVED · db"]);
    let buttons: Vec<usize> = s.iter().map(|s| read(s).2.len()).collect();
    assert_eq!(buttons, [2, 1, 1]);
    assert_eq!(read(&s[2]).0, "db down");
}

#[tokio::test]
async fn what_does_not_fit_in_100_widgets_or_32000_bytes_is_left_out_whole_and_counted() {
    let (peer, channel) = google_chat().await;
    // Short alerts: the widget limit binds.
    let short: Vec<AlertNote> = (0..60)
        .map(|i| note(NoteKind::Firing, &format!("c{i}"), "down"))
        .collect();
    send(&channel, &message(short)).await.unwrap();
    // Long ones: the byte limit binds.
    let mut long: Vec<AlertNote> = (0..40)
        .map(|i| {
            let mut n = note(
                NoteKind::Firing,
                &format!("check-{i}"),
                &"<down> & ".repeat(100),
            );
            n.detail = Some("é\"&".repeat(300));
            n
        })
        .collect();
    long.extend((0..5).map(|i| note(NoteKind::Resolved, &format!("old-{i}"), "was down")));
    send(&channel, &message(long)).await.unwrap();
    let [few, big] = messages(&peer).try_into().unwrap();
    let bytes: Vec<usize> = peer.requests().iter().map(|r| r.body.len()).collect();

    let s = sections(&few);
    let widgets: usize = s
        .iter()
        .map(|s| s["widgets"].as_array().unwrap().len())
        .sum();
    assert!(
        widgets <= MAX_WIDGETS && widgets > MAX_WIDGETS - 6,
        "{widgets}"
    );
    let shown_alerts = s.len() - 1;
    let last = shown(
        s.last().unwrap()["widgets"][0]["textParagraph"]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        last,
        format!("…and {0} more alerts ({0} firing)", 60 - shown_alerts)
    );

    assert!(
        bytes[1] <= MAX_BYTES && bytes[1] > MAX_BYTES - 4000,
        "{bytes:?}"
    );
    let s = sections(&big);
    let shown_alerts = s.len() - 1;
    assert!(shown_alerts >= 2, "{shown_alerts}");
    let last = shown(
        s.last().unwrap()["widgets"][0]["textParagraph"]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        last,
        format!(
            "…and {} more alerts ({} firing, 5 resolved)",
            45 - shown_alerts,
            40 - shown_alerts
        )
    );
    // Every shown alert is whole, its text as written.
    let (summary, facts, _) = read(&s[0]);
    assert_eq!(summary, "<down> & ".repeat(100));
    assert_eq!(facts[1], ("Error".to_string(), "é\"&".repeat(300)));
}

#[tokio::test]
async fn html_in_alert_text_shows_as_written() {
    let (peer, channel) = google_chat().await;
    let nasty = "<b>not bold</b> <a href=\"https://evil.example\">x</a> &amp; <users/all> \"q\"";
    let mut n = note(NoteKind::Firing, "<api>", nasty);
    n.detail = Some("<font color=\"red\">x</font> &lt;".into());
    send(&channel, &message(vec![n.clone(), n])).await.unwrap();
    let [m] = messages(&peer).try_into().unwrap();
    let s = sections(&m);
    assert_eq!(
        shown(s[0]["header"].as_str().unwrap()).unwrap(),
        "FIRING · <api>"
    );
    let (summary, facts, _) = read(&s[0]);
    assert_eq!(summary, nasty);
    assert_eq!(facts[1].1, "<font color=\"red\">x</font> &lt;");
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_url_never_shows() {
    let (peer, channel) = google_chat().await;
    peer.then_answer(exhausted());
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { reason, after } => {
            assert!(reason.starts_with("Google Chat answered 429"), "{reason}");
            assert!(reason.contains("RESOURCE_EXHAUSTED"), "{reason}");
            assert_eq!(
                after, None,
                "Google sends no Retry-After: the outbox's backoff"
            );
        }
        e => panic!("{e:?}"),
    }
    // A proxy that quotes the request's URL and the token in its error page.
    let url = peer.url(&format!("{PATH}?{}", query()));
    peer.then_answer(Answer::new(
        503,
        &format!("unavailable: {url} token {TOKEN}"),
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
    assert_clean(&e, &[TOKEN, KEY, PATH, "GCHATSECRET"]);
    // A wrong token: 401, given up; a wrong key: 400, given up; neither shows.
    for (wrong, code) in [
        (query().replace("GCHATSECRET", "WRONGSECRET"), "401"),
        (query().replace(KEY, "AIzaWRONGKEY0123456789"), "400"),
    ] {
        let mut s = settings(&peer);
        s["url"] = peer.url(&format!("{PATH}?{wrong}")).into();
        let e = send(&build(s), &firing()).await.unwrap_err();
        assert!(
            matches!(&e, SendError::Permanent(r) if r.contains(code)),
            "{e:?}"
        );
        assert_clean(&e, &["WRONGSECRET", "AIzaWRONGKEY", PATH]);
    }
    // Nothing listens: retried, no URL.
    let nobody = free_port();
    let gone = build(json!({
        "name": "c", "type": "google_chat",
        "url": format!("http://127.0.0.1:{nobody}{PATH}?{}", query()),
    }));
    let e = send(&gone, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &["GCHATSECRET", KEY, PATH]);
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_url() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(
        bad(json!({"name": "n", "type": "google_chat"})),
        "url: required"
    );
    let e = bad(json!({"name": "n", "type": "google_chat", "url": "ftp://x/y?token=abcdef"}));
    assert!(e.starts_with("url: expected an http"), "{e}");
    let url = format!("https://chat.googleapis.com{PATH}?{}", query());
    let v = json!({"name": "n", "type": "google_chat", "url": url});
    for shown in [
        format!("{:?}", build(v.clone())),
        format!("{:?}", config(v)),
    ] {
        assert!(
            !shown.contains("GCHATSECRET") && !shown.contains(KEY) && !shown.contains(PATH),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn notify_test_posts_one_card() {
    let (peer, _) = google_chat().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "ops-chat")
        .await
        .unwrap();
    assert!(said.contains("ops-chat (google_chat)"), "{said}");
    let [m] = messages(&peer).try_into().unwrap();
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] test notification from lookout-collector"),
        "{m}"
    );
}

/// The fake is only worth its passes if it fails what Google Chat fails.
#[test]
fn fake_refuses_what_google_chat_refuses() {
    let good = json!({
        "text": "t",
        "cardsV2": [{"cardId": "c", "card": {
            "header": {"title": "t", "subtitle": "s"},
            "sections": [{"header": "<b>h</b>", "widgets": [
                {"textParagraph": {"text": "a &amp; <i>b</i><br>c"}},
                {"decoratedText": {"topLabel": "l", "text": "v", "wrapText": true}},
                {"buttonList": {"buttons": [
                    {"text": "o", "onClick": {"openLink": {"url": "https://x.example/"}}}]}},
                {"divider": {}},
            ]}],
        }}],
    });
    assert!(validate(good.to_string().as_bytes()).is_ok());
    let card = |path: &[&str], v: Value| {
        let mut full = vec!["cardsV2", "0", "card"];
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
    let widgets = |w: Value| card(&["sections"], json!([{"widgets": [w]}]));
    let bad = [
        json!({}),
        json!({"text": ""}),
        with(&good, &["text"], json!("x".repeat(4097))),
        with(&good, &["cards"], json!([])),
        with(&good, &["cardsV2"], json!({})),
        card(&["header", "title"], Value::Null),
        card(&["sections"], json!([])),
        card(&["sections"], json!([{"widgets": []}])),
        card(
            &["sections"],
            json!([{"header": 1, "widgets": [{"divider": {}}]}]),
        ),
        card(&["colour"], json!("red")),
        widgets(json!({"textParagraph": {"text": "a < b"}})),
        widgets(json!({"textParagraph": {"text": "a & b"}})),
        widgets(json!({"textParagraph": {"text": "<script>x</script>"}})),
        widgets(json!({"textParagraph": {}})),
        widgets(json!({"decoratedText": {"topLabel": "l"}})),
        widgets(json!({"decoratedText": {"text": "v", "wrapText": "yes"}})),
        widgets(json!({"textParagraph": {"text": "a"}, "divider": {}})),
        widgets(json!({"image": {"imageUrl": "https://x/"}})),
        widgets(json!({"buttonList": {"buttons": []}})),
        widgets(json!({"buttonList": {"buttons": [{"text": "o"}]}})),
        widgets(json!({"buttonList": {"buttons": [
            {"text": "o", "onClick": {"openLink": {"url": "/ack/1"}}}]}})),
        widgets(json!({"buttonList": {"buttons": [
            {"text": "o", "onClick": {"openLink": {"url": "javascript:alert(1)"}}}]}})),
        widgets(json!({"buttonList": {"buttons": [
            {"onClick": {"openLink": {"url": "https://x/"}}}]}})),
        card(
            &["sections"],
            json!([{"widgets": (0..=MAX_WIDGETS).map(|_| json!({"divider": {}})).collect::<Vec<_>>()}]),
        ),
        with(&good, &["text"], json!("x".repeat(MAX_BYTES))),
        json!([]),
    ];
    for body in bad {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert!(validate(b"not json").is_err());
    assert_eq!(shown("a &amp; <b>b</b>&lt;<br>").as_deref(), Ok("a & b<\n"));
}
