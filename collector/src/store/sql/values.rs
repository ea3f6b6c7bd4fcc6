//! Values between Rust and the tables: times as Unix milliseconds, labels as JSON text, the
//! rollup tiers' numbers, and the few columns both backends' writes fill the same way.

use crate::store::rollup;
use crate::store::{StoreError, Tier};

pub(crate) const TIER_MINUTE: i64 = 1;
pub(crate) const TIER_HOUR: i64 = 2;
const DAY_MS: i64 = 86_400_000;

/// The tier's number in the rollup tables.
pub(crate) fn tier_code(t: Tier) -> i64 {
    match t {
        Tier::Minute => TIER_MINUTE,
        Tier::Hour => TIER_HOUR,
    }
}

/// Start of the UTC day of `ms`.
pub(crate) fn day_of(ms: i64) -> i64 {
    rollup::bucket_start(ms, DAY_MS)
}

/// The phase timings worth a column: `None` when only the total is known, which `latency_ms`
/// already holds (a fifth of a raw row otherwise).
pub(crate) fn stored_timings(t: &lookout_protocol::Timings) -> Option<String> {
    let phases = lookout_protocol::Timings {
        total_ms: None,
        ..t.clone()
    };
    (phases != lookout_protocol::Timings::default())
        .then(|| serde_json::to_string(&phases).unwrap_or_default())
}

pub(crate) fn ms(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms is out of range")))
}

pub(crate) fn labels_json(labels: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn parse_labels(
    s: &str,
) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("labels {s:?}: {e}")))
}

pub(crate) fn metric_type(t: lookout_protocol::MetricType) -> &'static str {
    match t {
        lookout_protocol::MetricType::Gauge => "gauge",
        lookout_protocol::MetricType::Counter => "counter",
    }
}
