//! What the store keeps for alerting: alerts with their history, the notification outbox and
//! silences ([`AlertStore`]), so that the rules and notification work can rely on these
//! guarantees:
//!
//! - A transition is a compare-and-set: it applies only if the alert is still in the state the
//!   caller saw, and it is stored in one transaction with its history entry and its outbox rows.
//!   Whatever happens next, a transition either happened with all its notifications queued, or
//!   did not happen at all. A transition can also be written in the open transaction of a group
//!   of batches ([`Ledger`], [`super::Store::open_group`]), in a savepoint of its own: it then
//!   commits with the batches that decided it, or not at all.
//! - An outbox row is unique per (channel, dedup key), so one transition queues at most one
//!   message per channel, even if it is recorded twice.
//! - Senders claim due rows with a lease; a row claimed by one sender is not handed to another
//!   until the lease runs out, and only the lease holder can mark it delivered or failed.
//! - Escalation steps ([`Escalation`]) are queued with the firing, each due when its step
//!   comes. Acknowledging or resolving the alert cancels, in the same transaction, every step
//!   no sender holds; a step being sent then goes out once, and is marked delivered. A
//!   delivered last step with a repeat queues its next repeat in the transaction that marks it
//!   delivered, while the alert is still firing and unacknowledged. Notes that follow the
//!   steps (resolved) are queued only to channels whose step was delivered or is being sent.

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
    /// Every state, in lifecycle order.
    pub const ALL: [AlertState; 3] = [
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
    ];

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
    /// When the alert's current (or last) firing began.
    pub fired_at: Option<DateTime<Utc>>,
    /// When a firing or reminder notification was last queued this episode (`None`: none,
    /// and the resolve is not sent either).
    pub notified_at: Option<DateTime<Utc>>,
    /// The wall clock when it is recorded: leaving firing cancels the escalation steps whose
    /// sender's lease has run out by then, with those no sender claimed.
    pub recorded_at: DateTime<Utc>,
}

/// How an outbox row takes part in an escalation policy (docs/alerting.md, "Escalation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// Step `index` of a policy: not sent before `due`, even with its group; cancelled while no
    /// sender holds it if the alert is acknowledged or resolved; with `repeat`, queued again
    /// at the next multiple of `repeat` after `due` once delivered.
    Step {
        /// The step's position in its policy, from 0.
        index: u32,
        /// When the step comes: the alert's firing plus the step's `after`.
        due: DateTime<Utc>,
        /// The policy's repeat, on its last step.
        repeat: Option<std::time::Duration>,
    },
    /// A note after the steps (resolved): queued only if a step row of its channel, queued at
    /// or after `since` (the firing), was delivered or is held by a sender.
    Follow {
        /// When the firing whose steps it follows began.
        since: DateTime<Utc>,
    },
}

/// A notification to queue with a transition.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The channel's name.
    pub channel: String,
    /// Unique per message for this channel: a second row with the same key is not queued.
    pub dedup_key: String,
    /// Rows of one channel with the same group key go out as one message.
    pub group_key: String,
    /// What the sender needs, as JSON.
    pub payload: serde_json::Value,
    /// When it may first be sent (later than `at` for grouping).
    pub not_before: DateTime<Utc>,
    /// Its part in an escalation policy, if its route names one.
    pub escalation: Option<Escalation>,
}

/// What an acknowledgement queues to a channel, made from a notification the alert's current
/// firing sent it ([`AlertStore::ack_alert`]); `None` sends that channel nothing for this row.
/// The store holds payloads without reading them: the caller says what to make of them.
pub type AckNote<'a> = dyn Fn(&Notification) -> Option<NewNotification> + Send + Sync + 'a;

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
    /// When its current (or last) firing began.
    pub fired_at: Option<DateTime<Utc>>,
    /// When a notification was last queued for its current firing.
    pub notified_at: Option<DateTime<Utc>>,
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

/// One firing of an alert, from its history: a status page's incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// The alert.
    pub alert_id: i64,
    /// The alert's labels (`check`).
    pub labels: BTreeMap<String, String>,
    /// What was wrong when it began.
    pub summary: String,
    /// When it began to fire.
    pub started: DateTime<Utc>,
    /// When it was resolved; `None` while it fires.
    pub ended: Option<DateTime<Utc>>,
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
    /// Its group key.
    pub group_key: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was queued.
    pub created: DateTime<Utc>,
    /// The alert it is about (`None`: queued by an older version without it).
    pub alert_id: Option<i64>,
}

/// How one notification about an alert stands, for the alerts API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The channel.
    pub channel: String,
    /// Sent, waiting, or given up.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    pub queued: DateTime<Utc>,
    /// When it was sent or given up.
    pub done: Option<DateTime<Utc>>,
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
    /// An escalation step that was not sent: the alert was acknowledged or resolved first.
    Cancelled,
}

impl DeliveryState {
    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "failed" => Ok(DeliveryState::Failed),
            "cancelled" => Ok(DeliveryState::Cancelled),
            other => Err(StoreError::Corrupt(format!("outbox state {other:?}"))),
        }
    }
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

/// What a ping of a push monitor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PingKind {
    /// The job succeeded (a plain ping, or exit code 0).
    Success,
    /// The job began.
    Start,
    /// The job failed (`/fail`, or a non-zero exit code).
    Fail,
}

