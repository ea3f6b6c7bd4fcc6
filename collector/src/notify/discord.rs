//! The Discord channel: a message with embeds POSTed to a channel's webhook (Discord's
//! "Execute Webhook", `POST /api/webhooks/{id}/{token}`), one message per group.
//!
//! The channel's `url` is the webhook's URL, and the credential: its last segment is the
//! token. `?wait=true` is added to it (keeping any query of its own, a `thread_id`), so Discord
//! answers 200 with the message it stored once it has stored it, rather than 204 before:
//! a success means the message exists.
//!
//! The body: `content`, the message's title (what a phone's notification shows, at most 2,000
//! characters), with a last line counting the alerts left out; `allowed_mentions: {"parse": []}`,
//! so no text in an alert pings `@everyone`, a role or a user; and `embeds`, one per alert:
//! `color` per state (firing red `0xd73a49`, reminder orange `0xe36209`, acknowledged amber
//! `0xffbf00`, resolved green `0x28a745`, as integers), `title` (the state and the summary, at
//! most 256 characters), `url` (the status page's link, which the title opens), `description`
//! (the summary whole, the probe's error chain, and the link that acknowledges the alert as a
//! Markdown link: a webhook that is not owned by an application cannot carry link buttons),
//! `fields` (the facts of [`super::format::facts`] but the error: labels, when it fired, who
//! acknowledged it, when it resolved and how long it lasted; inline when short), `timestamp`
//! (ISO 8601: when it fired, or resolved) and `footer` (`Lookout · rule <rule>`).
//!
//! Discord's limits, kept by construction: content 2,000 characters, title 256, description
//! 4,096, 25 fields, a field's name 256 and value 1,024, footer 2,048, 10 embeds a message,
//! and 6,000 characters over all the embeds' titles, descriptions, fields and footers. Each
//! embed has its parts capped so it holds at most about 4,200 (one always fits); alerts are given an embed in
//! order while both the 10 and the 6,000 allow, and the rest are counted in `content`
//! (`…and 3 more alerts (2 firing, 1 resolved)`). Text from alerts is Markdown-escaped
//! (a backslash before `*`, `_`, `~`, `` ` ``, `|`, `>`, `#`, `[`...), except in the footer,
//! which Discord shows as it is.
//!
//! Discord answers 200 with the message; a 429 carries `Retry-After` (whole seconds) and a
//! JSON body `{"message", "retry_after" (seconds, a float), "global"}`: the wait is honoured
//! through the outbox, from the header, or from the body when the header is missing. 5xx are
//! retried; other 4xx (400 an invalid body, 401 a wrong token, 404 a deleted webhook) are
//! given up with Discord's own reason. Error text, logs and `Debug` never show the URL.

use std::time::Duration;

use chrono::SecondsFormat;
use lookout_config::ChannelConfig;
use serde_json::{Value, json};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post};
use super::format::{
    escaped_cut, facts, markdown_escape, markdown_link_target, truncate, web_link,
};
use super::message::{AlertNote, Message, NoteKind, SendError};
use super::text;

/// The most characters of `content`.
pub const MAX_CONTENT: usize = 2000;
/// The most embeds in a message.
pub const MAX_EMBEDS: usize = 10;
/// The most characters of an embed's title.
pub const MAX_TITLE: usize = 256;
/// The most characters of an embed's description.
pub const MAX_DESCRIPTION: usize = 4096;
/// The most fields of an embed.
pub const MAX_FIELDS: usize = 25;
/// The most characters of a field's value.
pub const MAX_FIELD_VALUE: usize = 1024;
/// The most characters of an embed's footer text.
pub const MAX_FOOTER: usize = 2048;
/// The most characters over all the embeds of a message.
pub const MAX_EMBEDS_TOTAL: usize = 6000;

/// The most characters of the summary in a description.
const SUMMARY_CHARS: usize = 1000;
/// The most characters of the error chain in a description.
const DETAIL_CHARS: usize = 800;
/// The most characters of a field's value here (well under Discord's 1,024, so an embed
/// stays under about 4,200 characters and one always fits in a message).
const FIELD_CHARS: usize = 600;
/// A value this short is shown inline (beside the others).
const INLINE_CHARS: usize = 40;
/// A link longer than this is left out rather than cut (a cut link goes nowhere).
const MAX_LINK_CHARS: usize = 500;

/// Builds the channel from a `discord` entry (`url`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let raw = cfg.url.as_deref().ok_or("url: required")?;
    let mut url = reqwest::Url::parse(raw).map_err(|e| format!("url: not a valid URL: {e}"))?;
    if !url.query_pairs().any(|(k, _)| k == "wait") {
        url.query_pairs_mut().append_pair("wait", "true");
    }
    let endpoint = Endpoint::new(cfg, http, "url", Some(url.as_str()), None)?.token_in_path();
    Ok(HttpChannel::new(cfg, endpoint, Discord))
}

