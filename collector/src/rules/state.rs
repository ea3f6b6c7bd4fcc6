//! What the rule engine keeps between evaluations: each check's uptime rule, when each agent
//! was last heard from, the latest pings of push monitors, the windows of metric and log rules,
//! and the alerts as the store holds them. [`Seen`] is what of it the alert desk's holds read.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::logs::LogRules;
use super::threshold::Thresholds;
use super::uptime::Uptime;
use crate::alert::{Book, Vantage};
use crate::store::alerting::{AlertState, HeartbeatRow};

/// When an agent was last heard from, and when it came back from its last outage.
#[derive(Debug)]
pub(super) struct AgentBeat {
    pub(super) last: DateTime<Utc>,
    pub(super) back_at: Option<DateTime<Utc>>,
    /// The newest time of any record it sent.
    pub(super) latest_data: Option<DateTime<Utc>>,
    /// How often it said it asks for its assignments.
    pub(super) poll: Option<Duration>,
    /// It said it was stopping (a clean stop) and has not shipped since: its silence does
    /// not page.
    pub(super) stopped: bool,
    /// Known from the store at this collector's start and not heard from since: the collector
    /// was away, so the agent may be waiting out its retry backoff; its timeout is at least
    /// [`super::settings::RESTART_GRACE`].
    pub(super) awaited: bool,
}

impl AgentBeat {
    /// Heard from at `now`, with nothing else known yet.
    pub(super) fn new(now: DateTime<Utc>) -> Self {
        Self {
            last: now,
            back_at: None,
            latest_data: None,
            poll: None,
            stopped: false,
            awaited: false,
        }
    }

    /// Heard from at `at`.
    pub(super) fn heard(&mut self, at: DateTime<Utc>) {
        self.last = self.last.max(at);
        self.awaited = false;
    }
}

/// A check's uptime rule and the severity of its alert.
#[derive(Debug)]
pub(super) struct CheckRule {
    pub(super) uptime: Uptime,
    pub(super) severity: String,
}

/// Everything the engine keeps between evaluations, under its one lock.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) checks: HashMap<String, CheckRule>,
    pub(super) agents: HashMap<String, AgentBeat>,
    /// The alerts as the store holds them.
    pub(super) alerts: Book,
    /// The latest pings of each push monitor.
    pub(super) beats: HashMap<String, HeartbeatRow>,
    /// Metric threshold rules and their windows.
    pub(super) thresholds: Thresholds,
    /// Log rules and their counts.
    pub(super) logs: LogRules,
}

impl State {
    pub(super) fn alert_state(&self, fingerprint: &str) -> Option<AlertState> {
        self.alerts.state(fingerprint)
    }

    pub(super) fn agent_down(&self, agent: &str) -> bool {
        self.alerts.agent_down(agent)
    }

    /// The alerts, to change, beside what the rules know of checks and agents, to read.
    pub(super) fn split(&mut self) -> (&mut Book, Seen<'_>) {
        (
            &mut self.alerts,
            Seen {
                checks: &self.checks,
                agents: &self.agents,
            },
        )
    }
}

/// What the rules know of checks and agents that the alert desk's holds depend on.
pub(super) struct Seen<'a> {
    checks: &'a HashMap<String, CheckRule>,
    agents: &'a HashMap<String, AgentBeat>,
}

impl Vantage for Seen<'_> {
    fn failing_agents(&self, check: &str) -> Option<Vec<String>> {
        self.checks.get(check).map(|r| r.uptime.failing_agents())
    }

    fn returned(
        &self,
        agent: &str,
        check: Option<&str>,
    ) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let b = self.agents.get(agent)?;
        let back = b.back_at?;
        let latest = match check.and_then(|c| self.checks.get(c)) {
            Some(rule) => rule.uptime.last_result(agent),
            None => b.latest_data,
        };
        Some((back, latest))
    }
}
