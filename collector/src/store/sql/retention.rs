//! Retention: each kind of data deleted in bounded chunks, raw rows only once rolled up.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::values::{TIER_HOUR, TIER_MINUTE, day_of, ms};
use super::{Backend, RowsAffected, SqlStore};
use crate::store::blocks::{Block, unpack};
use crate::store::rollup::DAY_MS;
use crate::store::{Retention, StoreError};

/// Retention's statements, each deleting (or emptying) at most a chunk of rows older than a
/// cutoff through a time index (schema v7), so that a pass costs what it deletes, not a
/// statement per series. The raw tables': $1 the last id rolled up, $2 the cutoff, $3 the
/// chunk. Check results before the last rolled up go: the last stays, so that SQLite, which
/// gives a new row the largest id plus one, never gives an id at or below the roll-up's cursor
/// (which the roll-up would pass over) after retention emptied the table. Sample blocks' ids
/// are never reused (AUTOINCREMENT, schema v9): every rolled-up block may go.
pub(crate) const RETENTION_RAW: &str = "DELETE FROM check_results WHERE id IN
    (SELECT id FROM check_results WHERE time_ms < $2 AND id < $1 ORDER BY time_ms LIMIT $3)";
/// Metric sample blocks wholly older than the cutoff, with the same parameters; answers each
/// deleted block's sample count.
pub(crate) const RETENTION_SAMPLE_BLOCKS: &str = "DELETE FROM metric_sample_blocks WHERE id IN
    (SELECT id FROM metric_sample_blocks WHERE min_time_ms < $2 AND max_time_ms < $2 AND id <= $1
     ORDER BY min_time_ms LIMIT $3) RETURNING samples";
/// Blocks that straddle the cutoff, to be written again without their old samples; the same
/// parameters.
pub(crate) const STRADDLING_SAMPLE_BLOCKS: &str = "SELECT id, data FROM metric_sample_blocks
    WHERE min_time_ms < $2 AND max_time_ms >= $2 AND id <= $1 ORDER BY min_time_ms LIMIT $3";
/// The check rollups': $1 the last bucket start that goes (its bucket ended before the cutoff),
/// $2 the chunk. Per-minute parts are emptied, hours and days deleted.
pub(crate) const RETENTION_CHECK_ROLLUPS: [&str; 3] = [
    "UPDATE check_rollups SET minutes = NULL WHERE (series_id, hour_ms) IN
     (SELECT series_id, hour_ms FROM check_rollups
      WHERE minutes IS NOT NULL AND hour_ms <= $1 ORDER BY hour_ms LIMIT $2)",
    "DELETE FROM check_rollups WHERE (series_id, hour_ms) IN
     (SELECT series_id, hour_ms FROM check_rollups WHERE hour_ms <= $1 ORDER BY hour_ms LIMIT $2)",
    "DELETE FROM check_days WHERE (series_id, day_ms) IN
     (SELECT series_id, day_ms FROM check_days WHERE day_ms <= $1 ORDER BY day_ms LIMIT $2)",
];
/// The metric rollups': $1 the tier, $2 the cutoff (bucket starts before it go), $3 the chunk.
pub(crate) const RETENTION_METRIC_ROLLUPS: &str =
    "DELETE FROM metric_rollups WHERE (tier, series_id, bucket_ms) IN
     (SELECT tier, series_id, bucket_ms FROM metric_rollups
      WHERE tier = $1 AND bucket_ms < $2 ORDER BY bucket_ms LIMIT $3)";

