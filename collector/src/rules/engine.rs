//! Evaluates rules as data arrives and records alert transitions in the store, with the
//! notifications they queue.
//!
//! Check results are handed over right after the batch that carries them is committed; a result
//! that completes a transition records it at once: a compare-and-set in the store, in one
//! transaction with its history entry and its outbox rows. An uptime alert is `pending` while a
//! check is pending, `firing` while it is down or flapping, `resolved` when it is up again.
//!
//! Notifications: a firing alert is routed to channels ([`Router`]) unless it is held back: by a
//! silence, a maintenance window, or because every agent whose results made it fire is itself
//! down (one page for the host, not one per check). A held alert is recorded with no
//! notification; if it is still firing when the reason ends (and, for an agent outage, once that
//! agent has sent a result from after its return), it is notified then. A resolve is sent when
//! the firing was, whatever holds at that moment: resolves are never suppressed.
//! Reminders go out every `repeat_interval` while an alert fires unacknowledged.
//!
//! At start, the engine reads the alerts the store holds: a check whose alert is firing resumes
//! as down, so a restart neither fires it again nor forgets it, and the first results showing it
//! up resolve it, once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::{CheckConfig, CollectorConfig, HeartbeatConfig};
use lookout_protocol::{CheckResult, Record};
use tokio::sync::{Mutex, Notify};

use super::heartbeat::{self, BeatState};
use super::logs::LogRules;
use super::threshold::{Sample, Thresholds, Verdict};
use super::uptime::{CheckState, Uptime, UptimeSettings};
use crate::notify::{AlertNote, NoteKind, Router};
use crate::store::alerting::{
    AlertRow, AlertState, HeartbeatRow, Ping, PingKind, Silence, Transition,
};
use crate::store::{Store, StoreError};

/// The rule name of check alerts.
pub const UPTIME_RULE: &str = "uptime";

/// The rule name of agent heartbeat alerts.
pub const AGENT_RULE: &str = "agent";

/// The rule name of push monitor alerts.
pub const HEARTBEAT_RULE: &str = "heartbeat";

/// Takes into `into` the pings of `stored` that are newer.
fn merge_pings(into: &mut HeartbeatRow, stored: &HeartbeatRow) {
    into.name.clone_from(&stored.name);
    let newer = |a: &mut Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| {
        if b > *a {
            *a = b;
        }
    };
    let before = into.last_success.max(into.last_start).max(into.last_fail);
    newer(&mut into.last_success, stored.last_success);
    newer(&mut into.last_start, stored.last_start);
    newer(&mut into.last_fail, stored.last_fail);
    let after = into.last_success.max(into.last_start).max(into.last_fail);
    if after > before && stored.last_exit_code.is_some() {
        into.last_exit_code = stored.last_exit_code;
    }
}

/// An uptime alert's fingerprint.
pub fn uptime_fingerprint(check: &str) -> String {
    format!("{UPTIME_RULE}/{check}")
}

/// An agent heartbeat alert's fingerprint.
pub fn agent_fingerprint(agent: &str) -> String {
    format!("{AGENT_RULE}/{agent}")
}

/// The default agent timeout's floor: many missed deliveries, not one slow one.
pub const MIN_AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the configuration sets for the rules.
#[derive(Debug)]
struct Settings {
    checks: HashMap<String, (UptimeSettings, String)>,
    agent_timeout: Option<Duration>,
    agent_timeouts: HashMap<String, Duration>,
    heartbeats: BTreeMap<String, HeartbeatConfig>,
    rules: Vec<lookout_config::RuleConfig>,
    log_rules: Vec<lookout_config::LogRuleConfig>,
    /// The labels of each `[[agents]]` entry (and the local agent), for log rule selectors.
    agent_labels: HashMap<String, BTreeMap<String, String>>,
    router: Arc<Router>,
}

