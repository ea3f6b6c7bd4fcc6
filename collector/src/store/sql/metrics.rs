//! Metrics read back: the latest sample of each series, rollups, and raw samples out of their
//! blocks (store/blocks.rs).

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::values::{ms, parse_labels, tier_code, time};
use super::{Backend, SqlStore};
use crate::store::blocks::unpack;
use crate::store::{MetricRollup, MetricRow, RollupQuery, StoreError};

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
    pub(super) async fn select_latest_metrics(
        &self,
        agent: &str,
    ) -> Result<Vec<MetricRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.name, s.labels, s.metric_type, l.time_ms, l.value
             FROM metric_series s JOIN metric_latest l ON l.series_id = s.id
             WHERE s.agent = $1 ORDER BY s.name, s.labels",
        )
        .bind(agent)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MetricRow {
                    name: r.try_get("name")?,
                    labels: parse_labels(r.try_get("labels")?)?,
                    time: time(r.try_get("time_ms")?)?,
                    value: r.try_get("value")?,
                    metric_type: r.try_get("metric_type")?,
                })
            })
            .collect()
    }

    pub(super) async fn select_metric_rollups(
        &self,
        q: &RollupQuery,
    ) -> Result<Vec<MetricRollup>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.labels, r.bucket_ms, r.count, r.sum, r.min, r.max, r.last
             FROM metric_series s CROSS JOIN metric_rollups r
             WHERE r.series_id = s.id AND r.tier = $1 AND s.name = $2 AND s.agent = $3 AND r.bucket_ms BETWEEN $4 AND $5
             ORDER BY r.bucket_ms, s.labels",
        )
        .bind(tier_code(q.tier))
        .bind(&q.name)
        .bind(q.agent.as_deref().unwrap_or_default())
        .bind(ms(&q.from))
        .bind(ms(&q.to))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MetricRollup {
                    labels: parse_labels(r.try_get("labels")?)?,
                    bucket: time(r.try_get("bucket_ms")?)?,
                    count: r.try_get::<i64, _>("count")? as u64,
                    sum: r.try_get("sum")?,
                    min: r.try_get("min")?,
                    max: r.try_get("max")?,
                    last: r.try_get("last")?,
                })
            })
            .collect()
    }

    pub(super) async fn select_metric_samples(
        &self,
        q: &RollupQuery,
    ) -> Result<Vec<MetricRollup>, StoreError> {
        let agent = q.agent.as_deref().unwrap_or_default();
        let mut labels = std::collections::HashMap::new();
        for r in sqlx::query("SELECT id, labels FROM metric_series WHERE name = $1 AND agent = $2")
            .bind(&q.name)
            .bind(agent)
            .fetch_all(&self.read)
            .await?
        {
            labels.insert(
                r.try_get::<i64, _>("id")?,
                parse_labels(r.try_get("labels")?)?,
            );
        }
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        // The agent's blocks of the window hold every series of the agent; the metric's
        // are kept. In block order, so that of samples at one time the earlier stored
        // comes first.
        let (from, to) = (ms(&q.from), ms(&q.to));
        let blocks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, data FROM metric_sample_blocks
             WHERE agent = $1 AND max_time_ms >= $2 AND min_time_ms <= $3 ORDER BY id",
        )
        .bind(agent)
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        let mut samples = Vec::new();
        for (id, data) in &blocks {
            samples.extend(
                unpack(*id, data)?
                    .into_iter()
                    .filter(|s| labels.contains_key(&s.series) && (from..=to).contains(&s.time_ms)),
            );
        }
        samples.sort_by_key(|s| s.time_ms);
        samples
            .into_iter()
            .map(|s| {
                Ok(MetricRollup {
                    labels: labels[&s.series].clone(),
                    bucket: time(s.time_ms)?,
                    count: 1,
                    sum: s.value,
                    min: s.value,
                    max: s.value,
                    last: s.value,
                })
            })
            .collect()
    }
}