/// Discord's payload builder: one message, one request.
struct Discord;

impl Payload for Discord {
    fn peer(&self) -> &'static str {
        "Discord"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        Ok(vec![Post::json(&body(msg))?])
    }

    fn retry_after_in_body(&self, body: &str) -> Option<Duration> {
        retry_after(body)
    }
}

/// The wait a 429's body asks for (`retry_after`, seconds as a float), rounded up to whole
/// seconds: the outbox schedules in seconds, and early is refused again.
pub fn retry_after(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    let secs = v["retry_after"].as_f64()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs(secs.ceil() as u64))
}

/// The colour of a note's state as Discord takes it, an integer `0xRRGGBB`.
pub fn colour(kind: NoteKind) -> u32 {
    match kind {
        NoteKind::Firing => 0xd73a49,
        NoteKind::Reminder => 0xe36209,
        NoteKind::Acknowledged => 0xffbf00,
        NoteKind::Resolved => 0x28a745,
    }
}

/// The Execute Webhook body for `msg` (see the module's doc).
pub fn body(msg: &Message) -> Value {
    let mut embeds = Vec::new();
    let mut total = 0;
    for note in msg.alerts.iter().take(MAX_EMBEDS) {
        let (e, chars) = embed(note);
        if total + chars > MAX_EMBEDS_TOTAL {
            break;
        }
        total += chars;
        embeds.push(e);
    }
    let shown = embeds.len();
    let mut content = md(&msg.title(), MAX_CONTENT);
    if shown < msg.alerts.len() {
        let more = text::more(&msg.alerts[shown..]);
        let room = MAX_CONTENT.saturating_sub(more.chars().count() + 1);
        content = format!("{}\n{more}", md(&msg.title(), room));
    }
    json!({
        "content": content,
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    })
}

/// One note's embed, and its characters as Discord counts them towards 6,000.
fn embed(note: &AlertNote) -> (Value, usize) {
    let summary = if note.summary.trim().is_empty() {
        format!("{} is failing", note.subject())
    } else {
        note.summary.clone()
    };
    let title = md(&format!("[{}] {summary}", note.kind.upper()), MAX_TITLE);
    let mut description = md(&summary, SUMMARY_CHARS);
    if let Some(detail) = note.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        description.push_str("\n**Error:** ");
        description.push_str(&md(detail, DETAIL_CHARS));
    }
    if let Some(ack) = link(note.ack_link.as_deref()) {
        description.push_str(&format!("\n[Acknowledge]({})", markdown_link_target(ack)));
    }
    let fields: Vec<(&str, String)> = facts(note)
        .into_iter()
        .filter(|(name, value)| *name != "Error" && !value.trim().is_empty())
        .take(MAX_FIELDS)
        .map(|(name, value)| (name, md(&value, FIELD_CHARS)))
        .collect();
    let footer = truncate(&format!("Lookout · rule {}", note.rule), 200);
    let chars = title.chars().count()
        + description.chars().count()
        + footer.chars().count()
        + fields
            .iter()
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum::<usize>();
    let at = note.resolved_at.unwrap_or(note.fired_at);
    let mut e = json!({
        "title": title,
        "description": description,
        "color": colour(note.kind),
        "fields": fields
            .iter()
            .map(|(name, value)| json!({
                "name": name,
                "value": value,
                "inline": value.chars().count() <= INLINE_CHARS,
            }))
            .collect::<Vec<_>>(),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "footer": {"text": footer},
    });
    if let Some(url) = link(note.link.as_deref()) {
        e["url"] = url.into();
    }
    (e, chars)
}

/// The link, when it is an http(s) URL short enough to be shown whole.
fn link(l: Option<&str>) -> Option<&str> {
    web_link(l).filter(|l| l.chars().count() <= MAX_LINK_CHARS)
}

/// `s` Markdown-escaped, within `max` characters.
fn md(s: &str, max: usize) -> String {
    escaped_cut(s, max, markdown_escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_body_says_how_long_to_wait_in_fractional_seconds() {
        let body =
            r#"{"message":"You are being rate limited.","retry_after":64.57,"global":false}"#;
        assert_eq!(retry_after(body), Some(Duration::from_secs(65)));
        assert_eq!(
            retry_after(r#"{"retry_after":2}"#),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after(r#"{"retry_after":-1}"#), None);
        assert_eq!(retry_after(r#"{"message":"x"}"#), None);
        assert_eq!(retry_after("<html>"), None);
    }

    #[test]
    fn colours_are_integers_within_rgb() {
        for k in NoteKind::ALL {
            assert!(colour(k) <= 0xff_ffff);
        }
        assert_ne!(colour(NoteKind::Firing), colour(NoteKind::Resolved));
    }
}