impl PingKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PingKind::Success => "success",
            PingKind::Start => "start",
            PingKind::Fail => "fail",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "success" => Ok(PingKind::Success),
            "start" => Ok(PingKind::Start),
            "fail" => Ok(PingKind::Fail),
            other => Err(StoreError::Corrupt(format!("ping kind {other:?}"))),
        }
    }
}

/// One ping of a push monitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ping {
    /// The heartbeat's name.
    pub name: String,
    /// What it says.
    pub kind: PingKind,
    /// The job's exit code, when it sent one.
    pub exit_code: Option<i32>,
    /// When it arrived.
    pub time: DateTime<Utc>,
    /// Where it came from (IP address).
    pub remote: Option<String>,
    /// The start of the request body (the job's output), up to 10 KB.
    pub body: Option<String>,
}

/// The latest ping of each kind of one heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeartbeatRow {
    /// The heartbeat's name.
    pub name: String,
    /// The latest success.
    pub last_success: Option<DateTime<Utc>>,
    /// The latest start.
    pub last_start: Option<DateTime<Utc>>,
    /// The latest failure.
    pub last_fail: Option<DateTime<Utc>>,
    /// The exit code of the latest ping that carried one.
    pub last_exit_code: Option<i32>,
}

/// Where a transition is written, with the rules of [`AlertStore::record_transition`]: the
/// store, each transition in a transaction of its own, or the open transaction of a group of
/// batches ([`super::Store::open_group`]), committed with the batches that decided it.
#[async_trait]
pub trait Ledger: Send {
    /// Applies a transition if the alert is in `t.from`, with its history entry and its
    /// notifications, all or nothing. Returns the alert's id, or `None` when the alert was not
    /// in `t.from` (nothing is written then).
    async fn record_transition(
        &mut self,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError>;

    /// The alert `fingerprint` as this ledger sees it (its own writes included), if stored.
    async fn alert(&mut self, fingerprint: &str) -> Result<Option<AlertRow>, StoreError>;
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

    /// The firings of `rule`'s alerts that began at or after `since`, each with when it was
    /// resolved (`None`: still firing); newest first.
    async fn incidents(
        &self,
        rule: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Incident>, StoreError>;

    /// Acknowledges a firing alert for `by` at `at` and, in the same transaction, queues the
    /// note `ack_note` makes of each notification its current firing sent: each row queued
    /// since it began to fire (its firing, its reminders) that was delivered, is being retried,
    /// or is due, but not one given up on nor one not yet due and never tried (a later step).
    /// The notes' dedup keys make this exactly once per channel and firing: a second
    /// acknowledgement updates who and when but queues nothing. False when there is no such
    /// firing alert (nothing is written then). Its escalation steps no sender holds at `at`
    /// are cancelled first, in the same transaction: the policy stops.
    async fn ack_alert(
        &self,
        alert_id: i64,
        by: &str,
        at: DateTime<Utc>,
        ack_note: &AckNote<'_>,
    ) -> Result<bool, StoreError>;

    /// Queues notifications about the alert `fingerprint` while it is still in `state`, and
    /// sets its `notified_at` to `at`, in one transaction (reminders, and notifications held
    /// back until a silence or an agent outage ended). False when the alert moved on.
    async fn queue_notifications(
        &self,
        fingerprint: &str,
        state: AlertState,
        at: DateTime<Utc>,
        notify: &[NewNotification],
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` notifications for `owner` until `lease_until`: those due at `now`,
    /// and with them every unclaimed pending row of the same channel and group key not yet
    /// attempted (so a group goes out as one message when its first row's wait is over, while
    /// a row waiting to be retried keeps its backoff).
    async fn claim_notifications(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;

    /// Marks a claimed notification delivered; false when `owner` no longer holds it. An
    /// escalation step with a repeat queues its next repeat in the same transaction, while its
    /// alert still fires unacknowledged.
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

    /// Puts claimed notifications back, due at `until`, without counting an attempt (storm
    /// control holding them for a digest). Returns how many `owner` still held.
    async fn defer_notifications(
        &self,
        ids: &[i64],
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// When the next pending notification is due (a leased one: when its lease ends), if any.
    async fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The notifications queued about an alert, oldest first.
    async fn deliveries(&self, alert_id: i64) -> Result<Vec<Delivery>, StoreError>;

    /// How a notification stands, with its last error.
    async fn delivery(
        &self,
        id: i64,
    ) -> Result<Option<(DeliveryState, Option<String>)>, StoreError>;

    /// Stores a ping and updates its heartbeat's latest, in one transaction.
    async fn record_ping(&self, ping: &Ping) -> Result<(), StoreError>;

    /// The latest pings of every heartbeat that has been pinged.
    async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError>;

    /// A heartbeat's pings, newest first, at most `limit`.
    async fn pings(&self, name: &str, limit: u32) -> Result<Vec<Ping>, StoreError>;

    /// The key named `name` that every collector on this database shares: the one stored, or,
    /// when none is yet, `fresh`, stored now (the first collector to ask wins, and every other
    /// reads its key).
    async fn shared_key(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Stores a silence; returns its id.
    async fn create_silence(&self, s: &Silence) -> Result<i64, StoreError>;

    /// Silences that have not ended at `now`.
    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError>;

    /// Ends a silence at `now`; false when there is none active.
    async fn expire_silence(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
}
