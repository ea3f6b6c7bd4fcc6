//! The ntfy channel: a message published to a topic on an ntfy server (ntfy.sh or one's own),
//! as ntfy's JSON publishing does it: a POST to the server's root URL whose body names the
//! `topic`. The channel's `url` is the topic's URL (`https://ntfy.sh/lookout-ops`, or
//! `https://example.com/ntfy/lookout-ops` behind a path): its last segment is the topic, the
//! rest the server.
//!
//! The body: `topic`; `title` (the message's title, at most 250 characters); `message` (the
//! shared plain layout of [`super::text`]: for one alert its summary, labels and times, for
//! several a block each), at most 4,096 bytes, ntfy's default message limit (a longer one
//! would become an attachment), with the notes that do not fit left out and counted;
//! `priority` from the alerts' `severity` labels ([`priority`]: `critical` 5, `error` or none
//! 4, `warning` 3, `info` 2; a resolve or an acknowledgement 2, so it does not buzz), the
//! highest of the message's notes; `tags`, emoji shortcodes for the states present
//! (`rotating_light` firing, `repeat` reminder, `eyes` acknowledged, `white_check_mark`
//! resolved), which ntfy shows before the title; and `click`, the alert's status page link
//! when the message is about one alert (several alerts' links are in the text), with its link
//! to acknowledge as a `view` action button.
//!
//! With a `token` (an access token, `tk_...`) every request carries `Authorization: Bearer`.
//! ntfy answers 200 with the message it stored; 429 (its visitor rate limit) and 5xx are
//! retried through the outbox; 400, 401, 403 and 413 are given up with ntfy's own reason.
//! Error text never holds the token.

use lookout_config::ChannelConfig;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post};
use super::format::{truncate, web_link};
use super::message::{Message, NoteKind, SendError};
use super::text;

/// The most bytes of a message's text (ntfy's default `message-size-limit`).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The most characters of a title.
pub const MAX_TITLE_CHARS: usize = 250;

/// Builds the channel from an `ntfy` entry (`url`, `token`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let raw = cfg.url.as_deref().ok_or("url: required")?;
    let mut url = reqwest::Url::parse(raw).map_err(|e| format!("url: not a valid URL: {e}"))?;
    let topic = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|t| topic_ok(t))
        .ok_or("url: expected the topic's URL, https://ntfy.sh/<topic> (letters, digits, - and _)")?
        .to_string();
    // The server's root: the URL without its topic (ntfy takes JSON there).
    let root = url.path().len() - topic.len();
    let path = url.path()[..root].to_string();
    url.set_path(&path);
    url.set_query(None);
    let mut endpoint = Endpoint::new(cfg, http, "url", Some(url.as_str()), None)?;
    match cfg.token.as_deref() {
        None => {}
        Some("") => return Err("token: is empty".into()),
        Some(token) => {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "token: not a valid header value".to_string())?;
            value.set_sensitive(true);
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value);
            endpoint = endpoint.headers(headers).secret(token);
        }
    }
    // The topic is a secret on a public server: whoever knows it can read the alerts.
    Ok(HttpChannel::new(
        cfg,
        endpoint.secret(&topic),
        Ntfy { topic },
    ))
}

/// A topic name as ntfy takes it: 1 to 64 letters, digits, `-` and `_`.
fn topic_ok(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// ntfy's payload builder: one message, one request.
struct Ntfy {
    topic: String,
}

impl Payload for Ntfy {
    fn peer(&self) -> &'static str {
        "ntfy"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        Ok(vec![Post::json(&body(&self.topic, msg))?])
    }
}

/// The JSON body publishing `msg` to `topic` (see the module's doc).
pub fn body(topic: &str, msg: &Message) -> Value {
    let (click, ack) = match msg.alerts.as_slice() {
        [one] => (
            web_link(one.link.as_deref()),
            web_link(one.ack_link.as_deref()),
        ),
        _ => (None, None),
    };
    let bytes = |spans: &[text::Span]| text::plain(spans, click).len();
    let spans = text::message(msg, false, MAX_MESSAGE_BYTES, &bytes);
    let tags: Vec<&str> = NoteKind::ALL
        .into_iter()
        .filter(|k| msg.alerts.iter().any(|a| a.kind == *k))
        .map(|k| match k {
            NoteKind::Firing => "rotating_light",
            NoteKind::Reminder => "repeat",
            NoteKind::Acknowledged => "eyes",
            NoteKind::Resolved => "white_check_mark",
        })
        .collect();
    let priority = msg
        .alerts
        .iter()
        .map(|a| priority(a.kind, a.labels.get("severity").map(String::as_str)))
        .max()
        .unwrap_or(3);
    let mut body = json!({
        "topic": topic,
        "title": truncate(&msg.title(), MAX_TITLE_CHARS),
        "message": text::plain(&spans, click),
        "priority": priority,
        "tags": tags,
    });
    if let Some(link) = click {
        body["click"] = link.into();
    }
    if let Some(link) = ack {
        // A button on the notification (the link is in the text too, for ntfy's web app).
        body["actions"] = json!([{"action": "view", "label": "Acknowledge", "url": link}]);
    }
    body
}

/// ntfy's priority (1 min to 5 max) for a note: from its `severity` label while it fires
/// (`critical`, `fatal`, `page`: 5; `warning`, `warn`, `minor`, `medium`: 3; `info`, `low`: 2;
/// anything else or none: 4), and 2 for a resolve or an acknowledgement.
pub fn priority(kind: NoteKind, severity: Option<&str>) -> u8 {
    if matches!(kind, NoteKind::Resolved | NoteKind::Acknowledged) {
        return 2;
    }
    match super::format::severity(severity) {
        "critical" => 5,
        "warning" => 3,
        "info" => 2,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_severity_and_quieten_when_resolved() {
        assert_eq!(priority(NoteKind::Firing, Some("critical")), 5);
        assert_eq!(priority(NoteKind::Reminder, None), 4);
        assert_eq!(priority(NoteKind::Firing, Some("warning")), 3);
        assert_eq!(priority(NoteKind::Firing, Some("info")), 2);
        assert_eq!(priority(NoteKind::Resolved, Some("critical")), 2);
        assert_eq!(priority(NoteKind::Acknowledged, Some("critical")), 2);
    }

    #[test]
    fn topics_are_what_ntfy_takes() {
        assert!(topic_ok("lookout-ops_1"));
        assert!(!topic_ok(""));
        assert!(!topic_ok("a.b"));
        assert!(!topic_ok(&"x".repeat(65)));
    }
}
