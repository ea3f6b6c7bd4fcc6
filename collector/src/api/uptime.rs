//! `GET /api/v1/checks/{name}/uptime?agent=&from=&to=&step=1m|1h|1d`: uptime and latency per
//! step, answered from the rollups (never from raw results), so 90 days cost 2,160 hourly rows a
//! series whatever the check's interval.
//!
//! `1m` reads per-minute rollups, `1h` per-hour ones, `1d` merges per-hour rollups into UTC days.
//! Without `agent`, all agents' buckets merge. Steps with no result are left out. Rollups lag raw
//! data by at most a few seconds (`maintenance::ROLLUP_EVERY`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Reader;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::rollup::{CheckAgg, bucket_start};
use crate::store::{RollupQuery, Tier};

use super::{ensure_check_exists, window};

/// Query of the uptime endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UptimeParams {
    agent: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
}

/// One step of the answer.
#[derive(Debug, Serialize, PartialEq)]
pub struct UptimePoint {
    /// Start of the step (RFC 3339); absent for the whole-window total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Successful results over all results, 0..1.
    pub uptime: f64,
    /// Results.
    pub count: u64,
    /// Failed results.
    pub failures: u64,
    /// Mean latency, ms.
    pub latency_avg_ms: f64,
    /// Median latency, ms (within 4.3%).
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency, ms (within 4.3%).
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency, ms (within 4.3%).
    pub latency_p99_ms: Option<f64>,
}

impl UptimePoint {
    fn from_agg(time: Option<DateTime<Utc>>, a: &CheckAgg) -> Self {
        let n = a.count.max(1) as f64;
        Self {
            time,
            uptime: (a.count - a.failures) as f64 / n,
            count: a.count,
            failures: a.failures,
            latency_avg_ms: a.latency_sum_ms / n,
            latency_p50_ms: a.hist.quantile(0.50),
            latency_p95_ms: a.hist.quantile(0.95),
            latency_p99_ms: a.hist.quantile(0.99),
        }
    }
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct UptimeAnswer {
    /// The check.
    pub check: String,
    /// The agent asked for, or null for all.
    pub agent: Option<String>,
    /// `1m`, `1h` or `1d`.
    pub step: String,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// The whole window.
    pub total: UptimePoint,
    /// Each step with results, oldest first.
    pub points: Vec<UptimePoint>,
}

/// `GET /api/v1/checks/{name}/uptime`.
pub async fn uptime(
    State(state): State<Arc<AppState>>,
    _: Reader,
    Path(name): Path<String>,
    params: Result<Query<UptimeParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UptimeAnswer>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let step = p.step.unwrap_or_else(|| "1h".into());
    let (tier, step_ms, default_span) = match step.as_str() {
        "1m" => (Tier::Minute, 60_000, ChronoDuration::hours(1)),
        "1h" => (Tier::Hour, 3_600_000, ChronoDuration::days(1)),
        "1d" => (Tier::Hour, 86_400_000, ChronoDuration::days(90)),
        other => {
            return Err(AppError::BadRequest(format!(
                "step={other:?}: expected 1m, 1h or 1d"
            )));
        }
    };
    let (from, to) = window(p.from.as_deref(), p.to.as_deref(), default_span)?;
    let max_steps = state.config().server.max_query_steps;
    super::metrics::too_many_steps(from, to, step_ms, max_steps)?;
    ensure_check_exists(&state, &name).await?;
    // Whole buckets: a step that starts before `from` is included when it overlaps.
    let aligned_from =
        DateTime::from_timestamp_millis(bucket_start(from.timestamp_millis(), step_ms))
            .unwrap_or(from);
    let rows = state
        .store
        .check_rollups(&RollupQuery {
            name: name.clone(),
            agent: p.agent.clone(),
            tier,
            from: aligned_from,
            to,
        })
        .await?;
    let mut steps: BTreeMap<i64, CheckAgg> = BTreeMap::new();
    let mut total = CheckAgg::default();
    for r in &rows {
        let agg = CheckAgg {
            count: r.count,
            failures: r.failures,
            latency_sum_ms: r.latency_sum_ms,
            hist: r.latency.clone(),
        };
        total.merge(&agg);
        steps
            .entry(bucket_start(r.bucket.timestamp_millis(), step_ms))
            .or_default()
            .merge(&agg);
    }
    Ok(Json(UptimeAnswer {
        check: name,
        agent: p.agent,
        step,
        from,
        to,
        total: UptimePoint::from_agg(None, &total),
        points: steps
            .iter()
            .map(|(t, a)| UptimePoint::from_agg(DateTime::from_timestamp_millis(*t), a))
            .collect(),
    }))
}
