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

impl Vantage {
    /// Down, or on the way there (a failure not yet confirmed).
    fn failing(&self) -> bool {
        self.down || self.fails > 0
    }

    fn seen(&self) -> Seen {
        Seen {
            last: self.last,
            down: self.down,
            failing: self.failing(),
        }
    }
}

/// What counting needs of a vantage.
#[derive(Debug, Clone, Copy)]
struct Seen {
    last: Option<DateTime<Utc>>,
    down: bool,
    failing: bool,
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
    /// For people, in words, the state first: `down: connection refused`, `down from 2 of 3
    /// locations (edge-2, edge-3): status 503`, `up`, `flapping: 6 changes in 10m`.
    pub summary: String,
    /// The probe's error as the agent reported it, whole (down and pending only).
    pub detail: Option<String>,
}

/// How many fresh agents report a check, and how many of them see it down or failing, kept as
/// results arrive: counting every agent on every result made a check that 10,000 agents probe
/// cost 10,000 steps per result. The counts hold for every `now` at which the same agents are
/// fresh: those whose last result is no older than `min_fresh` (a lower bound), none of those
/// at or before `max_stale` (an upper bound). Outside that, the agents are counted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    reporting: u32,
    down: u32,
    failing: u32,
    min_fresh: Option<DateTime<Utc>>,
    max_stale: Option<DateTime<Utc>>,
}

impl Counts {
    /// The agents in `vantages` fresh at `now`, counted.
    fn of<'a>(
        vantages: impl Iterator<Item = &'a Vantage>,
        now: DateTime<Utc>,
        stale: chrono::Duration,
    ) -> Self {
        let mut c = Counts {
            reporting: 0,
            down: 0,
            failing: 0,
            min_fresh: None,
            max_stale: None,
        };
        for v in vantages {
            let Some(last) = v.last else { continue };
            if now - last <= stale {
                c.add(v.seen());
                c.min_fresh = Some(c.min_fresh.map_or(last, |m| m.min(last)));
            } else {
                c.max_stale = Some(c.max_stale.map_or(last, |m| m.max(last)));
            }
        }
        c
    }

    /// True when the counted agents are the ones fresh at `now`.
    fn hold_at(&self, now: DateTime<Utc>, stale: chrono::Duration) -> bool {
        self.min_fresh.is_none_or(|m| now - m <= stale)
            && self.max_stale.is_none_or(|m| now - m > stale)
    }

    /// Whether an agent whose last result was at `last` is among the counted.
    fn includes(&self, last: DateTime<Utc>) -> bool {
        // Every counted agent's last result is at or after `min_fresh`, every other one's at
        // or before `max_stale`, which is earlier.
        self.min_fresh.is_some_and(|m| last >= m)
    }

    fn add(&mut self, v: Seen) {
        self.reporting += 1;
        self.down += u32::from(v.down);
        self.failing += u32::from(v.failing);
    }

    /// An agent's vantage went from `before` to `after` (a later or equal last result).
    fn update(&mut self, before: Seen, after: Seen) {
        if before.last.is_some_and(|l| self.includes(l)) {
            self.reporting -= 1;
            self.down -= u32::from(before.down);
            self.failing -= u32::from(before.failing);
        }
        let Some(last) = after.last else { return };
        if self.max_stale.is_none_or(|m| last > m) {
            self.add(after);
            self.min_fresh = Some(self.min_fresh.map_or(last, |m| m.min(last)));
        }
    }
}

