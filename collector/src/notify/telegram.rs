//! The Telegram channel: the Bot API's `sendMessage`, POSTed to
//! `https://api.telegram.org/bot<bot_token>/sendMessage` (or the channel's `url` in place of
//! `https://api.telegram.org`: a local Bot API server, a proxy), one message per group.
//!
//! The body: `chat_id` (a number when the setting is one, else the channel's `@username`),
//! `text` in HTML parse mode (`parse_mode: "HTML"`) and `link_preview_options.is_disabled` (a
//! preview of the status page would push the alert off a phone's screen). The text is the
//! shared layout of [`super::text`]: the title in bold, then each note's summary, labels, times
//! and a link. Every text is escaped with the entities Telegram takes (`&lt;`, `&gt;`, `&amp;`,
//! `&quot;`), and the only tags are `<b>` and `<a href>`, always closed. Telegram takes at most
//! 4,096 characters after entity parsing, counted here in UTF-16 units (what Telegram counts
//! in): notes that do not fit are left out whole and counted, and a single note too long is cut
//! inside its texts, never inside a tag or an entity.
//!
//! A note that can be acknowledged (a firing or a reminder, with `[server] public_url` set)
//! also gets a button under the message: `reply_markup` is an inline keyboard
//! (`{"inline_keyboard": [[{"text": "Acknowledge", "url": link}]]}`, one row per such note, at
//! most [`MAX_BUTTONS`], named after the note's subject when there are several) whose button
//! opens the acknowledge link, which asks for a confirmation as it does from any message. URL
//! buttons only: a callback button would need the collector to poll Telegram for the presses
//! or to take its webhook. The link stays in the text as well. A button's URL is one Telegram
//! must accept, or it refuses the whole message (400 `BUTTON_URL_INVALID`), and a 400 is given
//! up: so a link gets a button only when it is `http(s)://` to a host name with a dot that is
//! not `localhost` or an IP address ([`button_url`]), the links Telegram is known to open; a
//! collector reached by a bare name or address keeps its link in the text alone.
//!
//! Telegram answers `{"ok":true,...}`; a 429 says how long to wait in its body
//! (`parameters.retry_after`, in seconds), which the outbox honours; 5xx are retried; 400
//! (`chat not found`, a parse error), 401 (a wrong token) and 403 (the bot was removed from the
//! chat) are given up. The token is in the URL's path: error text, logs and `Debug` never show
//! it.

use std::time::Duration;

use lookout_config::ChannelConfig;
use serde_json::{Value, json};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post};
use super::message::{Message, SendError};
use super::text;

/// Telegram's Bot API server.
pub const DEFAULT_URL: &str = "https://api.telegram.org";
/// The most characters (UTF-16 units) of a message's text after entity parsing.
pub const MAX_TEXT: usize = 4096;
/// The most acknowledge buttons under one message (a grouped message's alerts beyond get none).
pub const MAX_BUTTONS: usize = 10;
/// The most characters of a subject on a button.
const MAX_BUTTON_SUBJECT: usize = 40;
/// The longest link put on a button (the text's own limit for links).
const MAX_BUTTON_URL: usize = 500;

/// Builds the channel from a `telegram` entry (`bot_token`, `chat_id`, `url`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let token = match cfg.bot_token.as_deref() {
        None => return Err("bot_token: required".into()),
        Some("") => return Err("bot_token: is empty".into()),
        // The token goes in the path: a `/`, `?` or `#` in it would send it elsewhere.
        Some(t) if t.contains(['/', '?', '#', '%']) || t.chars().any(char::is_whitespace) => {
            return Err("bot_token: not a bot token".into());
        }
        Some(t) => t,
    };
    let chat_id = match cfg.chat_id.as_deref() {
        None | Some("") => return Err("chat_id: required".into()),
        Some(c) => c
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| c.into()),
    };
    let base = cfg.url.as_deref().unwrap_or(DEFAULT_URL);
    let url = format!("{}/bot{token}/sendMessage", base.trim_end_matches('/'));
    let endpoint = Endpoint::new(cfg, http, "url", Some(&url), None)?.secret(token);
    Ok(HttpChannel::new(cfg, endpoint, Telegram { chat_id }))
}

/// Telegram's payload builder: one message, one request.
struct Telegram {
    chat_id: Value,
}

impl Payload for Telegram {
    fn peer(&self) -> &'static str {
        "Telegram"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        Ok(vec![Post::json(&body(&self.chat_id, msg))?])
    }

    fn retry_after_in_body(&self, body: &str) -> Option<Duration> {
        let v: Value = serde_json::from_str(body).ok()?;
        v["parameters"]["retry_after"]
            .as_u64()
            .map(Duration::from_secs)
    }
}

