//! The Telegram channel against a strict fake of the Bot API's `sendMessage`.

use std::time::Duration;

use lookout_collector::notify::{Channel, NoteKind, SendError};
use serde_json::{Value, json};

use super::{assert_clean, build, config, firing, message, note, send};
use crate::support::http_peer::{Answer, Peer};
use crate::support::telegram::{MAX_TEXT, PATH, TOKEN, parse_html, too_many_requests, validate};

fn settings(peer: &Peer) -> Value {
    json!({
        "name": "tg",
        "type": "telegram",
        "bot_token": TOKEN,
        "chat_id": "-1001234567890",
        "url": peer.url(""),
        "timeout": "2s",
    })
}

async fn telegram() -> (Peer, Channel) {
    let peer = crate::support::telegram::start().await;
    let channel = build(settings(&peer));
    (peer, channel)
}

/// Every request went to `sendMessage` and was accepted by the fake: (body, parsed text).
fn sent(peer: &Peer) -> Vec<(Value, String)> {
    peer.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.path, PATH);
            let text = validate(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.json()));
            (r.json(), text)
        })
        .collect()
}

#[tokio::test]
async fn firing_acknowledged_and_resolved_notes_read_as_html() {
    let (peer, channel) = telegram().await;
    let mut fire = firing();
    fire.alerts[0].summary = "api <down> & \"out\": 2 of 3 locations, 503".into();
    send(&channel, &fire).await.unwrap();
    let mut ack = note(NoteKind::Acknowledged, "api", "api down");
    ack.acked_by = Some("alice <ops>".into());
    send(&channel, &message(vec![ack])).await.unwrap();
    send(
        &channel,
        &message(vec![note(NoteKind::Resolved, "api", "api down")]),
    )
    .await
    .unwrap();

    let [(f, f_text), (_, a_text), (_, r_text)] = sent(&peer).try_into().unwrap();
    assert_eq!(
        f["chat_id"],
        json!(-1001234567890_i64),
        "a numeric id is a number"
    );
    assert_eq!(f["parse_mode"], "HTML");
    assert_eq!(f["link_preview_options"], json!({"is_disabled": true}));
    assert_eq!(
        f["text"],
        "<b>[FIRING] api &lt;down&gt; &amp; &quot;out&quot;: 2 of 3 locations, 503</b>\n\
         check=api, location=eu-west, severity=critical\n\
         Fired 2026-11-26 10:00:00 UTC\n\
         <a href=\"https://status.example.com/checks/api\">Open in Lookout</a>"
    );
    assert!(
        f_text.starts_with("[FIRING] api <down> & \"out\": 2 of 3"),
        "{f_text}"
    );
    assert!(
        a_text.starts_with("[ACKNOWLEDGED] api down\n")
            && a_text.contains("acknowledged by alice <ops>"),
        "{a_text}"
    );
    assert!(
        r_text.starts_with("[RESOLVED] api down\n") && r_text.contains("lasted 4m 12s"),
        "{r_text}"
    );
}

#[tokio::test]
async fn a_grouped_message_is_one_message_with_a_block_per_alert() {
    let (peer, channel) = telegram().await;
    let mut api = note(NoteKind::Firing, "api", "api down");
    api.ack_link = Some("https://status.example.com/ack/t0k?x=1&y=2".into());
    let msg = message(vec![
        api,
        note(NoteKind::Reminder, "db", "db down"),
        note(NoteKind::Resolved, "web", "web slow"),
    ]);
    send(&channel, &msg).await.unwrap();
    let [(body, text)] = sent(&peer).try_into().unwrap();
    assert!(
        body["text"].as_str().unwrap().contains(
            "<a href=\"https://status.example.com/ack/t0k?x=1&amp;y=2\">Acknowledge</a>\n\n<b>REMINDER"
        ),
        "{body}"
    );
    assert_eq!(
        body["reply_markup"],
        json!({"inline_keyboard": [[
            {"text": "Acknowledge", "url": "https://status.example.com/ack/t0k?x=1&y=2"}
        ]]})
    );
    assert!(
        text.starts_with(
            "[FIRING] 1 alert, [REMINDER] 1 alert, [RESOLVED] 1 alert\n\nFIRING · api\napi down\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n\nREMINDER · db\ndb down\n"), "{text}");
    assert!(text.contains("\n\nRESOLVED · web\nweb slow\n"), "{text}");
}

