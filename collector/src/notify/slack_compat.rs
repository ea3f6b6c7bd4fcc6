//! The Mattermost and Rocket.Chat channels: both take Slack's incoming webhook payload, but
//! only its older half, message attachments, and each a different part of it. One payload
//! builder serves both, with a [`Flavour`] saying which fields the vendor keeps, how its text
//! is escaped and how long a message may be; [`super::slack`] stays Slack's (Block Kit).
//!
//! What Slack's payload (`text`, `blocks`, `attachments`) becomes:
//!
//! - **Mattermost** (<https://developers.mattermost.com/integrate/webhooks/incoming/>, and the
//!   attachments reference, <https://developers.mattermost.com/integrate/reference/message-attachments/>)
//!   keeps `text` (Markdown), `username`, `icon_url`, `channel` and `attachments` with
//!   `fallback`, `color`, `pretext`, `text`, `author_*`, `title`, `title_link`, `fields`
//!   (`title`, `value`, `short`), `image_url`, `thumb_url`, `footer`; it has no Block Kit
//!   `blocks`. Sent here: `text`, and per alert `fallback`, `color`, `title`, `title_link`,
//!   `text`, `fields` and `footer`.
//! - **Rocket.Chat** (<https://docs.rocket.chat/docs/integrations>, an incoming webhook without
//!   a script) keeps `text`, `alias`, `emoji`, `avatar` and `attachments` with `title`,
//!   `title_link`, `text`, `color` and `fields` (`short`, `title`, `value`); no `blocks`, no
//!   `fallback` or `footer`. Sent here: `text`, and per alert `title`, `title_link`, `text`,
//!   `color` and `fields`.
//!
//! Neither is sent `username`, `icon_url`, `channel`, `alias`, `emoji` or `avatar`: the
//! webhook's own settings name the poster and the channel.
//!
//! The message: `text` is the message's title, with a last line counting the alerts left out;
//! one attachment per alert, coloured per state (the colours of [`super::format::color`]),
//! titled `[FIRING] <subject>` and linked to the status page, its text the summary, the error
//! chain and, on a firing or reminder alert, `[Acknowledge](…/ack/…)` as a Markdown link; its
//! fields the labels, when it fired, who acknowledged it, when it resolved and how long it
//! lasted (short when they are). At most [`MAX_ATTACHMENTS`] attachments, and everything
//! written (text, titles, fields, fallback, footer) within the vendor's message limit:
//! Mattermost's 16,383 characters (the server's default), Rocket.Chat's 5,000
//! (`Message_MaxAllowedSize`'s default). Alerts are given an attachment in order while both
//! allow.
//!
//! Mentions in alerts' text never notify: `@` is followed by a zero-width space, which ends
//! the word both servers read as a mention (`@channel`, `@all`, `@here`). Mattermost's text
//! is Markdown-escaped besides (a backslash before `*`, `_`, `` ` ``, `[`, ...); Rocket.Chat's
//! parser documents no escape, so its text is sent as it is and may show formatting.
//!
//! Answers: Mattermost 200 `ok`, Rocket.Chat 200 `{"success":true}`; 429 and 5xx are retried
//! through the outbox, a 429 after the wait Mattermost's `Retry-After` asks, or the one
//! Rocket.Chat's refusal names in words (`You must wait 10 seconds`: it sends no
//! `Retry-After`); other 4xx (an unknown
//! hook, an invalid payload) are given up with the server's reason. The webhook's URL is the
//! credential: errors, logs and `Debug` never show it.

use std::time::Duration;

use lookout_config::ChannelConfig;
use serde_json::{Map, Value, json};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post};
use super::format::{
    color, escaped_cut, facts, markdown_escape, markdown_link_target, truncate, web_link,
};
use super::message::{AlertNote, Message, SendError};
use super::text;

