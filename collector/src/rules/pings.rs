//! Push monitors in the engine: a ping's alert follows at once, ticks find the overdue ones,
//! and the API lists each with its state ([`HeartbeatView`]). How a monitor's state follows
//! from its pings is [`super::heartbeat`]'s.

use chrono::{DateTime, Utc};

use super::engine::Engine;
use super::heartbeat::{self, BeatState, merge_pings};
use super::settings::Settings;
use super::state::State;
use crate::alert::{Decision, HEARTBEAT_RULE, heartbeat_fingerprint, labels};
use crate::store::StoreError;
use crate::store::alerting::{AlertState, HeartbeatRow, Ping, PingKind};

impl Engine {
    /// A push monitor was pinged (the ping is stored): its alert follows at once.
    pub async fn on_ping(&self, ping: &Ping) -> Result<(), StoreError> {
        let settings = self.settings();
        let mut state = self.lock().await;
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
        let mut state = self.lock().await;
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

    pub(super) async fn evaluate_heartbeat(
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
        let fingerprint = heartbeat_fingerprint(name);
        let firing = state.alert_state(&fingerprint) == Some(AlertState::Firing);
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
            fingerprint,
            rule: HEARTBEAT_RULE.to_string(),
            labels: labels("heartbeat", name, &cfg.severity),
            to,
            at: now,
            summary,
            detail: None,
            depends_on: Vec::new(),
        };
        self.record(state, decision).await
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
