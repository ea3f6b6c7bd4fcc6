//! PostgreSQL's bulk writes, ingest and roll-up: each table's rows of a transaction in one
//! statement, the values bound as arrays and spread by `UNNEST`. With a multi-row `VALUES` of
//! 500 rows, a group of 20,000 samples was 40 statements and a round trip each, and the
//! roll-up read and wrote each (series, hour) of check results apart; over TCP each round trip
//! can also wait on a delayed acknowledgement (sqlx 0.9.0 sets no `TCP_NODELAY`; storage.md).
//! The tables and rules are SQLite's (store/sqlite_write.rs), the arithmetic
//! store/rollup.rs's, and the store conformance suite runs both.

use std::collections::{BTreeMap, HashMap, HashSet};

use lookout_protocol::{Batch, CheckResult, MetricSample, Record};
use sqlx::{Postgres, Row, Transaction};

use super::PgStore;
use crate::store::blocks::{Block, StepSamples};
use crate::store::histogram::{Histogram, HistogramError};
use crate::store::rollup::{
    CheckAgg, RawResult, aggregate_samples, check_buckets, decode_minutes, encode_minutes,
    merge_hour,
};
use crate::store::sql::group::{GroupRows, newest};
use crate::store::sql::series::MadeSeries;
use crate::store::sql::values::{labels_json, metric_type, ms, stored_timings, tier_code};
use crate::store::{IngestOutcome, NewBatch, StoreError, Tier};

/// How a metric rollup bucket merges into the stored one: sums add up, the smaller min and
/// larger max win, the later `last` wins (its time breaks ties as `MetricAgg::merge` does).
const MERGE_METRIC_ROLLUP: &str = " ON CONFLICT (tier, series_id, bucket_ms) DO UPDATE SET
    count = metric_rollups.count + excluded.count, sum = metric_rollups.sum + excluded.sum,
    min = LEAST(metric_rollups.min, excluded.min), max = GREATEST(metric_rollups.max, excluded.max),
    last = CASE WHEN excluded.last_ms >= metric_rollups.last_ms THEN excluded.last ELSE metric_rollups.last END,
    last_ms = GREATEST(metric_rollups.last_ms, excluded.last_ms)";

type Tx<'c> = Transaction<'c, Postgres>;

/// Check results as arrays, one per column of `check_results` and `check_latest`.
#[derive(Default)]
struct ResultColumns {
    series: Vec<i64>,
    time: Vec<i64>,
    ok: Vec<bool>,
    latency: Vec<f64>,
    error: Vec<Option<String>>,
    status: Vec<Option<i64>>,
    timings: Vec<Option<String>>,
    cert_expiry: Vec<Option<i64>>,
}

impl ResultColumns {
    fn of<'a>(rows: impl IntoIterator<Item = (i64, &'a CheckResult)>) -> Self {
        let mut c = Self::default();
        for (series, r) in rows {
            c.series.push(series);
            c.time.push(ms(&r.time));
            c.ok.push(r.ok);
            c.latency.push(r.latency_ms);
            c.error.push(r.error.clone());
            c.status.push(r.status_code.map(i64::from));
            c.timings.push(stored_timings(&r.timings));
            c.cert_expiry.push(r.cert_expiry.as_ref().map(ms));
        }
        c
    }

    async fn insert(self, tx: &mut Tx<'_>, head: &str, tail: &str) -> Result<(), StoreError> {
        if self.series.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "{head} (series_id, time_ms, ok, latency_ms, error, status_code, timings, cert_expiry_ms)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::boolean[], $4::float8[],
               $5::text[], $6::bigint[], $7::text[], $8::bigint[]){tail}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.series)
            .bind(self.time)
            .bind(self.ok)
            .bind(self.latency)
            .bind(self.error)
            .bind(self.status)
            .bind(self.timings)
            .bind(self.cert_expiry)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Samples as arrays, for `metric_latest`.
fn sample_columns<'a>(
    rows: impl IntoIterator<Item = (i64, &'a MetricSample)>,
) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let mut cols = (Vec::new(), Vec::new(), Vec::new());
    for (series, m) in rows {
        cols.0.push(series);
        cols.1.push(ms(&m.time));
        cols.2.push(m.value);
    }
    cols
}