/// The most attachments in one message (neither vendor documents a limit; a page of alerts
/// is enough to read in a chat).
pub const MAX_ATTACHMENTS: usize = 20;
/// Mattermost's message limit (characters, the server's default).
pub const MATTERMOST_MAX_CHARS: usize = 16_383;
/// Rocket.Chat's message limit (characters, `Message_MaxAllowedSize`'s default).
pub const ROCKETCHAT_MAX_CHARS: usize = 5_000;

/// The most characters of the summary in an attachment's text.
const SUMMARY_CHARS: usize = 1000;
/// The most characters of the error chain in an attachment's text.
const DETAIL_CHARS: usize = 500;
/// The most characters of a field's value.
const FIELD_CHARS: usize = 300;
/// A field this short is shown `short` (beside another).
const SHORT_CHARS: usize = 40;
/// A link longer than this is left out rather than cut.
const MAX_LINK_CHARS: usize = 500;
/// Characters kept free for the line that counts the alerts left out.
const MORE_RESERVE: usize = 120;

/// Which vendor a payload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Mattermost: Markdown escaped, attachments with fallback and footer, 16,383 characters.
    Mattermost,
    /// Rocket.Chat: attachments without fallback or footer, 5,000 characters.
    RocketChat,
}

impl Flavour {
    fn peer(self) -> &'static str {
        match self {
            Flavour::Mattermost => "Mattermost",
            Flavour::RocketChat => "Rocket.Chat",
        }
    }

    /// The most characters of everything a message writes.
    pub fn max_chars(self) -> usize {
        match self {
            Flavour::Mattermost => MATTERMOST_MAX_CHARS,
            Flavour::RocketChat => ROCKETCHAT_MAX_CHARS,
        }
    }

    /// User text as the vendor's text shows it, within `max` characters.
    fn text(self, s: &str, max: usize) -> String {
        match self {
            Flavour::Mattermost => escaped_cut(s, max, |c| match c {
                '@' => Some("@\u{200B}"),
                c => markdown_escape(c),
            }),
            Flavour::RocketChat => escaped_cut(s, max, no_mention),
        }
    }
}

/// `@` followed by a zero-width space, which ends the word a server reads as a mention.
fn no_mention(c: char) -> Option<&'static str> {
    (c == '@').then_some("@\u{200B}")
}

/// Builds a Mattermost channel from its entry (`url`, `timeout`).
pub fn mattermost(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    channel(cfg, http, Flavour::Mattermost)
}

/// Builds a Rocket.Chat channel from its entry (`url`, `timeout`).
pub fn rocketchat(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    channel(cfg, http, Flavour::RocketChat)
}

fn channel(cfg: &ChannelConfig, http: reqwest::Client, f: Flavour) -> Result<HttpChannel, String> {
    let endpoint = Endpoint::new(cfg, http, "url", cfg.url.as_deref(), None)?.token_in_path();
    Ok(HttpChannel::new(cfg, endpoint, SlackCompat(f)))
}

/// The payload builder of a Slack-compatible webhook: one message, one request.
struct SlackCompat(Flavour);

impl Payload for SlackCompat {
    fn peer(&self) -> &'static str {
        self.0.peer()
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        Ok(vec![Post::json(&payload(self.0, msg))?])
    }

    fn retry_after_in_body(&self, body: &str) -> Option<Duration> {
        match self.0 {
            Flavour::Mattermost => None,
            Flavour::RocketChat => rocketchat_wait(body),
        }
    }
}

/// The wait Rocket.Chat's rate limiter names in its refusal, which has no `Retry-After`:
/// `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 10
/// seconds before trying this endpoint again. [error-too-many-requests]"}`.
pub fn rocketchat_wait(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    let error = v["error"].as_str()?;
    let rest = &error[error.find("must wait ")? + "must wait ".len()..];
    let (n, unit) = rest.split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    unit.starts_with("second").then(|| Duration::from_secs(n))
}

