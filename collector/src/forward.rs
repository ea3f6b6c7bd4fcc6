//! Forwarding what the collector receives to an OTLP/HTTP receiver (`[telemetry]
//! forward_endpoint`), so a team's existing OpenTelemetry backend gets everything: check results
//! and host metrics as metrics (`POST /v1/metrics`), log lines as logs (`POST /v1/logs`), both
//! `application/x-protobuf`.
//!
//! Forwarding is a copy, after the batch is stored: it never holds up ingest. Batches wait in a
//! bounded queue; when the receiver is slower than ingest the queue fills and further records
//! are dropped and counted (`lookout_forward_records_total{outcome="dropped"}`), and a failed
//! send is tried once more, then counted as `failed`. The store keeps everything either way.
//!
//! Mapping: each agent is a resource (`service.name` `lookout-agent`, `service.instance.id` and
//! `lookout.agent` its name). A check result becomes the gauges `lookout.check.up` (1 or 0),
//! `lookout.check.duration` (seconds) and, where a certificate was seen,
//! `lookout.check.certificate.time_left` (seconds), with attributes `check` and `check.type`.
//! A host metric keeps its name and labels: a gauge as a gauge, a counter as a cumulative
//! monotonic sum. A log line keeps its time and text, its level as severity, its file as
//! `log.file.path`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricType, Record};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio::sync::mpsc;

use crate::telemetry::Metrics;

/// Batches waiting to be forwarded; past this, records are dropped (and counted).
const QUEUE: usize = 256;
/// Most batches merged into one request.
const MERGE: usize = 64;
/// The wait before the one retry of a failed send.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// One agent's stored batch, waiting to be forwarded.
struct Item {
    agent: String,
    records: Vec<Record>,
}

/// Hands stored batches to the forwarding task, or does nothing when forwarding is off.
#[derive(Debug)]
pub struct Forwarder {
    queue: Option<mpsc::Sender<Item>>,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    /// A forwarder that forwards nothing.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self {
            queue: None,
            metrics,
        }
    }

    /// Starts forwarding to the OTLP/HTTP receiver at `base` (`http://host:4318`); the task
    /// ends when the forwarder is dropped.
    pub fn start(base: &str, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let base = base.trim_end_matches('/').to_string();
        tokio::spawn(run(base, rx, metrics.clone()));
        Self {
            queue: Some(tx),
            metrics,
        }
    }

    /// Queues a copy of `records` from `agent`; never waits.
    pub fn forward(&self, agent: &str, records: &[Record]) {
        let Some(queue) = &self.queue else { return };
        let item = Item {
            agent: agent.to_string(),
            records: records.to_vec(),
        };
        if let Err(e) = queue.try_send(item) {
            let item = match e {
                mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => i,
            };
            let (metrics, logs) = count(&item.records);
            self.metrics.forwarded("metrics", "dropped", metrics);
            self.metrics.forwarded("logs", "dropped", logs);
        }
    }
}

/// Metric records (a check result counts once) and log records in `records`.
fn count(records: &[Record]) -> (usize, usize) {
    let logs = records
        .iter()
        .filter(|r| matches!(r, Record::Log(_)))
        .count();
    (records.len() - logs, logs)
}

async fn run(base: String, mut rx: mpsc::Receiver<Item>, metrics: Arc<Metrics>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("lookout-collector/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the OTLP forwarding client; not forwarding");
            return;
        }
    };
    let metrics_url = format!("{base}/v1/metrics");
    let logs_url = format!("{base}/v1/logs");
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut items = vec![first];
        while items.len() < MERGE {
            match rx.try_recv() {
                Ok(i) => items.push(i),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let (metric_request, n_metrics) = metrics_request(&items, now);
        let (log_request, n_logs) = logs_request(&items, now);
        for (signal, url, body, n) in [
            ("metrics", &metrics_url, metric_request, n_metrics),
            ("logs", &logs_url, log_request, n_logs),
        ] {
            if n == 0 {
                continue;
            }
            let outcome = match send(&client, url, &body).await {
                Ok(()) => "sent",
                Err(first) => {
                    tokio::time::sleep(RETRY_AFTER).await;
                    match send(&client, url, &body).await {
                        Ok(()) => "sent",
                        Err(e) => {
                            tracing::warn!(%url, error = %e, first_error = %first, records = n, "OTLP forwarding failed twice; these records are not forwarded");
                            "failed"
                        }
                    }
                }
            };
            metrics.forwarded(signal, outcome, n);
        }
    }
}

