//! The `[server]` bounds on queries and pings, set small: each answers 400 or 413 with its
//! sentence, naming its key, just past the configured value, and the value itself is answered.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use lookout_collector::state::AppState;
use lookout_protocol::{Batch, Encoding, MetricSample, MetricType, PROTOCOL_VERSION, Record};
use serde_json::Value;
use tower::ServiceExt;

const READ: &str = "limits-read-token-0123456789";
const AGENT: &str = "web-1-token-0123456789abcdef";
const PING: &str = "backup-token-0123456789abcdef";

/// A collector whose `[server]` has `server` on top of a read token, an agent, a check and a
/// heartbeat.
async fn collector(dir: &tempfile::TempDir, server: &str) -> Arc<AppState> {
    let toml = format!(
        r#"
[server]
read_tokens = ["{READ}"]
max_record_age = "3650d"
{server}

[[agents]]
name = "web-1"
token = "{AGENT}"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"

[[heartbeats]]
name = "backup"
token = "{PING}"
period = "1h"
grace = "5m"
"#
    );
    support::collector_state(dir.path(), &toml).await
}

async fn call(state: &Arc<AppState>, request: Request<Body>) -> (StatusCode, String) {
    let response = lookout_collector::router(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(state: &Arc<AppState>, uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {READ}"))
        .body(Body::empty())
        .unwrap();
    call(state, request).await
}

/// The error sentence of a 400, or the whole body if it is not one.
fn error(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|j| j["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

/// `limit = at` answers `ok`; `limit = at - 1` answers `bad` with 400 and `says`.
async fn bound(key: &str, at: &str, below: &str, ok: &str, says: &str) {
    for (value, status) in [(at, StatusCode::OK), (below, StatusCode::BAD_REQUEST)] {
        let dir = tempfile::tempdir().unwrap();
        let state = collector(&dir, &format!("{key} = {value}")).await;
        let (s, body) = get(&state, ok).await;
        assert_eq!(s, status, "{key} = {value}: {ok}: {body}");
        if status == StatusCode::BAD_REQUEST {
            let sentence = error(&body);
            assert!(
                sentence.contains(says),
                "{key} = {value}: {sentence:?} lacks {says:?}"
            );
            assert!(sentence.contains(&format!("[server] {key}")), "{sentence}");
        }
    }
}

const METRICS: &str = "/api/v1/metrics?agent=web-1&name=m";

#[tokio::test]
async fn metric_query_steps_and_windows_are_bounded_where_configured() {
    // 10 one-minute steps.
    let ten_minutes = "from=2026-01-01T00:00:00Z&to=2026-01-01T00:10:00Z";
    bound(
        "max_query_steps",
        "10",
        "9",
        &format!("{METRICS}&step=1m&{ten_minutes}"),
        "more than 9 steps ([server] max_query_steps)",
    )
    .await;
    // The uptime endpoint has the same bound on its steps.
    bound(
        "max_query_steps",
        "10",
        "9",
        &format!("/api/v1/checks/api/uptime?step=1m&{ten_minutes}"),
        "more than 9 steps",
    )
    .await;
    bound(
        "max_raw_query_window",
        "\"10m\"",
        "\"9m\"",
        &format!("{METRICS}&step=5s&{ten_minutes}"),
        "steps under 1m read raw samples, for windows of at most 9m",
    )
    .await;
    bound(
        "max_minute_query_window",
        "\"2d\"",
        "\"1d\"",
        &format!("{METRICS}&step=5m&from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z"),
        "steps under 1h read per-minute rollups, for windows of at most 1d",
    )
    .await;
    bound(
        "max_query_step",
        "\"2h\"",
        "\"7199s\"",
        &format!("{METRICS}&step=2h"),
        "step must be at most 1h 59m 59s",
    )
    .await;
}

/// Four points: three steps of 5 s of one series, one of another.
fn four_points() -> Batch {
    let t0 = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let sample = |device: &str, secs: i64| {
        Record::Metric(MetricSample {
            name: "m".into(),
            labels: [("device".to_string(), device.to_string())]
                .into_iter()
                .collect(),
            time: t0 + chrono::Duration::seconds(secs),
            value: 1.0,
            metric_type: MetricType::Gauge,
        })
    };
    Batch {
        version: PROTOCOL_VERSION,
        agent: "web-1".into(),
        batch_id: "points".into(),
        records: vec![
            sample("eth0", 0),
            sample("eth0", 10),
            sample("eth0", 70),
            sample("lo", 5),
        ],
    }
}

#[tokio::test]
async fn metric_answers_are_bounded_in_points_where_configured() {
    let query = format!("{METRICS}&step=5s&from=2026-11-25T10:00:00Z&to=2026-11-25T10:05:00Z");
    for (max, status) in [(4, StatusCode::OK), (3, StatusCode::BAD_REQUEST)] {
        let dir = tempfile::tempdir().unwrap();
        let state = collector(&dir, &format!("max_query_points = {max}")).await;
        let body = lookout_protocol::encode_batch(&four_points(), Encoding::Identity).unwrap();
        let ingest = Request::post("/v1/ingest")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {AGENT}"))
            .body(Body::from(body))
            .unwrap();
        let (s, answer) = call(&state, ingest).await;
        assert_eq!(s, StatusCode::OK, "{answer}");
        let (s, body) = get(&state, &query).await;
        assert_eq!(s, status, "max_query_points = {max}: {body}");
        if status == StatusCode::OK {
            let points: usize = serde_json::from_str::<Value>(&body).unwrap()["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["points"].as_array().unwrap().len())
                .sum();
            assert_eq!(points, 4, "{body}");
        } else {
            let sentence = error(&body);
            assert!(
                sentence.contains("more than 3 points")
                    && sentence.contains("[server] max_query_points"),
                "{sentence}"
            );
        }
    }
}

async fn ping(state: &Arc<AppState>, bytes: usize, declared: bool) -> (StatusCode, String) {
    let mut request = Request::post(format!("/v1/ping/backup?token={PING}"));
    if declared {
        request = request.header(header::CONTENT_LENGTH, bytes);
    }
    // A stream has no exact size: the limit counts what arrives.
    let chunks = vec![Ok::<_, std::io::Error>(vec![b'x'; bytes])];
    let body = match declared {
        true => Body::from(vec![b'x'; bytes]),
        false => Body::from_stream(futures_util::stream::iter(chunks)),
    };
    call(state, request.body(body).unwrap()).await
}

#[tokio::test]
async fn a_ping_body_is_bounded_by_max_ping_body_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let state = collector(&dir, "max_ping_body_bytes = 2048").await;
    for declared in [true, false] {
        let (s, body) = ping(&state, 2048, declared).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "OK\n"));
        let (s, body) = ping(&state, 2049, declared).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(
            error(&body).contains(
                "larger than this route takes (2048 bytes) ([server] max_ping_body_bytes)"
            ),
            "{body}"
        );
    }
    // Above the fixed 100 KiB of before, when the key says so.
    let dir = tempfile::tempdir().unwrap();
    let state = collector(&dir, "max_ping_body_bytes = 300000").await;
    let (s, body) = ping(&state, 200_000, true).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "OK\n"));
}
