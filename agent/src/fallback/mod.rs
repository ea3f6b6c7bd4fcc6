//! `[fallback]`: the agent's own message when its collector is gone.
//!
//! The collector pages about everything else; when the collector itself (or the network to it)
//! is down, nothing would. An agent notices first: its batches stop being acknowledged. With
//! `[fallback]` it then sends, over plain HTTP ([`send`]):
//!
//! - one "collector unreachable" message when no collector has acknowledged a batch for
//!   `after` (counted from the first batch not acknowledged after one that was: an agent with
//!   nothing to send raises nothing), and
//! - one "reachable again" message when a batch is acknowledged after that.
//!
//! Never twice for one outage, across restarts too: the outage's start and whether its message
//! went out are kept in `<data_dir>/fallback.json` ([`state`]). A message the peer did not take
//! after its retries is given up (logged and counted, not tried again for that outage); the
//! "reachable again" message still follows when delivery resumes.
//!
//! Many agents see one outage. Before each message an agent waits a random time within
//! `jitter`, then sends only if delivery is still as it was: an outage shorter than `after`
//! plus the agent's wait sends nothing from that agent, and the messages of a fleet arrive
//! spread over `jitter` rather than in one burst. The agents do not know of each other, so
//! this does not make one message of many: N agents with `[fallback]` that all lose the
//! collector send N "unreachable" messages and N "reachable again" messages. Configure it on a
//! few agents (two or three, in different networks), not on every one (docs/alerting.md).
//!
//! The shipper tells a [`Deliveries`] how each batch went; [`run`] follows it.

pub mod send;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::FallbackConfig;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::self_metrics::AgentMetrics;
use send::{Kind, Note, Undelivered};
use state::Remembered;

/// How delivery to the collector stands, as the shipper last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Nothing sent yet since the agent started.
    Unknown,
    /// The last batch was acknowledged.
    Delivering,
    /// No batch acknowledged since `since` (`wall`, on the wall clock).
    Failing {
        /// The first batch not acknowledged after one that was (or after the start).
        since: Instant,
        /// The same instant on the wall clock, for the messages.
        wall: DateTime<Utc>,
    },
}

/// The shipper's reports, followed by [`run`]. Cheap: a report that changes nothing wakes
/// nobody.
#[derive(Debug)]
pub struct Deliveries {
    state: watch::Sender<Delivery>,
    // std's Mutex: set and read without awaiting.
    last_error: std::sync::Mutex<Option<String>>,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(Delivery::Unknown),
            last_error: std::sync::Mutex::new(None),
        }
    }
}

impl Deliveries {
    /// A batch was acknowledged.
    pub fn delivered(&self) {
        self.state.send_if_modified(|s| {
            let changed = *s != Delivery::Delivering;
            *s = Delivery::Delivering;
            changed
        });
    }

    /// A batch was not acknowledged, for `reason`.
    pub fn failed(&self, reason: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        self.state.send_if_modified(|s| {
            if matches!(s, Delivery::Failing { .. }) {
                return false;
            }
            *s = Delivery::Failing {
                since: Instant::now(),
                wall: Utc::now(),
            };
            true
        });
    }

    /// Follows the reports.
    pub fn watch(&self) -> watch::Receiver<Delivery> {
        self.state.subscribe()
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `[fallback]` with where its state is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The section.
    pub config: FallbackConfig,
    /// `<data_dir>/fallback.json`.
    pub state_file: PathBuf,
}

/// What [`run`] needs besides the reports.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// The settings.
    pub settings: Settings,
    /// The agent's name, for the messages.
    pub agent: String,
    /// The collectors' URLs, passwords hidden, for the messages.
    pub collectors: Vec<String>,
    /// The client the messages go out with.
    pub http: reqwest::Client,
    /// Counts the messages.
    pub metrics: Arc<AgentMetrics>,
}