/// One check's rule state.
#[derive(Debug, Clone)]
pub struct Uptime {
    settings: UptimeSettings,
    vantages: BTreeMap<String, Vantage>,
    /// The fresh agents counted, while the same agents are fresh.
    counts: Option<Counts>,
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
            counts: None,
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
        self.counts = None;
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
            .filter(|(_, v)| v.failing())
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
        let v = match self.vantages.get_mut(agent) {
            Some(v) => v,
            None => self.vantages.entry(agent.to_string()).or_default(),
        };
        // Results of one agent can arrive out of order after a backlog: an older one does not
        // overrule what came after it.
        if v.last.is_some_and(|l| at < l) {
            return None;
        }
        let before = v.seen();
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
        if let Some(c) = &mut self.counts {
            c.update(before, v.seen());
        }
        self.evaluate(at)
    }

    /// `agent` left for good (retired, or stopped cleanly): its results no longer count, and
    /// the check is evaluated at `now` over the agents that remain.
    pub fn forget(&mut self, agent: &str, now: DateTime<Utc>) -> Option<Change> {
        self.vantages.remove(agent)?;
        self.counts = None;
        self.evaluate(now)
    }

    /// Re-evaluates at `now` without a new result (agents going stale, flapping settling).
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<Change> {
        self.evaluate(now)
    }

    fn evaluate(&mut self, now: DateTime<Utc>) -> Option<Change> {
        let s = &self.settings;
        let stale = chrono::Duration::from_std(s.stale_after).unwrap_or(chrono::Duration::MAX);
        let is_fresh = |v: &Vantage| v.last.is_some_and(|l| now - l <= stale);
        let counts = match self.counts {
            Some(c) if c.hold_at(now, stale) => c,
            _ => Counts::of(self.vantages.values(), now, stale),
        };
        self.counts = Some(counts);
        let Counts {
            reporting,
            down,
            failing,
            ..
        } = counts;
        if reporting == 0 {
            // No agent reports it (they are silent or gone): nothing new is known, so the state
            // holds; the agents' own heartbeat alerts say what is wrong.
            return None;
        }
        let quorum = s.quorum.unwrap_or(reporting / 2 + 1).max(1);
        // Failing includes the down.
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
        let mut detail = None;
        let summary = match next {
            CheckState::Up if reporting <= 1 => "up".to_string(),
            CheckState::Up if failing == 0 => format!("up from all {reporting} locations"),
            CheckState::Up => format!("up from {} of {reporting} locations", reporting - failing),
            CheckState::Flapping => format!(
                "flapping: {} changes in {}",
                self.changes.len(),
                lookout_config::duration::format(&self.settings.flap_window)
            ),
            _ => {
                let error = self
                    .vantages
                    .values()
                    .filter(|v| is_fresh(v) && v.failing())
                    .find_map(|v| v.last_error.as_deref());
                detail = error.map(str::to_string);
                let words = error.map_or_else(|| "failing".to_string(), super::words::plain);
                let state = state_word(next);
                // Which locations, only when there are several to tell apart.
                if reporting > 1 {
                    let failing_names: Vec<&str> = self
                        .vantages
                        .iter()
                        .filter(|(_, v)| is_fresh(v) && v.failing())
                        .map(|(a, _)| a.as_str())
                        .collect();
                    format!(
                        "{state} from {failing} of {reporting} locations ({}): {words}",
                        failing_names.join(", ")
                    )
                } else {
                    format!("{state}: {words}")
                }
            }
        };
        let change = Change {
            from: self.state,
            to: next,
            at: now,
            summary,
            detail,
        };
        self.state = next;
        Some(change)
    }
}

/// The state as a sentence says it: `checkout-api is down`.
fn state_word(s: CheckState) -> &'static str {
    match s {
        CheckState::Up => "up",
        CheckState::Pending => "pending",
        CheckState::Down => "down",
        CheckState::Flapping => "flapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Counts kept as results arrive equal the agents counted afresh, and the check goes
        /// through the same changes as one that counts afresh every time, with results out of
        /// order, agents going stale and coming back, and ticks in between.
        #[test]
        fn kept_counts_match_counting_afresh(
            steps in proptest::collection::vec((0usize..6, any::<bool>(), -2i64..5, any::<bool>()), 1..200),
        ) {
            let settings = UptimeSettings {
                stale_after: Duration::from_secs(4),
                ..UptimeSettings::default()
            };
            let stale = chrono::Duration::seconds(4);
            let mut kept = Uptime::new(settings.clone());
            let mut afresh = Uptime::new(settings);
            let mut now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
            for (agent, ok, step, tick) in steps {
                // Mostly forward, sometimes back (a backlog), sometimes past the staleness.
                now += chrono::Duration::seconds(step);
                let agent = format!("agent-{agent}");
                afresh.counts = None;
                // An older result than the agent's last is dropped before counting.
                let evaluated = tick || kept.last_result(&agent).is_none_or(|l| now >= l);
                let (a, b) = if tick {
                    (kept.tick(now), afresh.tick(now))
                } else {
                    (kept.observe(&agent, now, ok, Some("boom")), afresh.observe(&agent, now, ok, Some("boom")))
                };
                prop_assert_eq!(a, b);
                prop_assert_eq!(kept.state(), afresh.state());
                if let Some(c) = kept.counts.filter(|_| evaluated) {
                    let fresh = Counts::of(kept.vantages.values(), now, stale);
                    prop_assert_eq!(
                        (c.reporting, c.down, c.failing),
                        (fresh.reporting, fresh.down, fresh.failing)
                    );
                }
            }
        }
    }
}
