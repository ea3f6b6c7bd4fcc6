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

use std::collections::{BTreeMap, HashMap};
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
    checks: Mutex<HashMap<String, CheckRule>>,
}

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
            checks: Mutex::new(rules),
        })
    }

    /// Takes new settings from a reloaded configuration (running state is kept).
    pub fn reload(&self, checks: &[CheckConfig]) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = checks
            .iter()
            .map(|c| (c.name.clone(), settings_of(c)))
            .collect();
    }

    /// Evaluates the check results of one stored batch from `agent`, in order, and records the
    /// transitions they complete.
    pub async fn on_results(
        &self,
        agent: &str,
        results: &[&CheckResult],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let mut checks = self.checks.lock().await;
        for r in results {
            let (settings, severity) = {
                let all = self.settings.read().unwrap_or_else(|p| p.into_inner());
                setting(&all, &r.check)
            };
            let rule = checks.entry(r.check.clone()).or_insert_with(|| CheckRule {
                uptime: Uptime::new(settings),
                alert: None,
                severity,
            });
            let Some(change) = rule.uptime.observe(agent, r.time, r.ok, r.error.as_deref()) else {
                continue;
            };
            let to = match change.to {
                CheckState::Up => AlertState::Resolved,
                CheckState::Pending => AlertState::Pending,
                CheckState::Down | CheckState::Flapping => AlertState::Firing,
            };
            // Nothing to record when the alert is already there (down → flapping), or when a
            // check that never alerted is up.
            if rule.alert == Some(to) || (rule.alert.is_none() && to == AlertState::Resolved) {
                continue;
            }
            let labels: BTreeMap<String, String> = [
                ("check".to_string(), r.check.clone()),
                ("severity".to_string(), rule.severity.clone()),
            ]
            .into_iter()
            .collect();
            let t = Transition {
                fingerprint: uptime_fingerprint(&r.check),
                rule: UPTIME_RULE.to_string(),
                labels,
                from: rule.alert,
                to,
                at: change.at,
                summary: format!("{} {}: {}", r.check, state_word(change.to), change.summary),
            };
            let recorded = match self.store.record_transition(&t, &[]).await {
                Ok(r) => r,
                Err(e) => {
                    // Not recorded: forget this check's state, so the coming results rebuild it
                    // and make the transition again.
                    checks.remove(&r.check);
                    return Err(e);
                }
            };
            match recorded {
                Some(_) => {
                    tracing::info!(check = %r.check, from = ?t.from, to = ?t.to, summary = %t.summary, "alert transition");
                    rule.alert = Some(to);
                }
                None => {
                    // Another writer moved it (another collector, in HA): read it back.
                    tracing::warn!(check = %r.check, "alert was not in the expected state; reloading it");
                    rule.alert = self
                        .store
                        .alerts(&[
                            AlertState::Pending,
                            AlertState::Firing,
                            AlertState::Resolved,
                        ])
                        .await?
                        .into_iter()
                        .find(|a| a.fingerprint == t.fingerprint)
                        .map(|a| a.state);
                }
            }
        }
        Ok(())
    }
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
