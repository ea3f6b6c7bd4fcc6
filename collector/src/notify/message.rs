//! What a channel sends: one [`Message`] per group of alerts, each alert an [`AlertNote`]. The
//! outbox stores each note as JSON (its payload); the worker gathers the notes of one group into
//! a message and hands it to the channel.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of the webhook payload's schema (docs/alerting.md, "Channels": webhook).
pub const PAYLOAD_VERSION: u32 = 1;

/// Why a note is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// The alert began firing.
    #[default]
    Firing,
    /// The alert is still firing and not acknowledged (`repeat_interval`).
    Reminder,
    /// The alert resolved.
    Resolved,
    /// Someone acknowledged the firing alert: it is being worked on (`acked_by` says who).
    Acknowledged,
}

impl NoteKind {
    /// Every kind, in the order a message shows them.
    pub const ALL: [NoteKind; 4] = [
        NoteKind::Firing,
        NoteKind::Reminder,
        NoteKind::Acknowledged,
        NoteKind::Resolved,
    ];

    /// `firing`, `reminder`, `acknowledged` or `resolved`, as in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Firing => "firing",
            NoteKind::Reminder => "reminder",
            NoteKind::Resolved => "resolved",
            NoteKind::Acknowledged => "acknowledged",
        }
    }

    /// `FIRING`, `REMINDER`, `ACKNOWLEDGED` or `RESOLVED`, for subjects and titles.
    pub fn upper(self) -> &'static str {
        match self {
            NoteKind::Firing => "FIRING",
            NoteKind::Reminder => "REMINDER",
            NoteKind::Resolved => "RESOLVED",
            NoteKind::Acknowledged => "ACKNOWLEDGED",
        }
    }
}

/// One alert in a message; stored as an outbox row's payload. `Default` is for tests and
/// channels' examples (`..Default::default()`): a note always has a fingerprint and a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertNote {
    /// The alert's fingerprint (rule + labels).
    pub fingerprint: String,
    /// The rule (`uptime`, `agent`, a `[[rules]]` name...).
    pub rule: String,
    /// The alert's labels (`check`, `agent`, `severity`...).
    pub labels: BTreeMap<String, String>,
    /// Why this note is sent.
    pub kind: NoteKind,
    /// What is wrong, or what was, in words (`api is down: connection refused`): the first
    /// thing every channel shows.
    pub summary: String,
    /// What the data said, whole (a probe's error chain: `connecting to 10.0.0.5:443:
    /// Connection refused (os error 111)`), for the note's details. Absent for notes queued
    /// after a restart (reminders) and for rules that have nothing more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the alert began firing.
    pub fired_at: DateTime<Utc>,
    /// When it resolved (resolved notes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// A link to the alert's subject on the status page, when `[server] public_url` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Who acknowledged the alert (acknowledged notes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    /// A signed link that acknowledges the alert after a confirmation (`{public_url}/ack/…`,
    /// [`super::link`]): on firing and reminder notes as they are sent, when `[server]
    /// public_url` is set; never stored in the outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_link: Option<String>,
}

impl AlertNote {
    /// How long the alert fired (resolved notes).
    pub fn lasted(&self) -> Option<Duration> {
        self.resolved_at
            .and_then(|r| (r - self.fired_at).to_std().ok())
    }

    /// What the alert is about: its check, agent or rule name.
    pub fn subject(&self) -> &str {
        self.labels
            .get("check")
            .or_else(|| self.labels.get("heartbeat"))
            .or_else(|| self.labels.get("agent"))
            .map(String::as_str)
            .unwrap_or(&self.rule)
    }
}

/// What one channel sends at once: the notes of one group. `Default` is for tests
/// (`..Default::default()`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Message {
    /// The group (route and `group_by` label values).
    pub group_key: String,
    /// The notes, in the order they were queued.
    pub alerts: Vec<AlertNote>,
    /// Storm control held these back and sends them together, once the channel's minute is
    /// over.
    pub digest: bool,
    /// The outbox rows this message delivers, in the order of `alerts`: what names this
    /// delivery across its retries (Matrix's transaction id). Empty for a message that is
    /// not from the outbox (`notify-test`). Never part of a payload.
    #[serde(skip)]
    pub rows: Vec<RowRef>,
}

/// One outbox row a message delivers. Its id and the time it was queued name one delivery
/// for good: every retry sends the same rows, a later delivery (a reminder, an escalation's
/// repeat) new ones, however alike their notes. The time is kept with the id because SQLite
/// may give a new row the id of one that retention deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    /// The row's id in the outbox.
    pub id: i64,
    /// When it was queued.
    pub queued: DateTime<Utc>,
}

impl Message {
    /// A one-line title: `[FIRING] api down: 2 of 3 locations: 503` for one note,
    /// `[FIRING] 3 alerts, [RESOLVED] 1 alert` for several.
    pub fn title(&self) -> String {
        if self.digest {
            let n = self.alerts.len();
            let s = if n == 1 { "" } else { "s" };
            return format!(
                "[DIGEST] {n} notification{s} held back by storm control: {}",
                self.counts()
            );
        }
        if let [one] = self.alerts.as_slice() {
            return format!("[{}] {}", one.kind.upper(), one.summary);
        }
        let mut parts = Vec::new();
        for kind in NoteKind::ALL {
            let n = self.alerts.iter().filter(|a| a.kind == kind).count();
            if n > 0 {
                let s = if n == 1 { "" } else { "s" };
                parts.push(format!("[{}] {n} alert{s}", kind.upper()));
            }
        }
        parts.join(", ")
    }

    /// `3 firing, 1 resolved`.
    fn counts(&self) -> String {
        NoteKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let n = self.alerts.iter().filter(|a| a.kind == kind).count();
                (n > 0).then(|| format!("{n} {}", kind.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (network error, 5xx, 429); `after` is what the peer asked for
    /// (`Retry-After`).
    #[error("{reason}")]
    Retry {
        /// What happened; never holds a secret (URL with token, password).
        reason: String,
        /// The wait the peer asked for.
        after: Option<Duration>,
    },
    /// Will fail the same way again (4xx other than 429, a malformed address): given up at once.
    #[error("{0}")]
    Permanent(String),
}
