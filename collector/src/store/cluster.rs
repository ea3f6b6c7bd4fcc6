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

/// Expands the shared implementation of `ClusterStore` for a backend struct over `$db`; the
/// struct says whether it is shared with `const SHARED: bool`.
macro_rules! sql_cluster_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::cluster::ClusterStore for $store {
            fn shared(&self) -> bool {
                Self::SHARED
            }

            async fn queued_batches(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::store::cluster::QueuedBatch>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, agent, received_ms, records FROM evaluation_queue ORDER BY id LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.write)
                .await?;
                rows.iter()
                    .map(|r| {
                        let text: String = r.try_get("records")?;
                        Ok($crate::store::cluster::QueuedBatch {
                            id: r.try_get("id")?,
                            agent: r.try_get("agent")?,
                            received: $crate::store::sql::time(r.try_get("received_ms")?)?,
                            records: serde_json::from_str(&text).map_err(|e| e.to_string()),
                        })
                    })
                    .collect()
            }

            async fn dequeue_batches(&self, ids: &[i64]) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.write.begin().await?;
                for id in ids {
                    sqlx::query("DELETE FROM evaluation_queue WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn announce(
                &self,
                me: &$crate::store::cluster::CollectorRow,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql::ms;
                sqlx::query(
                    "INSERT INTO collectors (instance, address, version, started_ms, seen_ms, leader_since_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (instance) DO UPDATE SET address = excluded.address,
                       version = excluded.version, seen_ms = excluded.seen_ms,
                       leader_since_ms = excluded.leader_since_ms",
                )
                .bind(&me.instance)
                .bind(&me.address)
                .bind(&me.version)
                .bind(ms(&me.started))
                .bind(ms(&me.seen))
                .bind(me.leader_since.as_ref().map(ms))
                .execute(&self.write)
                .await?;
                Ok(())
            }

            async fn collectors(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::store::cluster::CollectorRow>, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::sql::{ms, time};
                let rows = sqlx::query(
                    "SELECT instance, address, version, started_ms, seen_ms, leader_since_ms
                     FROM collectors WHERE seen_ms >= $1
                     ORDER BY (leader_since_ms IS NULL), started_ms",
                )
                .bind(ms(&since))
                .fetch_all(&self.read)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::cluster::CollectorRow {
                            instance: r.try_get("instance")?,
                            address: r.try_get("address")?,
                            version: r.try_get("version")?,
                            started: time(r.try_get("started_ms")?)?,
                            seen: time(r.try_get("seen_ms")?)?,
                            leader_since: r
                                .try_get::<Option<i64>, _>("leader_since_ms")?
                                .map(time)
                                .transpose()?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use sql_cluster_store;