/// The `sendMessage` body for `msg` (see the module's doc).
pub fn body(chat_id: &Value, msg: &Message) -> Value {
    let mut body = json!({
        "chat_id": chat_id,
        "text": html(msg),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    if let Some(keyboard) = keyboard(msg) {
        body["reply_markup"] = keyboard;
    }
    body
}

/// The inline keyboard of `msg`: a URL button per note that has an acknowledge link Telegram
/// takes, at most [`MAX_BUTTONS`]; `None` without any.
fn keyboard(msg: &Message) -> Option<Value> {
    let links: Vec<(&str, &str)> = msg
        .alerts
        .iter()
        .filter_map(|n| Some((button_url(n.ack_link.as_deref()?)?, n.subject())))
        .take(MAX_BUTTONS)
        .collect();
    let one = links.len() == 1;
    let rows: Vec<Value> = links
        .into_iter()
        .map(|(url, subject)| {
            let text = if one {
                "Acknowledge".to_string()
            } else {
                format!("Acknowledge {}", cut(subject, MAX_BUTTON_SUBJECT))
            };
            json!([{"text": text, "url": url}])
        })
        .collect();
    (!rows.is_empty()).then(|| json!({"inline_keyboard": rows}))
}

/// `link` when a URL button may carry it: `http://` or `https://` to a host name with a dot,
/// not `localhost` and not an IP address (see the module's doc).
pub fn button_url(link: &str) -> Option<&str> {
    let url = reqwest::Url::parse(link).ok()?;
    if !matches!(url.scheme(), "http" | "https") || link.chars().count() > MAX_BUTTON_URL {
        return None;
    }
    match url.host()? {
        url::Host::Domain(d) if d.contains('.') && !d.ends_with("localhost") => Some(link),
        _ => None,
    }
}

/// `s`, at most `n` characters, `…` marking a cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// The message's text in Telegram's HTML, within [`MAX_TEXT`] after parsing.
pub fn html(msg: &Message) -> String {
    let utf16 = |spans: &[text::Span]| text::shown(spans).encode_utf16().count();
    text::html(&text::message(msg, true, MAX_TEXT, &utf16), "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{AlertNote, NoteKind};

    #[test]
    fn a_button_carries_only_a_link_telegram_opens() {
        for ok in [
            "https://lookout.example.com/ack/1.2.3.abc",
            "http://status.internal.example:7700/ack/t",
        ] {
            assert_eq!(button_url(ok), Some(ok));
        }
        for refused in [
            "http://localhost:7700/ack/t",
            "http://lookout.localhost/ack/t",
            "http://127.0.0.1:7700/ack/t",
            "http://[::1]:7700/ack/t",
            "http://lookout:7700/ack/t",
            "ftp://lookout.example.com/ack/t",
            "tg://resolve?domain=x",
            "not a url",
        ] {
            assert_eq!(button_url(refused), None, "{refused}");
        }
        let long = format!("https://lookout.example.com/{}", "a".repeat(500));
        assert_eq!(button_url(&long), None);
    }

    #[test]
    fn notes_that_can_be_acknowledged_get_a_button_each() {
        let note = |check: &str, kind, link: Option<&str>| AlertNote {
            fingerprint: format!("uptime/{check}"),
            labels: [("check".to_string(), check.to_string())].into(),
            kind,
            ack_link: link.map(str::to_string),
            ..AlertNote::default()
        };
        let msg = |alerts| Message {
            alerts,
            ..Message::default()
        };
        let one = msg(vec![note(
            "api",
            NoteKind::Firing,
            Some("https://l.example/ack/1"),
        )]);
        assert_eq!(
            keyboard(&one),
            Some(
                json!({"inline_keyboard": [[{"text": "Acknowledge", "url": "https://l.example/ack/1"}]]})
            )
        );
        let long = "x".repeat(60);
        let several = msg(vec![
            note("api", NoteKind::Firing, Some("https://l.example/ack/1")),
            note("db", NoteKind::Resolved, None),
            note(&long, NoteKind::Reminder, Some("https://l.example/ack/2")),
            note("web", NoteKind::Firing, Some("http://localhost/ack/3")),
        ]);
        let rows = keyboard(&several).unwrap()["inline_keyboard"].clone();
        assert_eq!(
            rows,
            json!([
                [{"text": "Acknowledge api", "url": "https://l.example/ack/1"}],
                [{"text": format!("Acknowledge {}…", "x".repeat(39)), "url": "https://l.example/ack/2"}],
            ])
        );
        assert_eq!(
            keyboard(&msg(vec![note("db", NoteKind::Resolved, None)])),
            None
        );
        let many = msg((0..15)
            .map(|i| {
                note(
                    &format!("c{i}"),
                    NoteKind::Firing,
                    Some("https://l.example/ack/x"),
                )
            })
            .collect());
        assert_eq!(
            keyboard(&many).unwrap()["inline_keyboard"]
                .as_array()
                .unwrap()
                .len(),
            MAX_BUTTONS
        );
        assert_eq!(
            body(&json!(1), &one)["reply_markup"],
            keyboard(&one).unwrap()
        );
        let resolved = msg(vec![note("db", NoteKind::Resolved, None)]);
        assert!(body(&json!(1), &resolved).get("reply_markup").is_none());
    }

    #[test]
    fn a_429_body_says_how_long_to_wait() {
        let t = Telegram { chat_id: json!(1) };
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 17","parameters":{"retry_after":17}}"#;
        assert_eq!(t.retry_after_in_body(body), Some(Duration::from_secs(17)));
        assert_eq!(t.retry_after_in_body(r#"{"ok":false}"#), None);
        assert_eq!(t.retry_after_in_body("<html>"), None);
    }
}
