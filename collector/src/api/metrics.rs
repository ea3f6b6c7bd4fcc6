//! `GET /api/v1/metrics?agent=&name=&labels=&from=&to=&step=`: one metric of one agent, every
//! series (label set) matching `labels`, aggregated per step: avg, min, max, last and the number
//! of samples.
//!
//! Steps under a minute read raw samples (kept `raw_retention`, windows of at most
//! `[server] max_raw_query_window`, 6 hours); steps of a minute or more read per-minute rollups
//! (windows of at most `max_minute_query_window`, 31 days), of an hour or more per-hour
//! rollups. A step is at least 1 s and at most `max_query_step` (366 days), a window at most
//! `max_query_steps` steps (20,000), and an answer at most `max_query_points` points (500,000);
//! past any of these the answer is 400 with a sentence that names the key, so no query makes
//! the store read years of fine rows. Steps without samples are left out. Counters are
//! returned as stored (running totals); a rate is the difference of `last` between steps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Reader;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::rollup::bucket_start;
use crate::store::{MetricRollup, RollupQuery, Tier};

use super::window;

/// Query of the metrics endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    agent: Option<String>,
    name: Option<String>,
    labels: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
}

/// One step of one series.
#[derive(Debug, Serialize, PartialEq)]
pub struct Point {
    /// Start of the step.
    pub time: DateTime<Utc>,
    /// Mean of the samples.
    pub avg: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// The latest sample.
    pub last: f64,
    /// Samples in the step.
    pub count: u64,
}

/// One series.
#[derive(Debug, Serialize)]
pub struct Series {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its steps, oldest first.
    pub points: Vec<Point>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct MetricsAnswer {
    /// The agent.
    pub agent: String,
    /// The metric.
    pub name: String,
    /// The step, as asked.
    pub step: String,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Matching series, by labels.
    pub series: Vec<Series>,
}

/// A window of more than `[server] max_query_steps` steps (also the uptime endpoint's bound).
pub(super) fn too_many_steps(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_ms: i64,
    max_steps: usize,
) -> Result<(), AppError> {
    let steps = (to - from).num_milliseconds() / step_ms.max(1);
    if u64::try_from(steps).unwrap_or(0) > max_steps as u64 {
        return Err(AppError::BadRequest(format!(
            "more than {max_steps} steps ([server] max_query_steps): use a larger step or a shorter window"
        )));
    }
    Ok(())
}

/// A window longer than `max`, the bound `key` sets for the rows a step of this size reads.
fn window_too_long(
    span: ChronoDuration,
    max: Duration,
    key: &str,
    rows: &str,
    larger: &str,
) -> Result<(), AppError> {
    let max_span = ChronoDuration::from_std(max).unwrap_or(ChronoDuration::MAX);
    if span > max_span {
        return Err(AppError::BadRequest(format!(
            "{rows}, for windows of at most {} ([server] {key}): use step={larger} or more",
            lookout_config::duration::short(&max)
        )));
    }
    Ok(())
}

fn required(v: Option<String>, name: &str) -> Result<String, AppError> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::BadRequest(format!("{name} is required")))
}

/// Parses `k=v,k2=v2`.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, AppError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(AppError::BadRequest(format!(
                "labels: {p:?} is not key=value"
            ))),
        })
        .collect()
}

