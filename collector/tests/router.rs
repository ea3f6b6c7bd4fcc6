//! The collector's HTTP answers, through the router (no network).

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use lookout_collector::state::AppState;
use lookout_config::CollectorConfig;
use lookout_protocol::{
    Batch, CheckResult, Encoding, PROTOCOL_VERSION, Record, Timings, encode_batch,
};
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "web-1-token-0123456789abcdef";

/// Reads the API in these tests.
const READ: &str = "router-read-token-0123456789";

const CONFIG: &str = r#"
[server]
read_tokens = ["router-read-token-0123456789"]
# Some tests store results from years ago, to read them back through the rollups.
max_record_age = "3650d"
max_body_bytes = 4096
max_decoded_bytes = 65536

[[agents]]
name = "web-1"
token = "web-1-token-0123456789abcdef"
labels = { role = "web" }

[[agents]]
name = "db-1"
token = "db-1-token-0123456789abcdef"
labels = { role = "db" }

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
timeout = "2s"

[[checks]]
name = "web-only"
type = "http"
url = "http://127.0.0.1:1/"
run_on = ["role=web"]
"#;

struct Harness {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
}

impl Harness {
    async fn new() -> Self {
        Self::with_config(CONFIG).await
    }

    async fn with_config(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectorConfig::parse(Path::new("test.toml"), text, &|_| None).unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = lookout_collector::store::open(&url, &Default::default())
            .await
            .unwrap();
        let state = lookout_collector::build_state(store, config, None)
            .await
            .unwrap();
        Self { _dir: dir, state }
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }

    async fn ingest(
        &self,
        token: Option<&str>,
        encoding: Encoding,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post("/v1/ingest")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, encoding.header_value());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let (s, _, j) = self.call(req.body(Body::from(body)).unwrap()).await;
        (s, j)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {READ}"));
        let (s, _, j) = self.call(req.body(Body::empty()).unwrap()).await;
        (s, j)
    }
}