async fn send(client: &reqwest::Client, url: &str, body: &[u8]) -> Result<(), String> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

fn nanos(t: DateTime<Utc>) -> u64 {
    t.timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

fn attr(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(agent: &str) -> Resource {
    Resource {
        attributes: vec![
            attr("service.name", "lookout-agent"),
            attr("service.instance.id", agent),
            attr("lookout.agent", agent),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "lookout-collector".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// How a forwarded series is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Gauge,
    Counter,
}

/// The metrics request for `items`, and how many records it carries.
fn metrics_request(items: &[Item], now: DateTime<Utc>) -> (Vec<u8>, usize) {
    let mut resources = Vec::new();
    let mut n = 0;
    for item in items {
        // Data points by metric name, in a stable order.
        let mut by_name: BTreeMap<(String, Kind, &'static str), Vec<NumberDataPoint>> =
            BTreeMap::new();
        let mut point = |name: &str, kind: Kind, unit: &'static str, p: NumberDataPoint| {
            by_name
                .entry((name.to_string(), kind, unit))
                .or_default()
                .push(p);
        };
        for r in &item.records {
            match r {
                Record::CheckResult(c) => {
                    n += 1;
                    let mut attributes = vec![attr("check", c.check.clone())];
                    if let Some(t) = &c.check_type {
                        attributes.push(attr("check.type", t.as_str()));
                    }
                    let at = nanos(c.time);
                    let dp = |v: f64| NumberDataPoint {
                        attributes: attributes.clone(),
                        time_unix_nano: at,
                        value: Some(number_data_point::Value::AsDouble(v)),
                        ..Default::default()
                    };
                    point(
                        "lookout.check.up",
                        Kind::Gauge,
                        "1",
                        dp(f64::from(u8::from(c.ok))),
                    );
                    point(
                        "lookout.check.duration",
                        Kind::Gauge,
                        "s",
                        dp(c.latency_ms / 1000.0),
                    );
                    if let Some(e) = c.cert_expiry {
                        let left = (e - now).num_milliseconds() as f64 / 1000.0;
                        point(
                            "lookout.check.certificate.time_left",
                            Kind::Gauge,
                            "s",
                            dp(left),
                        );
                    }
                }
                Record::Metric(m) => {
                    n += 1;
                    let kind = match m.metric_type {
                        MetricType::Gauge => Kind::Gauge,
                        MetricType::Counter => Kind::Counter,
                    };
                    point(
                        &m.name,
                        kind,
                        "",
                        NumberDataPoint {
                            attributes: m.labels.iter().map(|(k, v)| attr(k, v.clone())).collect(),
                            time_unix_nano: nanos(m.time),
                            value: Some(number_data_point::Value::AsDouble(m.value)),
                            ..Default::default()
                        },
                    );
                }
                Record::Log(_) => {}
            }
        }
        if by_name.is_empty() {
            continue;
        }
        let metrics = by_name
            .into_iter()
            .map(|((name, kind, unit), data_points)| Metric {
                name,
                unit: unit.to_string(),
                data: Some(match kind {
                    Kind::Gauge => metric::Data::Gauge(Gauge { data_points }),
                    Kind::Counter => metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    }),
                }),
                ..Default::default()
            })
            .collect();
        resources.push(ResourceMetrics {
            resource: Some(resource(&item.agent)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let request = ExportMetricsServiceRequest {
        resource_metrics: resources,
    };
    (request.encode_to_vec(), n)
}

/// OpenTelemetry's severity for a level as the agent detected it.
fn severity(level: Option<&str>) -> SeverityNumber {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("trace") => SeverityNumber::Trace,
        Some("debug") => SeverityNumber::Debug,
        Some("info" | "notice") => SeverityNumber::Info,
        Some("warn" | "warning") => SeverityNumber::Warn,
        Some("error" | "err") => SeverityNumber::Error,
        Some("fatal" | "critical" | "crit" | "alert" | "emerg" | "panic") => SeverityNumber::Fatal,
        _ => SeverityNumber::Unspecified,
    }
}

/// The logs request for `items`, and how many lines it carries.
fn logs_request(items: &[Item], now: DateTime<Utc>) -> (Vec<u8>, usize) {
    let mut resources = Vec::new();
    let mut n = 0;
    for item in items {
        let log_records: Vec<LogRecord> = item
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Log(l) => Some(l),
                _ => None,
            })
            .map(|l| LogRecord {
                time_unix_nano: nanos(l.time),
                observed_time_unix_nano: nanos(now),
                severity_number: severity(l.level.as_deref()) as i32,
                severity_text: l.level.clone().unwrap_or_default(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(l.text.clone())),
                }),
                attributes: vec![attr("log.file.path", l.source.clone())],
                ..Default::default()
            })
            .collect();
        if log_records.is_empty() {
            continue;
        }
        n += log_records.len();
        resources.push(ResourceLogs {
            resource: Some(resource(&item.agent)),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let request = ExportLogsServiceRequest {
        resource_logs: resources,
    };
    (request.encode_to_vec(), n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::{CheckResult, LogRecord as Line, MetricSample};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a time")
    }

    #[test]
    fn results_metrics_and_lines_keep_their_values_types_and_times() {
        let now = at("2026-11-26T12:00:00Z");
        let mut result = CheckResult {
            check: "api".into(),
            check_type: None,
            time: at("2026-11-26T11:59:50Z"),
            ok: false,
            latency_ms: 250.0,
            error: Some("status 503".into()),
            status_code: Some(503),
            cert_expiry: Some(at("2026-12-06T12:00:00Z")),
            timings: Default::default(),
        };
        result.check_type = Some(lookout_config::CheckType::Http);
        let items = vec![Item {
            agent: "web-1".into(),
            records: vec![
                Record::CheckResult(result),
                Record::Metric(MetricSample {
                    name: "system.network.io".into(),
                    labels: [("device".to_string(), "eth0".to_string())].into(),
                    time: at("2026-11-26T11:59:55Z"),
                    value: 1234.0,
                    metric_type: MetricType::Counter,
                }),
                Record::Log(Line {
                    time: at("2026-11-26T11:59:56Z"),
                    source: "/var/log/app.log".into(),
                    level: Some("ERROR".into()),
                    text: "boom".into(),
                    position: None,
                }),
            ],
        }];
        let (bytes, n) = metrics_request(&items, now);
        assert_eq!(n, 2);
        let req = ExportMetricsServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let rm = &req.resource_metrics[0];
        let names: Vec<&str> = rm.scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "lookout.check.certificate.time_left",
                "lookout.check.duration",
                "lookout.check.up",
                "system.network.io"
            ]
        );
        let value = |name: &str| {
            let m = rm.scope_metrics[0]
                .metrics
                .iter()
                .find(|m| m.name == name)
                .expect(name);
            let points = match m.data.as_ref().expect("data") {
                metric::Data::Gauge(g) => &g.data_points,
                metric::Data::Sum(s) => {
                    assert!(s.is_monotonic);
                    assert_eq!(
                        s.aggregation_temporality,
                        AggregationTemporality::Cumulative as i32
                    );
                    &s.data_points
                }
                other => panic!("{name}: {other:?}"),
            };
            match points[0].value {
                Some(number_data_point::Value::AsDouble(v)) => (v, points[0].time_unix_nano),
                ref other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            value("lookout.check.up"),
            (0.0, nanos(at("2026-11-26T11:59:50Z")))
        );
        assert_eq!(value("lookout.check.duration").0, 0.25);
        assert_eq!(value("lookout.check.certificate.time_left").0, 864_000.0);
        assert_eq!(
            value("system.network.io"),
            (1234.0, nanos(at("2026-11-26T11:59:55Z")))
        );

        let (bytes, n) = logs_request(&items, now);
        assert_eq!(n, 1);
        let req = ExportLogsServiceRequest::decode(bytes.as_slice()).expect("decodes");
        let l = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(l.severity_number, SeverityNumber::Error as i32);
        assert_eq!(l.time_unix_nano, nanos(at("2026-11-26T11:59:56Z")));
        assert_eq!(
            l.body.as_ref().and_then(|b| b.value.clone()),
            Some(any_value::Value::StringValue("boom".into()))
        );
    }
}