/// `GET /api/v1/metrics`.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    _: Reader,
    params: Result<Query<MetricsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MetricsAnswer>, AppError> {
    let Query(p) = params.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let agent = required(p.agent, "agent")?;
    let name = required(p.name, "name")?;
    let wanted = parse_labels(p.labels.as_deref().unwrap_or(""))?;
    let step_text = p.step.unwrap_or_else(|| "1m".into());
    let step: Duration = lookout_config::duration::parse(&step_text)
        .map_err(|e| AppError::BadRequest(format!("step: {e}")))?;
    let bounds = state.config().server.clone();
    let step_ms = step_millis(step, bounds.max_query_step)?;
    let (from, to) = window(p.from.as_deref(), p.to.as_deref(), ChronoDuration::hours(1))?;
    too_many_steps(from, to, step_ms, bounds.max_query_steps)?;
    let tier = match step_ms {
        ms if ms < 60_000 => None,
        ms if ms < 3_600_000 => Some(Tier::Minute),
        _ => Some(Tier::Hour),
    };
    match tier {
        None => window_too_long(
            to - from,
            bounds.max_raw_query_window,
            "max_raw_query_window",
            "steps under 1m read raw samples",
            "1m",
        )?,
        Some(Tier::Minute) => window_too_long(
            to - from,
            bounds.max_minute_query_window,
            "max_minute_query_window",
            "steps under 1h read per-minute rollups",
            "1h",
        )?,
        Some(Tier::Hour) => {}
    }
    let aligned = DateTime::from_timestamp_millis(bucket_start(from.timestamp_millis(), step_ms))
        .unwrap_or(from);
    let q = RollupQuery {
        name: name.clone(),
        agent: Some(agent.clone()),
        tier: tier.unwrap_or(Tier::Minute),
        from: aligned,
        to,
    };
    let rows = match tier {
        None => state.store.metric_samples(&q).await?,
        Some(_) => state.store.metric_rollups(&q).await?,
    };
    let series = aggregate(rows, &wanted, step_ms);
    let max_points = bounds.max_query_points;
    if series.iter().map(|s| s.points.len()).sum::<usize>() > max_points {
        return Err(AppError::BadRequest(format!(
            "more than {max_points} points (series × steps, [server] max_query_points): narrow labels, use a larger step or a shorter window"
        )));
    }
    Ok(Json(MetricsAnswer {
        agent,
        name,
        step: step_text,
        from,
        to,
        series,
    }))
}

/// A step in milliseconds, from 1 s to `max` (`[server] max_query_step`): never zero (a
/// divisor) and never one whose milliseconds do not fit an `i64` (which wrapped to zero or
/// below).
fn step_millis(step: Duration, max: Duration) -> Result<i64, AppError> {
    if step < Duration::from_secs(1) {
        return Err(AppError::BadRequest("step must be at least 1s".into()));
    }
    let too_long = || {
        AppError::BadRequest(format!(
            "step must be at most {} ([server] max_query_step)",
            lookout_config::duration::short(&max)
        ))
    };
    if step > max {
        return Err(too_long());
    }
    i64::try_from(step.as_millis()).map_err(|_| too_long())
}

/// Groups buckets (oldest first) by series and step; `last` is the latest bucket's.
fn aggregate(
    rows: Vec<MetricRollup>,
    wanted: &BTreeMap<String, String>,
    step_ms: i64,
) -> Vec<Series> {
    let mut series: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, MetricRollup>> =
        BTreeMap::new();
    for r in rows {
        if !wanted.iter().all(|(k, v)| r.labels.get(k) == Some(v)) {
            continue;
        }
        let start = bucket_start(r.bucket.timestamp_millis(), step_ms);
        let steps = series.entry(r.labels.clone()).or_default();
        match steps.get_mut(&start) {
            Some(acc) => {
                acc.count += r.count;
                acc.sum += r.sum;
                acc.min = acc.min.min(r.min);
                acc.max = acc.max.max(r.max);
                acc.last = r.last;
            }
            None => {
                steps.insert(start, r);
            }
        }
    }
    series
        .into_iter()
        .map(|(labels, steps)| Series {
            labels,
            points: steps
                .into_iter()
                .filter_map(|(start, a)| {
                    Some(Point {
                        time: DateTime::from_timestamp_millis(start)?,
                        avg: a.sum / a.count.max(1) as f64,
                        min: a.min,
                        max: a.max,
                        last: a.last,
                        count: a.count,
                    })
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_refused_below_a_second_above_the_bound_and_never_wrap() {
        let max = lookout_config::ServerConfig::default().max_query_step;
        assert_eq!(step_millis(Duration::from_secs(60), max).ok(), Some(60_000));
        assert_eq!(step_millis(max, max).ok(), Some(366 * 86_400_000));
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            max + Duration::from_secs(1),
            // Its milliseconds as an i64 were 0: the division by zero of issue #28.
            Duration::from_millis(1 << 63) * 2,
            Duration::MAX,
        ] {
            assert!(
                matches!(step_millis(bad, max), Err(AppError::BadRequest(_))),
                "{bad:?}"
            );
        }
        // Whatever the bound, a step whose milliseconds do not fit is refused, not wrapped.
        for bad in [Duration::from_millis(1 << 63) * 2, Duration::MAX] {
            assert!(
                matches!(
                    step_millis(bad, Duration::MAX),
                    Err(AppError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
    }
}
