//! End to end, the limits on what is sent (docs/security.md, "Limits on what is sent"): a
//! real collector given batches past each of its `[server]` ingest limits, and a real agent
//! given hostile answers by a collector that is not one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_protocol::Encoding;
use lookout_tests::{Daemon, READ_TOKEN, Target, check_status, eventually, read, start_collector};

const TOKEN: &str = "limits-agent-token-0123456789abcdef";

const WAIT: Duration = Duration::from_secs(30);

/// The collector's resident memory (VmRSS) and its peak so far (VmHWM), in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A batch of `records` (JSON objects, joined here), zstd-compressed as agents send it.
fn batch_body(id: &str, records: impl Iterator<Item = String>) -> Vec<u8> {
    let mut json = format!(r#"{{"version":1,"agent":"flood","batch_id":"{id}","records":["#);
    for (i, r) in records.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&r);
    }
    json.push_str("]}");
    // In one frame that says its size, as the agent's encoder writes it.
    zstd::bulk::compress(json.as_bytes(), 1).unwrap()
}

/// A batch `id` of one sample of series `m`.
fn sample_m(id: &str, t: &str, value: u32) -> Vec<u8> {
    batch_body(
        id,
        std::iter::once(format!(
            r#"{{"kind":"metric","name":"m","time":"{t}","value":{value}}}"#
        )),
    )
}

