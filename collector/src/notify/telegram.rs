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
    json!({
        "chat_id": chat_id,
        "text": html(msg),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    })
}

/// The message's text in Telegram's HTML, within [`MAX_TEXT`] after parsing.
pub fn html(msg: &Message) -> String {
    let utf16 = |spans: &[text::Span]| text::shown(spans).encode_utf16().count();
    text::html(&text::message(msg, true, MAX_TEXT, &utf16), "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_body_says_how_long_to_wait() {
        let t = Telegram { chat_id: json!(1) };
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 17","parameters":{"retry_after":17}}"#;
        assert_eq!(t.retry_after_in_body(body), Some(Duration::from_secs(17)));
        assert_eq!(t.retry_after_in_body(r#"{"ok":false}"#), None);
        assert_eq!(t.retry_after_in_body("<html>"), None);
    }
}
