//! The Pushover channel: Pushover's Messages API, one message per group POSTed to
//! `https://api.pushover.net/1/messages.json` (the channel's `url` replaces
//! `https://api.pushover.net`: a proxy, a test), as JSON.
//!
//! The body: `token` (the application's) and `user` (a user or group key); `title` (the
//! message's title, at most 250 characters); `message` (the shared plain layout of
//! [`super::text`] without the title, at most 1,024 characters, the notes that do not fit left
//! out and counted); `url` and `url_title` (the status page's link for one alert, at most 512
//! and 100 characters; a longer link stays in the text only); and `priority`, the highest of
//! the notes' ([`priority`]). Plain text, not `html=1`: Pushover's HTML is a small dialect of
//! its own, and plain text has nothing to escape.
//!
//! A critical alert firing is priority 2, an emergency: Pushover repeats it every `retry`
//! (default 60 s, at least 30 s) until someone acknowledges it in the app or `expire` passes
//! (default 1 h, at most 3 h). It carries a `tags` value derived from the alert's fingerprint
//! ([`tag`]), so that when the alert resolves or is acknowledged in Lookout, the channel first
//! cancels the repeats with `POST /1/receipts/cancel_by_tag/{tag}.json` (no receipt to keep:
//! the tag is known from the alert alone), then sends its message. A retried message cancels
//! again, which Pushover answers with nothing left to cancel.
//!
//! Pushover answers `{"status":1,...}`; 429 (the application's limit) and 5xx are retried
//! through the outbox; 4xx are given up with Pushover's `errors`. Error text never holds the
//! application token or the user key.

use std::time::Duration;

use lookout_config::ChannelConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post, segment};
use super::format::{truncate, web_link};
use super::message::{AlertNote, Message, NoteKind, SendError};
use super::text;

/// Pushover's API server.
pub const DEFAULT_URL: &str = "https://api.pushover.net";
/// The most characters of a message.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// The most characters of a title.
pub const MAX_TITLE_CHARS: usize = 250;
/// The most characters of a supplementary URL.
pub const MAX_URL_CHARS: usize = 512;
/// An emergency's repeat interval when the channel sets none.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);
/// How long an emergency is repeated when the channel sets nothing.
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(3600);

/// Builds the channel from a `pushover` entry (`token`, `user`, `retry`, `expire`, `url`,
/// `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let key = |name: &str, v: Option<&str>| match v {
        None => Err(format!("{name}: required")),
        Some("") => Err(format!("{name}: is empty")),
        Some(v) => Ok(v.to_string()),
    };
    let token = key("token", cfg.token.as_deref())?;
    let user = key("user", cfg.user.as_deref())?;
    let endpoint = Endpoint::new(cfg, http, "url", cfg.url.as_deref(), Some(DEFAULT_URL))?
        .secret(&token)
        .secret(&user);
    let pushover = Pushover {
        token,
        user,
        retry: cfg.retry.unwrap_or(DEFAULT_RETRY).as_secs(),
        expire: cfg.expire.unwrap_or(DEFAULT_EXPIRE).as_secs(),
    };
    Ok(HttpChannel::new(cfg, endpoint, pushover))
}

/// Pushover's payload builder: the cancels a message's resolves and acknowledgements call
/// for, then the message.
struct Pushover {
    token: String,
    user: String,
    retry: u64,
    expire: u64,
}

impl Payload for Pushover {
    fn peer(&self) -> &'static str {
        "Pushover"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        let mut posts = Vec::new();
        let mut cancelled = Vec::new();
        for note in msg.alerts.iter().filter(|n| ends_emergency(n)) {
            let t = tag(&note.fingerprint);
            if !cancelled.contains(&t) {
                let path = format!("/1/receipts/cancel_by_tag/{}.json", segment(&t));
                posts.push(Post::json(&json!({"token": self.token}))?.at(path));
                cancelled.push(t);
            }
        }
        let body = body(&self.token, &self.user, self.retry, self.expire, msg);
        posts.push(Post::json(&body)?.at("/1/messages.json"));
        Ok(posts)
    }
}