/// A note that can be acknowledged gets a URL button opening its link (the link stays in the
/// text); a link Telegram would refuse on a button (a bare host, an address) gets none, so the
/// message is not refused for it; the fake holds the keyboard to the reference's shape.
#[tokio::test]
async fn an_acknowledge_link_is_a_url_button_under_the_message() {
    let (peer, channel) = telegram().await;
    let link = "https://lookout.example.com/ack/42.1795687200000.1796292000.0123456789abcdef0123456789abcdef";
    let mut fire = firing();
    fire.alerts[0].ack_link = Some(link.into());
    send(&channel, &fire).await.unwrap();
    let mut two = message(vec![
        note(NoteKind::Firing, "api", "api down"),
        note(NoteKind::Reminder, "db", "db down"),
    ]);
    two.alerts[0].ack_link = Some(format!("{link}1"));
    two.alerts[1].ack_link = Some(format!("{link}2"));
    send(&channel, &two).await.unwrap();
    let mut bare = firing();
    bare.alerts[0].ack_link = Some("http://10.0.0.5:7700/ack/1.2.3.abc".into());
    send(&channel, &bare).await.unwrap();
    let [(one, text), (grouped, _), (by_address, by_address_text)] =
        sent(&peer).try_into().unwrap();
    assert_eq!(
        one["reply_markup"],
        json!({"inline_keyboard": [[{"text": "Acknowledge", "url": link}]]})
    );
    assert!(
        text.contains("Acknowledge"),
        "the link stays in the text: {text}"
    );
    assert_eq!(
        grouped["reply_markup"],
        json!({"inline_keyboard": [
            [{"text": "Acknowledge api", "url": format!("{link}1")}],
            [{"text": "Acknowledge db", "url": format!("{link}2")}],
        ]})
    );
    assert!(by_address.get("reply_markup").is_none(), "{by_address}");
    assert!(by_address_text.contains("Acknowledge"), "{by_address_text}");
    let plain = sent_one_without_link(&channel, &peer).await;
    assert!(plain.get("reply_markup").is_none(), "{plain}");

    // The fake refuses what the reference does not allow.
    let with =
        |markup: Value| json!({"chat_id": 1, "text": "x", "reply_markup": markup}).to_string();
    let button = |b: Value| with(json!({"inline_keyboard": [[b]]}));
    assert!(
        validate(button(json!({"text": "a", "url": "tg://resolve?domain=x"})).as_bytes()).is_ok()
    );
    assert!(validate(button(json!({"text": "a", "callback_data": "ack"})).as_bytes()).is_ok());
    for bad in [
        with(json!([[{"text": "a", "url": "https://x.example"}]])),
        with(json!({"keyboard": [[{"text": "a"}]]})),
        with(json!({"inline_keyboard": [{"text": "a", "url": "https://x.example"}]})),
        button(json!({"text": "a"})),
        button(json!({"text": "", "url": "https://x.example"})),
        button(json!({"url": "https://x.example"})),
        button(json!({"text": "a", "url": "https://x.example", "callback_data": "y"})),
        button(json!({"text": "a", "url": "ftp://x.example"})),
        button(json!({"text": "a", "url": 7})),
        button(json!({"text": "a", "callback_data": "x".repeat(65)})),
        button(json!({"text": "a", "colour": "red", "url": "https://x.example"})),
    ] {
        assert!(validate(bad.as_bytes()).is_err(), "{bad}");
    }
}

/// Sends the firing message, which has no acknowledge link, and returns its body.
async fn sent_one_without_link(channel: &Channel, peer: &Peer) -> Value {
    send(channel, &firing()).await.unwrap();
    sent(peer).pop().unwrap().0
}

