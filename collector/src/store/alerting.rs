//! What the store keeps for alerting: alerts with their history, the notification outbox and
//! silences ([`AlertStore`]), so that the rules and notification work can rely on these
//! guarantees:
//!
//! - A transition is a compare-and-set: it applies only if the alert is still in the state the
//!   caller saw, and it is stored in one transaction with its history entry and its outbox rows.
//!   Whatever happens next, a transition either happened with all its notifications queued, or
//!   did not happen at all.
//! - An outbox row is unique per (channel, dedup key), so one transition queues at most one
//!   message per channel, even if it is recorded twice.
//! - Senders claim due rows with a lease; a row claimed by one sender is not handed to another
//!   until the lease runs out, and only the lease holder can mark it delivered or failed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds but not yet for long enough.
    Pending,
    /// The condition holds: notifications go out.
    Firing,
    /// The condition cleared.
    Resolved,
}

impl AlertState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(AlertState::Pending),
            "firing" => Ok(AlertState::Firing),
            "resolved" => Ok(AlertState::Resolved),
            other => Err(StoreError::Corrupt(format!("alert state {other:?}"))),
        }
    }
}

/// A change of an alert's state, as the rules decide it.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Identifies the alert: its rule and labels.
    pub fingerprint: String,
    /// The rule's name.
    pub rule: String,
    /// The alert's labels (check, agent, severity...).
    pub labels: BTreeMap<String, String>,
    /// The state the caller believes the alert is in; `None` for an alert never stored.
    pub from: Option<AlertState>,
    /// The new state.
    pub to: AlertState,
    /// When the condition changed.
    pub at: DateTime<Utc>,
    /// What is wrong, for people (`2 of 3 locations: status 503`).
    pub summary: String,
}

/// A notification to queue with a transition.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The channel's name.
    pub channel: String,
    /// Unique per message for this channel: a second row with the same key is not queued.
    pub dedup_key: String,
    /// What the sender needs, as JSON.
    pub payload: serde_json::Value,
    /// When it may first be sent (later than `at` for grouping).
    pub not_before: DateTime<Utc>,
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Its id.
    pub id: i64,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its rule.
    pub rule: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: AlertState,
    /// What is wrong.
    pub summary: String,
    /// When the current state began.
    pub since: DateTime<Utc>,
    /// Who acknowledged it, while firing.
    pub acked_by: Option<String>,
}

/// One entry of an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// When.
    pub time: DateTime<Utc>,
    /// From which state (`None`: created).
    pub from: Option<AlertState>,
    /// To which state.
    pub to: AlertState,
    /// The summary at that time.
    pub summary: String,
}

/// A queued notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Its id.
    pub id: i64,
    /// The channel.
    pub channel: String,
    /// Its dedup key.
    pub dedup_key: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// Attempts made so far.
    pub attempts: u32,
}

/// How a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting to be sent, or to be retried.
    Pending,
    /// Sent.
    Delivered,
    /// Given up on.
    Failed,
}

/// A silence: matching alerts are recorded but not sent while it is active.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    /// Its id (0 before it is stored).
    pub id: i64,
    /// Label values an alert must all have to match.
    pub matchers: BTreeMap<String, String>,
    /// Start.
    pub starts: DateTime<Utc>,
    /// End.
    pub ends: DateTime<Utc>,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// True when active at `now` and every matcher is among `labels`.
    pub fn silences(&self, labels: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
        self.starts <= now
            && now < self.ends
            && self.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The alerting part of the store.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Applies a transition if the alert is in `t.from`, with its history entry and its
    /// notifications, in one transaction. Returns the alert's id, or `None` when the alert was
    /// not in `t.from` (nothing is stored then).
    async fn record_transition(
        &self,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError>;

    /// Alerts in one of `states`, newest change first.
    async fn alerts(&self, states: &[AlertState]) -> Result<Vec<AlertRow>, StoreError>;

    /// An alert's history, oldest first.
    async fn alert_history(&self, alert_id: i64) -> Result<Vec<AlertEvent>, StoreError>;

    /// Acknowledges a firing alert; false when there is no such firing alert.
    async fn ack_alert(
        &self,
        alert_id: i64,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` notifications due at `now` for `owner` until `lease_until`.
    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Marks a claimed notification delivered; false when `owner` no longer holds it.
    async fn mark_delivered(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a failed attempt at `at`: retry at `retry_at`, or give up when `None`. False
    /// when `owner` no longer holds it.
    async fn mark_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// How a notification stands, with its last error.
    async fn delivery(
        &self,
        id: i64,
    ) -> Result<Option<(DeliveryState, Option<String>)>, StoreError>;

    /// Stores a silence; returns its id.
    async fn create_silence(&self, s: &Silence) -> Result<i64, StoreError>;

    /// Silences that have not ended at `now`.
    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError>;

    /// Ends a silence at `now`; false when there is none active.
    async fn expire_silence(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
}
