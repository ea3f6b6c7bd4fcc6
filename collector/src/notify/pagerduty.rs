//! The PagerDuty channel: PagerDuty's Events API v2, one event per note, POSTed to
//! `https://events.pagerduty.com/v2/enqueue` (or the channel's `url`).
//!
//! A firing note (and a reminder) is a `trigger`, an acknowledged note an `acknowledge`, a
//! resolved note a `resolve`, all with the alert's `dedup_key`: its fingerprint (rule and
//! labels), stable for the alert's life, so a reminder or a retried trigger joins the open
//! PagerDuty alert instead of opening another, and the resolve closes it. A fingerprint longer than PagerDuty's 255 characters is replaced by
//! `lookout:sha256:` and its hash. After a resolve, the next trigger with the key opens a new
//! alert, as PagerDuty documents.
//!
//! A trigger's `payload`: `summary` (what is wrong in words, at most 1,024 characters, `…`
//! marking a cut), `source` (the check, heartbeat or agent), `severity` (the alert's `severity`
//! label mapped: [`severity`]), `timestamp` (when it fired), `class` (the rule), `group` (the
//! `group` label, when there is one), and `custom_details` (the whole summary, the probe's
//! `error` chain, the labels, the fingerprint, when it fired); `links` holds the status page's
//! link and the link that acknowledges the alert in Lookout (`ack_link`) when `[server]
//! public_url` is set, and `client` is `Lookout`.
//!
//! PagerDuty answers 202; 429 and 5xx are retried through the outbox (with `Retry-After` when
//! it sends one); 400 (`invalid event`) is given up. A grouped message is several events, sent
//! in order: a failure retries the message, and the events that had gone through are sent
//! again and deduplicated by their key. Error text never holds the routing key.

use lookout_config::ChannelConfig;
use serde_json::{Map, Value, json};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post, required};
use super::format::{alert_key, label_list, severity, truncate, web_link};
use super::message::{AlertNote, Message, NoteKind, SendError};

/// PagerDuty's endpoint for alert events.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The most characters of `payload.summary`.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// The most characters of `dedup_key`.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
/// The most characters of the summary repeated in `custom_details` (the whole event must stay
/// well under PagerDuty's 512 KB).
const MAX_DETAIL_CHARS: usize = 8192;

/// Builds the channel from a `pagerduty` entry (`routing_key`, `url`, `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let key = required("routing_key", cfg.routing_key.as_deref())?;
    let endpoint =
        Endpoint::new(cfg, http, "url", cfg.url.as_deref(), Some(DEFAULT_URL))?.secret(&key);
    Ok(HttpChannel::new(
        cfg,
        endpoint,
        PagerDuty { routing_key: key },
    ))
}

/// PagerDuty's payload builder: one event per note.
struct PagerDuty {
    routing_key: String,
}

impl Payload for PagerDuty {
    fn peer(&self) -> &'static str {
        "PagerDuty"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        msg.alerts
            .iter()
            .map(|note| Post::json(&event(&self.routing_key, note)))
            .collect()
    }

    fn keeps_alerts_open(&self) -> bool {
        true
    }
}

/// The Events API v2 event for one note (see the module's doc).
pub fn event(routing_key: &str, note: &AlertNote) -> Value {
    let dedup_key = dedup_key(&note.fingerprint);
    if let Some(action) = match note.kind {
        NoteKind::Resolved => Some("resolve"),
        NoteKind::Acknowledged => Some("acknowledge"),
        NoteKind::Firing | NoteKind::Reminder => None,
    } {
        return json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
        });
    }
    let summary = if note.summary.trim().is_empty() {
        format!("{} is failing", note.subject())
    } else {
        note.summary.clone()
    };
    let mut details = Map::new();
    details.insert(
        "summary".into(),
        truncate(&note.summary, MAX_DETAIL_CHARS).into(),
    );
    if let Some(detail) = &note.detail {
        details.insert("error".into(), truncate(detail, MAX_DETAIL_CHARS).into());
    }
    details.insert("labels".into(), label_list(&note.labels).into());
    details.insert("fingerprint".into(), note.fingerprint.clone().into());
    details.insert("fired_at".into(), note.fired_at.to_rfc3339().into());
    if note.kind == NoteKind::Reminder {
        details.insert("reminder".into(), true.into());
    }
    let mut payload = json!({
        "summary": truncate(&summary, MAX_SUMMARY_CHARS),
        "source": if note.subject().is_empty() { "lookout" } else { note.subject() },
        "severity": severity(note.labels.get("severity").map(String::as_str)),
        "timestamp": note.fired_at.to_rfc3339(),
        "class": note.rule,
        "custom_details": details,
    });
    if let Some(group) = note.labels.get("group").filter(|g| !g.is_empty()) {
        payload["group"] = group.clone().into();
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "Lookout",
    });
    let mut links = Vec::new();
    if let Some(link) = web_link(note.link.as_deref()) {
        links.push(json!({"href": link, "text": "Open in Lookout"}));
    }
    if let Some(link) = web_link(note.ack_link.as_deref()) {
        links.push(json!({"href": link, "text": "Acknowledge in Lookout"}));
    }
    if !links.is_empty() {
        event["links"] = json!(links);
    }
    event
}

/// The alert's `dedup_key`: its fingerprint, or `lookout:sha256:<hex>` of it when it is longer
/// than PagerDuty takes (or empty).
pub fn dedup_key(fingerprint: &str) -> String {
    alert_key(fingerprint, MAX_DEDUP_KEY_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_are_stable_and_within_the_limit() {
        assert_eq!(dedup_key("uptime/api"), "uptime/api");
        let long = "x".repeat(300);
        let k = dedup_key(&long);
        assert_eq!(k, dedup_key(&long));
        assert_ne!(k, dedup_key(&"x".repeat(301)));
        assert!(k.len() <= MAX_DEDUP_KEY_CHARS && k.starts_with("lookout:sha256:"));
        assert_eq!(dedup_key(&"y".repeat(255)), "y".repeat(255));
    }
}