impl<DB> SqlStore<DB>
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
    pub(super) async fn delete_expired(
        &self,
        policy: &Retention,
        now: DateTime<Utc>,
        chunk: u32,
    ) -> Result<u64, StoreError> {
        let cutoff = |d: std::time::Duration| ms(&now) - d.as_millis() as i64;
        let chunk = i64::from(chunk);
        let mut deleted = 0u64;
        // Raw rows go only once rolled up (id at or below the cursor).
        let mut tx = self.write.begin().await?;
        let raw_results = Self::cursor(&mut tx, "check_results").await?;
        let raw_samples = Self::cursor(&mut tx, "metric_sample_blocks").await?;
        tx.commit().await?;
        const HOUR_MS: i64 = 3_600_000;
        let [minutes, hours, days] = RETENTION_CHECK_ROLLUPS;
        let jobs: [(&str, &[i64]); 6] = [
            (RETENTION_RAW, &[raw_results, cutoff(policy.raw), chunk]),
            (minutes, &[cutoff(policy.minute) - HOUR_MS, chunk]),
            (hours, &[cutoff(policy.hour) - HOUR_MS, chunk]),
            (days, &[cutoff(policy.hour) - DAY_MS, chunk]),
            (
                RETENTION_METRIC_ROLLUPS,
                &[TIER_MINUTE, cutoff(policy.minute), chunk],
            ),
            (
                RETENTION_METRIC_ROLLUPS,
                &[TIER_HOUR, cutoff(policy.hour), chunk],
            ),
        ];
        // A transaction each, so the one SQLite writer is held for one chunk at a time.
        for (sql, params) in jobs {
            let mut q = sqlx::query(sql);
            for p in params {
                q = q.bind(*p);
            }
            deleted += q.execute(&self.write).await?.rows_affected();
        }
        let mut tx = self.write.begin().await?;
        deleted += sqlx::query(
            "DELETE FROM ingested_batches WHERE (agent, batch_id) IN
             (SELECT agent, batch_id FROM ingested_batches WHERE received_ms < $1 ORDER BY received_ms LIMIT $2)",
        )
        .bind(cutoff(policy.raw))
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Finished notifications and ended silences go with the raw data.
        deleted += sqlx::query(
            "DELETE FROM outbox WHERE id IN
             (SELECT id FROM outbox WHERE state <> 'pending' AND done_ms < $1 ORDER BY id LIMIT $2)",
        )
        .bind(cutoff(policy.raw))
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        deleted += sqlx::query(
            "DELETE FROM heartbeat_pings WHERE id IN (SELECT id FROM heartbeat_pings WHERE time_ms < $1 ORDER BY id LIMIT $2)",
        )
        .bind(cutoff(policy.raw))
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        deleted += sqlx::query(
            "DELETE FROM silences WHERE id IN (SELECT id FROM silences WHERE ends_ms < $1 ORDER BY id LIMIT $2)",
        )
        .bind(cutoff(policy.raw))
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Logs: by age, then by size, oldest day first.
        let log_cutoff = cutoff(policy.logs);
        deleted += sqlx::query(
            "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE time_ms < $1 ORDER BY time_ms LIMIT $2)",
        )
        .bind(log_cutoff)
        .bind(chunk)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM log_volume WHERE day_ms < $1")
            .bind(day_of(log_cutoff))
            .execute(&mut *tx)
            .await?;
        let total: Option<i64> =
            sqlx::query_scalar("SELECT CAST(SUM(bytes) AS BIGINT) FROM log_volume")
                .fetch_one(&mut *tx)
                .await?;
        if total.unwrap_or(0) as u64 > policy.log_max_bytes {
            let day: Option<i64> = sqlx::query_scalar("SELECT MIN(day_ms) FROM log_volume")
                .fetch_one(&mut *tx)
                .await?;
            if let Some(day) = day {
                let gone = sqlx::query(
                    "DELETE FROM logs WHERE id IN
                     (SELECT id FROM logs WHERE time_ms >= $1 AND time_ms < $2 ORDER BY time_ms LIMIT $3)",
                )
                .bind(day)
                .bind(day + 86_400_000)
                .bind(chunk)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if gone < chunk as u64 {
                    // The whole day is gone: its volume no longer counts.
                    sqlx::query("DELETE FROM log_volume WHERE day_ms = $1")
                        .bind(day)
                        .execute(&mut *tx)
                        .await?;
                }
                deleted += gone;
            }
        }
        tx.commit().await?;
        // Last, since it reads blocks back: a damaged one (its id in the error) stops
        // only this part of a pass.
        deleted += self
            .expire_sample_blocks(raw_samples, cutoff(policy.raw), chunk)
            .await?;
        Ok(deleted)
    }

    /// Retention of metric samples, past `cutoff` and rolled up (`rolled`, the blocks'
    /// roll-up cursor): blocks wholly older go, and the few that straddle the cutoff
    /// (an agent's backlog mixes old and new) are written again without the old.
    /// Answers the samples deleted.
    async fn expire_sample_blocks(
        &self,
        rolled: i64,
        cutoff: i64,
        chunk: i64,
    ) -> Result<u64, StoreError> {
        let counts: Vec<i64> = sqlx::query_scalar(RETENTION_SAMPLE_BLOCKS)
            .bind(rolled)
            .bind(cutoff)
            .bind(chunk)
            .fetch_all(&self.write)
            .await?;
        let mut deleted: u64 = counts.iter().map(|&n| n as u64).sum();
        let mut tx = self.write.begin().await?;
        let straddling: Vec<(i64, Vec<u8>)> = sqlx::query_as(STRADDLING_SAMPLE_BLOCKS)
            .bind(rolled)
            .bind(cutoff)
            // Each is read and written whole: fewer to a transaction.
            .bind(chunk / 50 + 1)
            .fetch_all(&mut *tx)
            .await?;
        for (id, data) in straddling {
            let mut samples = unpack(id, &data)?;
            let before = samples.len();
            samples.retain(|s| s.time_ms >= cutoff);
            deleted += (before - samples.len()) as u64;
            let block = Block::pack(&mut samples)?;
            sqlx::query(
                "UPDATE metric_sample_blocks SET min_time_ms = $1, max_time_ms = $2,
                   samples = $3, data = $4 WHERE id = $5",
            )
            .bind(block.min_time_ms)
            .bind(block.max_time_ms)
            .bind(block.samples)
            .bind(block.data)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    pub(in crate::store) async fn cursor(
        tx: &mut sqlx::Transaction<'_, DB>,
        name: &str,
    ) -> Result<i64, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT last_id FROM rollup_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(v.unwrap_or(0))
    }
}
