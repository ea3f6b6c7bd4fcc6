//! A check's state from its results, as agents report them: per agent (a vantage point) a run
//! of failures confirms it down there (`failure_threshold`, default 2) and a run of successes
//! clears it (`success_threshold`, default 1); the check is down only when at least `quorum` of
//! the agents reporting see it down (default a majority), so one bad network path is not an
//! outage. Too many changes in a window make it `flapping`: one notification, then quiet until
//! it has been steady for the window.
//!
//! Pure: it takes results and times, and says which transitions they make. The caller persists
//! and notifies.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Up, or not enough agents see it down.
    Up,
    /// Enough agents see failures, but not yet `failure_threshold` in a row.
    Pending,
    /// At least `quorum` agents see it down.
    Down,
    /// It changed between up and down too often in the window.
    Flapping,
}

/// The rule's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UptimeSettings {
    /// Failures in a row that confirm a check down at one agent.
    pub failure_threshold: u32,
    /// Successes in a row that confirm it up again at one agent.
    pub success_threshold: u32,
    /// Agents that must see it down; `None`: a majority of those reporting.
    pub quorum: Option<u32>,
    /// An agent whose last result is older than this is not counted.
    pub stale_after: Duration,
    /// Changes between up and down within `flap_window` that make it flapping.
    pub flap_changes: u32,
    /// The window for flapping, and how long it must be steady to leave it.
    pub flap_window: Duration,
}

impl Default for UptimeSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 2,
            success_threshold: 1,
            quorum: None,
            stale_after: Duration::from_secs(300),
            flap_changes: 6,
            flap_window: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Vantage {
    fails: u32,
    successes: u32,
    down: bool,
    last: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

/// A change of the check's state, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The state before.
    pub from: CheckState,
    /// The state now.
    pub to: CheckState,
    /// When.
    pub at: DateTime<Utc>,
    /// For people: `2 of 3 locations (edge-2, edge-3): status 503`.
    pub summary: String,
}

/// One check's rule state.
#[derive(Debug, Clone)]
pub struct Uptime {
    settings: UptimeSettings,
    vantages: BTreeMap<String, Vantage>,
    /// The last of up or down that the results settled on (pending is on the way).
    settled: CheckState,
    state: CheckState,
    /// Times of changes between up and down, within the flap window.
    changes: VecDeque<DateTime<Utc>>,
}

impl Uptime {
    /// A check with no results yet: up.
    pub fn new(settings: UptimeSettings) -> Self {
        Self {
            settings,
            vantages: BTreeMap::new(),
            settled: CheckState::Up,
            state: CheckState::Up,
            changes: VecDeque::new(),
        }
    }

    /// A check that was down when evaluation stopped (its alert is firing): it stays down
    /// until its agents' results say otherwise.
    pub fn resume_down(settings: UptimeSettings) -> Self {
        Self {
            settled: CheckState::Down,
            state: CheckState::Down,
            ..Self::new(settings)
        }
    }

    /// The current state.
    pub fn state(&self) -> CheckState {
        self.state
    }

    /// Puts back what an agent last reported, without evaluating (at start, from the stored
    /// latest results, so that a resumed check knows which agents saw it fail).
    pub fn resume_vantage(
        &mut self,
        agent: &str,
        at: DateTime<Utc>,
        ok: bool,
        error: Option<&str>,
    ) {
        let s = &self.settings;
        let v = self.vantages.entry(agent.to_string()).or_default();
        v.last = Some(at);
        v.down = !ok;
        v.fails = if ok { 0 } else { s.failure_threshold.max(1) };
        v.successes = if ok { s.success_threshold.max(1) } else { 0 };
        v.last_error = error.map(str::to_string);
    }