async fn post(base: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/ingest"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", Encoding::Zstd.header_value())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// `lookout_ingest_rejects_total{reason}` (or another labelled counter) from `/metrics`.
async fn counter(base: &str, name: &str, label: &str) -> u64 {
    let text = read(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{{label}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Issue #28's hostile agent: a batch of a million records, a record with 10,000 labels, a
/// 10 MiB log line, 100,000 invented check names and 12,000 new series at once. Each is
/// refused or cut as docs/configuration.md says, counted in `/metrics`, the collector's
/// memory stays within 100 MB of where it started, and nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_past_every_ingest_limit_is_refused_or_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // A million of the smallest records decode to 69 MB: past the default max_decoded_bytes
    // (64 MiB), which would refuse the batch for its size first. Raised here so that the
    // record bound is what refuses it, after reading its whole decompressed JSON.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
         max_decoded_bytes = 134217728\n[[agents]]\nname = \"flood\"\ntoken = \"{TOKEN}\"\n",
        dir.path().display()
    );
    let (collector, base) = start_collector(dir.path(), &config).unwrap();
    let pid = collector.pid();
    let t = now();
    // One ordinary batch first: what the collector holds once it is working.
    let (s, j) = post(&base, sample_m("warm", &t, 1)).await;
    assert_eq!(s, 200, "{j}");
    let (start_rss, start_hwm) = memory(pid);

    // 1. A million records: 413 with the key to change, and no record read past the bound.
    let record = format!(r#"{{"kind":"metric","name":"m","time":"{t}","value":1}}"#);
    let body = batch_body("million", std::iter::repeat_n(record, 1_000_000));
    let (s, j) = post(&base, body).await;
    assert_eq!(s, 413, "{j}");
    let error = j["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("more than 20000 records") && error.contains("max_records_per_batch"),
        "{error}"
    );

    // 2. A sample with 10,000 labels, one with a label of 2 KiB, a metric name of 20 KiB:
    // each refused by its index and reason; the good record beside them is stored.
    let labels: Vec<String> = (0..10_000).map(|i| format!(r#""l{i}":"v""#)).collect();
    let records = [
        format!(
            r#"{{"kind":"metric","name":"m","labels":{{{}}},"time":"{t}","value":1}}"#,
            labels.join(",")
        ),
        format!(
            r#"{{"kind":"metric","name":"m","labels":{{"a":"{}"}},"time":"{t}","value":1}}"#,
            "x".repeat(2048)
        ),
        format!(
            r#"{{"kind":"metric","name":"{}","time":"{t}","value":1}}"#,
            "n".repeat(20_000)
        ),
        format!(r#"{{"kind":"metric","name":"good","time":"{t}","value":1}}"#),
    ];
    let (s, j) = post(&base, batch_body("labels", records.into_iter())).await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["stored"], 1, "{j}");
    assert_eq!(
        j["refused"],
        serde_json::json!([
            {"index": 0, "reason": "too_many_labels"},
            {"index": 1, "reason": "label_too_long"},
            {"index": 2, "reason": "string_too_long"},
        ])
    );

    // 3. A 10 MiB log line of three-byte characters: stored, cut between characters at
    // 1 MiB (byte 1,048,576 falls inside one) and marked.
    let line = "€".repeat((10 << 20) / 3);
    let (s, j) = post(
        &base,
        batch_body(
            "line",
            std::iter::once(format!(
                r#"{{"kind":"log","time":"{t}","source":"app","text":"{line}"}}"#
            )),
        ),
    )
    .await;
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["stored"], 1, "{j}");
    let logs = read(format!("{base}/api/v1/logs?agent=flood&limit=1"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let text = logs["lines"][0]["text"].as_str().unwrap();
    let kept = 1_048_575; // the last boundary at or before 1 MiB
    assert_eq!(
        text,
        format!("{}…[truncated {} bytes]", &line[..kept], line.len() - kept)
    );

    // 4. 100,000 invented check names, 10,000 to a batch: the first 1,000 are stored, the
    // rest refused.
    let mut stored = 0;
    for b in 0..10 {
        let results = (0..10_000).map(|i| {
            format!(
                r#"{{"kind":"check_result","check":"made-up-{b}-{i}","time":"{t}","ok":true,"latency_ms":1}}"#
            )
        });
        let (s, j) = post(&base, batch_body(&format!("checks-{b}"), results)).await;
        assert_eq!(s, 200, "{j}");
        stored += j["stored"].as_u64().unwrap();
        assert_eq!(j["refused"][0]["reason"], "too_many_checks", "{j}");
    }
    assert_eq!(stored, 1_000);

    // 5. 12,000 new series at once: at most 10,000 a minute are taken ("warm" and "good"
    // started two this minute, unless the minute has turned since), the rest refused; a
    // series already known is still taken.
    let samples = (0..12_000).map(|i| {
        format!(r#"{{"kind":"metric","name":"s","labels":{{"i":"{i}"}},"time":"{t}","value":1}}"#)
    });
    let (s, j) = post(&base, batch_body("series", samples)).await;
    assert_eq!(s, 200, "{j}");
    let taken = j["stored"].as_u64().unwrap();
    assert!((9_998..=10_000).contains(&taken), "{j}");
    assert_eq!(j["refused"][0]["reason"], "series_rate", "{j}");
    let (s, j) = post(&base, sample_m("known", &t, 2)).await;
    assert_eq!((s, j["stored"].as_u64()), (200, Some(1)), "{j}");

    let (sent_rss, sent_hwm) = memory(pid);
    // Each counted under its reason.
    let rejects = "lookout_ingest_rejects_total";
    for (reason, n) in [
        ("too_many_records", 1),
        ("too_many_labels", 1),
        ("label_too_long", 1),
        ("string_too_long", 1),
        ("too_many_checks", 99_000),
        ("series_rate", 12_000 - taken),
    ] {
        assert_eq!(
            counter(&base, rejects, &format!("reason=\"{reason}\"")).await,
            n,
            "{reason}"
        );
    }
    assert_eq!(
        counter(&base, "lookout_ingest_cut_total", "field=\"log_text\"").await,
        1
    );

    // A metrics query whose step wrapped to zero milliseconds: a sentence, not a 5xx.
    for step in ["18446744073709551615s", "0s", "400d"] {
        let resp = read(format!(
            "{base}/api/v1/metrics?agent=flood&name=m&step={step}"
        ))
        .await
        .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "step={step}");
        let j: serde_json::Value = resp.json().await.unwrap();
        assert!(j["error"].as_str().unwrap().contains("step"), "{j}");
    }

    let (end_rss, end_hwm) = memory(pid);
    eprintln!(
        "collector memory, KiB: VmRSS {start_rss} at start, {sent_rss} after the batches, \
         {end_rss} after reading /metrics and the API; VmHWM {start_hwm} at start, {sent_hwm} \
         after the batches, {end_hwm} at the end"
    );
    assert!(
        end_rss < start_rss + 100 * 1024,
        "VmRSS grew from {start_rss} KiB to {end_rss} KiB"
    );
    assert!(
        end_hwm < start_rss + 100 * 1024,
        "peak VmHWM {end_hwm} KiB, {start_rss} KiB at start"
    );
    let log = collector.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// How the fake collector answers, in turn: each hostile answer once, then as the real one.
#[derive(Clone)]
struct Fake {
    real: String,
    ingests: Arc<AtomicUsize>,
    assignments: Arc<AtomicUsize>,
    huge: axum::body::Bytes,
}

/// 400s whose text has a three-byte character across byte 500, at each offset.
fn around_500(k: usize) -> Vec<u8> {
    let mut body = "a".repeat(498 + k).into_bytes();
    body.extend_from_slice("€€€€".as_bytes());
    body
}

async fn fake_ingest(
    axum::extract::State(f): axum::extract::State<Fake>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let n = f.ingests.fetch_add(1, Ordering::SeqCst);
    match n {
        0 => (StatusCode::BAD_REQUEST, f.huge.clone()).into_response(),
        1 => (StatusCode::BAD_REQUEST, vec![b'x', 0xff, 0xfe, 0xc3, b'y']).into_response(),
        2..=4 => (StatusCode::BAD_REQUEST, around_500(n - 2)).into_response(),
        5 => (StatusCode::SERVICE_UNAVAILABLE, f.huge.clone()).into_response(),
        _ => forward(&f.real, "/v1/ingest", reqwest::Method::POST, &headers, body).await,
    }
}

async fn fake_assignments(
    axum::extract::State(f): axum::extract::State<Fake>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    match f.assignments.fetch_add(1, Ordering::SeqCst) {
        0 => (StatusCode::OK, f.huge.clone()).into_response(),
        1 => (StatusCode::OK, r#"{"revision":5,"checks":{}}"#).into_response(),
        2 => (StatusCode::OK, vec![b'{', 0xff, b'}']).into_response(),
        _ => {
            forward(
                &f.real,
                "/v1/assignments",
                reqwest::Method::GET,
                &headers,
                Default::default(),
            )
            .await
        }
    }
}

/// Passes a request on to the real collector and its answer back.
async fn forward(
    real: &str,
    path: &str,
    method: reqwest::Method,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let mut req = reqwest::Client::new().request(method, format!("{real}{path}"));
    for name in [
        "authorization",
        "content-type",
        "content-encoding",
        "lookout-agent-labels",
        "if-none-match",
    ] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let resp = req.body(body).send().await.unwrap();
    let status = axum::http::StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let mut out = axum::response::Response::builder().status(status);
    if let Some(e) = resp.headers().get("etag") {
        out = out.header("etag", e.as_bytes());
    }
    out.body(axum::body::Body::from(resp.bytes().await.unwrap()))
        .unwrap()
}

/// Issue #28: a collector (or something posing as one) that answers the agent with 100 MB,
/// with invalid UTF-8, with a multi-byte character across byte 500 of an error, and with
/// assignments of the wrong shape. The real agent sets those batches aside, keeps its
/// checks, and goes on: its later results reach a real collector, and it never panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_shipping_whatever_a_collector_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
         [[agents]]\nname = \"edge-1\"\ntoken = \"{TOKEN}\"\n",
        dir.path().display()
    );
    let (_collector, real) = start_collector(dir.path(), &config).unwrap();
    let fake = Fake {
        real: real.clone(),
        ingests: Arc::default(),
        assignments: Arc::default(),
        huge: axum::body::Bytes::from(vec![b'x'; 100 << 20]),
    };
    let app = axum::Router::new()
        .route("/v1/ingest", axum::routing::post(fake_ingest))
        .route("/v1/assignments", axum::routing::get(fake_assignments))
        .with_state(fake.clone());
    let fake_url = lookout_tests::serve(app).await;

    let target = Target::start().await.unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let path = agent_dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"edge-1\"\ncollector = \"{fake_url}\"\ntoken = \"{TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n[shipping]\n\
             flush_interval = \"100ms\"\nsteady_wait = \"100ms\"\nassignments_interval = \"1s\"\n\
             max_backoff = \"1s\"\n\
             [[checks]]\nname = \"local-web\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n",
            agent_dir.path().display(),
            target.url
        ),
    )
    .unwrap();
    let agent = lookout_tests::start_agent(&path).unwrap();

    // Its results reach the real collector once the fake passes batches on.
    eventually(
        "the local check's results at the real collector",
        WAIT,
        || {
            let real = real.clone();
            async move { check_status(&real, "local-web").await }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; {} ingest requests; agent log:\n{}",
            fake.ingests.load(Ordering::SeqCst),
            agent.log_text()
        )
    });
    // Three kinds of hostile answer to assignments were each met, and it asks again after.
    eventually("assignments fetched through the fake", WAIT, || {
        let n = fake.assignments.load(Ordering::SeqCst);
        async move { Ok((n > 4).then_some(())) }
    })
    .await
    .unwrap();

    let log = agent.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("longer than [shipping] max_answer_bytes"),
        "{log}"
    );
    assert!(log.contains("keeping the current checks"), "{log}");
    let rejected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("collector refused a batch"))
        .collect();
    assert_eq!(rejected.len(), 5, "{log}");
    // Each reason kept at most 500 bytes of the collector's text, cut between characters,
    // and the invalid bytes replaced.
    assert!(rejected[1].contains("x\u{fffd}"), "{}", rejected[1]);
    for l in &rejected {
        assert!(l.len() < 2_000, "a reason of {} bytes", l.len());
    }
    let aside = std::fs::read_dir(agent_dir.path().join("spool/rejected"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(aside, 5, "each refused batch set aside");
    assert!(agent_is_running(&agent));
}

fn agent_is_running(agent: &Daemon) -> bool {
    std::fs::metadata(format!("/proc/{}", agent.pid())).is_ok()
}
