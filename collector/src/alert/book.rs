//! The alerts as the store holds them, kept in memory by the collector that leads, so that a
//! decision is compared with the alert's state without a read. Loaded from the store at start
//! and when a collector takes the lead; changed only by [`super::Desk`] after the store took the
//! change.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::agent_fingerprint;
use crate::store::alerting::{AlertRow, AlertState};

/// An alert as the desk knows it: what the store holds, plus what it depends on.
#[derive(Debug, Clone)]
pub(super) struct Memo {
    pub(super) state: AlertState,
    pub(super) rule: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) summary: String,
    /// The decision's detail (see [`super::Decision::detail`]); not stored: `None` after a
    /// restart.
    pub(super) detail: Option<String>,
    pub(super) fired_at: Option<DateTime<Utc>>,
    pub(super) notified_at: Option<DateTime<Utc>>,
    /// The agents whose data made it fire: held back while all of them are down. Not stored:
    /// empty after a restart, when [`super::Vantage`] tells them again.
    pub(super) depends_on: Vec<String>,
}

impl Memo {
    pub(super) fn of(row: &AlertRow) -> Self {
        Self {
            state: row.state,
            rule: row.rule.clone(),
            labels: row.labels.clone(),
            summary: row.summary.clone(),
            detail: None,
            fired_at: row.fired_at,
            notified_at: row.notified_at,
            depends_on: Vec::new(),
        }
    }
}

/// Every alert the store holds, by fingerprint.
#[derive(Debug, Default)]
pub struct Book {
    pub(super) memos: HashMap<String, Memo>,
}

impl Book {
    /// The book of these stored alerts (one per fingerprint: the first row of each is taken).
    pub fn of(rows: &[AlertRow]) -> Self {
        let mut memos = HashMap::new();
        for row in rows {
            memos
                .entry(row.fingerprint.clone())
                .or_insert_with(|| Memo::of(row));
        }
        Self { memos }
    }

    /// The alert's state, if there is such an alert.
    pub fn state(&self, fingerprint: &str) -> Option<AlertState> {
        self.memos.get(fingerprint).map(|m| m.state)
    }

    /// True while `agent`'s own heartbeat alert fires: the agent is down.
    pub fn agent_down(&self, agent: &str) -> bool {
        self.state(&agent_fingerprint(agent)) == Some(AlertState::Firing)
    }

    /// The alerts not resolved, as (fingerprint, rule, labels).
    pub fn unresolved(&self) -> impl Iterator<Item = (&str, &str, &BTreeMap<String, String>)> {
        self.memos
            .iter()
            .filter(|(_, m)| m.state != AlertState::Resolved)
            .map(|(f, m)| (f.as_str(), m.rule.as_str(), &m.labels))
    }
}