fn batch(agent: &str, id: &str, results: &[(&str, bool)]) -> Batch {
    Batch {
        version: PROTOCOL_VERSION,
        agent: agent.into(),
        batch_id: id.into(),
        records: results
            .iter()
            .map(|(check, ok)| {
                Record::CheckResult(CheckResult {
                    check: check.to_string(),
                    check_type: None,
                    time: Utc::now(),
                    ok: *ok,
                    latency_ms: 12.5,
                    error: (!ok).then(|| "status 503, expected 2xx".to_string()),
                    status_code: Some(if *ok { 200 } else { 503 }),
                    cert_expiry: None,
                    timings: Timings::default(),
                })
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_batch_is_stored_once_and_shows_in_the_api() {
    let h = Harness::new().await;
    let b = batch("web-1", "b-1", &[("api", false)]);
    let body = encode_batch(&b, Encoding::Zstd).unwrap();
    let (s, j) = h.ingest(Some(TOKEN), Encoding::Zstd, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["stored"], 1);
    assert_eq!(j["duplicate"], false);
    // A retry after a lost acknowledgement stores nothing twice.
    let (s, j) = h.ingest(Some(TOKEN), Encoding::Zstd, body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["duplicate"], true);
    assert_eq!(j["stored"], 0);

    let (s, j) = h.get("/api/v1/checks/api/results").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{j}");
    assert_eq!(results[0]["agent"], "web-1");
    assert_eq!(results[0]["ok"], false);
    assert_eq!(results[0]["latency_ms"], 12.5);
    assert_eq!(results[0]["error"], "status 503, expected 2xx");
    chrono::DateTime::parse_from_rfc3339(results[0]["time"].as_str().unwrap()).unwrap();

    let (_, j) = h.get("/api/v1/checks").await;
    let api = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_eq!(api["status"], "down");
    assert_eq!(api["type"], "http");
    assert_eq!(api["agents"][0]["agent"], "web-1");
    let other = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web-only")
        .unwrap();
    assert_eq!(other["status"], "pending");

    let (_, j) = h.get("/api/v1/hosts").await;
    let hosts = j["hosts"].as_array().unwrap();
    assert_eq!(
        hosts.len(),
        2,
        "configured agents are listed before they report: {j}"
    );
    let web = hosts.iter().find(|x| x["name"] == "web-1").unwrap();
    assert_eq!(web["labels"]["role"], "web");
    assert!(web["last_seen"].is_string());
    assert!(hosts.iter().find(|x| x["name"] == "db-1").unwrap()["last_seen"].is_null());
}

#[tokio::test]
async fn bad_tokens_get_401() {
    let h = Harness::new().await;
    let body = encode_batch(&batch("web-1", "b", &[]), Encoding::Identity).unwrap();
    let (s, j) = h.ingest(None, Encoding::Identity, body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        j["error"].as_str().unwrap().contains("Authorization"),
        "{j}"
    );
    let (s, j) = h
        .ingest(Some("web-1-token-012345678X"), Encoding::Identity, body)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(j["error"], "unknown agent token");
}

#[tokio::test]
async fn malformed_batches_get_400_with_a_reason() {
    let h = Harness::new().await;
    let (s, j) = h
        .ingest(Some(TOKEN), Encoding::Identity, b"{\"version\":1,".to_vec())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        j["error"].as_str().unwrap().starts_with("malformed batch"),
        "{j}"
    );
    // Another agent's name under this agent's token.
    let body = encode_batch(&batch("db-1", "b", &[]), Encoding::Gzip).unwrap();
    let (s, j) = h.ingest(Some(TOKEN), Encoding::Gzip, body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap().contains("\"db-1\""), "{j}");
    let (s, j) = h
        .ingest(Some(TOKEN), Encoding::Zstd, b"definitely not zstd".to_vec())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap().contains("zstd"), "{j}");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let h = Harness::new().await;
    // Over max_body_bytes as sent.
    let (s, j) = h
        .ingest(Some(TOKEN), Encoding::Identity, vec![b' '; 5000])
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(j["error"].as_str().unwrap().contains("4096"), "{j}");
    // Small when sent, over max_decoded_bytes once decompressed.
    let mut big = batch("web-1", "big", &[]);
    big.records.push(Record::Log(lookout_protocol::LogRecord {
        time: Utc::now(),
        source: "app".into(),
        level: None,
        text: "x".repeat(100_000),
        position: None,
    }));
    let body = encode_batch(&big, Encoding::Zstd).unwrap();
    assert!(
        body.len() < 4096,
        "the test needs a small compressed body: {}",
        body.len()
    );
    let (s, j) = h.ingest(Some(TOKEN), Encoding::Zstd, body).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{j}");
    assert!(j["error"].as_str().unwrap().contains("decompressed"), "{j}");
}

#[tokio::test]
async fn a_body_that_holds_more_than_it_declares_is_still_decoded_whole() {
    // Room for a batch far past what is decoded on the request's own worker (128 KiB).
    let h = Harness::with_config(
        &CONFIG
            .replace("max_body_bytes = 4096", "max_body_bytes = 1048576")
            .replace("max_decoded_bytes = 65536", "max_decoded_bytes = 4194304"),
    )
    .await;
    let checks: Vec<(String, bool)> = (0..2000)
        .map(|i| (format!("local-{}", i % 100), true))
        .collect();
    let checks: Vec<(&str, bool)> = checks.iter().map(|(c, ok)| (c.as_str(), *ok)).collect();
    let json = encode_batch(&batch("web-1", "two-frames", &checks), Encoding::Identity).unwrap();
    assert!(json.len() > 256 * 1024, "{} bytes", json.len());
    // Two zstd frames: the first declares 100 bytes, the whole holds all of the JSON.
    let mut body = zstd::encode_all(&json[..100], 3).unwrap();
    body.extend(zstd::encode_all(&json[100..], 3).unwrap());
    assert_eq!(
        lookout_protocol::declared_size(&body, Encoding::Zstd),
        Some(100)
    );
    let (s, j) = h.ingest(Some(TOKEN), Encoding::Zstd, body).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["stored"], 2000, "{j}");
}

#[tokio::test]
async fn unknown_encoding_gets_415() {
    let h = Harness::new().await;
    let req = Request::post("/v1/ingest")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_ENCODING, "br")
        .body(Body::from("x"))
        .unwrap();
    let (s, _, j) = h.call(req).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(j["error"].as_str().unwrap().contains("br"), "{j}");
}