impl PgStore {
    /// Writes a group of batches in `tx`: new series, the batches' rows, their ids. Returns
    /// the series made, for the cache once `tx` is committed.
    pub(super) async fn write_group(
        &self,
        tx: &mut Tx<'static>,
        items: &[NewBatch<'_>],
    ) -> Result<(Vec<IngestOutcome>, Vec<MadeSeries>), StoreError> {
        let mut made = Vec::new();
        let mut ids = Vec::with_capacity(items.len());
        for item in items {
            ids.push(
                self.series_ids(tx, item.agent, item.batch, &mut made)
                    .await?,
            );
        }
        // Which batches are new: the rows the insert made. A batch that comes twice in one
        // group (an agent's retry) is stored the first time.
        let fresh: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO ingested_batches (agent, batch_id, received_ms, records)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])
             ON CONFLICT (agent, batch_id) DO NOTHING RETURNING agent, batch_id",
        )
        .bind(items.iter().map(|i| i.agent).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| i.batch.batch_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(items.iter().map(|i| ms(&i.received)).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| i.batch.records.len() as i64)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut fresh: HashSet<(String, String)> = fresh.into_iter().collect();
        let mut outcomes = Vec::with_capacity(items.len());
        let mut stored = Vec::new();
        for (k, item) in items.iter().enumerate() {
            if fresh.remove(&(item.agent.to_string(), item.batch.batch_id.clone())) {
                outcomes.push(IngestOutcome {
                    stored: item.batch.records.len(),
                    duplicate: false,
                });
                stored.push(k);
            } else {
                outcomes.push(IngestOutcome {
                    stored: 0,
                    duplicate: true,
                });
            }
        }
        if !stored.is_empty() {
            Self::queue_for_evaluation(tx, items, &stored).await?;
            Self::store_rows(tx, GroupRows::split(items, &ids, &stored)).await?;
        }
        Ok((outcomes, made))
    }

    /// Queues the new batches for the leader's evaluation, whichever collector it is: a
    /// PostgreSQL database may be shared (`SHARED`, store/cluster.rs).
    async fn queue_for_evaluation(
        tx: &mut Tx<'_>,
        items: &[NewBatch<'_>],
        stored: &[usize],
    ) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(stored.len());
        for &k in stored {
            records.push(serde_json::to_string(&items[k].batch.records).map_err(|e| {
                StoreError::Corrupt(format!("queueing a batch for evaluation: {e}"))
            })?);
        }
        sqlx::query(
            "INSERT INTO evaluation_queue (agent, received_ms, records)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])",
        )
        .bind(stored.iter().map(|&k| items[k].agent).collect::<Vec<_>>())
        .bind(
            stored
                .iter()
                .map(|&k| ms(&items[k].received))
                .collect::<Vec<_>>(),
        )
        .bind(records)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn store_rows(tx: &mut Tx<'_>, rows: GroupRows<'_>) -> Result<(), StoreError> {
        const LATEST_RESULT: &str = " ON CONFLICT (series_id) DO UPDATE SET
            time_ms = excluded.time_ms, ok = excluded.ok, latency_ms = excluded.latency_ms,
            error = excluded.error, status_code = excluded.status_code,
            timings = excluded.timings, cert_expiry_ms = excluded.cert_expiry_ms
            WHERE excluded.time_ms >= check_latest.time_ms";
        ResultColumns::of(rows.results.iter().copied())
            .insert(tx, "INSERT INTO check_results", "")
            .await?;
        ResultColumns::of(newest(&rows.results))
            .insert(tx, "INSERT INTO check_latest", LATEST_RESULT)
            .await?;

        if !rows.samples.is_empty() {
            let mut blocks = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (agent, mut samples) in rows.sample_blocks {
                let b = Block::pack(&mut samples)?;
                blocks.0.push(agent);
                blocks.1.push(b.min_time_ms);
                blocks.2.push(b.max_time_ms);
                blocks.3.push(b.samples);
                blocks.4.push(b.data);
            }
            sqlx::query(
                "INSERT INTO metric_sample_blocks (agent, min_time_ms, max_time_ms, samples, data)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                   $5::bytea[])",
            )
            .bind(blocks.0)
            .bind(blocks.1)
            .bind(blocks.2)
            .bind(blocks.3)
            .bind(blocks.4)
            .execute(&mut **tx)
            .await?;
            let (series, time, value) = sample_columns(newest(&rows.samples));
            sqlx::query(
                "INSERT INTO metric_latest (series_id, time_ms, value)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[])
                 ON CONFLICT (series_id) DO UPDATE SET time_ms = excluded.time_ms,
                   value = excluded.value
                 WHERE excluded.time_ms >= metric_latest.time_ms",
            )
            .bind(series)
            .bind(time)
            .bind(value)
            .execute(&mut **tx)
            .await?;
        }

        if !rows.logs.is_empty() {
            sqlx::query(
                "INSERT INTO logs (agent, time_ms, source, level, text)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])",
            )
            .bind(rows.logs.iter().map(|(a, _)| *a).collect::<Vec<_>>())
            .bind(rows.logs.iter().map(|(_, l)| ms(&l.time)).collect::<Vec<_>>())
            .bind(rows.logs.iter().map(|(_, l)| l.source.as_str()).collect::<Vec<_>>())
            .bind(rows.logs.iter().map(|(_, l)| l.level.as_deref()).collect::<Vec<_>>())
            .bind(rows.logs.iter().map(|(_, l)| l.text.as_str()).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        for (day, bytes) in rows.log_bytes {
            sqlx::query(
                "INSERT INTO log_volume (day_ms, bytes) VALUES ($1, $2)
                 ON CONFLICT (day_ms) DO UPDATE SET bytes = log_volume.bytes + excluded.bytes",
            )
            .bind(day)
            .bind(bytes)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO agents (name, last_seen_ms)
             SELECT * FROM UNNEST($1::text[], $2::bigint[])
             ON CONFLICT (name) DO UPDATE SET last_seen_ms = CASE
               WHEN agents.last_seen_ms IS NULL OR excluded.last_seen_ms > agents.last_seen_ms
               THEN excluded.last_seen_ms ELSE agents.last_seen_ms END,
           presence = NULL, presence_since_ms = NULL",
        )
        .bind(rows.seen.keys().copied().collect::<Vec<_>>())
        .bind(rows.seen.values().copied().collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The series id of each record of a batch (0 for a log line): from the cache, or made in
    /// `tx`. Ids made are added to `made`, for the cache once `tx` is committed: a rolled-back
    /// batch must leave no id in the cache that the database forgot.
    async fn series_ids(
        &self,
        tx: &mut Tx<'_>,
        agent: &str,
        batch: &Batch,
        made: &mut Vec<MadeSeries>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = vec![0i64; batch.records.len()];
        let missing = self.series.resolve(agent, &batch.records, &mut ids);
        if missing.is_empty() {
            return Ok(ids);
        }
        // All of an agent's new series in one statement per kind (an existing series is left
        // as it is), then the agent's ids in one read: its first batch brings a hundred or more.
        let mut checks: BTreeMap<&str, Option<String>> = BTreeMap::new();
        let mut metrics: BTreeMap<(&str, String), &'static str> = BTreeMap::new();
        for &i in &missing {
            match &batch.records[i] {
                Record::CheckResult(c) => {
                    checks
                        .entry(&c.check)
                        .or_insert_with(|| c.check_type.map(|t| t.to_string()));
                }
                Record::Metric(m) => {
                    metrics
                        .entry((&m.name, labels_json(&m.labels)))
                        .or_insert(metric_type(m.metric_type));
                }
                Record::Log(_) => {}
            }
        }
        let mut check_ids: HashMap<String, i64> = HashMap::new();
        if !checks.is_empty() {
            sqlx::query(
                "INSERT INTO check_series (check_name, agent, check_type)
                 SELECT n, $2, t FROM UNNEST($1::text[], $3::text[]) AS u(n, t)
                 ON CONFLICT (check_name, agent) DO NOTHING",
            )
            .bind(checks.keys().copied().collect::<Vec<_>>())
            .bind(agent)
            .bind(checks.values().cloned().collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, check_name FROM check_series WHERE agent = $1")
                    .bind(agent)
                    .fetch_all(&mut **tx)
                    .await?;
            check_ids = rows.into_iter().map(|(id, name)| (name, id)).collect();
        }
        let mut metric_ids: HashMap<(String, String), i64> = HashMap::new();
        if !metrics.is_empty() {
            sqlx::query(
                "INSERT INTO metric_series (agent, name, labels, metric_type)
                 SELECT $1, n, l, t FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u(n, l, t)
                 ON CONFLICT (agent, name, labels) DO NOTHING",
            )
            .bind(agent)
            .bind(metrics.keys().map(|(n, _)| *n).collect::<Vec<_>>())
            .bind(metrics.keys().map(|(_, l)| l.as_str()).collect::<Vec<_>>())
            .bind(metrics.values().copied().collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
            let rows: Vec<(i64, String, String)> =
                sqlx::query_as("SELECT id, name, labels FROM metric_series WHERE agent = $1")
                    .bind(agent)
                    .fetch_all(&mut **tx)
                    .await?;
            metric_ids = rows
                .into_iter()
                .map(|(id, name, labels)| ((name, labels), id))
                .collect();
        }
        let lost = |what: &str| {
            StoreError::Corrupt(format!("series {what} was not found after it was made"))
        };
        for i in missing {
            match &batch.records[i] {
                Record::CheckResult(c) => {
                    ids[i] = *check_ids.get(&c.check).ok_or_else(|| lost(&c.check))?;
                    made.push(MadeSeries::Check(
                        agent.to_string(),
                        c.check.clone(),
                        ids[i],
                    ));
                }
                Record::Metric(m) => {
                    ids[i] = *metric_ids
                        .get(&(m.name.clone(), labels_json(&m.labels)))
                        .ok_or_else(|| lost(&m.name))?;
                    made.push(MadeSeries::Metric(
                        agent.to_string(),
                        m.name.clone(),
                        m.labels.clone(),
                        ids[i],
                    ));
                }
                Record::Log(_) => {}
            }
        }
        Ok(ids)
    }

    /// One roll-up step: up to `max_rows` new raw rows of each kind, in one transaction.
    pub(super) async fn roll_up_step(&self, max_rows: u32) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let n = Self::roll_up_results(&mut tx, max_rows).await?
            + Self::roll_up_samples(&mut tx, max_rows).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn set_cursor(tx: &mut Tx<'_>, name: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rollup_cursors (name, last_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
        )
        .bind(name)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn roll_up_results(tx: &mut Tx<'_>, max_rows: u32) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id, series_id, time_ms, ok, latency_ms FROM check_results
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(Self::cursor(tx, "check_results").await?)
        .bind(i64::from(max_rows))
        .fetch_all(&mut **tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(0);
        };
        let last_id: i64 = last.try_get("id")?;
        let raw = rows
            .iter()
            .map(|r| {
                Ok(RawResult {
                    series: r.try_get("series_id")?,
                    time_ms: r.try_get("time_ms")?,
                    ok: r.try_get("ok")?,
                    latency_ms: r.try_get("latency_ms")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let buckets = check_buckets(&raw);
        let days: Vec<_> = buckets.days.into_iter().collect();
        sqlx::query(
            "INSERT INTO check_days (series_id, day_ms, count, failures, latency_sum)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::float8[])
             ON CONFLICT (series_id, day_ms) DO UPDATE SET count = check_days.count + excluded.count,
               failures = check_days.failures + excluded.failures,
               latency_sum = check_days.latency_sum + excluded.latency_sum",
        )
        .bind(days.iter().map(|((s, _), _)| *s).collect::<Vec<_>>())
        .bind(days.iter().map(|((_, d), _)| *d).collect::<Vec<_>>())
        .bind(days.iter().map(|(_, a)| a.count as i64).collect::<Vec<_>>())
        .bind(days.iter().map(|(_, a)| a.failures as i64).collect::<Vec<_>>())
        .bind(days.iter().map(|(_, a)| a.latency_sum_ms).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;

        // Each (series, hour) row holds the hour and its minutes: all of the step's read in
        // one statement, merged, and written back in one.
        let keys: (Vec<i64>, Vec<i64>) = buckets.hours.keys().copied().unzip();
        let corrupt = |e: HistogramError| StoreError::Corrupt(e.to_string());
        let mut stored: HashMap<(i64, i64), (CheckAgg, BTreeMap<u8, CheckAgg>)> = HashMap::new();
        let existing = sqlx::query(
            "SELECT r.series_id, r.hour_ms, r.count, r.failures, r.latency_sum, r.hist, r.minutes
             FROM UNNEST($1::bigint[], $2::bigint[]) AS k(series_id, hour_ms)
             JOIN check_rollups r ON r.series_id = k.series_id AND r.hour_ms = k.hour_ms",
        )
        .bind(&keys.0)
        .bind(&keys.1)
        .fetch_all(&mut **tx)
        .await?;
        for e in existing {
            let total = CheckAgg {
                count: e.try_get::<i64, _>("count")? as u64,
                failures: e.try_get::<i64, _>("failures")? as u64,
                latency_sum_ms: e.try_get("latency_sum")?,
                hist: Histogram::decode(&e.try_get::<Vec<u8>, _>("hist")?).map_err(corrupt)?,
            };
            let minutes = match e.try_get::<Option<Vec<u8>>, _>("minutes")? {
                Some(b) => decode_minutes(&b).map_err(corrupt)?,
                None => BTreeMap::new(),
            };
            stored.insert(
                (e.try_get("series_id")?, e.try_get("hour_ms")?),
                (total, minutes),
            );
        }
        let mut merged = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (key, new_minutes) in buckets.hours {
            let (total, minutes) = merge_hour(stored.remove(&key), new_minutes);
            merged.0.push(total.count as i64);
            merged.1.push(total.failures as i64);
            merged.2.push(total.latency_sum_ms);
            merged.3.push(total.hist.encode());
            merged.4.push(encode_minutes(&minutes));
        }
        sqlx::query(
            "INSERT INTO check_rollups (series_id, hour_ms, count, failures, latency_sum, hist, minutes)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
               $5::float8[], $6::bytea[], $7::bytea[])
             ON CONFLICT (series_id, hour_ms) DO UPDATE SET count = excluded.count,
               failures = excluded.failures, latency_sum = excluded.latency_sum,
               hist = excluded.hist, minutes = excluded.minutes",
        )
        .bind(keys.0)
        .bind(keys.1)
        .bind(merged.0)
        .bind(merged.1)
        .bind(merged.2)
        .bind(merged.3)
        .bind(merged.4)
        .execute(&mut **tx)
        .await?;
        Self::set_cursor(tx, "check_results", last_id).await?;
        Ok(raw.len() as u64)
    }

    async fn roll_up_samples(tx: &mut Tx<'_>, max_rows: u32) -> Result<u64, StoreError> {
        // Whole blocks past the cursor, until they make `max_rows` rollup rows (at least
        // one), read a few at a time.
        const BLOCKS: &str = "metric_sample_blocks";
        let mut last_id = Self::cursor(tx, BLOCKS).await?;
        let mut step = StepSamples::new(max_rows);
        while !step.full() {
            let blocks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, data FROM metric_sample_blocks WHERE id > $1 ORDER BY id LIMIT 16",
            )
            .bind(last_id)
            .fetch_all(&mut **tx)
            .await?;
            if blocks.is_empty() {
                break;
            }
            for (id, data) in blocks {
                if step.full() {
                    break;
                }
                step.take(id, &data)?;
                last_id = id;
            }
        }
        let raw = step.raw;
        if raw.is_empty() {
            return Ok(0);
        }
        // Each tier's buckets merged into what is stored, in one statement.
        for tier in [Tier::Minute, Tier::Hour] {
            let buckets: Vec<_> = aggregate_samples(&raw, tier).into_iter().collect();
            let sql = format!(
                "INSERT INTO metric_rollups (tier, series_id, bucket_ms, count, sum, min, max, last, last_ms)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::float8[],
                   $6::float8[], $7::float8[], $8::float8[], $9::bigint[]){}",
                MERGE_METRIC_ROLLUP
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tier_code(tier))
                .bind(buckets.iter().map(|((s, _), _)| *s).collect::<Vec<_>>())
                .bind(buckets.iter().map(|((_, b), _)| *b).collect::<Vec<_>>())
                .bind(
                    buckets
                        .iter()
                        .map(|(_, a)| a.count as i64)
                        .collect::<Vec<_>>(),
                )
                .bind(buckets.iter().map(|(_, a)| a.sum).collect::<Vec<_>>())
                .bind(buckets.iter().map(|(_, a)| a.min).collect::<Vec<_>>())
                .bind(buckets.iter().map(|(_, a)| a.max).collect::<Vec<_>>())
                .bind(buckets.iter().map(|(_, a)| a.last).collect::<Vec<_>>())
                .bind(buckets.iter().map(|(_, a)| a.last_ms).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await?;
        }
        Self::set_cursor(tx, BLOCKS, last_id).await?;
        Ok(raw.len() as u64)
    }
}
