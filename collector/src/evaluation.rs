//! When rules are evaluated: the one way from "stored" to "evaluated".
//!
//! Whatever reaches the store that rules decide on (a batch of an agent's records, an agent
//! asking for its assignments, a push monitor's ping) is handed to the [`Evaluator`], and the
//! evaluator alone decides where it is evaluated:
//!
//! - on a database of its own (SQLite), the collector leads from its start and evaluates each
//!   batch in the transaction that stores it, before it commits ([`InTransaction`], called by
//!   the group writer, writer/group.rs): the transitions the batch decides, with their history
//!   and outbox rows, commit with the batch, in one commit, and the sender is woken after it.
//!   A duplicate is not evaluated; the batches of a group are evaluated in order. What a group
//!   that does not commit leaves undone is rules/group.rs's business;
//! - on a shared database (PostgreSQL, several collectors), every collector queues each batch
//!   in the batch's own transaction ([`crate::store::cluster`]) and only the leader evaluates:
//!   [`Evaluator::run_queue`] takes the queue in order, woken by this collector's own ingests and
//!   otherwise every [`QUEUE_POLL`]. A collector that takes the lead first reloads alert state
//!   from the store, then evaluates what is queued, so nothing that arrived meanwhile is
//!   skipped. Polls and pings are evaluated by the leader when they reach it; those that reach
//!   a follower are in the store, where the leader's ticks read them.
//!
//! Time alone changes some states (silent agents, overdue pings, sliding windows, held
//! notifications, reminders): [`Evaluator::run_ticks`] re-evaluates every [`TICK_EVERY`] on the
//! leader.
//!
//! What the rules decide, and what becomes of their decisions, is [`crate::rules`]'s and
//! [`crate::alert`]'s business; this module only says when.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::Record;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::leadership::Leadership;
use crate::rules::{Engine, GroupPass};
use crate::store::alerting::{Ledger, Ping};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::writer::group::{GroupEvaluation, InTransaction};

/// How often rules are re-evaluated for what time alone changes.
pub const TICK_EVERY: Duration = Duration::from_secs(5);
/// Batches evaluated per round of the leader's queue.
const QUEUE_ROUND: u32 = 100;
/// The longest a queued batch from another collector waits for the leader to look.
pub const QUEUE_POLL: Duration = Duration::from_millis(100);
/// How long the leader waits before trying again to reload alert state it could not read.
const RESUME_RETRY: Duration = Duration::from_secs(1);

/// Hands what was stored to the rules, here or on the leader.
#[derive(Debug)]
pub struct Evaluator {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    leadership: Arc<Leadership>,
    metrics: Arc<Metrics>,
    /// Wakes the leader's queue after this collector stored a batch (shared databases).
    queued: Notify,
    /// How the tick loop last went, for the watchdog ([`Evaluator::last_tick`]). std's Mutex:
    /// set and read without awaiting.
    ticked: std::sync::Mutex<Ticked>,
}

/// When the tick loop last completed a round, and the error of the last round that failed
/// since, if any.
#[derive(Debug, Clone)]
pub struct Ticked {
    /// The end of the last round that evaluated without error (or found another collector
    /// leading); the evaluator's creation before the first.
    pub at: DateTime<Utc>,
    /// Why the rounds since `at` failed.
    pub error: Option<String>,
}