impl Settings {
    fn new(config: &CollectorConfig) -> Self {
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
            router: Arc::new(Router::new(config)),
        }
    }

    /// A check's settings; defaults for a check the configuration does not name (an agent's
    /// own).
    fn check(&self, check: &str) -> (UptimeSettings, String) {
        self.checks
            .get(check)
            .cloned()
            .unwrap_or_else(|| (UptimeSettings::default(), "critical".to_string()))
    }

    /// How long `agent` may be silent: its own setting, else `[alerting] agent_timeout`, else
    /// 3 × the polling interval it reported (`poll`), and at least [`MIN_AGENT_TIMEOUT`].
    fn agent_timeout(&self, agent: &str, poll: Option<Duration>) -> chrono::Duration {
        let t = self
            .agent_timeouts
            .get(agent)
            .copied()
            .or(self.agent_timeout)
            .unwrap_or_else(|| poll.map_or(MIN_AGENT_TIMEOUT, |p| (p * 3).max(MIN_AGENT_TIMEOUT)));
        chrono::Duration::from_std(t).unwrap_or(chrono::Duration::MAX)
    }
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

/// An alert as the engine knows it (what the store holds, plus what it depends on).
#[derive(Debug, Clone)]
struct Memo {
    state: AlertState,
    rule: String,
    labels: BTreeMap<String, String>,
    summary: String,
    fired_at: Option<DateTime<Utc>>,
    notified_at: Option<DateTime<Utc>>,
    /// The agents whose data made it fire: held back while all of them are down.
    depends_on: Vec<String>,
}

impl Memo {
    fn of(row: &AlertRow) -> Self {
        Self {
            state: row.state,
            rule: row.rule.clone(),
            labels: row.labels.clone(),
            summary: row.summary.clone(),
            fired_at: row.fired_at,
            notified_at: row.notified_at,
            depends_on: Vec::new(),
        }
    }
}

/// When an agent was last heard from, and when it came back from its last outage.
#[derive(Debug)]
struct AgentBeat {
    last: DateTime<Utc>,
    back_at: Option<DateTime<Utc>>,
    /// The newest time of any record it sent.
    latest_data: Option<DateTime<Utc>>,
    /// How often it said it asks for its assignments.
    poll: Option<Duration>,
}

impl AgentBeat {
    /// Heard from at `now`, with nothing else known yet.
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            last: now,
            back_at: None,
            latest_data: None,
            poll: None,
        }
    }
}

#[derive(Debug)]
struct CheckRule {
    uptime: Uptime,
    severity: String,
}

#[derive(Debug, Default)]
struct State {
    checks: HashMap<String, CheckRule>,
    agents: HashMap<String, AgentBeat>,
    alerts: HashMap<String, Memo>,
    /// The latest pings of each push monitor.
    beats: HashMap<String, HeartbeatRow>,
    /// Metric threshold rules and their windows.
    thresholds: Thresholds,
    /// Log rules and their counts.
    logs: LogRules,
}

impl State {
    fn alert_state(&self, fingerprint: &str) -> Option<AlertState> {
        self.alerts.get(fingerprint).map(|m| m.state)
    }

    fn agent_down(&self, agent: &str) -> bool {
        self.alert_state(&agent_fingerprint(agent)) == Some(AlertState::Firing)
    }
}

/// A transition the rules decided, before routing.
struct Decision {
    fingerprint: String,
    rule: String,
    labels: BTreeMap<String, String>,
    to: AlertState,
    at: DateTime<Utc>,
    summary: String,
    depends_on: Vec<String>,
}

