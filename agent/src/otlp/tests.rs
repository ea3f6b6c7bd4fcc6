//! The mapping from both encodings, its bounds, and the receiver's answers over HTTP.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricType, Record};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::spool::{FsyncPolicy, Spool, SpoolConfig};

const LIMITS: Limits = Limits {
    max_labels: 4,
    max_label_bytes: 32,
};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn point(value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: 1_700_000_000_123_000_000,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![s("service.name", "checkout"), s("host.name", "web-1")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    }
}

/// The samples as (name, labels as `k=v,...`, value, type), sorted.
fn samples(m: &Mapped) -> Vec<(String, String, f64, MetricType)> {
    let mut out: Vec<_> = m
        .records
        .iter()
        .map(|r| match r {
            Record::Metric(s) => (
                s.name.clone(),
                s.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                s.value,
                s.metric_type,
            ),
            other => panic!("not a metric: {other:?}"),
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn cumulative() -> i32 {
    AggregationTemporality::Cumulative as i32
}

#[test]
fn gauges_sums_and_histograms_are_stored_with_the_service() {
    let r = request(vec![
        metric(
            "queue.depth",
            metric::Data::Gauge(Gauge {
                data_points: vec![point(7.5, vec![s("queue", "emails")])],
            }),
        ),
        metric(
            "orders",
            metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    value: Some(number_data_point::Value::AsInt(42)),
                    ..point(0.0, vec![kv("paid", any_value::Value::BoolValue(true))])
                }],
                aggregation_temporality: cumulative(),
                is_monotonic: true,
            }),
        ),
        metric(
            "workers",
            metric::Data::Sum(Sum {
                data_points: vec![point(-3.0, vec![])],
                aggregation_temporality: cumulative(),
                is_monotonic: false,
            }),
        ),
        metric(
            "latency",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 0,
                    count: 6,
                    sum: Some(2.25),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 1.0],
                    attributes: vec![s("le", "x")],
                    ..Default::default()
                }],
                aggregation_temporality: cumulative(),
            }),
        ),
    ]);
    let m = metrics::map(&r, &LIMITS, now());
    assert_eq!((m.rejected, m.message()), (0, String::new()));
    let c = MetricType::Counter;
    let g = MetricType::Gauge;
    let svc = "service=checkout";
    let hist = "exported_le=x,service=checkout";
    assert_eq!(
        samples(&m),
        [
            (
                "latency_bucket".into(),
                "exported_le=x,le=+Inf,service=checkout".into(),
                6.0,
                c
            ),
            (
                "latency_bucket".into(),
                "exported_le=x,le=0.1,service=checkout".into(),
                1.0,
                c
            ),
            (
                "latency_bucket".into(),
                "exported_le=x,le=1,service=checkout".into(),
                3.0,
                c
            ),
            ("latency_count".into(), hist.into(), 6.0, c),
            ("latency_sum".into(), hist.into(), 2.25, c),
            ("orders".into(), format!("paid=true,{svc}"), 42.0, c),
            ("queue.depth".into(), format!("queue=emails,{svc}"), 7.5, g),
            ("workers".into(), svc.into(), -3.0, g),
        ]
    );
    let Record::Metric(first) = &m.records[0] else {
        unreachable!()
    };
    assert_eq!(
        first.time.timestamp_nanos_opt(),
        Some(1_700_000_000_123_000_000)
    );
    // A point without a time is taken now.
    assert!(
        m.records
            .iter()
            .any(|r| matches!(r, Record::Metric(s) if s.time == now()))
    );
}