#[tokio::test]
async fn assignments_follow_selectors_and_answer_304_when_unchanged() {
    let h = Harness::new().await;
    let get = |token: &'static str, etag: Option<String>| {
        let mut r = Request::get("/v1/assignments")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(e) = etag {
            r = r.header(header::IF_NONE_MATCH, e);
        }
        r.body(Body::empty()).unwrap()
    };
    let (s, headers, j) = h.call(get(TOKEN, None)).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let names: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "web-only"]);
    assert_eq!(j["checks"][0]["interval"], "10s");
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let (s, _, _) = h.call(get(TOKEN, Some(etag.clone()))).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);

    let (_, _, j) = h.call(get("db-1-token-0123456789abcdef", None)).await;
    let names: Vec<&str> = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api"], "db-1 is not role=web");

    // A reload that changes the checks changes the revision.
    let mut changed = (*h.state.config()).clone();
    changed.checks.retain(|c| c.name != "api");
    h.state.replace_config(changed);
    let (s, _, j) = h.call(get(TOKEN, Some(etag))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["checks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let h = Harness::new().await;
    let (s, j) = h.get("/api/v1/checks/api/results?from=yesterday").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        j["error"].as_str().unwrap().contains("from=\"yesterday\""),
        "{j}"
    );
    let (s, j) = h.get("/api/v1/checks/api/results?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    let (s, _) = h.get("/api/v1/checks/api/results?bogus=1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, j) = h.get("/api/v1/checks/nope/results").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(j["error"].as_str().unwrap().contains("nope"), "{j}");
}

