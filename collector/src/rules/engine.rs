//! Evaluates rules as data arrives and records alert transitions in the store.
//!
//! Check results are handed over right after the batch that carries them is committed; a result
//! that completes a transition records it at once (compare-and-set in the store, with its history
//! entry). An uptime alert is `pending` while a check is pending, `firing` while it is down or
//! flapping, `resolved` when it is up again.
//!
//! At start, the engine reads the alerts the store holds: a check whose alert is firing resumes
//! as down, so a restart neither fires it again nor forgets it, and the first results showing it
//! up resolve it, once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use std::sync::Arc;

use lookout_config::CheckConfig;
use lookout_protocol::CheckResult;
use tokio::sync::Mutex;

use super::uptime::{CheckState, Uptime, UptimeSettings};
use crate::store::alerting::{AlertState, Transition};
use crate::store::{Store, StoreError};

/// The rule name of check alerts.
pub const UPTIME_RULE: &str = "uptime";

/// An uptime alert's fingerprint.
pub fn uptime_fingerprint(check: &str) -> String {
    format!("{UPTIME_RULE}/{check}")
}

#[derive(Debug)]
struct CheckRule {
    uptime: Uptime,
    /// The alert's state as stored (`None`: never stored).
    alert: Option<AlertState>,
    severity: String,
}

/// Each configured check's settings and alert severity.
type Settings = HashMap<String, (UptimeSettings, String)>;

/// The rule engine.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    // std's RwLock: read briefly, never across an await.
    settings: std::sync::RwLock<Settings>,
    // tokio's Mutex: evaluation and the store's transition for one batch happen in order, and
    // the store call is awaited while holding it.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    checks: HashMap<String, CheckRule>,
    agents: HashMap<String, AgentBeat>,
}

/// When an agent was last heard from, and its heartbeat alert as stored.
#[derive(Debug)]
struct AgentBeat {
    last: DateTime<Utc>,
    alert: Option<AlertState>,
}

/// The rule name of agent heartbeat alerts.
pub const AGENT_RULE: &str = "agent";