#[test]
fn points_past_the_bounds_are_refused_alone_and_counted() {
    let long = "x".repeat(33);
    let five: Vec<KeyValue> = (0..5).map(|i| s(&format!("k{i}"), "v")).collect();
    let r = request(vec![
        metric(
            "g",
            metric::Data::Gauge(Gauge {
                data_points: vec![
                    point(1.0, vec![s("service", "other")]),
                    point(2.0, five),
                    point(3.0, vec![s("k", &long)]),
                    point(4.0, vec![s(&long, "v")]),
                    point(f64::NAN, vec![]),
                    NumberDataPoint {
                        value: None,
                        ..point(0.0, vec![])
                    },
                    NumberDataPoint {
                        time_unix_nano: u64::MAX,
                        ..point(5.0, vec![])
                    },
                ],
            }),
        ),
        metric(
            "delta",
            metric::Data::Sum(Sum {
                data_points: vec![point(1.0, vec![]), point(2.0, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            }),
        ),
        metric(
            "bad.histogram",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    bucket_counts: vec![1, 2],
                    explicit_bounds: vec![1.0, 2.0],
                    ..Default::default()
                }],
                aggregation_temporality: cumulative(),
            }),
        ),
        metric(
            "exp",
            metric::Data::ExponentialHistogram(Default::default()),
        ),
    ]);
    let m = metrics::map(&r, &LIMITS, now());
    assert_eq!(
        samples(&m),
        [(
            "g".into(),
            "exported_service=other,service=checkout".into(),
            1.0,
            MetricType::Gauge
        )]
    );
    assert_eq!(m.rejected, 9, "{}", m.message());
    let message = m.message();
    for why in [
        "9 refused",
        "more attributes than max_labels",
        "longer than max_label_bytes",
        "not finite",
        "without a value",
        "2262",
        "cumulative",
        "bucket counts",
    ] {
        assert!(message.contains(why), "{why}: {message}");
    }
}