/// Follows `deliveries` until `stop`, sending the two messages as the module says.
pub async fn run(fb: Fallback, deliveries: Arc<Deliveries>, stop: CancellationToken) {
    let cfg = &fb.settings.config;
    let path = &fb.settings.state_file;
    let mut mem = match state::load(path) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "the fallback's state cannot be read: starting with no outage known (an outage in progress may be reported a second time)");
            Remembered::default()
        }
    };
    let mut rx = deliveries.watch();
    let keep = |mem: &Remembered| {
        if let Err(e) = state::save(path, mem) {
            tracing::error!(error = %e, "cannot keep the fallback's state: after a restart a message may be sent again");
        }
    };
    loop {
        let now = rx.borrow_and_update().clone();
        // Waits for `until`, or for delivery to change (true), or returns at a stop.
        macro_rules! wait_or_changed {
            ($until:expr) => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = rx.changed() => { if r.is_err() { return; } true }
                    () = $until => false,
                }
            };
        }
        match now {
            Delivery::Unknown => {
                wait_or_changed!(std::future::pending::<()>());
            }
            Delivery::Failing { since, wall } => {
                // A restart during an outage: it began when the file says.
                let began = match mem.since {
                    Some(began) => began,
                    None => {
                        mem.since = Some(wall);
                        keep(&mem);
                        wall
                    }
                };
                if mem.unreachable_sent {
                    wait_or_changed!(std::future::pending::<()>());
                    continue;
                }
                let earlier = (wall - began).to_std().unwrap_or_default();
                let due = since.checked_sub(earlier).unwrap_or(since) + cfg.after;
                if wait_or_changed!(tokio::time::sleep_until(due)) {
                    continue;
                }
                if wait_or_changed!(tokio::time::sleep(jitter(cfg.jitter))) {
                    continue;
                }
                let note = fb.note(Kind::Unreachable, began, deliveries.last_error());
                match fb.send(&note, &rx, &stop).await {
                    Err(Undelivered::Cancelled) => continue,
                    Ok(()) | Err(Undelivered::Failed(_)) => {
                        mem.unreachable_sent = true;
                        keep(&mem);
                    }
                }
            }
            Delivery::Delivering => {
                if mem.unreachable_sent {
                    if wait_or_changed!(tokio::time::sleep(jitter(cfg.jitter))) {
                        continue;
                    }
                    let began = mem.since.unwrap_or_else(Utc::now);
                    let note = fb.note(Kind::Reachable, began, None);
                    // Failing again meanwhile: the outage goes on, its message was sent.
                    if let Err(Undelivered::Cancelled) = fb.send(&note, &rx, &stop).await {
                        continue;
                    }
                }
                if mem != Remembered::default() {
                    mem = Remembered::default();
                    keep(&mem);
                }
                wait_or_changed!(std::future::pending::<()>());
            }
        }
    }
}

impl Fallback {
    fn note(&self, kind: Kind, since: DateTime<Utc>, error: Option<String>) -> Note {
        Note {
            kind,
            agent: self.agent.clone(),
            collectors: self.collectors.clone(),
            since,
            at: Utc::now(),
            error,
        }
    }

    /// Sends `note`; a change of delivery (or a stop) before it is taken stops its retries, not an
    /// attempt under way. Logs and counts it.
    async fn send(
        &self,
        note: &Note,
        rx: &watch::Receiver<Delivery>,
        stop: &CancellationToken,
    ) -> Result<(), Undelivered> {
        let mut changes = rx.clone();
        let cancel = async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = changes.changed() => {}
            }
        };
        let cfg = &self.settings.config;
        let shown = lookout_config::redact::origin(cfg.resolved_url());
        let result = send::deliver(&self.http, cfg, note, cancel).await;
        match &result {
            Ok(()) => {
                self.metrics.fallback_message(note.kind.label(), "sent");
                tracing::warn!(fallback = cfg.kind.as_str(), to = %shown, message = note.kind.label(), since = %note.since, "fallback message sent");
            }
            Err(Undelivered::Failed(e)) => {
                self.metrics.fallback_message(note.kind.label(), "failed");
                tracing::error!(fallback = cfg.kind.as_str(), to = %shown, message = note.kind.label(), error = %e, "the fallback message could not be sent; given up for this outage");
            }
            Err(Undelivered::Cancelled) => {
                tracing::info!(
                    message = note.kind.label(),
                    "delivery to the collector changed: the fallback message is not sent"
                );
            }
        }
        result
    }
}

/// A random wait from none up to `max`.
fn jitter(max: Duration) -> Duration {
    Duration::from_millis(fastrand::u64(0..=max.as_millis() as u64))
}

#[cfg(test)]
mod tests;