/// Issue #28: a step whose milliseconds wrapped to 0 divided by zero; every bad step or
/// window is a 400 with a sentence, never a 5xx.
#[tokio::test]
async fn metric_steps_and_windows_are_validated() {
    let h = Harness::new().await;
    let q = "/api/v1/metrics?agent=web-1&name=m";
    for (query, says) in [
        ("&step=0s", "step must be at least 1s"),
        ("&step=500ms", "step must be at least 1s"),
        ("&step=-1s", "step:"),
        ("&step=584942417355y", "step"),
        ("&step=18446744073709551615s", "step"),
        ("&step=367d", "step must be at most 366d"),
        (
            "&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from is after to",
        ),
        (
            "&step=5s&from=2026-01-01T00:00:00Z&to=2026-01-01T07:00:00Z",
            "at most 6h",
        ),
        (
            "&step=5m&from=2026-01-01T00:00:00Z&to=2026-02-15T00:00:00Z",
            "at most 31d",
        ),
        (
            "&step=1h&from=0001-01-01T00:00:00Z&to=9999-01-01T00:00:00Z",
            "more than 20000 steps",
        ),
    ] {
        let (s, j) = h.get(&format!("{q}{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {j}");
        let error = j["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{query}: {error}");
    }
    // The widest a year's step allows is still answered.
    let (s, j) = h
        .get(&format!(
            "{q}&step=366d&from=0001-01-01T00:00:00Z&to=9999-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
}

#[tokio::test]
async fn results_filter_by_agent_and_window() {
    let h = Harness::new().await;
    let body = encode_batch(
        &batch("web-1", "1", &[("api", true), ("api", true)]),
        Encoding::Zstd,
    )
    .unwrap();
    assert_eq!(
        h.ingest(Some(TOKEN), Encoding::Zstd, body).await.0,
        StatusCode::OK
    );
    let body = encode_batch(&batch("db-1", "1", &[("api", false)]), Encoding::Zstd).unwrap();
    assert_eq!(
        h.ingest(Some("db-1-token-0123456789abcdef"), Encoding::Zstd, body)
            .await
            .0,
        StatusCode::OK
    );
    let (_, j) = h.get("/api/v1/checks/api/results").await;
    assert_eq!(j["results"].as_array().unwrap().len(), 3);
    let (_, j) = h.get("/api/v1/checks/api/results?agent=db-1").await;
    assert_eq!(j["results"].as_array().unwrap().len(), 1);
    let (_, j) = h
        .get("/api/v1/checks/api/results?to=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(j["results"].as_array().unwrap().len(), 0);
    // One of two agents failing is not a majority.
    let (_, j) = h.get("/api/v1/checks").await;
    let api = j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "api")
        .unwrap();
    assert_eq!(api["status"], "up", "{api}");
}

#[tokio::test]
async fn status_page_lists_checks_and_escapes_names() {
    let h = Harness::new().await;
    let body = encode_batch(
        &batch("web-1", "x", &[("<script>x</script>", false)]),
        Encoding::Zstd,
    )
    .unwrap();
    assert_eq!(
        h.ingest(Some(TOKEN), Encoding::Zstd, body).await.0,
        StatusCode::OK
    );
    let resp = lookout_collector::router(h.state.clone())
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("<h3>api</h3>"), "{html}");
    // Notification links (`public_url/#check-api`) land on the check.
    assert!(html.contains("id=\"check-api\""), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>x"), "{html}");
}

#[tokio::test]
async fn uptime_answers_from_rollups_per_step() {
    let h = Harness::new().await;
    // Day 1: 4 results, 1 failing (web-1); day 2: 2 results, both fine (web-1 and db-1).
    let at = |day: i64, hour: i64| {
        chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::days(day)
            + chrono::Duration::hours(hour)
    };
    let mut b = batch("web-1", "u1", &[]);
    for (hour, ok, latency) in [
        (1, true, 10.0),
        (1, false, 20.0),
        (5, true, 30.0),
        (5, true, 40.0),
    ] {
        b.records.push(Record::CheckResult(CheckResult {
            check: "api".into(),
            check_type: None,
            time: at(0, hour),
            ok,
            latency_ms: latency,
            error: None,
            status_code: None,
            cert_expiry: None,
            timings: Timings::default(),
        }));
    }
    let mut day2 = b.records[0].clone();
    if let Record::CheckResult(c) = &mut day2 {
        c.time = at(1, 3);
    }
    b.records.push(day2.clone());
    let body = encode_batch(&b, Encoding::Zstd).unwrap();
    assert_eq!(
        h.ingest(Some(TOKEN), Encoding::Zstd, body).await.0,
        StatusCode::OK
    );
    let body = encode_batch(
        &Batch {
            agent: "db-1".into(),
            records: vec![day2],
            ..b.clone()
        },
        Encoding::Zstd,
    )
    .unwrap();
    assert_eq!(
        h.ingest(Some("db-1-token-0123456789abcdef"), Encoding::Zstd, body)
            .await
            .0,
        StatusCode::OK
    );
    while h.state.store.roll_up(1000).await.unwrap() > 0 {}

    let window = "from=2026-11-01T00:00:00Z&to=2026-11-02T23:59:59Z";
    let (s, j) = h
        .get(&format!("/api/v1/checks/api/uptime?step=1d&{window}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let points = j["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{j}");
    assert_eq!(points[0]["time"], "2026-11-01T00:00:00Z");
    assert_eq!(points[0]["count"], 4);
    assert_eq!(points[0]["uptime"], 0.75);
    assert_eq!(points[0]["latency_avg_ms"], 25.0);
    assert_eq!(points[1]["count"], 2);
    assert_eq!(points[1]["uptime"], 1.0);
    assert_eq!(j["total"]["count"], 6);
    let p99 = j["total"]["latency_p99_ms"].as_f64().unwrap();
    assert!((p99 - 40.0).abs() <= 40.0 * 0.05, "{p99}");

    let (_, j) = h
        .get(&format!(
            "/api/v1/checks/api/uptime?step=1h&agent=web-1&{window}"
        ))
        .await;
    let hours: Vec<(&str, u64)> = j["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["time"].as_str().unwrap(), p["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        hours,
        [
            ("2026-11-01T01:00:00Z", 2),
            ("2026-11-01T05:00:00Z", 2),
            ("2026-11-02T03:00:00Z", 1)
        ]
    );

    let (s, j) = h.get("/api/v1/checks/api/uptime?step=1w").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap().contains("1m, 1h or 1d"), "{j}");
    let (s, _) = h
        .get("/api/v1/checks/api/uptime?step=1m&from=2020-01-01T00:00:00Z")
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "years of minutes is too many points"
    );
    let (s, _) = h.get("/api/v1/checks/nope/uptime").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn overload_gets_429_with_retry_after_and_stores_nothing() {
    let h = Harness::new().await;
    let slots = h.state.ingest_slots().clone();
    let held = slots
        .clone()
        .acquire_many_owned(slots.available_permits() as u32)
        .await
        .unwrap();
    let body = encode_batch(&batch("web-1", "busy", &[("api", true)]), Encoding::Zstd).unwrap();
    let req = Request::post("/v1/ingest")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_ENCODING, "zstd")
        .body(Body::from(body.clone()))
        .unwrap();
    let (s, headers, j) = h.call(req).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(j["error"].as_str().unwrap().contains("busy"), "{j}");
    drop(held);
    let (s, j) = h.ingest(Some(TOKEN), Encoding::Zstd, body).await;
    assert_eq!(
        (s, j["stored"].as_u64()),
        (StatusCode::OK, Some(1)),
        "the retry is stored"
    );
}

#[tokio::test]
async fn metrics_are_served_per_series_and_step() {
    let h = Harness::new().await;
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let sample = |device: &str, secs: i64, value: f64| {
        Record::Metric(lookout_protocol::MetricSample {
            name: "system.network.io".into(),
            labels: [
                ("device".to_string(), device.to_string()),
                ("direction".to_string(), "receive".to_string()),
            ]
            .into_iter()
            .collect(),
            time: t0 + chrono::Duration::seconds(secs),
            value,
            metric_type: lookout_protocol::MetricType::Counter,
        })
    };
    let mut b = batch("web-1", "m", &[]);
    b.records = vec![
        sample("eth0", 0, 10.0),
        sample("eth0", 10, 30.0),
        sample("eth0", 70, 50.0),
        sample("lo", 5, 1.0),
    ];
    let body = encode_batch(&b, Encoding::Zstd).unwrap();
    assert_eq!(
        h.ingest(Some(TOKEN), Encoding::Zstd, body).await.0,
        StatusCode::OK
    );
    while h.state.store.roll_up(1000).await.unwrap() > 0 {}

    let window = "from=2026-11-25T10:00:00Z&to=2026-11-25T10:05:00Z";
    // Per minute, from the rollups, one series for eth0.
    let (s, j) = h
        .get(&format!(
            "/api/v1/metrics?agent=web-1&name=system.network.io&labels=device=eth0&step=1m&{window}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let series = j["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{j}");
    assert_eq!(series[0]["labels"]["device"], "eth0");
    let points = series[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{j}");
    assert_eq!(points[0]["time"], "2026-11-25T10:00:00Z");
    assert_eq!(
        (points[0]["count"].as_u64(), points[0]["avg"].as_f64()),
        (Some(2), Some(20.0))
    );
    assert_eq!(
        (
            points[0]["min"].as_f64(),
            points[0]["max"].as_f64(),
            points[0]["last"].as_f64()
        ),
        (Some(10.0), Some(30.0), Some(30.0))
    );
    assert_eq!(points[1]["last"], 50.0);
    // Per 5 seconds, from raw samples, both series.
    let (_, j) = h
        .get(&format!(
            "/api/v1/metrics?agent=web-1&name=system.network.io&step=5s&{window}"
        ))
        .await;
    let series = j["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{j}");
    assert_eq!(series[0]["points"].as_array().unwrap().len(), 3, "{j}");
    // Bad input is named.
    let (s, j) = h.get("/api/v1/metrics?agent=web-1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        j["error"].as_str().unwrap().contains("name is required"),
        "{j}"
    );
    let (s, j) = h
        .get("/api/v1/metrics?agent=web-1&name=x&labels=nolabel")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap().contains("key=value"), "{j}");
    let (s, _) = h
        .get("/api/v1/metrics?agent=web-1&name=x&step=1s&from=2026-11-01T00:00:00Z")
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "raw samples over days are refused"
    );
}

#[tokio::test]
async fn writing_endpoints_are_off_without_an_admin_token() {
    let h = Harness::new().await;
    let req = Request::post("/api/v1/silences")
        .header(header::AUTHORIZATION, "Bearer anything-at-all-0123")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"matchers": {"check": "api"}, "ends": "2099-01-01T00:00:00Z"}"#,
        ))
        .unwrap();
    let (s, _, j) = h.call(req).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        j["error"],
        "writing endpoints are off: set [server] admin_token to use them"
    );
}

