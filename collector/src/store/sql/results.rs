//! Check results read back: whether a check is known, the latest result of each (check, agent),
//! raw results, and the per-hour, per-day and per-minute rollups.

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::values::{ms, time};
use super::{Backend, SqlStore};
use crate::store::histogram::{Histogram, HistogramError};
use crate::store::rollup::{bucket_start, decode_minutes};
use crate::store::{
    CheckRollup, CheckTotal, ResultQuery, ResultRow, RollupQuery, StoreError, Tier, TotalsWidth,
};

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
    pub(super) async fn select_check_known(&self, name: &str) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM check_series WHERE check_name = $1 LIMIT 1")
                .bind(name)
                .fetch_optional(&self.read)
                .await?;
        Ok(found.is_some())
    }

    pub(super) async fn select_latest_results(&self) -> Result<Vec<ResultRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.check_name, s.agent, s.check_type, l.time_ms, l.ok, l.latency_ms, l.error, l.status_code,
                    l.timings, l.cert_expiry_ms
             FROM check_series s JOIN check_latest l ON l.series_id = s.id
             ORDER BY s.check_name, s.agent",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(Self::result_row).collect()
    }

    pub(super) async fn select_results(
        &self,
        q: &ResultQuery,
    ) -> Result<Vec<ResultRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.check_name, s.agent, s.check_type, r.time_ms, r.ok, r.latency_ms, r.error, r.status_code,
                    r.timings, r.cert_expiry_ms
             FROM check_series s CROSS JOIN check_results r
             WHERE r.series_id = s.id AND s.check_name = $1 AND ($2 IS NULL OR s.agent = $2) AND r.time_ms BETWEEN $3 AND $4
             ORDER BY r.time_ms DESC, r.id DESC LIMIT $5",
        )
        .bind(&q.check)
        .bind(&q.agent)
        .bind(ms(&q.from))
        .bind(ms(&q.to))
        .bind(i64::from(q.limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(Self::result_row).collect()
    }

    pub(super) async fn select_check_totals(
        &self,
        width: TotalsWidth,
        from: DateTime<Utc>,
    ) -> Result<Vec<CheckTotal>, StoreError> {
        // Series first, then each one's rows by key (see store/sql/mod.rs on CROSS JOIN);
        // the agents' rows of one check merge here.
        let sql = match width {
            TotalsWidth::Day => {
                "SELECT s.check_name, d.day_ms AS bucket, CAST(SUM(d.count) AS BIGINT) AS count,
               CAST(SUM(d.failures) AS BIGINT) AS failures, SUM(d.latency_sum) AS latency_sum
             FROM check_series s CROSS JOIN check_days d
             WHERE d.series_id = s.id AND d.day_ms >= $1
             GROUP BY s.check_name, d.day_ms"
            }
            TotalsWidth::Hour => {
                "SELECT s.check_name, r.hour_ms AS bucket, CAST(SUM(r.count) AS BIGINT) AS count,
               CAST(SUM(r.failures) AS BIGINT) AS failures, SUM(r.latency_sum) AS latency_sum
             FROM check_series s CROSS JOIN check_rollups r
             WHERE r.series_id = s.id AND r.hour_ms >= $1
             GROUP BY s.check_name, r.hour_ms"
            }
        };
        let rows = sqlx::query(sql)
            .bind(ms(&from))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckTotal {
                    check: r.try_get("check_name")?,
                    bucket_ms: r.try_get("bucket")?,
                    count: r.try_get::<i64, _>("count")? as u64,
                    failures: r.try_get::<i64, _>("failures")? as u64,
                    latency_sum_ms: r.try_get("latency_sum")?,
                })
            })
            .collect()
    }

    pub(super) async fn select_check_rollups(
        &self,
        q: &RollupQuery,
    ) -> Result<Vec<CheckRollup>, StoreError> {
        let corrupt = |e: HistogramError| StoreError::Corrupt(e.to_string());
        let (from, to) = (ms(&q.from), ms(&q.to));
        // The packed minutes are most of a row: read them only when asked for.
        let sql = match q.tier {
            Tier::Hour => "SELECT s.agent, r.hour_ms, r.count, r.failures, r.latency_sum, r.hist, NULL AS minutes
             FROM check_series s CROSS JOIN check_rollups r
             WHERE r.series_id = s.id AND s.check_name = $1 AND ($2 IS NULL OR s.agent = $2)
               AND r.hour_ms BETWEEN $3 AND $4",
            Tier::Minute => "SELECT s.agent, r.hour_ms, r.count, r.failures, r.latency_sum, r.hist, r.minutes
             FROM check_series s CROSS JOIN check_rollups r
             WHERE r.series_id = s.id AND s.check_name = $1 AND ($2 IS NULL OR s.agent = $2)
               AND r.hour_ms BETWEEN $3 AND $4",
        };
        let rows = sqlx::query(sql)
            .bind(&q.name)
            .bind(&q.agent)
            .bind(bucket_start(from, Tier::Hour.width_ms()))
            .bind(to)
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let agent: String = r.try_get("agent")?;
            let hour: i64 = r.try_get("hour_ms")?;
            match q.tier {
                Tier::Hour => {
                    if hour < from {
                        continue;
                    }
                    out.push(CheckRollup {
                        agent,
                        bucket: time(hour)?,
                        count: r.try_get::<i64, _>("count")? as u64,
                        failures: r.try_get::<i64, _>("failures")? as u64,
                        latency_sum_ms: r.try_get("latency_sum")?,
                        latency: Histogram::decode(&r.try_get::<Vec<u8>, _>("hist")?)
                            .map_err(corrupt)?,
                    });
                }
                Tier::Minute => {
                    let Some(packed) = r.try_get::<Option<Vec<u8>>, _>("minutes")? else {
                        continue;
                    };
                    for (m, a) in decode_minutes(&packed).map_err(corrupt)? {
                        let start = hour + i64::from(m) * 60_000;
                        if start < from || start > to {
                            continue;
                        }
                        out.push(CheckRollup {
                            agent: agent.clone(),
                            bucket: time(start)?,
                            count: a.count,
                            failures: a.failures,
                            latency_sum_ms: a.latency_sum_ms,
                            latency: a.hist,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| (a.bucket, &a.agent).cmp(&(b.bucket, &b.agent)));
        Ok(out)
    }

    fn result_row(r: &DB::Row) -> Result<ResultRow, StoreError> {
        Ok(ResultRow {
            check: r.try_get("check_name")?,
            agent: r.try_get("agent")?,
            time: time(r.try_get("time_ms")?)?,
            ok: r.try_get("ok")?,
            latency_ms: r.try_get("latency_ms")?,
            error: r.try_get("error")?,
            status_code: r
                .try_get::<Option<i64>, _>("status_code")?
                .and_then(|s| u16::try_from(s).ok()),
            cert_expiry: r
                .try_get::<Option<i64>, _>("cert_expiry_ms")?
                .map(time)
                .transpose()?,
            timings: r
                .try_get::<Option<String>, _>("timings")?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            check_type: r.try_get("check_type")?,
        })
    }
}