#[tokio::test]
async fn long_messages_fit_4096_characters_after_parsing_and_stay_balanced() {
    let (peer, channel) = telegram().await;
    // Each `&` is five characters escaped and one after parsing: the limit counts the latter.
    let one = message(vec![note(NoteKind::Firing, "api", &"&<😀".repeat(3000))]);
    send(&channel, &one).await.unwrap();
    let many = message(
        (0..200)
            .map(|i| note(NoteKind::Firing, &format!("check-{i}"), &"é".repeat(300)))
            .collect(),
    );
    send(&channel, &many).await.unwrap();
    let [(a, a_text), (_, b_text)] = sent(&peer).try_into().unwrap();
    // The title is cut at 250 characters, the summary below it at 1,000.
    let n = a_text.encode_utf16().count();
    assert!(n <= MAX_TEXT && n > 1500, "{n}");
    assert!(a_text.contains(&"&<😀".repeat(300)), "{a_text}");
    let n = b_text.encode_utf16().count();
    assert!(n <= MAX_TEXT && n > 3500, "{n}");
    assert!(
        a["text"].as_str().unwrap().len() > MAX_TEXT,
        "escaped, it is longer"
    );
    assert!(
        b_text.contains("more alerts (") && b_text.ends_with("firing)"),
        "{b_text}"
    );
}

#[tokio::test]
async fn answers_decide_retry_or_give_up_and_the_token_never_shows() {
    let (peer, channel) = telegram().await;
    peer.then_answer(too_many_requests(17));
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(17)), "from the body");
            assert!(reason.contains("Telegram answered 429"), "{reason}");
            assert_clean(&SendError::Permanent(reason), &[TOKEN, "AAHdqTcv"]);
        }
        e => panic!("{e:?}"),
    }
    peer.then_answer(Answer::new(
        502,
        &format!("<html>bad gateway for /bot{TOKEN}/sendMessage</html>"),
    ));
    let e = send(&channel, &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");
    assert_clean(&e, &[TOKEN, "AAHdqTcv"]);
    // A chat the bot is not in: given up, and the reason says why.
    peer.then_answer(crate::support::telegram::error(
        400,
        "Bad Request: chat not found",
    ));
    match send(&channel, &firing()).await.unwrap_err() {
        SendError::Permanent(reason) => {
            assert!(
                reason.contains("400") && reason.contains("chat not found"),
                "{reason}"
            );
        }
        e => panic!("{e:?}"),
    }
    // A wrong token: 401 from the fake, given up, and neither token shows.
    let wrong = "123456789:ZZZZqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
    let mut s = settings(&peer);
    s["bot_token"] = wrong.into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(r) if r.contains("401")),
        "{e:?}"
    );
    assert_clean(&e, &[wrong, TOKEN, "ZZZZqTcv"]);
    // Nobody listening: the connection error holds no token either.
    let port = crate::support::free_port();
    let mut s = settings(&peer);
    s["url"] = format!("http://127.0.0.1:{port}").into();
    let e = send(&build(s), &firing()).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
    assert_clean(&e, &[TOKEN, "AAHdqTcv"]);
}

#[test]
fn build_errors_name_the_setting_and_debug_hides_the_token() {
    let bad = |v: Value| Channel::build(&config(v), reqwest::Client::new()).unwrap_err();
    assert_eq!(
        bad(json!({"name": "t", "type": "telegram", "chat_id": "1"})),
        "bot_token: required"
    );
    assert_eq!(
        bad(json!({"name": "t", "type": "telegram", "bot_token": TOKEN})),
        "chat_id: required"
    );
    let e = bad(json!({"name": "t", "type": "telegram", "bot_token": "1:a/b?c", "chat_id": "1"}));
    assert!(e.starts_with("bot_token:") && !e.contains("a/b"), "{e}");
    let e = bad(
        json!({"name": "t", "type": "telegram", "bot_token": TOKEN, "chat_id": "1", "url": "ftp://x"}),
    );
    assert!(e.starts_with("url:") && !e.contains(TOKEN), "{e}");
    let c = build(
        json!({"name": "t", "type": "telegram", "bot_token": TOKEN, "chat_id": "@ops_alerts"}),
    );
    assert!(!c.keeps_alerts_open());
    assert!(!format!("{c:?}").contains("AAHdqTcv"));
    let cfg = config(json!({"name": "t", "type": "telegram", "bot_token": TOKEN, "chat_id": 42}));
    assert_eq!(cfg.chat_id.as_deref(), Some("42"));
    assert!(!format!("{cfg:?}").contains("AAHdqTcv"));
}

