//! What several collectors sharing one database keep there: the batches waiting for the
//! leader's rule evaluation, and each collector's presence (`GET /api/v1/cluster`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lookout_protocol::Record;
use serde::Serialize;

use super::StoreError;

/// A stored batch waiting for the leader's evaluation.
#[derive(Debug, Clone)]
pub struct QueuedBatch {
    /// The queue row's id.
    pub id: i64,
    /// The agent that sent it.
    pub agent: String,
    /// When the collector that stored it received it.
    pub received: DateTime<Utc>,
    /// Its records, or why they could not be read back.
    pub records: Result<Vec<Record>, String>,
}

/// One collector's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorRow {
    /// A name unique to this run of the process: host, listen address and a random part.
    pub instance: String,
    /// Where it listens.
    pub address: String,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it last wrote its row.
    pub seen: DateTime<Utc>,
    /// Since when it leads, if it does.
    pub leader_since: Option<DateTime<Utc>>,
}

/// The shared bookkeeping of collectors on one database.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// True when several collectors may share this database: each stored batch is then also
    /// queued for the leader's evaluation (in the batch's transaction).
    fn shared(&self) -> bool;

    /// Up to `limit` queued batches, oldest first.
    async fn queued_batches(&self, limit: u32) -> Result<Vec<QueuedBatch>, StoreError>;

    /// Removes evaluated batches from the queue.
    async fn dequeue_batches(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Writes this collector's row.
    async fn announce(&self, me: &CollectorRow) -> Result<(), StoreError>;

    /// Collectors whose row was written at or after `since`, leader first.
    async fn collectors(&self, since: DateTime<Utc>) -> Result<Vec<CollectorRow>, StoreError>;
}
