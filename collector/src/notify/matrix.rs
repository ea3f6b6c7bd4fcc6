//! The Matrix channel: an `m.room.message` event sent to a room through the client-server
//! API, `PUT {homeserver}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with
//! `Authorization: Bearer <access_token>` (a bot account's, in the room), one event per group.
//!
//! The content: `msgtype: "m.text"`, `body` (the shared plain layout of [`super::text`], title
//! first) and `format: "org.matrix.custom.html"` with `formatted_body` (the same as HTML, every
//! text escaped, `<b>`, `<a href>` and `<br>` only). `m.text`, not `m.notice` (which the spec
//! suggests for bots): the default push rules (`.m.rule.suppress_notices`) never notify for a
//! notice, and an alert must. The content stays under 60,000 bytes of JSON (an event is at most
//! 65,536 bytes with what the homeserver adds), notes that do not fit left out and counted.
//!
//! The `room` is a room id (`!abcdef:example.org`); an alias is refused by the configuration,
//! since whoever controls an alias can point it at another room, and resolving it on every send
//! would be a second request that can fail.
//!
//! The transaction id ([`txn_id`]) names the delivery, not what it says: a hash of the
//! outbox rows the message delivers, each row's id and the time it was queued
//! ([`super::message::RowRef`]). A retry of those rows is the same transaction, which the
//! homeserver applies once (an answer lost after the event was made is not a second event).
//! A later delivery is new rows, so a new transaction, however alike its text: two
//! reminders of one alert, or an escalation's repeat, with the same notes and times would hash
//! the same if the id came from the content, and a homeserver that still remembered the first
//! (Synapse keeps transaction ids for about half an hour) would answer the second without
//! posting it. A message from no outbox row (`notify-test`) hashes its notes, whose time is
//! when the test ran.
//!
//! The homeserver answers 200 with the `event_id`; 429 `M_LIMIT_EXCEEDED` says how long to wait
//! in `retry_after_ms` (and in `Retry-After` on newer homeservers), honoured through the outbox;
//! 5xx are retried; 401 (`M_UNKNOWN_TOKEN`), 403 (`M_FORBIDDEN`: the bot is not in the room)
//! and other 4xx are given up with the homeserver's `errcode`. Error text never holds the
//! access token.

use std::time::Duration;

use lookout_config::ChannelConfig;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::endpoint::{Endpoint, HttpChannel, Payload, Post, segment};
use super::message::{Message, SendError};
use super::text;

/// The most bytes of an event's content, as JSON (an event is at most 65,536 bytes in all).
pub const MAX_CONTENT_BYTES: usize = 60_000;

/// Builds the channel from a `matrix` entry (`homeserver`, `room`, `access_token`,
/// `timeout`).
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let room = match cfg.room.as_deref() {
        None | Some("") => return Err("room: required".into()),
        Some(r) if !r.starts_with('!') => return Err("room: expected a room id, !id:server".into()),
        Some(r) => r.to_string(),
    };
    let token = match cfg.access_token.as_deref() {
        None => return Err("access_token: required".into()),
        Some("") => return Err("access_token: is empty".into()),
        Some(t) => t,
    };
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "access_token: not a valid header value".to_string())?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    let endpoint = Endpoint::new(cfg, http, "homeserver", cfg.homeserver.as_deref(), None)?
        .headers(headers)
        .secret(token);
    Ok(HttpChannel::new(cfg, endpoint, Matrix { room }))
}

/// Matrix's payload builder: one event per message.
struct Matrix {
    room: String,
}

impl Payload for Matrix {
    fn peer(&self) -> &'static str {
        "Matrix"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            segment(&self.room),
            txn_id(msg)
        );
        Ok(vec![Post::json(&content(msg))?.at(path).put()])
    }

    fn retry_after_in_body(&self, body: &str) -> Option<Duration> {
        let v: Value = serde_json::from_str(body).ok()?;
        let ms = v["retry_after_ms"].as_u64()?;
        // Whole seconds, rounded up: the outbox schedules in seconds, and early is refused.
        Some(Duration::from_secs(ms.div_ceil(1000)))
    }
}

/// The `m.room.message` content for `msg` (see the module's doc).
pub fn content(msg: &Message) -> Value {
    let build = |spans: &[text::Span]| {
        json!({
            "msgtype": "m.text",
            "body": text::plain(spans, None),
            "format": "org.matrix.custom.html",
            "formatted_body": text::html(spans, "<br>"),
        })
    };
    let size = |spans: &[text::Span]| build(spans).to_string().len();
    build(&text::message(msg, true, MAX_CONTENT_BYTES, &size))
}

/// The transaction id of `msg`'s event: `lookout` and 32 hex digits of a SHA-256 over the
/// outbox rows it delivers (see the module's doc), the same on every retry of them.
pub fn txn_id(msg: &Message) -> String {
    let mut h = Sha256::new();
    if msg.rows.is_empty() {
        h.update(b"unqueued\0");
        for n in &msg.alerts {
            for part in [
                n.fingerprint.as_str(),
                n.kind.as_str(),
                &n.fired_at.to_rfc3339(),
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
        }
    } else {
        h.update(b"rows\0");
        for r in &msg.rows {
            h.update(r.id.to_be_bytes());
            h.update(r.queued.timestamp_micros().to_be_bytes());
        }
    }
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("lookout{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{AlertNote, NoteKind, RowRef};

    fn msg(kind: NoteKind, rows: &[i64]) -> Message {
        let queued = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        Message {
            group_key: "g".into(),
            alerts: vec![AlertNote {
                fingerprint: "uptime/api".into(),
                kind,
                summary: "api is down".into(),
                ..AlertNote::default()
            }],
            digest: false,
            rows: rows.iter().map(|&id| RowRef { id, queued }).collect(),
        }
    }

    #[test]
    fn a_transaction_id_names_the_rows_delivered_not_what_they_say() {
        let reminder = |rows: &[i64]| txn_id(&msg(NoteKind::Reminder, rows));
        assert_eq!(reminder(&[7]), reminder(&[7]), "a retry");
        assert_ne!(
            reminder(&[7]),
            reminder(&[8]),
            "another delivery, the same text"
        );
        assert_ne!(reminder(&[7, 8]), reminder(&[7]));
        assert_ne!(reminder(&[7, 8]), reminder(&[8, 7]));
        // A row id reused after retention, queued at another time, is another delivery.
        let mut reused = msg(NoteKind::Reminder, &[7]);
        reused.rows[0].queued += chrono::Duration::milliseconds(1);
        assert_ne!(txn_id(&reused), reminder(&[7]));
        assert_eq!(segment(&reminder(&[7])).len(), 39);
    }

    #[test]
    fn a_transaction_id_is_the_same_for_a_retry_and_differs_for_another_note() {
        // notify-test's messages, from no outbox row: by what they say and when.
        let unqueued = |kind| txn_id(&msg(kind, &[]));
        assert_eq!(unqueued(NoteKind::Firing), unqueued(NoteKind::Firing));
        assert_ne!(unqueued(NoteKind::Firing), unqueued(NoteKind::Resolved));
        assert_eq!(segment(&unqueued(NoteKind::Firing)).len(), 39);
    }

    #[test]
    fn a_429_body_says_how_long_to_wait() {
        let m = Matrix {
            room: "!r:x".into(),
        };
        let body =
            r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":2500}"#;
        assert_eq!(m.retry_after_in_body(body), Some(Duration::from_secs(3)));
        assert_eq!(
            m.retry_after_in_body(r#"{"errcode":"M_LIMIT_EXCEEDED"}"#),
            None
        );
    }
}