impl Evaluator {
    /// The evaluator of `engine`'s rules over what `store` holds.
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        leadership: Arc<Leadership>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            engine,
            store,
            leadership,
            metrics,
            queued: Notify::new(),
            ticked: std::sync::Mutex::new(Ticked {
                at: crate::clock::now(),
                error: None,
            }),
        }
    }

    /// How the tick loop last went: a loop that stopped, hangs in a round or fails each round
    /// shows an `at` that falls behind ([`crate::watchdog`] reads it).
    pub fn last_tick(&self) -> Ticked {
        self.ticked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn tick_done(&self, error: Option<String>) {
        let mut t = self.ticked.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            None => {
                t.at = crate::clock::now();
                t.error = None;
            }
            Some(e) => t.error = Some(e),
        }
    }

    /// A batch was committed (not a duplicate). On a shared database it was queued with the
    /// batch: the leader's queue is woken, if this collector leads. On a database of its own
    /// it was evaluated in its transaction already ([`InTransaction`]).
    pub fn stored(&self) {
        if self.store.shared() {
            self.queued.notify_one();
        }
    }

    /// `agent` asked for its assignments, saying it does so every `every`: it is alive, and
    /// its timeout follows its pace. On a shared database only the leader evaluates; its ticks
    /// see the agent's row.
    pub async fn polled(&self, agent: &str, every: Option<Duration>) {
        if !self.leadership.leads() {
            return;
        }
        self.metrics.evaluation("poll");
        if let Err(e) = self.engine.on_poll(agent, crate::clock::now(), every).await {
            tracing::error!(agent = %agent, error = %e, "rule evaluation failed");
        }
    }

    /// `agent` said it is stopping; the store has it already. On a shared database a follower
    /// leaves it to the leader's ticks, which read the store for agents gone silent.
    pub async fn said_goodbye(&self, agent: &str) {
        if !self.leadership.leads() {
            return;
        }
        self.metrics.evaluation("goodbye");
        if let Err(e) = self.engine.goodbye(agent, crate::clock::now()).await {
            tracing::error!(agent = %agent, error = %e, "rule evaluation failed");
        }
    }

    /// A push monitor's ping was stored. On a shared database a follower leaves it to the
    /// leader's next tick, which reads the stored pings.
    pub async fn pinged(&self, ping: &Ping) {
        if !self.leadership.leads() {
            return;
        }
        self.metrics.evaluation("ping");
        if let Err(e) = self.engine.on_ping(ping).await {
            // The ping is stored; the next tick evaluates it again.
            tracing::error!(heartbeat = %ping.name, error = %e, "heartbeat evaluation failed");
        }
    }

    /// `agent` reached the collector, whatever became of its request: an agent whose batch was
    /// refused because the collector was busy is not silent.
    pub fn heard_from(&self, agent: &str) {
        self.engine.heard_from(agent, crate::clock::now());
    }

    /// Re-evaluates every [`TICK_EVERY`] until `stop`, while this collector leads: silent
    /// agents, overdue pings, sliding windows, flapping that settles, held notifications and
    /// reminders. Each tick's time is the collector's clock, the clock ingest stamps agents'
    /// arrivals with.
    pub async fn run_ticks(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TICK_EVERY) => {}
            }
            // Another collector leads: its ticks decide.
            if !self.leadership.leads() {
                self.tick_done(None);
                continue;
            }
            self.metrics.evaluation("tick");
            match self.engine.tick(crate::clock::now()).await {
                Ok(_) => self.tick_done(None),
                Err(e) => {
                    tracing::warn!(error = %e, "rule evaluation failed; retrying at the next tick");
                    self.tick_done(Some(e.to_string()));
                }
            }
        }
    }

    /// The leader's evaluation of queued batches (shared databases only), until `stop`: on
    /// taking the lead it reloads alert state, then evaluates the queue, woken by this
    /// collector's own ingests and otherwise every [`QUEUE_POLL`].
    pub async fn run_queue(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.leadership.watch();
        loop {
            // Wait to lead.
            while !self.leadership.leads() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = changes.changed() => if r.is_err() { return },
                }
            }
            if let Err(e) = self.engine.resume().await {
                tracing::error!(error = %e, "cannot reload alert state; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RESUME_RETRY) => {}
                }
                continue;
            }
            tracing::info!("alert state reloaded; evaluating queued batches");
            while self.leadership.leads() && !stop.is_cancelled() {
                let evaluated = match self.drain().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "evaluating queued batches failed; retrying");
                        0
                    }
                };
                if evaluated == QUEUE_ROUND as usize {
                    continue;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.queued.notified() => {}
                    () = tokio::time::sleep(QUEUE_POLL) => {}
                    _ = changes.changed() => {}
                }
            }
        }
    }

    /// Evaluates one round of queued batches, each at the time it was received; returns how
    /// many.
    async fn drain(&self) -> Result<usize, StoreError> {
        let batches = self.store.queued_batches(QUEUE_ROUND).await?;
        let mut done = Vec::with_capacity(batches.len());
        for b in &batches {
            match &b.records {
                Ok(records) => self.evaluate_queued(&b.agent, b.received, records).await,
                Err(e) => {
                    tracing::error!(agent = %b.agent, queued = b.id, error = %e, "a queued batch cannot be read back; it is not evaluated");
                }
            }
            done.push(b.id);
        }
        if !done.is_empty() {
            self.store.dequeue_batches(&done).await?;
        }
        Ok(batches.len())
    }

    async fn evaluate_queued(&self, agent: &str, received: DateTime<Utc>, records: &[Record]) {
        self.metrics.evaluation("batch");
        // A failed evaluation is rebuilt from later results (see crate::rules); the batch is
        // not evaluated twice.
        if let Err(e) = self.engine.on_batch(agent, received, records).await {
            tracing::error!(agent = %agent, error = %e, "rule evaluation failed");
        }
    }
}

/// On a database of its own, each group of batches is evaluated in the transaction that
/// stores it (writer/group.rs).
#[async_trait::async_trait]
impl InTransaction for Evaluator {
    async fn begin(&self) -> Option<Box<dyn GroupEvaluation + '_>> {
        if self.store.shared() {
            return None;
        }
        Some(Box::new(Inline {
            pass: self.engine.begin_group().await,
            metrics: &self.metrics,
        }))
    }
}

/// A group's evaluation in its transaction.
struct Inline<'a> {
    pass: GroupPass<'a>,
    metrics: &'a Metrics,
}

#[async_trait::async_trait]
impl GroupEvaluation for Inline<'_> {
    async fn batch(&mut self, ledger: &mut dyn Ledger, agent: &str, records: &[Record]) {
        self.metrics.evaluation("batch");
        // Never fails the batch: a failed evaluation is rebuilt from the next results (see
        // crate::rules), and the transition that failed is rolled back alone.
        if let Err(e) = self
            .pass
            .on_batch(ledger, agent, crate::clock::now(), records)
            .instrument(tracing::debug_span!("evaluate", trigger = "batch"))
            .await
        {
            tracing::error!(agent = %agent, error = %e, "rule evaluation failed");
        }
    }

    fn committed(self: Box<Self>) {
        self.pass.committed();
    }

    async fn abandoned(self: Box<Self>) {
        self.pass.abandoned().await;
    }
}