/// OTLP's JSON as the specification writes it (its examples, with strings for 64-bit integers,
/// hex ids, enums as integers, a key it does not know), decoded as the receiver decodes it.
const JSON_METRICS: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"my.service"}}]},
  "scopeMetrics":[{"scope":{"name":"my.library","version":"1.0.0"},"metrics":[
   {"name":"my.counter","unit":"1","description":"I am a Counter","sum":{
     "aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
      {"asDouble":5,"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000",
       "attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},
   {"name":"my.gauge","gauge":{"dataPoints":[{"asInt":"-10","timeUnixNano":1544712660300000000,
       "attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"d","value":{"doubleValue":0.5}}]}]}},
   {"name":"my.histogram","histogram":{"aggregationTemporality":2,"dataPoints":[
      {"startTimeUnixNano":"1544712660300000000","timeUnixNano":"1544712660300000000","count":"2",
       "sum":2,"bucketCounts":["1","1"],"explicitBounds":[1],"min":0,"max":2,
       "exemplars":[{"asDouble":1,"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]},
    "aFieldFromTheFuture":{"x":1}}]}]}]}"#;

#[test]
fn otlp_json_as_the_specification_writes_it() {
    let r: ExportMetricsServiceRequest = serde_json::from_str(JSON_METRICS).unwrap();
    let m = metrics::map(&r, &LIMITS, now());
    assert_eq!(m.rejected, 0, "{}", m.message());
    let c = MetricType::Counter;
    assert_eq!(
        samples(&m),
        [
            (
                "my.counter".into(),
                "my.counter.attr=some value,service=my.service".into(),
                5.0,
                c
            ),
            (
                "my.gauge".into(),
                "d=0.5,n=12,service=my.service".into(),
                -10.0,
                MetricType::Gauge
            ),
            (
                "my.histogram_bucket".into(),
                "le=+Inf,service=my.service".into(),
                2.0,
                c
            ),
            (
                "my.histogram_bucket".into(),
                "le=1,service=my.service".into(),
                1.0,
                c
            ),
            (
                "my.histogram_count".into(),
                "service=my.service".into(),
                2.0,
                c
            ),
            (
                "my.histogram_sum".into(),
                "service=my.service".into(),
                2.0,
                c
            ),
        ]
    );
    // The same request in protobuf maps to the same samples.
    let again: ExportMetricsServiceRequest = Message::decode(&r.encode_to_vec()[..]).unwrap();
    assert_eq!(samples(&metrics::map(&again, &LIMITS, now())), samples(&m));
}

const JSON_LOGS: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"billing"}}]},"scopeLogs":[{"logRecords":[
   {"timeUnixNano":"1544712660300000000","observedTimeUnixNano":"1544712660400000000",
    "severityNumber":17,"severityText":"Error","traceId":"5b8efff798038103d269b633813fc60c",
    "spanId":"eee19b7ec3c1b174","body":{"stringValue":"card declined"},
    "attributes":[{"key":"order","value":{"intValue":"7"}}]},
   {"observedTimeUnixNano":"1544712660400000000","severityText":"warning",
    "body":{"kvlistValue":{"values":[{"key":"a","value":{"boolValue":true}}]}}},
   {"severityNumber":9}]}]}]}"#;

#[test]
fn log_records_keep_body_severity_time_and_service() {
    let r: ExportLogsServiceRequest = serde_json::from_str(JSON_LOGS).unwrap();
    let m = logs::map(&r, &LIMITS, now());
    assert_eq!(m.rejected, 0);
    let got: Vec<_> = m
        .records
        .iter()
        .map(|r| match r {
            Record::Log(l) => (
                l.time.timestamp_nanos_opt().unwrap(),
                l.source.as_str(),
                l.level.as_deref(),
                l.text.as_str(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let now = now().timestamp_nanos_opt().unwrap();
    assert_eq!(
        got,
        [
            (
                1544712660300000000,
                "otlp:billing",
                Some("error"),
                "card declined"
            ),
            (
                1544712660400000000,
                "otlp:billing",
                Some("warn"),
                r#"{"a":true}"#
            ),
            (now, "otlp:billing", Some("info"), ""),
        ]
    );
    assert_eq!(logs::level(0, ""), None);
    assert_eq!(logs::level(21, ""), Some("error"));
    assert_eq!(logs::level(3, "error"), Some("trace"));
}

#[test]
fn a_long_body_is_cut_and_marked_and_no_service_is_unknown_service() {
    let r = ExportLogsServiceRequest {
        resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
            scope_logs: vec![opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                log_records: vec![opentelemetry_proto::tonic::logs::v1::LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("é".repeat(20_000))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let m = logs::map(&r, &LIMITS, now());
    let Record::Log(l) = &m.records[0] else {
        panic!()
    };
    assert_eq!(l.source, "otlp:unknown_service");
    assert!(l.text.starts_with("éé") && l.text.ends_with("…[truncated 7232 bytes]"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, in either format and either signal, decode to an error or to records: never a
    /// panic.
    #[test]
    fn any_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(r) = ExportMetricsServiceRequest::decode(&body[..]) {
            let _ = metrics::map(&r, &LIMITS, now());
        }
        if let Ok(r) = ExportLogsServiceRequest::decode(&body[..]) {
            let _ = logs::map(&r, &LIMITS, now());
        }
        if let Ok(r) = serde_json::from_slice::<ExportMetricsServiceRequest>(&body) {
            let _ = metrics::map(&r, &LIMITS, now());
        }
        if let Ok(r) = serde_json::from_slice::<ExportLogsServiceRequest>(&body) {
            let _ = logs::map(&r, &LIMITS, now());
        }
    }

    /// Any request the messages can hold maps without panicking, and every point is either a
    /// sample or counted.
    #[test]
    fn every_gauge_point_is_kept_or_counted(
        values in proptest::collection::vec((any::<f64>(), 0usize..8, 0usize..40, any::<u64>()), 0..20)
    ) {
        let points: Vec<NumberDataPoint> = values
            .iter()
            .map(|(v, n, len, t)| NumberDataPoint {
                time_unix_nano: *t,
                ..point(*v, (0..*n).map(|i| s(&format!("k{i}"), &"v".repeat(*len))).collect())
            })
            .collect();
        let n = points.len() as i64;
        let r = request(vec![metric("g", metric::Data::Gauge(Gauge { data_points: points }))]);
        let m = metrics::map(&r, &LIMITS, now());
        prop_assert_eq!(m.records.len() as i64 + m.rejected, n);
        for rec in &m.records {
            let Record::Metric(s) = rec else { panic!() };
            prop_assert!(s.value.is_finite());
            prop_assert!(s.labels.len() <= LIMITS.max_labels + 1);
            prop_assert!(s.labels.iter().all(|(k, v)| k.len() <= 32 && v.len() <= 32));
        }
    }
}

// --- The receiver over HTTP ---

/// Polls `probe` every 20 ms until it gives something, for at most `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

struct Running {
    base: String,
    spool: Arc<Spool>,
    metrics: Arc<crate::self_metrics::AgentMetrics>,
    _dir: tempfile::TempDir,
    _stop: tokio_util::sync::DropGuard,
}

async fn start(config: lookout_config::OtlpConfig) -> Running {
    start_with_spool(config, 1 << 24).await
}

async fn start_with_spool(config: lookout_config::OtlpConfig, max_bytes: u64) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(
        Spool::open(SpoolConfig {
            dir: dir.path().to_path_buf(),
            max_bytes,
            segment_bytes: max_bytes / 4,
            fsync: FsyncPolicy::Never,
            batch_bytes: 1 << 20,
            flush_interval: Duration::from_secs(1),
            steady_wait: Duration::from_secs(10),
        })
        .unwrap(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let config = lookout_config::OtlpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let metrics = Arc::new(crate::self_metrics::AgentMetrics::default());
    let addr = serve(config, spool.clone(), metrics.clone(), stop.clone())
        .await
        .unwrap();
    Running {
        base: format!("http://{addr}"),
        spool,
        metrics,
        _dir: dir,
        _stop: stop.drop_guard(),
    }
}

async fn post(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (
        res.status().as_u16(),
        headers,
        res.bytes().await.unwrap().to_vec(),
    )
}

const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON_TYPE: (&str, &str) = ("content-type", "application/json");

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn answers_as_the_otlp_http_specification_says() {
    let r = start(lookout_config::OtlpConfig {
        max_body_bytes: 64 * 1024,
        max_decoded_bytes: 256 * 1024,
        ..Default::default()
    })
    .await;
    let good = request(vec![metric(
        "g",
        metric::Data::Gauge(Gauge {
            data_points: vec![point(1.0, vec![]), point(f64::INFINITY, vec![])],
        }),
    )]);

    // Protobuf, gzipped: 200 with a protobuf answer whose partial_success counts the refused
    // point; the other is in the spool.
    let (code, headers, body) = post(
        &r.base,
        "/v1/metrics",
        &[PROTO, ("content-encoding", "gzip")],
        gzip(&good.encode_to_vec()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let answer = ExportMetricsServiceResponse::decode(&body[..]).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("not finite"),
        "{}",
        partial.error_message
    );
    assert_eq!(r.spool.backlog(), 1);

    // JSON: the answer in JSON, 64-bit counts as strings; empty when all was taken.
    let (code, headers, body) =
        post(&r.base, "/v1/metrics", &[JSON_TYPE], JSON_METRICS.into()).await;
    assert_eq!(
        (code, headers["content-type"].as_str()),
        (200, "application/json")
    );
    assert_eq!(body, b"{}");
    let (code, _, body) = post(&r.base, "/v1/logs", &[JSON_TYPE], JSON_LOGS.into()).await;
    assert_eq!((code, &body[..]), (200, &b"{}"[..]));
    assert_eq!(r.spool.backlog(), 1 + 6 + 3);
    let mut bad_json = serde_json::to_value(&good).unwrap();
    bad_json["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][1]["asDouble"] =
        "NaN".into();
    let (code, _, body) = post(
        &r.base,
        "/v1/metrics",
        &[JSON_TYPE],
        bad_json.to_string().into(),
    )
    .await;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "1",
        "{answer}"
    );

    // Bodies that do not decode: 400 with a Status in the request's encoding.
    let (code, _, body) = post(&r.base, "/v1/metrics", &[PROTO], vec![0xff, 0xff, 0xff]).await;
    assert_eq!(code, 400);
    let status = super::server::tests_status(&body);
    assert_eq!(status.0, 3);
    assert!(
        status.1.contains("not an OTLP Metrics request"),
        "{}",
        status.1
    );
    let (code, _, body) = post(
        &r.base,
        "/v1/logs",
        &[JSON_TYPE],
        b"{\"resourceLogs\":7}".to_vec(),
    )
    .await;
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, answer["code"].as_i64()), (400, Some(3)), "{answer}");
    let (code, _, _) = post(
        &r.base,
        "/v1/logs",
        &[JSON_TYPE, ("content-encoding", "gzip")],
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(code, 400);

    // Too large as sent, and a gzip bomb: 413, the bomb inflated no further than the bound.
    let (code, _, _) = post(&r.base, "/v1/metrics", &[PROTO], vec![0; 64 * 1024 + 1]).await;
    assert_eq!(code, 413);
    let bomb = gzip(&vec![b' '; 32 << 20]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let (code, _, body) = post(
        &r.base,
        "/v1/metrics",
        &[JSON_TYPE, ("content-encoding", "gzip")],
        bomb,
    )
    .await;
    assert_eq!(code, 413);
    assert!(String::from_utf8_lossy(&body).contains("once decompressed"));

    // Other types and encodings 415, traces 501, other methods 405, other paths 404.
    let (code, _, _) = post(
        &r.base,
        "/v1/metrics",
        &[("content-type", "text/plain")],
        vec![],
    )
    .await;
    assert_eq!(code, 415);
    let (code, _, _) = post(
        &r.base,
        "/v1/metrics",
        &[PROTO, ("content-encoding", "br")],
        vec![],
    )
    .await;
    assert_eq!(code, 415);
    let (code, _, body) = post(&r.base, "/v1/traces", &[PROTO], vec![]).await;
    assert_eq!(code, 501);
    assert!(
        super::server::tests_status(&body)
            .1
            .contains("traces are not received")
    );
    let res = reqwest::get(format!("{}/v1/metrics", r.base))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let (code, _, _) = post(&r.base, "/v1/profiles", &[PROTO], vec![]).await;
    assert_eq!(code, 404);
    // Nothing of the refused requests reached the spool.
    assert_eq!(r.spool.backlog(), 1 + 6 + 3 + 1);
    // The agent's /metrics counts points (a histogram's one point is its six samples here),
    // log records and answers.
    let text = r.metrics.render(&r.spool);
    for line in [
        "lookout_agent_otlp_items_total{outcome=\"stored\",signal=\"metrics\"} 5",
        "lookout_agent_otlp_items_total{outcome=\"refused\",signal=\"metrics\"} 2",
        "lookout_agent_otlp_items_total{outcome=\"stored\",signal=\"logs\"} 3",
        "lookout_agent_otlp_requests_total{code=\"200\"} 4",
        "lookout_agent_otlp_requests_total{code=\"413\"} 2",
        "lookout_agent_otlp_requests_total{code=\"501\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn a_request_past_max_concurrent_requests_is_told_to_retry() {
    use tokio::io::AsyncWriteExt;
    let r = start(lookout_config::OtlpConfig {
        max_concurrent_requests: 1,
        ..Default::default()
    })
    .await;
    // A request whose body never comes holds the one place.
    let mut slow = tokio::net::TcpStream::connect(r.base.trim_start_matches("http://"))
        .await
        .unwrap();
    slow.write_all(
        b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
          content-length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = eventually(Duration::from_secs(5), || async {
        let (code, headers, _) = post(&r.base, "/v1/metrics", &[PROTO], vec![]).await;
        (code == 503).then(|| headers.get("retry-after").cloned())
    })
    .await;
    assert_eq!(answer, Some(Some("5".to_string())));
    drop(slow);
    // Once it is gone, requests are read again.
    let again = eventually(Duration::from_secs(5), || async {
        let (code, _, _) = post(&r.base, "/v1/metrics", &[PROTO], vec![]).await;
        (code == 200).then_some(())
    })
    .await;
    assert_eq!(again, Some(()));
}

#[tokio::test]
async fn a_nearly_full_spool_turns_senders_away_before_it_drops_anything() {
    let r = start_with_spool(Default::default(), 1 << 16).await;
    let line = |i: usize| {
        Record::Log(lookout_protocol::LogRecord {
            time: now(),
            source: "test".into(),
            level: None,
            text: format!("{i} {}", "x".repeat(1000)),
            position: None,
        })
    };
    let mut i = 0;
    while !r.spool.nearly_full() {
        r.spool.push(&line(i));
        i += 1;
    }
    let held = r.spool.backlog();
    let (code, headers, body) = post(&r.base, "/v1/logs", &[JSON_TYPE], JSON_LOGS.into()).await;
    assert_eq!(code, 503);
    assert_eq!(headers["retry-after"], "5");
    assert!(String::from_utf8_lossy(&body).contains("spool is nearly full"));
    assert_eq!((r.spool.backlog(), r.spool.dropped()), (held, 0));
}
