//! What the configuration sets for the rules, taken as one snapshot per evaluation so that a
//! reload in between changes nothing half-way.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use lookout_config::collector::{DEFAULT_RETIRE_AFTER, Lifecycle};
use lookout_config::{CheckConfig, CollectorConfig, HeartbeatConfig};

use super::uptime::UptimeSettings;

/// The default agent timeout's floor: many missed deliveries, not one slow one.
pub const MIN_AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The least time an agent known before a start is given, from the start, to be heard from
/// again, whatever its `agent_timeout`: while the collector was away the agent's shipper backed
/// off (up to its `[shipping] max_backoff`, 30 s by default) and it asks for its assignments
/// every `assignments_interval` (15 s by default) whatever the backoff, so a live agent
/// reaches a restarted collector within one interval, and twice that leaves room. A restart
/// (an upgrade) is not the agents' outage.
pub const RESTART_GRACE: Duration = Duration::from_secs(30);

/// What the configuration sets for the rules.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) checks: HashMap<String, (UptimeSettings, String)>,
    pub(super) agent_timeout: Option<Duration>,
    pub(super) agent_timeouts: HashMap<String, Duration>,
    /// The ephemeral agents (`lifecycle = "ephemeral"`), each with its `retire_after`.
    pub(super) ephemeral: HashMap<String, Duration>,
    /// `[enrollment] retire_after`: for enrolled agents that are ephemeral.
    pub(super) enrolled_retire_after: Duration,
    pub(super) heartbeats: BTreeMap<String, HeartbeatConfig>,
    pub(super) rules: Vec<lookout_config::RuleConfig>,
    pub(super) log_rules: Vec<lookout_config::LogRuleConfig>,
    /// The labels of each `[[agents]]` entry (and the local agent), for log rule selectors.
    pub(super) agent_labels: HashMap<String, BTreeMap<String, String>>,
}

impl Settings {
    pub(super) fn new(config: &CollectorConfig) -> Self {
        Self {
            checks: config
                .checks
                .iter()
                .map(|c| (c.name.clone(), settings_of(c)))
                .collect(),
            agent_timeout: config.alerting.agent_timeout,
            agent_timeouts: config
                .agents
                .iter()
                .filter_map(|a| a.agent_timeout.map(|t| (a.name.clone(), t)))
                .collect(),
            ephemeral: config
                .agents
                .iter()
                .filter(|a| a.lifecycle == Lifecycle::Ephemeral)
                .map(|a| {
                    let after = a.retire_after.unwrap_or(DEFAULT_RETIRE_AFTER);
                    (a.name.clone(), after)
                })
                .collect(),
            enrolled_retire_after: config
                .enrollment
                .as_ref()
                .and_then(|e| e.retire_after)
                .unwrap_or(DEFAULT_RETIRE_AFTER),
            heartbeats: config
                .heartbeats
                .iter()
                .map(|h| (h.name.clone(), h.clone()))
                .collect(),
            rules: config.rules.clone(),
            log_rules: config.log_rules.clone(),
            agent_labels: config
                .agents
                .iter()
                .map(|a| (a.name.clone(), a.labels.clone()))
                .chain(
                    config
                        .local_agent
                        .iter()
                        .map(|l| (l.name.clone(), l.labels.clone())),
                )
                .collect(),
        }
    }

    /// A check's settings; defaults for a check the configuration does not name (an agent's
    /// own).
    pub(super) fn check(&self, check: &str) -> (UptimeSettings, String) {
        self.checks
            .get(check)
            .cloned()
            .unwrap_or_else(|| (UptimeSettings::default(), "critical".to_string()))
    }

    /// How long `agent` may be silent: its own setting, else `[alerting] agent_timeout`, else
    /// 3 × the polling interval it reported (`poll`), and at least [`MIN_AGENT_TIMEOUT`].
    pub(super) fn agent_timeout(&self, agent: &str, poll: Option<Duration>) -> chrono::Duration {
        let t = self
            .agent_timeouts
            .get(agent)
            .copied()
            .or(self.agent_timeout)
            .unwrap_or_else(|| poll.map_or(MIN_AGENT_TIMEOUT, |p| (p * 3).max(MIN_AGENT_TIMEOUT)));
        chrono::Duration::from_std(t).unwrap_or(chrono::Duration::MAX)
    }

    /// [`Settings::agent_timeout`], and at least [`RESTART_GRACE`] for an agent not heard
    /// from since this start (`awaited`).
    pub(super) fn silence_allowed(
        &self,
        agent: &str,
        poll: Option<Duration>,
        awaited: bool,
    ) -> chrono::Duration {
        let t = self.agent_timeout(agent, poll);
        if awaited {
            t.max(chrono::Duration::from_std(RESTART_GRACE).unwrap_or(chrono::Duration::MAX))
        } else {
            t
        }
    }
}

impl Settings {
    /// How long `agent` may be silent before it is retired: `None` for a permanent agent,
    /// which is never retired. `enrolled_ephemeral` says whether an agent the configuration
    /// does not name enrolled as ephemeral; the configuration wins for a name it has.
    pub(super) fn retire_after(
        &self,
        agent: &str,
        enrolled_ephemeral: impl FnOnce(&str) -> bool,
    ) -> Option<chrono::Duration> {
        let after = match self.ephemeral.get(agent) {
            Some(d) => *d,
            None if !self.agent_labels.contains_key(agent) && enrolled_ephemeral(agent) => {
                self.enrolled_retire_after
            }
            None => return None,
        };
        Some(chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX))
    }
}

pub(super) fn settings_of(c: &CheckConfig) -> (UptimeSettings, String) {
    (
        UptimeSettings {
            failure_threshold: c.failure_threshold,
            success_threshold: c.success_threshold,
            quorum: c.quorum,
            // An agent that missed a few probes no longer counts.
            stale_after: (c.interval + c.timeout) * 3,
            ..UptimeSettings::default()
        },
        c.severity.clone(),
    )
}
