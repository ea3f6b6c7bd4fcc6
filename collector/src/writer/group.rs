//! Group commit: batches that arrive while one is being written are stored together, in one
//! transaction of the store ([`Store::ingest_many`]), and each request is answered once that
//! transaction is committed. A thousand agents each sending a small batch then cost a few
//! transactions a second instead of a thousand, each with its statements and its fsync.
//!
//! Writers take whatever is queued when they are free, up to [`MAX_BATCHES`] batches or
//! [`MAX_RECORDS`] records, so a lone batch is written at once and waits for nobody. SQLite has
//! one writer (it takes one anyway); PostgreSQL a few. If a group fails, each of its batches is
//! tried again alone, so one bad batch does not fail the others.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lookout_protocol::Batch;
use tokio::sync::{Mutex, mpsc, oneshot};

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
    /// Starts `writers` writer tasks over `store` on the store's writer thread.
    pub fn start(
        store: Arc<dyn Store>,
        writers: usize,
        metrics: Arc<crate::telemetry::Metrics>,
        thread: &super::WriterThread,
    ) -> Self {
        // Requests hold an ingest slot while queued, so the queue is bounded by the slots.
        let (jobs, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            thread.spawn(write_groups(store.clone(), rx.clone(), metrics.clone()));
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
) {
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
        match store.ingest_many(&items).await {
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
                    let result = store.ingest_many(&[one]).await.map(|mut out| out.remove(0));
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}
