//! Group commit: batches that arrive while one is being written are stored together, in one
//! transaction of the store ([`Store::ingest_many`], or [`Store::open_group`] where they are
//! evaluated in it), and each request is answered once that
//! transaction is committed. A thousand agents each sending a small batch then cost a few
//! transactions a second instead of a thousand, each with its statements and its fsync.
//!
//! Writers take whatever is queued when they are free, up to [`MAX_BATCHES`] batches or
//! [`MAX_RECORDS`] records, so a lone batch is written at once and waits for nobody. SQLite has
//! one writer (it takes one anyway); PostgreSQL a few. If a group fails, each of its batches is
//! tried again alone, so one bad batch does not fail the others.
//!
//! On a database of its own, the group's new batches are evaluated in the group's transaction,
//! before it commits ([`InTransaction`], which [`crate::evaluation`] implements): the alert
//! transitions they decide, with their history and outbox rows, are committed with them, and a
//! deciding result is handed to notification in one commit, not two. The evaluation starts
//! before the transaction opens and ends when it commits or fails (rules/group.rs says what a
//! failed group undoes, so that storing its batches again alone evaluates each once).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lookout_protocol::{Batch, Record};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument as _;

use crate::store::alerting::Ledger;
use crate::store::{IngestOutcome, NewBatch, Store, StoreError};

/// Most batches in one group.
pub const MAX_BATCHES: usize = 64;
/// Most records in one group (a group can go over by its last batch).
pub const MAX_RECORDS: usize = 20_000;

struct Job {
    agent: String,
    batch: Arc<Batch>,
    received: DateTime<Utc>,
    reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
    /// The request's span, for the batch's evaluation to be its child.
    span: tracing::Span,
}

/// Evaluation of a group's new batches in the group's own transaction.
#[async_trait]
pub trait InTransaction: Send + Sync + std::fmt::Debug {
    /// Starts the evaluation of a group, before its transaction opens; `None` when batches are
    /// not evaluated in their transaction (a shared database: the leader evaluates them later).
    async fn begin(&self) -> Option<Box<dyn GroupEvaluation + '_>>;
}

/// One group's evaluation ([`InTransaction::begin`]).
#[async_trait]
pub trait GroupEvaluation: Send {
    /// Evaluates a batch the group stores anew (never a duplicate), the transitions it decides
    /// written to `ledger`, the group's transaction. A failed evaluation is logged, not
    /// returned: the batch is stored whatever happens to it.
    async fn batch(&mut self, ledger: &mut dyn Ledger, agent: &str, records: &[Record]);

    /// The group's transaction committed.
    fn committed(self: Box<Self>);

    /// The group's transaction did not commit: nothing it wrote is stored.
    async fn abandoned(self: Box<Self>);
}

/// The queue in front of the store's writers.
#[derive(Debug, Clone)]
pub struct GroupWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("agent", &self.agent)
            .field("batch", &self.batch.batch_id)
            .finish()
    }
}

impl GroupWriter {
    /// Starts `writers` writer tasks over `store` on the store's writer thread; `evaluate`
    /// evaluates each group's new batches in its transaction, where it says so.
    pub fn start(
        store: Arc<dyn Store>,
        writers: usize,
        metrics: Arc<crate::telemetry::Metrics>,
        evaluate: Option<Arc<dyn InTransaction>>,
        thread: &super::WriterThread,
    ) -> Self {
        // Requests hold an ingest slot while queued, so the queue is bounded by the slots.
        let (jobs, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            thread.spawn(write_groups(
                store.clone(),
                rx.clone(),
                metrics.clone(),
                evaluate.clone(),
            ));
        }
        Self { jobs }
    }

    /// Stores a batch with whatever else is queued; returns once it is committed.
    pub async fn ingest(
        &self,
        agent: &str,
        batch: Arc<Batch>,
        received: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            agent: agent.to_string(),
            batch,
            received,
            reply,
            span: tracing::Span::current(),
        };
        let stopped = || StoreError::Corrupt("the ingest writers have stopped".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_groups(
    store: Arc<dyn Store>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    metrics: Arc<crate::telemetry::Metrics>,
    evaluate: Option<Arc<dyn InTransaction>>,
) {
    let evaluate = evaluate.as_deref();
    loop {
        let mut group = Vec::new();
        {
            // One writer gathers at a time; the others wait for the next group.
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut records = first.batch.records.len();
            group.push(first);
            while group.len() < MAX_BATCHES && records < MAX_RECORDS {
                match rx.try_recv() {
                    Ok(job) => {
                        records += job.batch.records.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let items: Vec<NewBatch<'_>> = group
            .iter()
            .map(|j| NewBatch {
                agent: &j.agent,
                batch: &j.batch,
                received: j.received,
            })
            .collect();
        metrics.ingest_group();
        let spans: Vec<tracing::Span> = group.iter().map(|j| j.span.clone()).collect();
        match write(&*store, evaluate, &items, &spans).await {
            Ok(outcomes) => {
                drop(items);
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) if group.len() == 1 => {
                drop(items);
                if let Some(job) = group.pop() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(batches = group.len(), error = %e, "a group of batches failed; storing each alone");
                drop(items);
                for job in group {
                    let one = NewBatch {
                        agent: &job.agent,
                        batch: &job.batch,
                        received: job.received,
                    };
                    let result = write(&*store, evaluate, &[one], std::slice::from_ref(&job.span))
                        .await
                        .map(|mut out| out.remove(0));
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Stores `items` in one transaction, their new batches evaluated in it where `evaluate` says
/// so, each within its request's span (`spans`, in the same order); returns each batch's
/// outcome once the transaction is committed.
async fn write(
    store: &dyn Store,
    evaluate: Option<&dyn InTransaction>,
    items: &[NewBatch<'_>],
    spans: &[tracing::Span],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let pass = match evaluate {
        Some(e) => e.begin().await,
        None => None,
    };
    let Some(mut pass) = pass else {
        return store.ingest_many(items).await;
    };
    let (outcomes, mut group) = match store.open_group(items).await {
        Ok(open) => open,
        Err(e) => {
            pass.abandoned().await;
            return Err(e);
        }
    };
    for ((item, outcome), span) in items.iter().zip(&outcomes).zip(spans) {
        if !outcome.duplicate {
            pass.batch(&mut *group, item.agent, &item.batch.records)
                .instrument(span.clone())
                .await;
        }
    }
    match group.commit().await {
        Ok(()) => {
            pass.committed();
            Ok(outcomes)
        }
        Err(e) => {
            pass.abandoned().await;
            Err(e)
        }
    }
}