/// True for a note that ends an alert whose firing was an emergency: its retries must stop.
fn ends_emergency(note: &AlertNote) -> bool {
    matches!(note.kind, NoteKind::Resolved | NoteKind::Acknowledged)
        && priority(NoteKind::Firing, severity(note)) == 2
}

fn severity(note: &AlertNote) -> Option<&str> {
    note.labels.get("severity").map(String::as_str)
}

/// The Messages API body for `msg` (see the module's doc); `retry` and `expire` in seconds.
pub fn body(token: &str, user: &str, retry: u64, expire: u64, msg: &Message) -> Value {
    let url = match msg.alerts.as_slice() {
        [one] => web_link(one.link.as_deref()).filter(|l| l.chars().count() <= MAX_URL_CHARS),
        _ => None,
    };
    let chars = |spans: &[text::Span]| text::plain(spans, url).chars().count();
    let spans = text::message(msg, false, MAX_MESSAGE_CHARS, &chars);
    let top = msg
        .alerts
        .iter()
        .map(|a| priority(a.kind, severity(a)))
        .max()
        .unwrap_or(0);
    let mut body = json!({
        "token": token,
        "user": user,
        "title": truncate(&msg.title(), MAX_TITLE_CHARS),
        "message": text::plain(&spans, url),
        "priority": top,
    });
    if let Some(url) = url {
        body["url"] = url.into();
        body["url_title"] = "Open in Lookout".into();
    }
    if top == 2 {
        let tags: Vec<String> = msg
            .alerts
            .iter()
            .filter(|a| priority(a.kind, severity(a)) == 2)
            .map(|a| tag(&a.fingerprint))
            .collect();
        body["retry"] = retry.into();
        body["expire"] = expire.into();
        body["tags"] = tags.join(",").into();
    }
    body
}

/// Pushover's priority for a note: while it fires, from its `severity` label (`critical`,
/// `fatal`, `page`: 2, an emergency; `error`, none or anything else: 1, high, past quiet
/// hours; `warning`: 0; `info`, `low`: -1, quiet); a resolve or an acknowledgement is -1.
pub fn priority(kind: NoteKind, severity: Option<&str>) -> i8 {
    if matches!(kind, NoteKind::Resolved | NoteKind::Acknowledged) {
        return -1;
    }
    match super::format::severity(severity) {
        "critical" => 2,
        "warning" => 0,
        "info" => -1,
        _ => 1,
    }
}

/// The tag of an alert's emergencies: `lookout` and 16 hex digits of its fingerprint's
/// SHA-256, the same for the alert's whole life, with no `,` (Pushover's separator) and
/// nothing to encode in a path.
pub fn tag(fingerprint: &str) -> String {
    let digest = Sha256::digest(fingerprint.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("lookout{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_page_for_critical_and_quieten_when_over() {
        assert_eq!(priority(NoteKind::Firing, Some("critical")), 2);
        assert_eq!(priority(NoteKind::Reminder, Some("page")), 2);
        assert_eq!(priority(NoteKind::Firing, None), 1);
        assert_eq!(priority(NoteKind::Firing, Some("warning")), 0);
        assert_eq!(priority(NoteKind::Firing, Some("info")), -1);
        assert_eq!(priority(NoteKind::Resolved, Some("critical")), -1);
        assert_eq!(priority(NoteKind::Acknowledged, Some("critical")), -1);
    }

    #[test]
    fn tags_are_stable_and_plain() {
        assert_eq!(tag("uptime/api"), tag("uptime/api"));
        assert_ne!(tag("uptime/api"), tag("uptime/web"));
        let t = tag("uptime/a,b");
        assert_eq!(t.len(), 23);
        assert_eq!(segment(&t), t);
    }
}
