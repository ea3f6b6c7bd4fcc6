//! The sender: claims due outbox rows, sends each group of one channel as one message, and
//! records the outcome.
//!
//! Delivery is at least once per claim and exactly once in the usual case: a row is claimed
//! with a lease, sent, then marked delivered by the lease holder. A sender that dies between
//! the send and the mark leaves the row to be claimed again when the lease runs out, and the
//! message then goes out twice; that window is one send long. A failed send is retried with
//! exponential backoff and jitter (or after the peer's `Retry-After`), until `give_up_after`
//! from when it was queued; then, or at once for a permanent error, the row is marked failed
//! with its last error, which the alerts API shows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_runtime::backoff::{Backoff, Jitter};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Sender;
use super::link::AckLinks;
use super::message::{AlertNote, Message, NoteKind, RowRef, SendError};
use crate::store::alerting::Notification;
use crate::store::{Store, StoreError};
use crate::telemetry::{Metrics, Outcome};

/// How long a claimed row is ours before another sender may take it.
const LEASE: Duration = Duration::from_secs(120);
/// Rows claimed per round.
const BATCH: u32 = 200;
/// The longest wait between rounds when nothing is due (a row queued by another collector is
/// found this late at most).
const IDLE: Duration = Duration::from_secs(5);
/// The first retry's wait, doubled per attempt up to [`MAX_BACKOFF`] (docs/alerting.md).
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait's ceiling, before its jitter.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// A row's wait before its next attempt, from the attempts stored with it: ±50 % jitter, so
/// that many rows that failed together do not retry in step.
const BACKOFF: Backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF, Jitter::Half);

/// A channel as the worker uses it.
#[derive(Debug, Clone)]
pub struct Outlet {
    /// Sends.
    pub sender: Arc<dyn Sender>,
    /// Storm control: messages a minute, 0 for no limit.
    pub max_per_minute: u32,
}

/// Channels by name.
pub type Senders = HashMap<String, Outlet>;

/// Storm control's view of one channel: when its recent messages went out, and whether
/// notifications are being held for a digest.
#[derive(Debug, Default)]
struct Storm {
    sent: std::collections::VecDeque<DateTime<Utc>>,
    digest: bool,
}

/// Claimed rows by channel, then by group key, each in the order first seen.
type ByChannel = Vec<(String, Vec<(String, Vec<Notification>)>)>;

fn by_channel(rows: Vec<Notification>) -> ByChannel {
    let mut out: ByChannel = Vec::new();
    for row in rows {
        let at = match out.iter().position(|(c, _)| *c == row.channel) {
            Some(i) => i,
            None => {
                out.push((row.channel.clone(), Vec::new()));
                out.len() - 1
            }
        };
        let groups = &mut out[at].1;
        match groups.iter_mut().find(|(k, _)| *k == row.group_key) {
            Some((_, g)) => g.push(row),
            None => groups.push((row.group_key.clone(), vec![row])),
        }
    }
    out
}

/// One message to send, or rows to hold back.
enum Step {
    Send {
        channel: String,
        group_key: String,
        rows: Vec<Notification>,
        digest: bool,
    },
    Hold {
        rows: Vec<Notification>,
        until: DateTime<Utc>,
    },
}

/// The outbox sender.
#[derive(Debug)]
pub struct Worker {
    store: Arc<dyn Store>,
    // std's RwLock: swapped on reload, read without awaiting.
    senders: std::sync::RwLock<Arc<Senders>>,
    give_up_after: Duration,
    owner: String,
    queued: Arc<Notify>,
    metrics: Arc<Metrics>,
    // std's Mutex: updated while planning a round, never across an await.
    storms: std::sync::Mutex<HashMap<String, Storm>>,
    // std's RwLock: swapped on reload, read without awaiting.
    links: std::sync::RwLock<Arc<AckLinks>>,
}

