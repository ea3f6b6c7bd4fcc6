//! `GET /api/v1/metrics?agent=&name=&labels=&from=&to=&step=`: one metric of one agent, every
//! series (label set) matching `labels`, aggregated per step: avg, min, max, last and the number
//! of samples.
//!
//! Steps under a minute read raw samples (kept `raw_retention`, windows of at most 6 hours);
//! steps of a minute or more read per-minute rollups (windows of at most 31 days), of an hour
//! or more per-hour rollups. A step is at most 366 days, a window at most 20,000 steps, and an
//! answer at most 500,000 points; past any of these the answer is 400 with a sentence, so no
//! query makes the store read years of fine rows. Steps without samples are left out. Counters are returned as stored (running totals); a rate is
//! the difference of `last` between steps.

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

/// Most steps in a window.
const MAX_STEPS: i64 = 20_000;
/// Longest window read from raw samples (steps under a minute).
const MAX_RAW_WINDOW: ChronoDuration = ChronoDuration::hours(6);
/// Longest window read from per-minute rollups (steps under an hour): 44,640 rows a series.
const MAX_MINUTE_WINDOW: ChronoDuration = ChronoDuration::days(31);
/// Longest step: a year and a day.
const MAX_STEP: Duration = Duration::from_secs(366 * 86_400);
/// Most points (series × steps) in one answer.
const MAX_POINTS: usize = 500_000;

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
    let step_ms = step_millis(step)?;
    let (from, to) = window(p.from.as_deref(), p.to.as_deref(), ChronoDuration::hours(1))?;
    if (to - from).num_milliseconds() / step_ms > MAX_STEPS {
        return Err(AppError::BadRequest(format!(
            "more than {MAX_STEPS} steps: use a larger step or a shorter window"
        )));
    }
    let tier = match step_ms {
        ms if ms < 60_000 => None,
        ms if ms < 3_600_000 => Some(Tier::Minute),
        _ => Some(Tier::Hour),
    };
    if tier.is_none() && to - from > MAX_RAW_WINDOW {
        return Err(AppError::BadRequest(
            "steps under 1m read raw samples, for windows of at most 6h: use step=1m or more"
                .into(),
        ));
    }
    if matches!(tier, Some(Tier::Minute)) && to - from > MAX_MINUTE_WINDOW {
        return Err(AppError::BadRequest(
            "steps under 1h read per-minute rollups, for windows of at most 31d: use step=1h or more"
                .into(),
        ));
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
    if series.iter().map(|s| s.points.len()).sum::<usize>() > MAX_POINTS {
        return Err(AppError::BadRequest(format!(
            "more than {MAX_POINTS} points (series × steps): narrow labels, use a larger step or a shorter window"
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

/// A step in milliseconds, from 1 s to [`MAX_STEP`]: never zero (a divisor) and never one
/// whose milliseconds do not fit an `i64` (which wrapped to zero or below).
fn step_millis(step: Duration) -> Result<i64, AppError> {
    if step < Duration::from_secs(1) {
        return Err(AppError::BadRequest("step must be at least 1s".into()));
    }
    if step > MAX_STEP {
        return Err(AppError::BadRequest("step must be at most 366d".into()));
    }
    i64::try_from(step.as_millis())
        .map_err(|_| AppError::BadRequest("step must be at most 366d".into()))
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
    fn steps_are_refused_below_a_second_above_a_year_and_never_wrap() {
        assert_eq!(step_millis(Duration::from_secs(60)).ok(), Some(60_000));
        assert_eq!(step_millis(MAX_STEP).ok(), Some(366 * 86_400_000));
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_STEP + Duration::from_secs(1),
            // Its milliseconds as an i64 were 0: the division by zero of issue #28.
            Duration::from_millis(1 << 63) * 2,
            Duration::MAX,
        ] {
            assert!(
                matches!(step_millis(bad), Err(AppError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