/// The webhook body for `msg` in `flavour` (see the module's doc).
pub fn payload(flavour: Flavour, msg: &Message) -> Value {
    let max = flavour.max_chars();
    let title = flavour.text(&msg.title(), 1000);
    let mut used = title.chars().count() + MORE_RESERVE;
    let mut attachments = Vec::new();
    for note in msg.alerts.iter().take(MAX_ATTACHMENTS) {
        let a = attachment(flavour, note);
        let n = chars(&a);
        if used + n > max {
            break;
        }
        used += n;
        attachments.push(a);
    }
    let mut text = title;
    if attachments.len() < msg.alerts.len() {
        text.push('\n');
        text.push_str(&text::more(&msg.alerts[attachments.len()..]));
    }
    json!({"text": text, "attachments": attachments})
}

/// One note's attachment.
fn attachment(f: Flavour, note: &AlertNote) -> Value {
    let summary = if note.summary.trim().is_empty() {
        format!("{} is failing", note.subject())
    } else {
        note.summary.clone()
    };
    let mut text = f.text(&summary, SUMMARY_CHARS);
    if let Some(detail) = note.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        text.push_str("\n**Error:** ");
        text.push_str(&f.text(detail, DETAIL_CHARS));
    }
    if let Some(ack) = link(note.ack_link.as_deref()) {
        text.push_str(&format!("\n[Acknowledge]({})", markdown_link_target(ack)));
    }
    let fields: Vec<Value> = facts(note)
        .into_iter()
        .filter(|(name, value)| *name != "Error" && !value.trim().is_empty())
        .map(|(name, value)| {
            let value = f.text(&value, FIELD_CHARS);
            json!({"title": name, "value": value, "short": value.chars().count() <= SHORT_CHARS})
        })
        .collect();
    // Titles are plain text in both: only mentions are neutralised.
    let title = escaped_cut(
        &format!("[{}] {}", note.kind.upper(), note.subject()),
        200,
        no_mention,
    );
    let mut a = Map::new();
    if f == Flavour::Mattermost {
        let fallback = format!("[{}] {summary}", note.kind.upper());
        a.insert(
            "fallback".into(),
            escaped_cut(&fallback, 300, no_mention).into(),
        );
    }
    a.insert("color".into(), color(note.kind).into());
    a.insert("title".into(), title.into());
    if let Some(url) = link(note.link.as_deref()) {
        a.insert("title_link".into(), url.into());
    }
    a.insert("text".into(), text.into());
    a.insert("fields".into(), fields.into());
    if f == Flavour::Mattermost {
        let footer = truncate(&format!("Lookout · rule {}", note.rule), 200);
        a.insert(
            "footer".into(),
            escaped_cut(&footer, 300, no_mention).into(),
        );
    }
    Value::Object(a)
}

/// The characters of every string in `v`: what a message writes.
fn chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(chars).sum(),
        Value::Object(o) => o.values().map(chars).sum(),
        _ => 0,
    }
}

/// The link, when it is an http(s) URL short enough to be shown whole.
fn link(l: Option<&str>) -> Option<&str> {
    web_link(l).filter(|l| l.chars().count() <= MAX_LINK_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketchat_names_its_wait_in_words() {
        let body = r#"{"success":false,"error":"Error, too many requests. Please slow down. You must wait 12 seconds before trying this endpoint again. [error-too-many-requests]"}"#;
        assert_eq!(rocketchat_wait(body), Some(Duration::from_secs(12)));
        assert_eq!(
            rocketchat_wait(r#"{"success":false,"error":"limit"}"#),
            None
        );
        assert_eq!(rocketchat_wait("must wait 3 seconds"), None);
    }

    #[test]
    fn mentions_are_neutralised_in_both_and_markdown_escaped_in_mattermost() {
        assert_eq!(
            Flavour::Mattermost.text("@channel *x*", 100),
            "@\u{200B}channel \\*x\\*"
        );
        assert_eq!(
            Flavour::RocketChat.text("@all *x*", 100),
            "@\u{200B}all *x*"
        );
    }
}
