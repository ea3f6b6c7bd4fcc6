//! The collector checked against its own API description: schemathesis (PyPI; `scripts/test`
//! installs it) generates requests from `/api/v1/openapi.json` for every operation, valid and
//! invalid, and checks each answer: no 5xx, every answer in its documented schema and status
//! codes, invalid input refused and valid input taken. The collector runs with data in it
//! (results, an alert, metrics, logs, a silence, a heartbeat) and the admin token, so the
//! operations answer with real rows, not only empty lists. Its settings, and the few rules it
//! is told that JSON Schema cannot say, are in tests/schemathesis/schemathesis.toml.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use lookout_protocol::{
    Batch, CheckResult, Encoding, LogRecord, MetricSample, PROTOCOL_VERSION, Record, encode_batch,
};
use lookout_tests::{READ_TOKEN, Target, eventually, free_port, get_json, start_collector};

const ADMIN: &str = "schema-admin-token-0123456789abcdef";
const AGENT: &str = "schema-agent-token-0123456789abcdef";
const BEAT: &str = "schema-beat-token-0123456789abcdef";
const ENROL: &str = "schema-enrol-token-0123456789abcdef";

/// schemathesis: `LOOKOUT_SCHEMATHESIS`, else the one `scripts/test` installs in its own
/// virtual environment, else the one on PATH.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("LOOKOUT_SCHEMATHESIS") {
        return path.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let venv = PathBuf::from(home).join(".cache/lookout/schemathesis/bin/schemathesis");
    if venv.exists() {
        return venv;
    }
    "schemathesis".into()
}

/// One batch of what an agent sends: results, metric samples and log lines, all recent.
fn batch() -> Vec<u8> {
    let now = chrono::Utc::now();
    let mut records = Vec::new();
    for i in 0..20 {
        let time = now - chrono::Duration::seconds(20 - i);
        records.push(Record::CheckResult(CheckResult {
            check: "edge-api".into(),
            check_type: None,
            time,
            ok: i % 5 != 0,
            latency_ms: 10.0 + i as f64,
            error: (i % 5 == 0).then(|| "status 503".to_string()),
            status_code: Some(if i % 5 == 0 { 503 } else { 200 }),
            cert_expiry: None,
            timings: Default::default(),
        }));
        records.push(Record::Metric(MetricSample {
            name: "system.cpu.utilization".into(),
            labels: [("cpu".to_string(), "all".to_string())].into(),
            time,
            value: 0.25,
            metric_type: Default::default(),
        }));
        records.push(Record::Log(LogRecord {
            time,
            source: "/var/log/app.log".into(),
            level: Some(if i % 4 == 0 { "error" } else { "info" }.into()),
            text: format!("request {i} served in {} ms", 10 + i),
            position: None,
        }));
    }
    encode_batch(
        &Batch {
            version: PROTOCOL_VERSION,
            agent: "web-1".into(),
            batch_id: "schema-1".into(),
            records,
        },
        Encoding::Identity,
    )
    .expect("a batch encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_api_description_and_none_is_a_server_error_on_sqlite() {
    run(None, 75).await;
}

/// PostgreSQL refuses what SQLite takes (a NUL in text, for one), so the same run again on it,
/// shorter, to keep the pair within two minutes of the suite's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_api_description_and_none_is_a_server_error_on_postgresql() {
    let Some(url) = lookout_tests::pg_database("schema").await else {
        return;
    };
    run(Some(url), 45).await;
}