/// An agent silent this long is down. Agents ship at least every second (or retry sooner), so
/// this is many missed deliveries, not one slow one.
pub const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn settings_of(c: &CheckConfig) -> (UptimeSettings, String) {
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

impl Engine {
    /// Loads the stored alerts so that evaluation goes on where it stopped.
    pub async fn load(store: Arc<dyn Store>, checks: &[CheckConfig]) -> Result<Self, StoreError> {
        let settings: Settings = checks
            .iter()
            .map(|c| (c.name.clone(), settings_of(c)))
            .collect();
        let mut rules: HashMap<String, CheckRule> = HashMap::new();
        let stored = store
            .alerts(&[
                AlertState::Pending,
                AlertState::Firing,
                AlertState::Resolved,
            ])
            .await?;
        let mut agents: HashMap<String, AgentBeat> = HashMap::new();
        let now = Utc::now();
        for a in store.agents().await? {
            agents.insert(
                a.name,
                AgentBeat {
                    // An agent not heard from since before this start gets the full timeout.
                    last: now,
                    alert: None,
                },
            );
        }
        for a in stored.iter().filter(|a| a.rule == AGENT_RULE) {
            if let Some(name) = a.labels.get("agent") {
                agents
                    .entry(name.clone())
                    .or_insert(AgentBeat {
                        last: now,
                        alert: None,
                    })
                    .alert = Some(a.state);
            }
        }
        for a in stored.into_iter().filter(|a| a.rule == UPTIME_RULE) {
            let Some(check) = a.labels.get("check").cloned() else {
                continue;
            };
            let (s, severity) = setting(&settings, &check);
            let uptime = if a.state == AlertState::Firing {
                Uptime::resume_down(s)
            } else {
                Uptime::new(s)
            };
            if rules.contains_key(&check) {
                continue;
            }
            rules.insert(
                check,
                CheckRule {
                    uptime,
                    alert: Some(a.state),
                    severity,
                },
            );
        }
        Ok(Self {
            store,
            settings: std::sync::RwLock::new(settings),
            state: Mutex::new(State {
                checks: rules,
                agents,
            }),
        })
    }

    /// Takes new settings from a reloaded configuration (running state is kept).
    pub fn reload(&self, checks: &[CheckConfig]) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = checks
            .iter()
            .map(|c| (c.name.clone(), settings_of(c)))
            .collect();
    }

    /// An agent delivered a batch at `now`: it is alive (and its heartbeat alert, if firing,
    /// resolves). Then the batch's check results are evaluated, in order, and the transitions
    /// they complete are recorded.
    pub async fn on_batch(
        &self,
        agent: &str,
        now: DateTime<Utc>,
        results: &[&CheckResult],
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let beat = state.agents.entry(agent.to_string()).or_insert(AgentBeat {
            last: now,
            alert: None,
        });
        beat.last = beat.last.max(now);
        if beat.alert == Some(AlertState::Firing) {
            let from = beat.alert;
            self.record_agent(
                &mut state,
                agent,
                from,
                AlertState::Resolved,
                now,
                format!("agent {agent} is back"),
            )
            .await?;
        }
        for r in results {
            let (settings, severity) = {
                let all = self.settings.read().unwrap_or_else(|p| p.into_inner());
                setting(&all, &r.check)
            };
            let rule = state
                .checks
                .entry(r.check.clone())
                .or_insert_with(|| CheckRule {
                    uptime: Uptime::new(settings),
                    alert: None,
                    severity,
                });
            if let Some(change) = rule.uptime.observe(agent, r.time, r.ok, r.error.as_deref()) {
                self.apply(&mut state, &r.check, change).await?;
            }
        }
        Ok(())
    }

    /// Re-evaluates at `now` what time alone changes: agents silent for longer than
    /// [`AGENT_TIMEOUT`] go down (one alert for the host; its checks hold their state rather
    /// than alert on their own), agents that stopped reporting a check stop counting for it, and
    /// flapping settles.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let timeout = chrono::Duration::from_std(AGENT_TIMEOUT).unwrap_or(chrono::Duration::MAX);
        let silent: Vec<(String, Option<AlertState>, DateTime<Utc>)> = state
            .agents
            .iter()
            .filter(|(_, b)| now - b.last > timeout && b.alert != Some(AlertState::Firing))
            .map(|(n, b)| (n.clone(), b.alert, b.last))
            .collect();
        for (agent, from, last) in silent {
            let secs = (now - last).num_seconds();
            self.record_agent(
                &mut state,
                &agent,
                from,
                AlertState::Firing,
                now,
                format!("agent {agent} down: silent for {secs} s"),
            )
            .await?;
        }
        let names: Vec<String> = state.checks.keys().cloned().collect();
        for check in names {
            let change = state
                .checks
                .get_mut(&check)
                .and_then(|r| r.uptime.tick(now));
            if let Some(change) = change {
                self.apply(&mut state, &check, change).await?;
            }
        }
        Ok(())
    }

    async fn record_agent(
        &self,
        state: &mut State,
        agent: &str,
        from: Option<AlertState>,
        to: AlertState,
        at: DateTime<Utc>,
        summary: String,
    ) -> Result<(), StoreError> {
        let t = Transition {
            fingerprint: format!("{AGENT_RULE}/{agent}"),
            rule: AGENT_RULE.to_string(),
            labels: labels("agent", agent, "critical"),
            from,
            to,
            at,
            summary,
        };
        // On an error the beat keeps its state, and the next tick tries again.
        let stored = self.record(&t).await?;
        if let Some(b) = state.agents.get_mut(agent) {
            b.alert = stored;
        }
        Ok(())
    }

    /// Records `t`; returns the alert's state afterwards: `t.to`, or what the store holds when
    /// another writer moved the alert first (another collector, in HA).
    async fn record(&self, t: &Transition) -> Result<Option<AlertState>, StoreError> {
        if self.store.record_transition(t, &[]).await?.is_some() {
            tracing::info!(alert = %t.fingerprint, from = ?t.from, to = ?t.to, summary = %t.summary, "alert transition");
            return Ok(Some(t.to));
        }
        tracing::warn!(alert = %t.fingerprint, "alert was not in the expected state; reloading it");
        Ok(self
            .store
            .alerts(&[
                AlertState::Pending,
                AlertState::Firing,
                AlertState::Resolved,
            ])
            .await?
            .into_iter()
            .find(|a| a.fingerprint == t.fingerprint)
            .map(|a| a.state))
    }

    /// Records the alert transition a check's change of state makes, if any.
    async fn apply(
        &self,
        state: &mut State,
        check: &str,
        change: super::uptime::Change,
    ) -> Result<(), StoreError> {
        let Some(rule) = state.checks.get_mut(check) else {
            return Ok(());
        };
        let to = match change.to {
            CheckState::Up => AlertState::Resolved,
            CheckState::Pending => AlertState::Pending,
            CheckState::Down | CheckState::Flapping => AlertState::Firing,
        };
        // Nothing to record when the alert is already there (down → flapping), or when a check
        // that never alerted is up.
        if rule.alert == Some(to) || (rule.alert.is_none() && to == AlertState::Resolved) {
            return Ok(());
        }
        let t = Transition {
            fingerprint: uptime_fingerprint(check),
            rule: UPTIME_RULE.to_string(),
            labels: labels("check", check, &rule.severity),
            from: rule.alert,
            to,
            at: change.at,
            summary: format!("{check} {}: {}", state_word(change.to), change.summary),
        };
        match self.record(&t).await {
            Ok(stored) => {
                rule.alert = stored;
                Ok(())
            }
            Err(e) => {
                // Not recorded: forget this check's state, so the coming results rebuild it and
                // make the transition again.
                state.checks.remove(check);
                Err(e)
            }
        }
    }
}

/// An alert's labels: what it is about, and its severity.
fn labels(key: &str, value: &str, severity: &str) -> std::collections::BTreeMap<String, String> {
    [
        (key.to_string(), value.to_string()),
        ("severity".to_string(), severity.to_string()),
    ]
    .into_iter()
    .collect()
}

fn state_word(s: CheckState) -> &'static str {
    match s {
        CheckState::Up => "up",
        CheckState::Pending => "pending",
        CheckState::Down => "down",
        CheckState::Flapping => "flapping",
    }
}

/// A check's settings; defaults for a check the configuration does not name (an agent's own).
fn setting(all: &Settings, check: &str) -> (UptimeSettings, String) {
    all.get(check)
        .cloned()
        .unwrap_or_else(|| (UptimeSettings::default(), "critical".to_string()))
}