    /// The agents whose results are failing: what a down check depends on.
    pub fn failing_agents(&self) -> Vec<String> {
        self.vantages
            .iter()
            .filter(|(_, v)| v.down || v.fails > 0)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// The time of `agent`'s latest result.
    pub fn last_result(&self, agent: &str) -> Option<DateTime<Utc>> {
        self.vantages.get(agent).and_then(|v| v.last)
    }

    /// Takes one result from `agent`; returns the change it makes, if any.
    pub fn observe(
        &mut self,
        agent: &str,
        at: DateTime<Utc>,
        ok: bool,
        error: Option<&str>,
    ) -> Option<Change> {
        let s = &self.settings;
        let v = self.vantages.entry(agent.to_string()).or_default();
        // Results of one agent can arrive out of order after a backlog: an older one does not
        // overrule what came after it.
        if v.last.is_some_and(|l| at < l) {
            return None;
        }
        v.last = Some(at);
        if ok {
            v.successes += 1;
            v.fails = 0;
            if v.successes >= s.success_threshold.max(1) {
                v.down = false;
            }
        } else {
            v.fails += 1;
            v.successes = 0;
            v.last_error = error.map(str::to_string);
            if v.fails >= s.failure_threshold.max(1) {
                v.down = true;
            }
        }
        self.evaluate(at)
    }

    /// Re-evaluates at `now` without a new result (agents going stale, flapping settling).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Change> {
        self.evaluate(now)
    }

    fn evaluate(&mut self, now: DateTime<Utc>) -> Option<Change> {
        let s = &self.settings;
        let stale = chrono::Duration::from_std(s.stale_after).unwrap_or(chrono::Duration::MAX);
        let fresh: Vec<&Vantage> = self
            .vantages
            .values()
            .filter(|v| v.last.is_some_and(|l| now - l <= stale))
            .collect();
        let reporting = fresh.len() as u32;
        if reporting == 0 {
            // No agent reports it (they are silent or gone): nothing new is known, so the state
            // holds; the agents' own heartbeat alerts say what is wrong.
            return None;
        }
        let quorum = s.quorum.unwrap_or(reporting / 2 + 1).max(1);
        let down = fresh.iter().filter(|v| v.down).count() as u32;
        // Failing: down, or on the way there (a failure not yet confirmed); includes the down.
        let failing = fresh.iter().filter(|v| v.down || v.fails > 0).count() as u32;
        let seen = if down >= quorum {
            CheckState::Down
        } else if failing >= quorum {
            CheckState::Pending
        } else {
            CheckState::Up
        };
        // Flapping counts changes between up and down; pending is on the way, not a change.
        if seen != CheckState::Pending && seen != self.settled {
            self.changes.push_back(now);
            self.settled = seen;
        }
        // Pending shows only on the way down: a check that is down stays down until enough
        // agents see it up again.
        let underlying = if seen == CheckState::Pending && self.settled == CheckState::Down {
            CheckState::Down
        } else {
            seen
        };
        let window = chrono::Duration::from_std(s.flap_window).unwrap_or(chrono::Duration::MAX);
        while self.changes.front().is_some_and(|t| now - *t > window) {
            self.changes.pop_front();
        }
        let next = if self.changes.len() as u32 >= s.flap_changes.max(2)
            || (self.state == CheckState::Flapping && !self.changes.is_empty())
        {
            // Flapping, and quiet until it has been steady for the whole window.
            CheckState::Flapping
        } else {
            underlying
        };
        if next == self.state {
            return None;
        }
        let summary = match next {
            CheckState::Up if failing == 0 => format!("up from all {reporting} locations"),
            CheckState::Up => format!("up from {} of {reporting} locations", reporting - failing),
            CheckState::Flapping => format!(
                "flapping: {} changes in {}",
                self.changes.len(),
                lookout_config::duration::format(&self.settings.flap_window)
            ),
            _ => {
                let error = fresh
                    .iter()
                    .filter(|v| v.down || v.fails > 0)
                    .find_map(|v| v.last_error.as_deref())
                    .unwrap_or("failing");
                // Which locations, when there are several to tell apart.
                let names = if reporting > 1 {
                    let failing_names: Vec<&str> = self
                        .vantages
                        .iter()
                        .filter(|(_, v)| {
                            v.last.is_some_and(|l| now - l <= stale) && (v.down || v.fails > 0)
                        })
                        .map(|(a, _)| a.as_str())
                        .collect();
                    format!(" ({})", failing_names.join(", "))
                } else {
                    String::new()
                };
                format!("{failing} of {reporting} locations{names}: {error}")
            }
        };
        let change = Change {
            from: self.state,
            to: next,
            at: now,
            summary,
        };
        self.state = next;
        Some(change)
    }
}