/// The rule engine.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    // std's RwLock: read briefly, never across an await.
    settings: std::sync::RwLock<Arc<Settings>>,
    // tokio's Mutex: evaluation and the store's transition for one batch happen in order, and
    // the store call is awaited while holding it.
    state: Mutex<State>,
    /// Woken when notifications are queued.
    queued: Arc<Notify>,
    /// Agents heard from without an evaluation (a batch refused because the collector was
    /// busy): alive, whatever became of their batch. Merged into the agents' beats at each tick.
    // std's Mutex: a map insert, never across an await.
    heard: std::sync::Mutex<HashMap<String, DateTime<Utc>>>,
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
            store,
            settings: std::sync::RwLock::new(Arc::new(settings)),
            state: Mutex::new(state),
            queued,
            heard: Default::default(),
        })
    }

    /// Reads the running state back from the store, as at start: for a collector that takes
    /// the lead from another (cluster.rs), whose evaluations it has not seen.
    pub async fn resume(&self) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.state.lock().await;
        *state = Self::read_state(&*self.store, &settings).await?;
        Ok(())
    }

    async fn read_state(store: &dyn Store, settings: &Settings) -> Result<State, StoreError> {
        let stored = store.alerts(&AlertState::ALL).await?;
        let now = crate::clock::now();
        let mut state = State::default();
        for a in store.agents().await? {
            // An agent not heard from since before this start gets the full timeout.
            state.agents.insert(a.name, AgentBeat::new(now));
        }
        for row in store.heartbeats().await? {
            state.beats.insert(row.name.clone(), row);
        }
        for a in &stored {
            state
                .alerts
                .entry(a.fingerprint.clone())
                .or_insert_with(|| Memo::of(a));
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

    /// Takes new settings from a reloaded configuration (running state is kept).
    pub fn reload(&self, config: &CollectorConfig) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Settings::new(config));
    }

    fn settings(&self) -> Arc<Settings> {
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
        let mut state = self.state.lock().await;
        let beat = state
            .agents
            .entry(agent.to_string())
            .or_insert(AgentBeat::new(now));
        beat.last = beat.last.max(now);
        if state.agent_down(agent) {
            if let Some(b) = state.agents.get_mut(agent) {
                b.back_at = Some(now);
            }
            self.record(
                &mut state,
                &settings,
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
                    self.on_result(&mut state, &settings, agent, r).await?;
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
                        self.on_sample(&mut state, &settings, sample).await?;
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
                    self.on_sample(&mut state, &settings, sample).await?;
                }
                Record::Log(line) if state.logs.any() => {
                    let none = BTreeMap::new();
                    let labels = settings.agent_labels.get(agent).unwrap_or(&none);
                    let st = &mut *state;
                    let alerts = &st.alerts;
                    let verdicts = st
                        .logs
                        .observe(agent, labels, line, |fp| alerts.get(fp).map(|m| m.state));
                    self.apply_verdicts(&mut state, &settings, verdicts).await?;
                }
                Record::Log(_) => {}
            }
        }
        Ok(())
    }

    async fn on_sample(
        &self,
        state: &mut State,
        settings: &Settings,
        sample: Sample<'_>,
    ) -> Result<(), StoreError> {
        if !state.thresholds.wants(sample.name) {
            return Ok(());
        }
        let alerts = &state.alerts;
        let verdicts = state
            .thresholds
            .observe(sample, |fp| alerts.get(fp).map(|m| m.state));
        self.apply_verdicts(state, settings, verdicts).await
    }

    /// Records the alert changes of metric and log rules.
    async fn apply_verdicts(
        &self,
        state: &mut State,
        settings: &Settings,
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
                depends_on: v.agent.into_iter().collect(),
            };
            if let Err(e) = self.record(state, settings, decision).await {
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
                self.apply(state, settings, &r.check, change).await?;
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
            let mut state = self.state.lock().await;
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
        let mut state = self.state.lock().await;
        let heard = std::mem::take(&mut *self.heard.lock().unwrap_or_else(|p| p.into_inner()));
        for (agent, at) in heard {
            if let Some(b) = state.agents.get_mut(&agent) {
                b.last = b.last.max(at);
            }
        }
        let silent: Vec<(String, DateTime<Utc>)> = state
            .agents
            .iter()
            .filter(|(n, b)| {
                now - b.last > settings.agent_timeout(n, b.poll) && !state.agent_down(n)
            })
            .map(|(n, b)| (n.clone(), b.last))
            .collect();
        // Another collector on the same database may be the one hearing from it.
        let seen: HashMap<String, DateTime<Utc>> = if silent.is_empty() {
            HashMap::new()
        } else {
            self.store
                .agents()
                .await?
                .into_iter()
                .filter_map(|a| a.last_seen.map(|t| (a.name, t)))
                .collect()
        };
        for (agent, last) in silent {
            if let Some(stored) = seen.get(&agent).filter(|t| **t > last) {
                if let Some(b) = state.agents.get_mut(&agent) {
                    b.last = *stored;
                }
                let poll = state.agents.get(&agent).and_then(|b| b.poll);
                if now - *stored <= settings.agent_timeout(&agent, poll) {
                    continue;
                }
            }
            let last = seen.get(&agent).copied().unwrap_or(last).max(last);
            let secs = (now - last).num_seconds();
            let summary = format!("agent {agent} down: silent for {secs} s");
            self.record(
                &mut state,
                &settings,
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
                self.apply(&mut state, &settings, &check, change).await?;
            }
        }
        self.resolve_removed(&mut state, &settings, now).await?;
        state.logs.configure(&settings.log_rules);
        let verdicts = state.logs.tick(now);
        self.apply_verdicts(&mut state, &settings, verdicts).await?;
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
        self.release_and_remind(&mut state, &settings, now).await
    }

    /// A push monitor was pinged (the ping is stored): its alert follows at once.
    pub async fn on_ping(&self, ping: &Ping) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.state.lock().await;
        let row = state
            .beats
            .entry(ping.name.clone())
            .or_insert_with(|| HeartbeatRow {
                name: ping.name.clone(),
                ..HeartbeatRow::default()
            });
        let slot = match ping.kind {
            PingKind::Success => &mut row.last_success,
            PingKind::Start => &mut row.last_start,
            PingKind::Fail => &mut row.last_fail,
        };
        *slot = Some(slot.map_or(ping.time, |t| t.max(ping.time)));
        if ping.exit_code.is_some() {
            row.last_exit_code = ping.exit_code;
        }
        self.evaluate_heartbeat(&mut state, &settings, &ping.name, ping.time)
            .await
    }

    /// Every configured push monitor's state at `now`, with its latest pings.
    pub async fn heartbeats(&self, now: DateTime<Utc>) -> Vec<HeartbeatView> {
        let settings = self.settings();
        let mut state = self.state.lock().await;
        if self.store.shared() {
            // Another collector may have taken the latest pings (and lead).
            match self.store.heartbeats().await {
                Ok(rows) => {
                    for stored in rows {
                        merge_pings(state.beats.entry(stored.name.clone()).or_default(), &stored);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read pings; showing what this collector saw")
                }
            }
        }
        settings
            .heartbeats
            .values()
            .map(|cfg| {
                let row = state
                    .beats
                    .get(&cfg.name)
                    .cloned()
                    .unwrap_or_else(|| HeartbeatRow {
                        name: cfg.name.clone(),
                        ..HeartbeatRow::default()
                    });
                let (state, summary, next_due) = heartbeat::evaluate(cfg, &row, now);
                HeartbeatView {
                    name: cfg.name.clone(),
                    state,
                    summary,
                    next_due,
                    group: cfg.group.clone(),
                    last_success: row.last_success,
                    last_start: row.last_start,
                    last_fail: row.last_fail,
                    last_exit_code: row.last_exit_code,
                }
            })
            .collect()
    }

    async fn evaluate_heartbeat(
        &self,
        state: &mut State,
        settings: &Settings,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(cfg) = settings.heartbeats.get(name) else {
            return Ok(());
        };
        let row = state.beats.get(name).cloned().unwrap_or_default();
        let (beat, summary, _) = heartbeat::evaluate(cfg, &row, now);
        let firing =
            state.alert_state(&format!("{HEARTBEAT_RULE}/{name}")) == Some(AlertState::Firing);
        let to = match beat {
            BeatState::New => return Ok(()),
            // A run that starts after a failure is not yet a success: it resolves only an
            // alert that was late, not one that was down.
            BeatState::Started if firing => return Ok(()),
            BeatState::Up | BeatState::Started => AlertState::Resolved,
            BeatState::Late => AlertState::Pending,
            BeatState::Down => AlertState::Firing,
        };
        let decision = Decision {
            fingerprint: format!("{HEARTBEAT_RULE}/{name}"),
            rule: HEARTBEAT_RULE.to_string(),
            labels: labels("heartbeat", name, &cfg.severity),
            to,
            at: now,
            summary,
            depends_on: Vec::new(),
        };
        self.record(state, settings, decision).await
    }

    /// Records the alert transition a check's change of state makes, if any.
    async fn apply(
        &self,
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
            summary: format!("{check} {}: {}", state_word(change.to), change.summary),
            depends_on: rule.uptime.failing_agents(),
        };
        if let Err(e) = self.record(state, settings, decision).await {
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

    /// Why a firing alert is not to be notified at `at`, if it is not.
    fn held(
        &self,
        state: &State,
        settings: &Settings,
        silences: &[Silence],
        memo: &Memo,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        if let Some(m) = settings.router.maintenance(&memo.labels, now) {
            return Some(format!("maintenance window {m:?}"));
        }
        if let Some(s) = silences.iter().find(|s| s.silences(&memo.labels, now)) {
            return Some(format!("silence {} by {}", s.id, s.created_by));
        }
        // The agents it depends on: as decided, or (after a restart, which does not keep them)
        // from the check's failing agents or the alert's own agent label.
        let check = memo.labels.get("check").and_then(|c| state.checks.get(c));
        let depends_on: Vec<String> = if !memo.depends_on.is_empty() {
            memo.depends_on.clone()
        } else if let Some(rule) = check {
            rule.uptime.failing_agents()
        } else {
            memo.labels.get("agent").cloned().into_iter().collect()
        };
        // Held while every agent it depends on is down, or its data is from before that
        // agent came back (a backlog arriving after an outage).
        let waiting = |agent: &String| {
            state.agent_down(agent)
                || state
                    .agents
                    .get(agent)
                    .and_then(|b| b.back_at.map(|back| (back, b.latest_data)))
                    .is_some_and(|(back, latest_data)| {
                        let latest = match check {
                            Some(rule) => rule.uptime.last_result(agent),
                            None => latest_data,
                        };
                        latest.unwrap_or(at) < back
                    })
        };
        if !depends_on.is_empty() && depends_on.iter().all(waiting) {
            return Some(format!("agent down: {}", depends_on.join(", ")));
        }
        None
    }

    /// Records a decided transition with the notifications it sends.
    async fn record(
        &self,
        state: &mut State,
        settings: &Settings,
        d: Decision,
    ) -> Result<(), StoreError> {
        let before = state.alerts.get(&d.fingerprint).cloned();
        let from = before.as_ref().map(|m| m.state);
        // Nothing to record when the alert is already there (down → flapping), when an alert
        // that never fired is resolved, or when a firing alert's condition is back on the way
        // (flapping that settles on an unconfirmed failure): it fires until it resolves.
        if from == Some(d.to)
            || (from.is_none() && d.to == AlertState::Resolved)
            || (from == Some(AlertState::Firing) && d.to == AlertState::Pending)
        {
            return Ok(());
        }
        let now = crate::clock::now();
        let mut memo = Memo {
            state: d.to,
            rule: d.rule,
            labels: d.labels,
            summary: d.summary,
            fired_at: before.as_ref().and_then(|m| m.fired_at),
            notified_at: None,
            depends_on: d.depends_on,
        };
        if d.to != AlertState::Resolved {
            memo.notified_at = before.as_ref().and_then(|m| m.notified_at);
        }
        let mut notes = Vec::new();
        match d.to {
            AlertState::Firing => {
                memo.fired_at = Some(d.at);
                let silences = self.store.silences(now).await?;
                if let Some(why) = self.held(state, settings, &silences, &memo, d.at, now) {
                    tracing::info!(alert = %d.fingerprint, reason = %why, "alert firing, notification held back");
                } else {
                    notes = settings.router.plan(
                        &note(&d.fingerprint, &memo, NoteKind::Firing, settings),
                        d.at,
                        now,
                    );
                }
                memo.notified_at = (!notes.is_empty()).then_some(now);
            }
            AlertState::Resolved if before.as_ref().is_some_and(|m| m.notified_at.is_some()) => {
                let mut n = note(&d.fingerprint, &memo, NoteKind::Resolved, settings);
                n.resolved_at = Some(d.at);
                notes = settings.router.plan(&n, d.at, now);
            }
            _ => {}
        }
        let t = Transition {
            fingerprint: d.fingerprint.clone(),
            rule: memo.rule.clone(),
            labels: memo.labels.clone(),
            from,
            to: d.to,
            at: d.at,
            summary: memo.summary.clone(),
            fired_at: memo.fired_at,
            notified_at: memo.notified_at,
        };
        let stored = self.store.record_transition(&t, &notes).await?;
        if stored.is_some() {
            tracing::info!(alert = %t.fingerprint, from = ?t.from, to = ?t.to, notifications = notes.len(), summary = %t.summary, "alert transition");
            state.alerts.insert(d.fingerprint, memo);
            if !notes.is_empty() {
                self.queued.notify_one();
            }
            return Ok(());
        }
        // Another writer (another collector, in HA) moved the alert first: take what it holds.
        tracing::warn!(alert = %t.fingerprint, "alert was not in the expected state; reloading it");
        let row = self
            .store
            .alerts(&AlertState::ALL)
            .await?
            .into_iter()
            .find(|a| a.fingerprint == t.fingerprint);
        match row {
            Some(row) => state.alerts.insert(d.fingerprint, Memo::of(&row)),
            None => state.alerts.remove(&d.fingerprint),
        };
        Ok(())
    }

    /// Resolves the alerts of metric rules and push monitors no longer in the configuration:
    /// nothing will evaluate them again.
    async fn resolve_removed(
        &self,
        state: &mut State,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let gone: Vec<(String, Memo)> = state
            .alerts
            .iter()
            .filter(|(_, m)| m.state != AlertState::Resolved)
            .filter(|(_, m)| match m.rule.as_str() {
                UPTIME_RULE | AGENT_RULE => false,
                HEARTBEAT_RULE => m
                    .labels
                    .get("heartbeat")
                    .is_some_and(|h| !settings.heartbeats.contains_key(h)),
                rule => {
                    !settings.rules.iter().any(|r| r.name == rule)
                        && !settings.log_rules.iter().any(|r| r.name == rule)
                }
            })
            .map(|(f, m)| (f.clone(), m.clone()))
            .collect();
        for (fingerprint, memo) in gone {
            let what = if memo.rule == HEARTBEAT_RULE {
                "heartbeat"
            } else {
                "rule"
            };
            let decision = Decision {
                fingerprint,
                rule: memo.rule.clone(),
                labels: memo.labels.clone(),
                to: AlertState::Resolved,
                at: now,
                summary: format!(
                    "{}: the {what} was removed from the configuration",
                    memo.rule
                ),
                depends_on: Vec::new(),
            };
            self.record(state, settings, decision).await?;
        }
        Ok(())
    }

    /// Notifies firing alerts that were held back and no longer are, and queues reminders.
    async fn release_and_remind(
        &self,
        state: &mut State,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let firing: Vec<(String, Memo)> = state
            .alerts
            .iter()
            .filter(|(_, m)| m.state == AlertState::Firing)
            .map(|(f, m)| (f.clone(), m.clone()))
            .collect();
        if firing.is_empty() {
            return Ok(());
        }
        let mut acked: Option<HashMap<String, bool>> = None;
        let mut silences: Option<Vec<Silence>> = None;
        for (fingerprint, memo) in firing {
            let kind = match memo.notified_at {
                None => NoteKind::Firing,
                Some(last) => {
                    let Some(every) = settings.router.repeat_interval(&memo.labels) else {
                        continue;
                    };
                    if now - last
                        < chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)
                    {
                        continue;
                    }
                    if acked.is_none() {
                        acked = Some(
                            self.store
                                .alerts(&[AlertState::Firing])
                                .await?
                                .into_iter()
                                .map(|a| (a.fingerprint, a.acked_by.is_some()))
                                .collect(),
                        );
                    }
                    if acked.as_ref().and_then(|m| m.get(&fingerprint)) != Some(&false) {
                        continue;
                    }
                    NoteKind::Reminder
                }
            };
            if silences.is_none() {
                silences = Some(self.store.silences(now).await?);
            }
            let quiet = silences.as_deref().unwrap_or_default();
            if self.held(state, settings, quiet, &memo, now, now).is_some() {
                continue;
            }
            let n = note(&fingerprint, &memo, kind, settings);
            let notes = match (kind, memo.notified_at) {
                (NoteKind::Reminder, Some(last)) => settings.router.plan_reminder(&n, last, now),
                _ => settings.router.plan(&n, now, now),
            };
            if notes.is_empty() {
                continue;
            }
            if self
                .store
                .queue_notifications(&fingerprint, AlertState::Firing, now, &notes)
                .await?
            {
                tracing::info!(alert = %fingerprint, kind = kind.as_str(), notifications = notes.len(), "notification queued");
                if let Some(m) = state.alerts.get_mut(&fingerprint) {
                    m.notified_at = Some(now);
                }
                self.queued.notify_one();
            }
        }
        Ok(())
    }
}

