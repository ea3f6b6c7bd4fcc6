//! Evaluates rules as data arrives and hands what they decide to the alert desk
//! ([`crate::alert`]), which records transitions with their notifications.
//!
//! Check results are handed over in the transaction that stores the batch that carries them,
//! on a database of its own (rules/group.rs), or from the leader's queue on a shared one
//! ([`crate::evaluation`]); a result that completes a transition is decided at once. An uptime
//! alert is `pending` while a check is pending, `firing` while it is down or flapping,
//! `resolved` when it is up again. An agent's own alert fires when it is silent for longer than
//! its timeout and resolves when it is heard from again.
//!
//! At start, the engine reads the alerts the store holds: a check whose alert is firing resumes
//! as down, so a restart neither fires it again nor forgets it, and the first results showing it
//! up resolve it, once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::CollectorConfig;
use lookout_protocol::{CheckResult, Record};
use tokio::sync::{Mutex, Notify};

use super::heartbeat::merge_pings;
use super::settings::Settings;
use super::state::{AgentBeat, CheckRule, State};
use super::threshold::{Sample, Verdict};
use super::uptime::{CheckState, Uptime};
use crate::alert::{
    AGENT_RULE, Book, Decision, Desk, HEARTBEAT_RULE, Sink, UPTIME_RULE, agent_fingerprint, labels,
    uptime_fingerprint,
};
use crate::store::alerting::AlertState;
use crate::store::{Presence, Store, StoreError};

/// The rule engine.
#[derive(Debug)]
pub struct Engine {
    pub(super) store: Arc<dyn Store>,
    // std's RwLock: read briefly, never across an await.
    settings: std::sync::RwLock<Arc<Settings>>,
    // tokio's Mutex: evaluation and the store's transition for one batch happen in order, and
    // the store call is awaited while holding it.
    pub(super) state: Mutex<State>,
    /// Records what the rules decide, with the notifications it sends.
    pub(super) desk: Desk,
    /// The state claims what the store may not hold (a group's transaction failed and the
    /// state could not be reloaded then): reloaded at the next lock.
    pub(super) stale: AtomicBool,
    /// Agents heard from without an evaluation (a batch refused because the collector was
    /// busy): alive, whatever became of their batch. Merged into the agents' beats at each tick.
    // std's Mutex: a map insert, never across an await.
    heard: std::sync::Mutex<HashMap<String, DateTime<Utc>>>,
    /// The enrolled agents, for which of them are ephemeral (set once by the collector's
    /// state; none in an engine of its own).
    enrolled: std::sync::OnceLock<Arc<crate::enrolment::Registry>>,
}

impl Engine {
    /// Loads the stored alerts so that evaluation goes on where it stopped. `queued` is
    /// notified whenever notifications are queued (the sender waits on it).
    pub async fn load(
        store: Arc<dyn Store>,
        config: &CollectorConfig,
        queued: Arc<Notify>,
    ) -> Result<Self, StoreError> {
        let settings = Settings::new(config);
        let state = Self::read_state(&*store, &settings).await?;
        Ok(Self {
            desk: Desk::new(store.clone(), config, queued),
            store,
            settings: std::sync::RwLock::new(Arc::new(settings)),
            state: Mutex::new(state),
            stale: AtomicBool::new(false),
            heard: Default::default(),
            enrolled: std::sync::OnceLock::new(),
        })
    }