impl Worker {
    /// A sender over `senders`, woken by `queued`, whose notes carry no link to acknowledge
    /// until [`Worker::with_links`].
    pub fn new(
        store: Arc<dyn Store>,
        senders: Senders,
        give_up_after: Duration,
        queued: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            senders: std::sync::RwLock::new(Arc::new(senders)),
            give_up_after,
            owner: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            queued,
            metrics,
            storms: std::sync::Mutex::default(),
            links: std::sync::RwLock::new(Arc::new(AckLinks::none())),
        }
    }

    /// The sender, whose firing and reminder notes get their links to acknowledge from `links`
    /// as they are sent.
    pub fn with_links(self, links: AckLinks) -> Self {
        self.replace_links(links);
        self
    }

    /// How notes get their links to acknowledge (and the key that verifies them).
    pub fn links(&self) -> Arc<AckLinks> {
        self.links.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the link settings of a reloaded configuration.
    pub fn replace_links(&self, links: AckLinks) {
        *self.links.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(links);
    }

    /// Wakes the sender: notifications were committed to the outbox (an acknowledgement's).
    pub fn wake(&self) {
        self.queued.notify_one();
    }

    /// Takes channels from a reloaded configuration.
    pub fn replace_senders(&self, senders: Senders) {
        *self.senders.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(senders);
    }

    /// Sends until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = match self.round(crate::clock::now()).await {
                Ok(()) => self.until_next_due().await,
                Err(e) => {
                    tracing::warn!(error = %e, "notification round failed; retrying");
                    IDLE
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.queued.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_notification_due().await {
            Ok(Some(due)) => (due - crate::clock::now())
                .to_std()
                .unwrap_or(Duration::from_millis(50))
                .clamp(Duration::from_millis(50), IDLE),
            Ok(None) => IDLE,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                IDLE
            }
        }
    }

    /// One round: claims what is due and sends it, one message per channel and group, the
    /// groups concurrently.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let rows = self
            .store
            .claim_notifications(&self.owner, now, lease_until, BATCH)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let groups = by_channel(rows);
        let senders = self
            .senders
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let steps = self.plan(groups, &senders, now);
        // Holds first: a store error here returns before any send has started.
        let mut sends = Vec::new();
        for step in steps {
            match step {
                Step::Hold { rows, until } => {
                    if let Some(channel) = rows.first().map(|r| r.channel.as_str()) {
                        self.metrics
                            .notification(channel, Outcome::Held, rows.len());
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    self.store
                        .defer_notifications(&ids, &self.owner, until)
                        .await?;
                    tracing::warn!(held = ids.len(), until = %until, "storm control: notifications held for a digest");
                }
                Step::Send {
                    channel,
                    group_key,
                    rows,
                    digest,
                } => sends.push((channel, group_key, rows, digest)),
            }
        }
        let links = self.links();
        let mut tasks = JoinSet::new();
        for (channel, group_key, rows, digest) in sends {
            let sender = senders.get(&channel).map(|o| o.sender.clone());
            let store = self.store.clone();
            let owner = self.owner.clone();
            let give_up_after = self.give_up_after;
            let metrics = self.metrics.clone();
            let links = links.clone();
            tasks.spawn(async move {
                let outcome = match sender {
                    Some(s) => send_group(s.as_ref(), &group_key, &rows, digest, &links).await,
                    None => Err(SendError::Permanent(format!(
                        "no channel named {channel:?} in the configuration"
                    ))),
                };
                let counted = match &outcome {
                    Ok(()) => Outcome::Delivered,
                    Err(SendError::Retry { .. })
                        if rows.iter().all(|r| {
                            (crate::clock::now() - r.created)
                                .to_std()
                                .unwrap_or_default()
                                < give_up_after
                        }) =>
                    {
                        Outcome::Retry
                    }
                    Err(_) => Outcome::Failed,
                };
                metrics.notification(&channel, counted, rows.len());
                settle(
                    store.as_ref(),
                    &owner,
                    &channel,
                    &rows,
                    outcome,
                    give_up_after,
                )
                .await
            });
        }
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(e) => tracing::error!(error = %e, "a notification task failed"),
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Worker {
    /// Decides what this round sends: each group as a message while its channel is within
    /// its messages a minute; beyond, the rows are held until the minute is over, and then
    /// everything held for the channel goes out as one digest.
    fn plan(&self, channels: ByChannel, senders: &Senders, now: DateTime<Utc>) -> Vec<Step> {
        let minute = chrono::Duration::seconds(60);
        let mut storms = self.storms.lock().unwrap_or_else(|p| p.into_inner());
        let mut steps = Vec::new();
        for (channel, mine) in channels {
            let limit = senders.get(&channel).map_or(0, |o| o.max_per_minute) as usize;
            let st = storms.entry(channel.clone()).or_default();
            while st.sent.front().is_some_and(|t| now - *t >= minute) {
                st.sent.pop_front();
            }
            let free = |st: &Storm| limit == 0 || st.sent.len() < limit;
            let until = |st: &Storm| st.sent.front().map_or(now, |t| *t + minute);
            if st.digest {
                let rows: Vec<Notification> = mine.into_iter().flat_map(|(_, r)| r).collect();
                if free(st) {
                    st.sent.push_back(now);
                    st.digest = false;
                    steps.push(Step::Send {
                        channel: channel.clone(),
                        group_key: "digest".into(),
                        rows,
                        digest: true,
                    });
                } else {
                    steps.push(Step::Hold {
                        rows,
                        until: until(st),
                    });
                }
                continue;
            }
            for (group_key, rows) in mine {
                if free(st) {
                    st.sent.push_back(now);
                    steps.push(Step::Send {
                        channel: channel.clone(),
                        group_key,
                        rows,
                        digest: false,
                    });
                } else {
                    st.digest = true;
                    steps.push(Step::Hold {
                        rows,
                        until: until(st),
                    });
                }
            }
        }
        steps
    }
}

#[tracing::instrument(
    name = "notify",
    level = "debug",
    skip_all,
    fields(
        channel = rows.first().map_or("", |r| r.channel.as_str()),
        group = group_key,
        alerts = rows.len(),
        digest,
    ),
    err(Display, level = "warn"),
)]
async fn send_group(
    sender: &dyn Sender,
    group_key: &str,
    rows: &[Notification],
    digest: bool,
    links: &AckLinks,
) -> Result<(), SendError> {
    let now = crate::clock::now();
    let mut alerts = Vec::with_capacity(rows.len());
    for r in rows {
        let mut note: AlertNote = serde_json::from_value(r.payload.clone()).map_err(|e| {
            SendError::Permanent(format!(
                "outbox row {} has an unreadable payload: {e}",
                r.id
            ))
        })?;
        // Signed as it is sent, so that a retried note's link counts its lifetime from then.
        if let (NoteKind::Firing | NoteKind::Reminder, Some(id)) = (note.kind, r.alert_id) {
            note.ack_link = links.link(id, note.fired_at, now);
        }
        alerts.push(note);
    }
    let msg = Message {
        group_key: group_key.to_string(),
        alerts,
        digest,
        rows: rows
            .iter()
            .map(|r| RowRef {
                id: r.id,
                queued: r.created,
            })
            .collect(),
    };
    sender.send(&msg).await
}

