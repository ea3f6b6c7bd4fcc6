//! The SQL implementation of [`ClusterStore`]: the leader's queue of stored batches, and each
//! collector's row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::values::{ms, time};
use super::{Backend, SqlStore};
use crate::store::StoreError;
use crate::store::cluster::ClusterStore;
use crate::store::cluster::{CollectorRow, QueuedBatch};

#[async_trait]
impl<DB> ClusterStore for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> i64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> f64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> bool: Type<DB> + Decode<'a, DB>,
    for<'a> String: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Vec<u8>: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
{
    fn shared(&self) -> bool {
        DB::SHARED
    }

    async fn queued_batches(&self, limit: u32) -> Result<Vec<QueuedBatch>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, agent, received_ms, records FROM evaluation_queue ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("records")?;
                Ok(QueuedBatch {
                    id: r.try_get("id")?,
                    agent: r.try_get("agent")?,
                    received: time(r.try_get("received_ms")?)?,
                    records: serde_json::from_str(&text).map_err(|e| e.to_string()),
                })
            })
            .collect()
    }

    async fn dequeue_batches(&self, ids: &[i64]) -> Result<(), StoreError> {
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

    async fn announce(&self, me: &CollectorRow) -> Result<(), StoreError> {
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

    async fn collectors(&self, since: DateTime<Utc>) -> Result<Vec<CollectorRow>, StoreError> {
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
                Ok(CollectorRow {
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
