//! Every check with its state, as `GET /api/v1/checks`, the admin checks page, the status page
//! and the badges show it: the configured checks, and agent-local ones that have reported.
//!
//! A check's state comes from the latest result of each agent that runs it:
//!
//! - `pending`: no result yet;
//! - `unknown`: no agent has reported within the freshness window (interval + timeout, times
//!   3; five minutes for an agent-local check whose interval the collector does not know);
//! - `down`: a majority of the agents with a fresh result saw it fail;
//! - `up`: otherwise.
//!
//! An agent that left (it stopped cleanly, or an ephemeral one was retired: rules/fleet.rs)
//! no longer counts, as in the rules' quorum; its last result is still listed.
//!
//! The rules issue will add thresholds, quorum settings and flapping on top of this.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::CollectorConfig;
use serde::Serialize;

use crate::store::{ResultRow, Store, StoreError};

/// One check in `GET /api/v1/checks`.
#[derive(Debug, Serialize)]
pub struct CheckView {
    /// Its name.
    pub name: String,
    /// Its type (`http`), or `unknown` for an agent-local check that never reported one.
    #[serde(rename = "type")]
    pub kind: String,
    /// `up`, `down`, `pending` (no result yet) or `unknown` (no recent result).
    pub status: CheckStatus,
    /// Where it is defined: `collector` (central `[[checks]]`) or `agent` (an agent's own).
    pub defined_in: &'static str,
    /// The last result from each agent that runs it.
    pub agents: Vec<ResultRow>,
}

/// Every check with its state, by name: the configured ones, and agent-local ones that have
/// reported.
pub async fn check_views(
    store: &dyn Store,
    config: &CollectorConfig,
) -> Result<Vec<CheckView>, StoreError> {
    let latest = store.latest_results().await?;
    let mut by_check: BTreeMap<String, Vec<ResultRow>> = BTreeMap::new();
    for r in latest {
        by_check.entry(r.check.clone()).or_default().push(r);
    }
    let now = crate::clock::now();
    let left: HashMap<String, DateTime<Utc>> = store
        .agents()
        .await?
        .into_iter()
        .filter_map(|a| a.presence.map(|(_, since)| (a.name, since)))
        .collect();
    let status = |rows: &[ResultRow], period: Option<Duration>| {
        let counted: Vec<ResultRow> = rows
            .iter()
            .filter(|r| left.get(&r.agent).is_none_or(|since| r.time > *since))
            .cloned()
            .collect();
        if counted.is_empty() && !rows.is_empty() {
            CheckStatus::Unknown
        } else {
            status_of(&counted, period, now)
        }
    };
    let mut out = Vec::new();
    for c in &config.checks {
        let rows = by_check.remove(&c.name).unwrap_or_default();
        out.push(CheckView {
            name: c.name.clone(),
            kind: c.kind.to_string(),
            status: status(&rows, Some(c.interval + c.timeout)),
            defined_in: "collector",
            agents: rows,
        });
    }
    for (name, rows) in by_check {
        out.push(CheckView {
            name,
            kind: rows
                .iter()
                .find_map(|r| r.check_type.clone())
                .unwrap_or_else(|| "unknown".into()),
            status: status(&rows, None),
            defined_in: "agent",
            agents: rows,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether `name` is a configured check or one an agent has reported.
pub async fn check_exists(
    store: &dyn Store,
    config: &CollectorConfig,
    name: &str,
) -> Result<bool, StoreError> {
    Ok(config.checks.iter().any(|c| c.name == name) || store.check_known(name).await?)
}

/// The state of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Working.
    Up,
    /// Failing for a majority of the agents that run it.
    Down,
    /// No result yet.
    Pending,
    /// No recent result.
    Unknown,
}

impl CheckStatus {
    /// The lower-case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Up => "up",
            CheckStatus::Down => "down",
            CheckStatus::Pending => "pending",
            CheckStatus::Unknown => "unknown",
        }
    }
}

const FALLBACK_WINDOW: Duration = Duration::from_secs(300);

/// The state given each agent's latest result; `period` is the check's interval plus timeout.
pub fn status_of(
    latest: &[ResultRow],
    period: Option<Duration>,
    now: DateTime<Utc>,
) -> CheckStatus {
    if latest.is_empty() {
        return CheckStatus::Pending;
    }
    let window = period.map_or(FALLBACK_WINDOW, |p| p * 3);
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let fresh: Vec<&ResultRow> = latest.iter().filter(|r| now - r.time <= window).collect();
    if fresh.is_empty() {
        return CheckStatus::Unknown;
    }
    let failing = fresh.iter().filter(|r| !r.ok).count();
    if failing * 2 > fresh.len() {
        CheckStatus::Down
    } else {
        CheckStatus::Up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(agent: &str, ok: bool, age_s: i64, now: DateTime<Utc>) -> ResultRow {
        ResultRow {
            check: "c".into(),
            agent: agent.into(),
            time: now - chrono::Duration::seconds(age_s),
            ok,
            latency_ms: 1.0,
            error: None,
            status_code: None,
            cert_expiry: None,
            timings: Default::default(),
            check_type: None,
        }
    }

    #[test]
    fn majority_of_fresh_results_decides() {
        let now = crate::clock::now();
        let p = Some(Duration::from_secs(10));
        assert_eq!(status_of(&[], p, now), CheckStatus::Pending);
        assert_eq!(
            status_of(&[row("a", true, 1, now)], p, now),
            CheckStatus::Up
        );
        assert_eq!(
            status_of(&[row("a", false, 1, now)], p, now),
            CheckStatus::Down
        );
        // One of three failing: one bad network path pages nobody.
        let rows = [
            row("a", false, 1, now),
            row("b", true, 1, now),
            row("c", true, 1, now),
        ];
        assert_eq!(status_of(&rows, p, now), CheckStatus::Up);
        let rows = [
            row("a", false, 1, now),
            row("b", false, 1, now),
            row("c", true, 1, now),
        ];
        assert_eq!(status_of(&rows, p, now), CheckStatus::Down);
        // A stale failure does not count.
        let rows = [row("a", false, 100, now), row("b", true, 1, now)];
        assert_eq!(status_of(&rows, p, now), CheckStatus::Up);
        assert_eq!(
            status_of(&[row("a", true, 31, now)], p, now),
            CheckStatus::Unknown
        );
        assert_eq!(
            status_of(&[row("a", true, 200, now)], None, now),
            CheckStatus::Up
        );
    }
}