#[tokio::test]
async fn notify_test_sends_one_message() {
    let (peer, _) = telegram().await;
    let channels = vec![config(settings(&peer))];
    let said = lookout_collector::notify::send_test(&channels, "tg")
        .await
        .unwrap();
    assert!(said.contains("tg (telegram)"), "{said}");
    let [(_, text)] = sent(&peer).try_into().unwrap();
    assert!(text.starts_with("[FIRING] test notification"), "{text}");
    peer.then_answer(crate::support::telegram::error(
        403,
        "Forbidden: bot was kicked",
    ));
    let err = lookout_collector::notify::send_test(&channels, "tg")
        .await
        .unwrap_err();
    assert!(
        err.contains("not delivered") && err.contains("kicked") && !err.contains("AAHdqTcv"),
        "{err}"
    );
}

/// The fake is only worth its passes if it fails what Telegram fails.
#[test]
fn fake_parses_html_as_telegram_does() {
    assert_eq!(
        parse_html(
            "<b>a &lt;b&gt; &amp; &quot;c&quot; &#33;&#x41;</b> <a href=\"https://x/?a=1&amp;b=2\">l</a>"
        ),
        Ok("a <b> & \"c\" !A l".to_string())
    );
    assert!(
        parse_html(
            "<pre><code class=\"language-rust\">x</code></pre><blockquote expandable>q</blockquote>"
        )
        .is_ok()
    );
    for bad in [
        "a < b",
        "a > b",
        "a & b",
        "&nbsp;",
        "&amp",
        "<b>open",
        "<b><i>x</b></i>",
        "x</b>",
        "<p>para</p>",
        "<br>",
        "<b class=\"x\">y</b>",
        "<a>no href</a>",
        "<a href=\"https://x\"><a href=\"https://y\">z</a></a>",
        "<a href=https://x>unquoted</a>",
        "<span>not a spoiler</span>",
        "<code><b>x</b></code>",
    ] {
        assert!(parse_html(bad).is_err(), "{bad}");
    }
    let ok = |text: &str| json!({"chat_id": 1, "text": text, "parse_mode": "HTML"}).to_string();
    assert!(validate(ok("hi").as_bytes()).is_ok());
    assert!(validate(ok(&"&amp;".repeat(MAX_TEXT)).as_bytes()).is_ok());
    assert!(validate(ok(&"&amp;".repeat(MAX_TEXT + 1)).as_bytes()).is_err());
    assert!(
        validate(ok(&"😀".repeat(MAX_TEXT / 2 + 1)).as_bytes()).is_err(),
        "UTF-16 units"
    );
    assert!(validate(ok("<b> </b>").as_bytes()).is_err(), "blank");
    for body in [
        json!({"text": "x"}),
        json!({"chat_id": 1}),
        json!({"chat_id": "ops", "text": "x"}),
        json!({"chat_id": 1.5, "text": "x"}),
        json!({"chat_id": 1, "text": 7}),
        json!({"chat_id": 1, "text": "x", "parse_mode": "html5"}),
        json!({"chat_id": 1, "text": "x", "colour": "red"}),
        json!({"chat_id": 1, "text": "x", "link_preview_options": {"is_disabled": "yes"}}),
        json!({"chat_id": 1, "text": "x", "link_preview_options": {"hidden": true}}),
        json!({"chat_id": 1, "text": "x", "disable_web_page_preview": 1}),
        json!([]),
    ] {
        assert!(validate(body.to_string().as_bytes()).is_err(), "{body}");
    }
}
