//! `[otlp]`: the agent's OpenTelemetry receiver. Apps on the server send their metrics and logs
//! over OTLP/HTTP to their local agent, which writes them to its spool and ships them like its
//! own records. Off unless `[otlp]` is present; on loopback unless `allow_remote` says
//! otherwise (it asks no credentials).
//!
//! # The wire ([OTLP/HTTP](https://opentelemetry.io/docs/specs/otlp/#otlphttp))
//!
//! - `POST /v1/metrics` (`ExportMetricsServiceRequest`) and `POST /v1/logs`
//!   (`ExportLogsServiceRequest`), with `Content-Type: application/x-protobuf` (binary
//!   protobuf) or `application/json` (OTLP's JSON: lowerCamelCase keys, 64-bit integers as
//!   strings or numbers, ids in hex, enums as integers; unknown keys ignored), and
//!   `Content-Encoding: gzip` (or `identity`, or `zstd`).
//! - 200 with an `Export*ServiceResponse` in the request's encoding; when some points or records
//!   were refused, its `partial_success` counts them (`rejected_data_points`,
//!   `rejected_log_records`) and says why in `error_message`. The rest are spooled.
//! - 400 for a body that does not decode; 413 for a body over `max_body_bytes`, or over
//!   `max_decoded_bytes` once inflated (inflating stops there); 415 for another content type or
//!   encoding; 405 for another method; 404 for another path; 501 for `POST /v1/traces` (the agent
//!   keeps no traces); 503 with `Retry-After` when `max_concurrent_requests` are being read, or
//!   when the spool is nearly full (so the receiver never makes the spool drop the agent's own
//!   records: the app's exporter retries). Errors carry a `google.rpc.Status` in the request's
//!   encoding (JSON when it has none we read).
//!
//! # The mapping
//!
//! Every sample and record carries the resource's `service.name` (`unknown_service` without
//! one): metric samples as the label `service`, log records in their source, `otlp:<service>`.
//! A data point's attributes become labels (strings as they are, other values written out); a
//! point with more than `max_labels` of them, or a key or value longer than `max_label_bytes`,
//! is refused (cutting them would merge series). An attribute named as a label the mapping sets
//! (`service`, `le`, `quantile`) is kept as `exported_<key>`.
//!
//! - Gauge: a gauge. Sum: cumulative and monotonic, a counter; cumulative and not monotonic, a
//!   gauge. Delta sums are refused (a Lookout counter is a running total).
//! - Histogram (cumulative): `<name>_bucket{le}` with cumulative counts and `le="+Inf"` last,
//!   `<name>_sum` and `<name>_count`, all counters, as the `prometheus` integration stores a
//!   scraped histogram. Delta histograms are refused.
//! - Summary: `<name>{quantile}` gauges, `<name>_sum` and `<name>_count` counters.
//! - Exponential histogram: refused (counted), with a message that says so.
//! - A value that is not finite, or a point without a value, is refused.
//! - Logs: the body as text (a string as it is; other values written out), cut at
//!   [`logs::MAX_TEXT_BYTES`]; the severity as the level; the time of the event, else when it
//!   was observed, else the time of receipt. Log attributes are not kept: a Lookout log record
//!   has no fields.

pub mod logs;
pub mod metrics;
mod server;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lookout_config::OtlpConfig;
use lookout_protocol::Record;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

pub use server::serve;

/// The service of a resource that names none, as the OpenTelemetry SDKs call it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The label of a sample's service.
pub const SERVICE_LABEL: &str = "service";

/// The bounds the mapping applies, from `[otlp]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most attributes of a point kept as labels (`max_labels`).
    pub max_labels: usize,
    /// Longest label key or value (`max_label_bytes`).
    pub max_label_bytes: usize,
}

impl From<&OtlpConfig> for Limits {
    fn from(c: &OtlpConfig) -> Self {
        Self {
            max_labels: c.max_labels,
            max_label_bytes: c.max_label_bytes,
        }
    }
}

/// A request as records, with what was refused.
#[derive(Debug, Default)]
pub struct Mapped {
    /// What is spooled.
    pub records: Vec<Record>,
    /// Data points or log records refused.
    pub rejected: i64,
    /// Data points kept (a histogram's point is several records).
    pub points: u64,
    /// Why, once per reason, in the order met.
    pub reasons: Vec<&'static str>,
}

impl Mapped {
    fn refuse(&mut self, why: &'static str) {
        self.rejected += 1;
        if !self.reasons.contains(&why) {
            self.reasons.push(why);
        }
    }

    /// The answer's `error_message`: empty when nothing was refused.
    pub fn message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "{} refused by the Lookout agent: {}",
            self.rejected,
            self.reasons.join("; ")
        )
    }
}

/// The `service.name` of a resource's attributes.
pub fn service_of(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(text_of)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string())
}

/// A point's labels: `service`, then its attributes (one named `service` or in `reserved` as
/// `exported_<key>`), or why the point is refused.
pub fn labels_of(
    service: &str,
    attributes: &[KeyValue],
    reserved: &[&str],
    limits: &Limits,
) -> Result<BTreeMap<String, String>, &'static str> {
    if attributes.len() > limits.max_labels {
        return Err("more attributes than max_labels");
    }
    if service.len() > limits.max_label_bytes {
        return Err("a service.name longer than max_label_bytes");
    }
    let mut labels = BTreeMap::new();
    labels.insert(SERVICE_LABEL.to_string(), service.to_string());
    for kv in attributes {
        if kv.key.is_empty() {
            return Err("an attribute without a key");
        }
        let value = kv.value.as_ref().map(text_of).unwrap_or_default();
        let key = if kv.key == SERVICE_LABEL || reserved.contains(&kv.key.as_str()) {
            format!("exported_{}", kv.key)
        } else {
            kv.key.clone()
        };
        if key.len() > limits.max_label_bytes || value.len() > limits.max_label_bytes {
            return Err("an attribute key or value longer than max_label_bytes");
        }
        labels.insert(key, value);
    }
    Ok(labels)
}

/// A value as text: a string as it is, a number or boolean as JSON writes it, bytes in hex,
/// an array or a map as JSON.
pub fn text_of(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => json_of(other).to_string(),
        None => String::new(),
    }
}

fn json_of(value: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    use serde_json::Value as J;
    let of = |v: &AnyValue| v.value.as_ref().map_or(J::Null, json_of);
    match value {
        V::StringValue(s) => J::String(s.clone()),
        V::BoolValue(b) => J::Bool(*b),
        V::IntValue(i) => J::from(*i),
        V::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        V::BytesValue(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        V::ArrayValue(a) => J::Array(a.values.iter().map(of).collect()),
        V::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, of)))
                .collect(),
        ),
        // An index into a dictionary that OTLP/HTTP requests do not carry.
        V::StringValueStrindex(_) => J::Null,
    }
}

/// A time in nanoseconds since the epoch (0: `now`), or why it cannot be one.
pub fn time_of(unix_nano: u64, now: DateTime<Utc>) -> Result<DateTime<Utc>, &'static str> {
    if unix_nano == 0 {
        return Ok(now);
    }
    i64::try_from(unix_nano)
        .map(DateTime::from_timestamp_nanos)
        .map_err(|_| "a time past the year 2262")
}

#[cfg(test)]
mod tests;