/// The SVG and content type of a badge.
async fn badge(h: &Harness, uri: &str) -> (StatusCode, String, String) {
    let resp = lookout_collector::router(h.state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let kind = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn badges_say_a_checks_state_and_uptime_in_words() {
    let h = Harness::new().await;
    let (s, kind, svg) = badge(&h, "/badge/api/status").await;
    assert_eq!(s, StatusCode::OK);
    assert!(kind.starts_with("image/svg+xml"), "{kind}");
    assert!(svg.contains("<title>api: pending</title>"), "{svg}");
    let (_, _, svg) = badge(&h, "/badge/api/uptime").await;
    assert!(svg.contains("<title>uptime 30d: no data</title>"), "{svg}");

    // Three good results and one failure: up (the latest is good), 75% over 24 h.
    let results = [("api", true), ("api", false), ("api", true), ("api", true)];
    for (i, r) in results.iter().enumerate() {
        let body = encode_batch(&batch("web-1", &format!("b{i}"), &[*r]), Encoding::Zstd).unwrap();
        assert_eq!(
            h.ingest(Some(TOKEN), Encoding::Zstd, body).await.0,
            StatusCode::OK
        );
    }
    while h.state.store.roll_up(1000).await.unwrap() > 0 {}
    let (_, _, svg) = badge(&h, "/badge/api/status").await;
    assert!(svg.contains("<title>api: up</title>"), "{svg}");
    let (s, _, svg) = badge(&h, "/badge/api/uptime?window=24h").await;
    assert_eq!(s, StatusCode::OK);
    assert!(svg.contains("<title>uptime 24h: 75%</title>"), "{svg}");

    // A failure now: down.
    let body = encode_batch(&batch("web-1", "b9", &[("api", false)]), Encoding::Zstd).unwrap();
    h.ingest(Some(TOKEN), Encoding::Zstd, body).await;
    let (_, _, svg) = badge(&h, "/badge/api/status").await;
    assert!(svg.contains("<title>api: down</title>"), "{svg}");

    let (s, _, svg) = badge(&h, "/badge/nope/status").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(svg.contains("no such check"), "{svg}");
    let (s, _, _) = badge(&h, "/badge/nope/uptime").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, j) = h.get("/badge/api/uptime?window=1y").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        j.to_string().contains("expected 24h, 7d, 30d or 90d"),
        "{j}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_arriving_together_share_a_transaction_and_each_is_stored_once() {
    let h = Harness::new().await;
    // 40 batches at once (the ingest slots hold 32, so some are refused and retried), plus
    // each sent twice: every one is stored exactly once, in fewer transactions than batches.
    let mut tasks = Vec::new();
    for i in 0..40 {
        for _ in 0..2 {
            let state = h.state.clone();
            tasks.push(tokio::spawn(async move {
                let body = encode_batch(
                    &batch(
                        "web-1",
                        &format!("g{i}"),
                        &[("api", true), ("web-only", i % 2 == 0)],
                    ),
                    Encoding::Zstd,
                )
                .unwrap();
                loop {
                    let req = Request::post("/v1/ingest")
                        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                        .header(header::CONTENT_ENCODING, "zstd")
                        .body(Body::from(body.clone()))
                        .unwrap();
                    let resp = lookout_collector::router(state.clone())
                        .oneshot(req)
                        .await
                        .unwrap();
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    }
                    assert_eq!(resp.status(), StatusCode::OK);
                    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                        .await
                        .unwrap();
                    let v: Value = serde_json::from_slice(&bytes).unwrap();
                    return v["duplicate"].as_bool().unwrap();
                }
            }));
        }
    }
    let mut duplicates = 0;
    for t in tasks {
        duplicates += usize::from(t.await.unwrap());
    }
    assert_eq!(
        duplicates, 40,
        "each batch stored once, its copy a duplicate"
    );
    let (_, results) = h.get("/api/v1/checks/api/results?limit=1000").await;
    assert_eq!(results["results"].as_array().unwrap().len(), 40);
    let resp = lookout_collector::router(h.state.clone())
        .oneshot(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer {READ}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let groups: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("lookout_ingest_groups_total "))
        .expect("lookout_ingest_groups_total")
        .parse()
        .unwrap();
    assert!(groups < 80.0, "{groups} transactions for 80 batches");
}