/// A push monitor as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeartbeatView {
    /// Its name.
    pub name: String,
    /// `new`, `up`, `started`, `late` or `down`.
    pub state: BeatState,
    /// For people.
    pub summary: String,
    /// When the next ping is due (for `started`: when the run must end).
    pub next_due: Option<DateTime<Utc>>,
    /// Its status page group.
    pub group: Option<String>,
    /// The latest success.
    pub last_success: Option<DateTime<Utc>>,
    /// The latest start.
    pub last_start: Option<DateTime<Utc>>,
    /// The latest failure.
    pub last_fail: Option<DateTime<Utc>>,
    /// The latest exit code sent.
    pub last_exit_code: Option<i32>,
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

fn agent_decision(agent: &str, to: AlertState, at: DateTime<Utc>, summary: String) -> Decision {
    Decision {
        fingerprint: agent_fingerprint(agent),
        rule: AGENT_RULE.to_string(),
        labels: labels("agent", agent, "critical"),
        to,
        at,
        summary,
        depends_on: Vec::new(),
    }
}

/// The note for an alert.
fn note(fingerprint: &str, memo: &Memo, kind: NoteKind, settings: &Settings) -> AlertNote {
    AlertNote {
        fingerprint: fingerprint.to_string(),
        rule: memo.rule.clone(),
        labels: memo.labels.clone(),
        kind,
        summary: memo.summary.clone(),
        fired_at: memo.fired_at.unwrap_or_else(Utc::now),
        resolved_at: None,
        link: settings.router.link(&memo.labels),
    }
}

/// An alert's labels: what it is about, and its severity.
fn labels(key: &str, value: &str, severity: &str) -> BTreeMap<String, String> {
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