/// Records a send's outcome on each of its rows.
async fn settle(
    store: &dyn Store,
    owner: &str,
    channel: &str,
    rows: &[Notification],
    outcome: Result<(), SendError>,
    give_up_after: Duration,
) -> Result<(), StoreError> {
    let now = crate::clock::now();
    match outcome {
        Ok(()) => {
            for r in rows {
                if !store.mark_delivered(r.id, owner, now).await? {
                    tracing::warn!(notification = r.id, "lease lost before marking delivered");
                }
            }
            tracing::info!(channel, alerts = rows.len(), "notification sent");
        }
        Err(e) => {
            let mut gave_up = false;
            for r in rows {
                let age = (now - r.created).to_std().unwrap_or_default();
                let retry_at = match &e {
                    SendError::Permanent(_) => None,
                    SendError::Retry { .. } if age >= give_up_after => None,
                    SendError::Retry { after, .. } => Some(
                        now + chrono::Duration::from_std(
                            after.unwrap_or_else(|| BACKOFF.wait(r.attempts)),
                        )
                        .unwrap_or_default(),
                    ),
                };
                let text = match retry_at {
                    None if matches!(e, SendError::Retry { .. }) => {
                        format!(
                            "gave up after {}: {e}",
                            lookout_config::duration::format(&give_up_after)
                        )
                    }
                    _ => e.to_string(),
                };
                gave_up |= retry_at.is_none();
                store.mark_failed(r.id, owner, &text, retry_at, now).await?;
            }
            if gave_up {
                tracing::error!(channel, error = %e, "notification failed; given up");
            } else {
                tracing::warn!(channel, error = %e, attempts = rows[0].attempts + 1, "notification failed; will retry");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            let first = BACKOFF.wait(0);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(3));
            let fourth = BACKOFF.wait(3);
            assert!(fourth >= Duration::from_secs(8) && fourth <= Duration::from_secs(24));
            assert!(BACKOFF.wait(40) <= MAX_BACKOFF.mul_f64(1.5));
        }
    }
}