    /// Reads the running state back from the store, as at start: for a collector that takes
    /// the lead from another ([`crate::evaluation`]), whose evaluations it has not seen.
    pub async fn resume(&self) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.state.lock().await;
        *state = Self::read_state(&*self.store, &settings).await?;
        self.stale.store(false, Ordering::Release);
        Ok(())
    }

    pub(super) async fn read_state(
        store: &dyn Store,
        settings: &Settings,
    ) -> Result<State, StoreError> {
        let stored = store.alerts(&AlertState::ALL).await?;
        let now = crate::clock::now();
        let mut state = State {
            alerts: Book::of(&stored),
            ..State::default()
        };
        for a in store.agents().await? {
            // An agent not heard from since before this start gets the full timeout from the
            // start, and at least RESTART_GRACE (it may be in its retry backoff); one that was
            // retired is not expected back, one that stopped cleanly does not page.
            match a.presence {
                Some((Presence::Retired, _)) => {}
                presence => {
                    let mut beat = AgentBeat::new(now);
                    beat.stopped = presence.is_some();
                    beat.awaited = true;
                    state.agents.insert(a.name, beat);
                }
            }
        }
        for row in store.heartbeats().await? {
            state.beats.insert(row.name.clone(), row);
        }
        for a in &stored {
            if a.rule == AGENT_RULE
                && let Some(name) = a.labels.get("agent")
            {
                state
                    .agents
                    .entry(name.clone())
                    .or_insert(AgentBeat::new(now));
            }
            if a.rule == UPTIME_RULE
                && let Some(check) = a.labels.get("check")
                && !state.checks.contains_key(check)
            {
                let (s, severity) = settings.check(check);
                let uptime = if a.state == AlertState::Firing {
                    Uptime::resume_down(s)
                } else {
                    Uptime::new(s)
                };
                state
                    .checks
                    .insert(check.clone(), CheckRule { uptime, severity });
            }
        }
        // A check that resumes down learns which agents saw it fail, for holding its alert
        // back while they are down.
        for r in store.latest_results().await? {
            if let Some(rule) = state.checks.get_mut(&r.check)
                && rule.uptime.state() == CheckState::Down
            {
                rule.uptime
                    .resume_vantage(&r.agent, r.time, r.ok, r.error.as_deref());
            }
        }
        Ok(state)
    }

    /// Reads which enrolled agents are ephemeral from `registry` from now on.
    pub fn use_enrolled(&self, registry: Arc<crate::enrolment::Registry>) {
        // Set once, at start; a second call would be the same registry.
        let _ = self.enrolled.set(registry);
    }

    /// How long `agent` may be silent before it is retired; `None`: never (permanent).
    pub(super) fn retire_after(
        &self,
        settings: &Settings,
        agent: &str,
    ) -> Option<chrono::Duration> {
        settings.retire_after(agent, |name| {
            self.enrolled
                .get()
                .and_then(|r| r.ephemeral(name))
                .unwrap_or(false)
        })
    }

    /// Takes new settings from a reloaded configuration (running state is kept).
    pub fn reload(&self, config: &CollectorConfig) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Settings::new(config));
        self.desk.reload(config);
    }

    pub(super) fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An agent delivered a batch at `now`: it is alive (and its heartbeat alert, if firing,
    /// resolves). Then the batch's check results and metric samples are evaluated, in order,
    /// and the transitions they complete are recorded.
    pub async fn on_batch(
        &self,
        agent: &str,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.lock().await;
        self.evaluate_batch(&mut Sink::Own, &mut state, &settings, agent, now, records)
            .await
    }

    /// [`Engine::on_batch`] on the locked `state`, its transitions into `sink`.
    pub(super) async fn evaluate_batch(
        &self,
        sink: &mut Sink<'_>,
        state: &mut State,
        settings: &Settings,
        agent: &str,
        now: DateTime<Utc>,
        records: &[Record],
    ) -> Result<(), StoreError> {
        let beat = state
            .agents
            .entry(agent.to_string())
            .or_insert(AgentBeat::new(now));
        beat.heard(now);
        // Back from a clean stop (the store's row says so once this batch is stored).
        beat.stopped = false;
        if state.agent_down(agent) {
            if let Some(b) = state.agents.get_mut(agent) {
                b.back_at = Some(now);
            }
            self.record_to(
                sink,
                state,
                agent_decision(
                    agent,
                    AlertState::Resolved,
                    now,
                    format!("agent {agent} is back"),
                ),
            )
            .await?;
        }
        let newest = records
            .iter()
            .map(|r| match r {
                Record::CheckResult(c) => c.time,
                Record::Metric(m) => m.time,
                Record::Log(l) => l.time,
            })
            .max();
        if let Some(b) = state.agents.get_mut(agent) {
            b.latest_data = b.latest_data.max(newest);
        }
        state.thresholds.configure(&settings.rules);
        state.logs.configure(&settings.log_rules);
        for record in records {
            match record {
                Record::CheckResult(r) => {
                    self.on_result(sink, state, settings, agent, r).await?;
                    for (name, value) in check_series(r) {
                        let labels: BTreeMap<String, String> =
                            [("check".to_string(), r.check.clone())].into();
                        let sample = Sample {
                            agent,
                            name,
                            labels: &labels,
                            time: r.time,
                            value,
                        };
                        self.on_sample(sink, state, sample).await?;
                    }
                }
                Record::Metric(m) => {
                    let sample = Sample {
                        agent,
                        name: &m.name,
                        labels: &m.labels,
                        time: m.time,
                        value: m.value,
                    };
                    self.on_sample(sink, state, sample).await?;
                }
                Record::Log(line) if state.logs.any() => {
                    let none = BTreeMap::new();
                    let labels = settings.agent_labels.get(agent).unwrap_or(&none);
                    let alerts = &state.alerts;
                    let verdicts = state
                        .logs
                        .observe(agent, labels, line, |fp| alerts.state(fp));
                    self.apply_verdicts(sink, state, verdicts).await?;
                }
                Record::Log(_) => {}
            }
        }
        Ok(())
    }

    async fn on_sample(
        &self,
        sink: &mut Sink<'_>,
        state: &mut State,
        sample: Sample<'_>,
    ) -> Result<(), StoreError> {
        if !state.thresholds.wants(sample.name) {
            return Ok(());
        }
        let alerts = &state.alerts;
        let verdicts = state.thresholds.observe(sample, |fp| alerts.state(fp));
        self.apply_verdicts(sink, state, verdicts).await
    }

    /// Records the alert changes of metric and log rules.
    async fn apply_verdicts(
        &self,
        sink: &mut Sink<'_>,
        state: &mut State,
        verdicts: Vec<Verdict>,
    ) -> Result<(), StoreError> {
        for v in verdicts {
            let fingerprint = v.fingerprint.clone();
            let decision = Decision {
                fingerprint: v.fingerprint,
                rule: v.rule,
                labels: v.labels,
                to: v.to,
                at: v.at,
                summary: v.summary,
                detail: None,
                depends_on: v.agent.into_iter().collect(),
            };
            if let Err(e) = self.record_to(sink, state, decision).await {
                // Not recorded: the series or count starts again from the stored state.
                state.thresholds.forget(&fingerprint);
                state.logs.forget(&fingerprint);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn on_result(
        &self,
        sink: &mut Sink<'_>,
        state: &mut State,
        settings: &Settings,
        agent: &str,
        r: &CheckResult,
    ) -> Result<(), StoreError> {
        {
            let rule = state.checks.entry(r.check.clone()).or_insert_with(|| {
                let (s, severity) = settings.check(&r.check);
                CheckRule {
                    uptime: Uptime::new(s),
                    severity,
                }
            });
            if let Some(change) = rule.uptime.observe(agent, r.time, r.ok, r.error.as_deref()) {
                self.apply(sink, state, settings, &r.check, change).await?;
            }
        }
        Ok(())
    }

    /// Notes that `agent` reached the collector at `now`, without evaluating anything: an
    /// agent whose batch was refused because the collector was busy is not silent, and must
    /// not be paged as down for the collector's own overload.
    pub fn heard_from(&self, agent: &str, now: DateTime<Utc>) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        let at = heard.entry(agent.to_string()).or_insert(now);
        *at = (*at).max(now);
    }

    /// An agent asked for its assignments at `now`, saying it does so every `poll_every`: it is
    /// alive, and its timeout follows its pace.
    pub async fn on_poll(
        &self,
        agent: &str,
        now: DateTime<Utc>,
        poll_every: Option<Duration>,
    ) -> Result<(), StoreError> {
        if let Some(p) = poll_every {
            let mut state = self.lock().await;
            state
                .agents
                .entry(agent.to_string())
                .or_insert(AgentBeat::new(now))
                .poll = Some(p);
        }
        self.on_batch(agent, now, &[]).await
    }

    /// Re-evaluates at `now` what time alone changes: agents silent for longer than their
    /// timeout go down (one alert for the host; its checks hold their state rather than alert on
    /// their own), agents that stopped reporting a check stop counting for it, flapping
    /// settles, held-back alerts whose reason ended are notified, and reminders fall due.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.lock().await;
        let heard = std::mem::take(&mut *self.heard.lock().unwrap_or_else(|p| p.into_inner()));
        for (agent, at) in heard {
            if let Some(b) = state.agents.get_mut(&agent) {
                b.heard(at);
            }
        }
        // Silent past its timeout (it pages), or an ephemeral one past its retire_after.
        let silent: Vec<(String, DateTime<Utc>)> = state
            .agents
            .iter()
            .filter(|(n, b)| {
                let quiet = now - b.last;
                !b.stopped
                    && !state.agent_down(n)
                    && (quiet > settings.silence_allowed(n, b.poll, b.awaited)
                        || self.retire_after(&settings, n).is_some_and(|r| quiet > r))
            })
            .map(|(n, b)| (n.clone(), b.last))
            .collect();
        // Another collector on the same database may be the one hearing from it, or the one
        // it said goodbye to.
        let stored: HashMap<String, crate::store::AgentRow> = if silent.is_empty() {
            HashMap::new()
        } else {
            self.store
                .agents()
                .await?
                .into_iter()
                .map(|a| (a.name.clone(), a))
                .collect()
        };
        for (agent, last) in silent {
            let row = stored.get(&agent);
            if let Some(stored) = row.and_then(|a| a.last_seen).filter(|t| *t > last)
                && let Some(b) = state.agents.get_mut(&agent)
            {
                b.last = stored;
            }
            let last = row.and_then(|a| a.last_seen).unwrap_or(last).max(last);
            if row
                .and_then(|a| a.presence)
                .is_some_and(|(_, since)| since >= last)
            {
                self.left(&mut state, &settings, &agent, now).await?;
                continue;
            }
            if let Some(retire_after) = self.retire_after(&settings, &agent) {
                if now - last > retire_after {
                    self.retire(&mut state, &settings, &agent, now).await?;
                }
                continue;
            }
            let (poll, awaited) = state
                .agents
                .get(&agent)
                .map_or((None, false), |b| (b.poll, b.awaited));
            if now - last <= settings.silence_allowed(&agent, poll, awaited) {
                continue;
            }
            let secs = (now - last).num_seconds();
            let summary = format!("agent {agent} is down: silent for {secs} s");
            self.record(
                &mut state,
                agent_decision(&agent, AlertState::Firing, now, summary),
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
                self.apply(&mut Sink::Own, &mut state, &settings, &check, change)
                    .await?;
            }
        }
        self.resolve_removed(&mut state, &settings, now).await?;
        state.logs.configure(&settings.log_rules);
        let verdicts = state.logs.tick(now);
        self.apply_verdicts(&mut Sink::Own, &mut state, verdicts)
            .await?;
        if self.store.shared() {
            // Pings that reached other collectors are only in the store.
            for stored in self.store.heartbeats().await? {
                merge_pings(state.beats.entry(stored.name.clone()).or_default(), &stored);
            }
        }
        let beats: Vec<String> = settings.heartbeats.keys().cloned().collect();
        for name in &beats {
            self.evaluate_heartbeat(&mut state, &settings, name, now)
                .await?;
        }
        let (alerts, seen) = state.split();
        self.desk.release_and_remind(alerts, &seen, now).await
    }

    /// Records the alert transition a check's change of state makes, if any.
    pub(super) async fn apply(
        &self,
        sink: &mut Sink<'_>,
        state: &mut State,
        settings: &Settings,
        check: &str,
        change: super::uptime::Change,
    ) -> Result<(), StoreError> {
        let Some(rule) = state.checks.get(check) else {
            return Ok(());
        };
        let to = match change.to {
            CheckState::Up => AlertState::Resolved,
            CheckState::Pending => AlertState::Pending,
            CheckState::Down | CheckState::Flapping => AlertState::Firing,
        };
        let decision = Decision {
            fingerprint: uptime_fingerprint(check),
            rule: UPTIME_RULE.to_string(),
            labels: labels("check", check, &rule.severity),
            to,
            at: change.at,
            summary: format!("{check} is {}", change.summary),
            detail: change.detail,
            depends_on: rule.uptime.failing_agents(),
        };
        if let Err(e) = self.record_to(sink, state, decision).await {
            // Not recorded: start the check again from what the store holds, so the coming
            // results make the transition again (a firing alert resumes as down).
            let fingerprint = uptime_fingerprint(check);
            let firing = state.alert_state(&fingerprint) == Some(AlertState::Firing);
            if let Some(rule) = state.checks.get_mut(check) {
                let (s, _) = settings.check(check);
                rule.uptime = if firing {
                    Uptime::resume_down(s)
                } else {
                    Uptime::new(s)
                };
            }
            return Err(e);
        }
        Ok(())
    }

    /// Hands a decision to the desk, with what the rules know of checks and agents; the
    /// transition goes to the store in a transaction of its own.
    pub(super) async fn record(&self, state: &mut State, d: Decision) -> Result<(), StoreError> {
        self.record_to(&mut Sink::Own, state, d).await
    }

    /// [`Engine::record`], the transition into `sink`.
    async fn record_to(
        &self,
        sink: &mut Sink<'_>,
        state: &mut State,
        d: Decision,
    ) -> Result<(), StoreError> {
        let (alerts, seen) = state.split();
        self.desk.record_to(sink, alerts, &seen, d).await
    }

    /// The state, locked; reloaded from the store first when a group that could not commit
    /// left it claiming what the store does not hold, and reloading it then failed
    /// (rules/group.rs).
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().await;
        if self.stale.swap(false, Ordering::AcqRel) {
            let settings = self.settings();
            match Self::read_state(&*self.store, &settings).await {
                Ok(fresh) => *state = fresh,
                Err(e) => {
                    self.stale.store(true, Ordering::Release);
                    tracing::error!(error = %e, "cannot reload alert state; evaluating on what is kept");
                }
            }
        }
        state
    }

    /// Resolves the alerts of metric rules and push monitors no longer in the configuration:
    /// nothing will evaluate them again.
    async fn resolve_removed(
        &self,
        state: &mut State,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let gone: Vec<(String, String, BTreeMap<String, String>)> = state
            .alerts
            .unresolved()
            .filter(|(_, rule, labels)| match *rule {
                UPTIME_RULE | AGENT_RULE => false,
                HEARTBEAT_RULE => labels
                    .get("heartbeat")
                    .is_some_and(|h| !settings.heartbeats.contains_key(h)),
                rule => {
                    !settings.rules.iter().any(|r| r.name == rule)
                        && !settings.log_rules.iter().any(|r| r.name == rule)
                }
            })
            .map(|(f, rule, labels)| (f.to_string(), rule.to_string(), labels.clone()))
            .collect();
        for (fingerprint, rule, labels) in gone {
            let what = if rule == HEARTBEAT_RULE {
                "heartbeat"
            } else {
                "rule"
            };
            let summary = format!("{rule}: the {what} was removed from the configuration");
            let decision = Decision {
                fingerprint,
                rule,
                labels,
                to: AlertState::Resolved,
                at: now,
                summary,
                detail: None,
                depends_on: Vec::new(),
            };
            self.record(state, decision).await?;
        }
        Ok(())
    }
}

/// The series a check result gives the threshold rules: `check.latency_ms`, and
/// `check.cert_days_left` when it saw a certificate.
fn check_series(r: &CheckResult) -> impl Iterator<Item = (&'static str, f64)> {
    let days = r
        .cert_expiry
        .map(|e| (e - r.time).num_seconds() as f64 / 86_400.0);
    [
        ("check.latency_ms", Some(r.latency_ms)),
        ("check.cert_days_left", days),
    ]
    .into_iter()
    .filter_map(|(n, v)| v.map(|v| (n, v)))
}

pub(super) fn agent_decision(
    agent: &str,
    to: AlertState,
    at: DateTime<Utc>,
    summary: String,
) -> Decision {
    Decision {
        fingerprint: agent_fingerprint(agent),
        rule: AGENT_RULE.to_string(),
        labels: labels("agent", agent, "critical"),
        to,
        at,
        summary,
        detail: None,
        depends_on: Vec::new(),
    }
}
