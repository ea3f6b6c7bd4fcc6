//! What becomes of a rule's decision: the boundary between the rules and the notifications.
//!
//! The rules ([`crate::rules`]) say what an alert should be now: a [`Decision`] (this alert is
//! `pending`, `firing` or `resolved`, since when, and why). This module owns everything after
//! that, so that no rule knows about silences, channels or the outbox, and no channel knows
//! about rules:
//!
//! - the alerts as the store holds them ([`Book`]): a decision that changes nothing is no
//!   transition;
//! - holding ([`hold`]): a firing alert is not notified while a silence or a maintenance window
//!   covers it, or while every agent whose results made it fire is itself down (one page for
//!   the host, not one per check);
//! - transitions ([`Desk::record`]): a compare-and-set in the store, in one transaction with
//!   its history entry and its outbox rows (routed by [`crate::notify::Router`]); when another
//!   collector moved the alert first, its state is taken from the store. [`Desk::record_in`]
//!   writes them to a [`crate::store::alerting::Ledger`] instead: the transaction of the group
//!   of batches that decided them, which commits them with the batches; the sender is woken
//!   once they are committed;
//! - release and reminders ([`Desk::release_and_remind`]): a held alert still firing when its
//!   reason ends is notified then; a firing, unacknowledged alert is reminded every
//!   `repeat_interval`. A resolve is sent when the firing was, whatever holds at that moment:
//!   resolves are never held.
//!
//! The rules tell this module what it needs to know of their state through [`Vantage`]
//! (which agents a check's failure depends on, and whether their data is from before they came
//! back), so this module imports nothing from the rules.

mod book;
mod desk;
pub mod hold;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

pub use book::Book;
pub use desk::{Desk, Sink};

use crate::store::alerting::AlertState;

/// The rule name of check alerts.
pub const UPTIME_RULE: &str = "uptime";

/// The rule name of agent heartbeat alerts.
pub const AGENT_RULE: &str = "agent";

/// The rule name of push monitor alerts.
pub const HEARTBEAT_RULE: &str = "heartbeat";

/// An uptime alert's fingerprint.
pub fn uptime_fingerprint(check: &str) -> String {
    format!("{UPTIME_RULE}/{check}")
}

/// An agent heartbeat alert's fingerprint.
pub fn agent_fingerprint(agent: &str) -> String {
    format!("{AGENT_RULE}/{agent}")
}

/// A push monitor alert's fingerprint.
pub fn heartbeat_fingerprint(name: &str) -> String {
    format!("{HEARTBEAT_RULE}/{name}")
}

/// An alert's labels: what it is about (`check`, `agent`, `heartbeat`), and its severity.
pub fn labels(key: &str, value: &str, severity: &str) -> BTreeMap<String, String> {
    [
        (key.to_string(), value.to_string()),
        ("severity".to_string(), severity.to_string()),
    ]
    .into_iter()
    .collect()
}

/// What a rule decided an alert is now, before anything is recorded or routed.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The alert's identity: `rule/subject`.
    pub fingerprint: String,
    /// The rule's name.
    pub rule: String,
    /// The alert's labels, which routes, silences and maintenance windows match.
    pub labels: BTreeMap<String, String>,
    /// The state the rule says it is in.
    pub to: AlertState,
    /// When the data that decided it was taken.
    pub at: DateTime<Utc>,
    /// For people, in words: `checkout-api is down: connection refused`.
    pub summary: String,
    /// What the data said, whole (a probe's error chain), for a note's details; not stored
    /// with the alert, only in the notes queued with this decision.
    pub detail: Option<String>,
    /// The agents whose data made it fire: it is held while all of them are down.
    pub depends_on: Vec<String>,
}

/// What the rules know that holding depends on.
pub trait Vantage: Sync {
    /// The agents now failing `check`, if the rules know the check: who a resumed alert (whose
    /// decision's agents were not kept across a restart) depends on.
    fn failing_agents(&self, check: &str) -> Option<Vec<String>>;

    /// When `agent` came back from its last outage, if it did, with the time of its newest
    /// data: its newest result of `check` when the rules know the check, else its newest record.
    fn returned(
        &self,
        agent: &str,
        check: Option<&str>,
    ) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)>;
}