/// Starts a collector with data in it, on SQLite or the PostgreSQL at `storage`, and runs
/// schemathesis against it for `seconds`.
async fn run(storage: Option<String>, seconds: u32) {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage
        .map(|url| format!("[storage]\nurl = \"{url}\"\n"))
        .unwrap_or_default();
    let target = Target::start().await.unwrap();
    let dead = free_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{dir}"
admin_token = "{ADMIN}"
read_tokens = ["{READ_TOKEN}"]

[local_agent]
name = "local"

[[agents]]
name = "web-1"
token = "{AGENT}"
labels = {{ role = "web" }}

[enrollment]
token = "{ENROL}"

[[heartbeats]]
name = "backup"
token = "{BEAT}"
period = "1h"

[[checks]]
name = "api"
type = "http"
url = "{url}"
interval = "1s"
timeout = "1s"
group = "API"

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:{dead}"
interval = "1s"
timeout = "1s"
failure_threshold = 1

{storage}
"#,
        dir = dir.path().display(),
        url = target.url,
    );
    let (collector, base) = start_collector(dir.path(), &config).unwrap();
    let client = reqwest::Client::new();
    let stored = client
        .post(format!("{base}/v1/ingest"))
        .bearer_auth(AGENT)
        .header("content-type", "application/json")
        .body(batch())
        .send()
        .await
        .unwrap();
    assert!(
        stored.status().is_success(),
        "{}",
        stored.text().await.unwrap()
    );
    let silence = client
        .post(format!("{base}/api/v1/silences"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"matchers": {"check": "api"}, "ends": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(silence.status(), 201, "{}", silence.text().await.unwrap());
    // The dead port's alert firing, and the local agent's own metrics in.
    eventually(
        "an alert and host metrics",
        Duration::from_secs(30),
        || async {
            let alerts = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
            let hosts = get_json(&format!("{base}/api/v1/hosts")).await?;
            let local_metrics = hosts["hosts"].as_array().into_iter().flatten().any(|h| {
                h["name"] == "local" && h["metrics"].as_array().is_some_and(|m| !m.is_empty())
            });
            Ok(
                (alerts["alerts"].as_array().is_some_and(|a| !a.is_empty()) && local_metrics)
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap();

    let config_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemathesis/schemathesis.toml"
    );
    let report = dir.path().join("schemathesis-report");
    std::fs::create_dir_all(&report).unwrap();
    // One seed, so a failure comes back when the test is run again; another seed
    // (LOOKOUT_SCHEMATHESIS_SEED) tries other cases.
    let seed = std::env::var("LOOKOUT_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261207".into());
    let run = tokio::task::spawn_blocking({
        let base = base.clone();
        let report = report.clone();
        move || {
            Command::new(schemathesis())
                .args(["--config-file", config_file, "run"])
                .arg(format!("{base}/api/v1/openapi.json"))
                // One worker: Python 3.11 before 3.11.8 fails inside hypothesis ("AST
                // constructor recursion depth mismatch", CPython gh-106905) when two threads
                // parse source at once.
                .args(["--checks", "all", "--workers", "1"])
                .args(["--max-time", &seconds.to_string()])
                .args(["--seed", &seed, "--no-color"])
                .arg("--report-dir")
                .arg(&report)
                // Its own cache (.schemathesis/) goes in the test's folder, not the source tree.
                .current_dir(&report)
                .env("LOOKOUT_URL", &base)
                .env("LOOKOUT_ADMIN_TOKEN", ADMIN)
                .env("LOOKOUT_AGENT_TOKEN", AGENT)
                .env("LOOKOUT_BEAT_TOKEN", BEAT)
                .env("LOOKOUT_ENROLL_TOKEN", ENROL)
                .output()
        }
    })
    .await
    .unwrap()
    .expect(
        "schemathesis (PyPI): scripts/test installs it, or set LOOKOUT_SCHEMATHESIS to its path",
    );
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "schemathesis found failures:\n{out}");
    // What it did, for the test's output: phases, cases generated, the seed.
    eprintln!("{out}");
    // It really ran: every operation of the document but the two endless tails and the one
    // that serves the document (schemathesis leaves out the URL it loaded the schema from).
    let number_after = |label: &str| -> Option<usize> {
        let rest = &out[out.find(label)? + label.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let document = get_json(&format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap();
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| {
            p.as_object().map_or(0, |o| {
                o.keys()
                    .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                    .count()
            })
        })
        .sum();
    assert_eq!(number_after("Tested:"), Some(operations - 3), "{out}");
    let log = collector.log_text();
    assert!(
        !log.contains("panicked"),
        "a panic in the collector:\n{log}"
    );
}
