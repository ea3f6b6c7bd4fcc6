//! The agent's OTLP receiver (`[otlp]`) end to end: the real agent and collector, and a real
//! sender, the OpenTelemetry Python SDK with its OTLP/HTTP exporters (PyPI, pinned; `scripts/test`
//! installs it through scripts/lib/otlp.sh). The script prints what it recorded and the test
//! compares that with what the collector stores, never with the agent's own figures. A JSON
//! request written per the OTLP specification goes through curl; traces are answered 501; an
//! agent without the section listens on nothing; a burst of large requests is answered 503 past
//! the concurrency bound while the agent's memory stays bounded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lookout_tests::{
    Daemon, READ_TOKEN, eventually, free_port, get_json, last_value, process_figures,
    start_collector,
};

const AGENT: &str = "otlp-1";
const AGENT_TOKEN: &str = "otlp-receiver-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

/// The SDK's Python: `LOOKOUT_OTLP_PYTHON`, else the venv scripts/lib/otlp.sh makes.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LOOKOUT_OTLP_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let venv = PathBuf::from(home).join(".cache/lookout/otlp/bin/python");
    assert!(
        venv.exists(),
        "the OpenTelemetry Python SDK is not installed: run scripts/test, or \
         `. scripts/lib/otlp.sh; install_otlp_peers`"
    );
    venv
}

/// A collector knowing [`AGENT`], and that agent with `extra` in its configuration.
fn start(dir: &Path, extra: &str) -> (Daemon, String, Daemon) {
    let (collector, base) = start_collector(
        dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
             [[agents]]\nname = \"{AGENT}\"\ntoken = \"{AGENT_TOKEN}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let toml = agent_dir.join("agent.toml");
    std::fs::write(
        &toml,
        format!(
            "name = \"{AGENT}\"\ncollector = \"{base}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n{extra}",
            agent_dir.display()
        ),
    )
    .unwrap();
    let agent = lookout_tests::start_agent(&toml).unwrap();
    agent
        .wait_for_line("agent started", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    (collector, base, agent)
}

/// The value stored for `name` with `labels` (`k=v,...`), once there.
async fn stored(base: &str, name: &str, labels: &str) -> f64 {
    eventually(&format!("{name}{{{labels}}} stored"), WAIT, || async {
        last_value(base, AGENT, name, labels).await
    })
    .await
    .unwrap()
}

/// POSTs `body` with curl: (status, answer body).
fn curl(url: &str, content_type: &str, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
        ])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(["--data-binary", body, url])
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), answer.to_string())
}

/// The TCP ports `pid` listens on, as `ss` lists them.
fn listening(pid: u32) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-ltnpH"])
        .output()
        .expect("ss (iproute2) is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_python_sdk_sends_is_stored_as_it_recorded_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (collector, base, agent) = start(
        dir.path(),
        &format!("[otlp]\nlisten = \"127.0.0.1:{}\"\n", port.get()),
    );
    let endpoint = format!("http://127.0.0.1:{}", port.get());
    let diagnose = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };

    // The SDK's app: its last line is what it recorded, and it says whether every export was
    // accepted (the receiver answered 200 with an ExportServiceResponse it could read).
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/otlp/sender.py"
        ))
        .arg(&endpoint)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sent: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {stdout}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                diagnose()
            )
        });
    assert!(
        out.status.success() && sent["ok"] == true,
        "{sent}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        diagnose()
    );

    for (payment, total) in sent["orders"].as_object().unwrap() {
        let labels = format!("service=checkout,payment={payment}");
        assert_eq!(
            stored(&base, "orders.placed", &labels).await,
            total.as_f64().unwrap()
        );
    }
    assert_eq!(
        stored(&base, "queue.depth", "service=checkout,queue=emails").await,
        sent["queue_depth"].as_f64().unwrap()
    );
    assert_eq!(
        stored(&base, "workers.busy", "service=checkout").await,
        sent["workers_busy"].as_f64().unwrap()
    );
    // The histogram as the test counts the durations the script recorded into its bounds.
    let durations: Vec<f64> = sent["durations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect();
    let route = "service=checkout,route=/pay";
    for bound in sent["bounds"].as_array().unwrap() {
        let bound = bound.as_f64().unwrap();
        let at_most = durations.iter().filter(|d| **d <= bound).count();
        let labels = format!("{route},le={bound}");
        assert_eq!(
            stored(&base, "request.duration_bucket", &labels).await,
            at_most as f64,
            "le={bound}"
        );
    }
    let all = durations.len() as f64;
    let inf = format!("{route},le=+Inf");
    assert_eq!(stored(&base, "request.duration_bucket", &inf).await, all);
    assert_eq!(stored(&base, "request.duration_count", route).await, all);
    let sum = stored(&base, "request.duration_sum", route).await;
    assert!((sum - durations.iter().sum::<f64>()).abs() < 1e-9, "{sum}");

    // The log records, with their level, under the service's source.
    let lines = eventually("the SDK's log records stored", WAIT, || async {
        let j = get_json(&format!(
            "{base}/api/v1/logs?agent={AGENT}&source=otlp:checkout&limit=50"
        ))
        .await?;
        let lines = j["lines"].as_array().cloned().unwrap_or_default();
        Ok((lines.len() >= 3).then_some(lines))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    for want in sent["logs"].as_array().unwrap() {
        assert!(
            lines
                .iter()
                .any(|l| l["text"] == want["text"] && l["level"] == want["level"]),
            "{want} not in {lines:?}"
        );
    }

    // A JSON request as the OTLP specification writes it: 64-bit integers as strings, enums
    // as integers, a key the receiver does not know; one point not finite.
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"curl-app"}}}}]}},
          "scopeMetrics":[{{"scope":{{"name":"hand"}},"metrics":[
            {{"name":"jobs.done","sum":{{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
              {{"asInt":"41","timeUnixNano":"{now_ns}","attributes":[{{"key":"kind","value":{{"stringValue":"mail"}}}}]}}]}}}},
            {{"name":"temperature","gauge":{{"dataPoints":[
              {{"asDouble":-12.5,"timeUnixNano":"{now_ns}"}},
              {{"asDouble":"NaN","timeUnixNano":"{now_ns}","attributes":[{{"key":"x","value":{{"intValue":"1"}}}}]}}]}},
             "futureField":true}}]}}]}}]}}"#
    );
    let (code, answer) = curl(&format!("{endpoint}/v1/metrics"), "application/json", &json);
    assert_eq!(code, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "1",
        "{answer}"
    );
    assert_eq!(
        stored(&base, "jobs.done", "service=curl-app,kind=mail").await,
        41.0
    );
    assert_eq!(
        stored(&base, "temperature", "service=curl-app").await,
        -12.5
    );

    // Traces: 501, with a Status that says why.
    let (code, answer) = curl(&format!("{endpoint}/v1/traces"), "application/json", "{}");
    assert_eq!(code, 501, "{answer}");
    assert!(answer.contains("traces are not received"), "{answer}");
    // Undecodable: 400.
    let (code, _) = curl(
        &format!("{endpoint}/v1/logs"),
        "application/json",
        "{\"resourceLogs\":",
    );
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_section_the_agent_listens_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base, agent) = start(dir.path(), "");
    // Up and shipping: its heartbeat reaches the collector.
    eventually("the agent is known to the collector", WAIT, || async {
        let j = get_json(&format!("{base}/api/v1/hosts")).await?;
        Ok(j.to_string().contains(AGENT).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(listening(agent.pid()), Vec::<String>::new());
    let refused = std::net::TcpStream::connect("127.0.0.1:4318");
    if listening_anyone("4318") {
        // Something else on this machine holds OTLP's port: the pid check above is the proof.
    } else {
        assert!(refused.is_err(), "the default port answered");
    }

    // The same check sees a configured receiver, so its silence above means something.
    let dir2 = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_c2, _b2, agent2) = start(
        dir2.path(),
        &format!("[otlp]\nlisten = \"127.0.0.1:{}\"\n", port.get()),
    );
    assert_eq!(
        listening(agent2.pid()),
        [format!("127.0.0.1:{}", port.get())]
    );
}

/// Whether any process listens on `port`.
fn listening_anyone(port: &str) -> bool {
    let out = Command::new("ss").args(["-ltnH"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.split_whitespace()
            .nth(3)
            .is_some_and(|a| a.ends_with(&format!(":{port}")))
    })
}

/// POSTs a logs request of one record of about 1 MB, `burst <i> xxx...`: (status, whether it
/// came with Retry-After).
async fn burst_request(client: reqwest::Client, url: String, i: usize) -> (u16, bool) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    let body = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!(
                            "burst {i} {}",
                            "x".repeat(1_000_000)
                        ))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let res = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.headers().get("retry-after").is_some(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_is_told_to_retry_and_the_agent_s_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_collector, base, agent) = start(
        dir.path(),
        &format!(
            "[otlp]\nlisten = \"127.0.0.1:{}\"\nmax_concurrent_requests = 2\n\
             max_body_bytes = 1100000\nmax_decoded_bytes = 1100000\n",
            port.get()
        ),
    );
    let url = format!("http://127.0.0.1:{}/v1/logs", port.get());
    let client = reqwest::Client::new();
    let send = |i: usize| burst_request(client.clone(), url.clone(), i);
    assert_eq!(send(0).await, (200, false));
    let (_, before) = process_figures(agent.pid());

    // 96 senders at once, 4 requests each: about 380 MB offered, 96 MB at any moment.
    let tasks: Vec<_> = (0..96)
        .map(|t| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for k in 0..4 {
                    answers.push(burst_request(client.clone(), url.clone(), 1 + t * 4 + k).await);
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap());
    }
    let (_, after) = process_figures(agent.pid());
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy = answers.iter().filter(|a| **a == (503, true)).count();
    assert_eq!(ok + busy, answers.len(), "{answers:?}");
    assert!(ok > 0 && busy > 0, "ok {ok}, busy {busy}");
    // Two requests of 1 MB, their decoding and the connections' buffers: a few MB. Buffering
    // the burst would be 96 MB at once.
    let grew_kb = after.saturating_sub(before);
    eprintln!(
        "peak RSS {before} kB before the burst, {after} kB after; {ok} answered 200, {busy} 503"
    );
    assert!(
        grew_kb < 24 * 1024,
        "peak RSS grew by {grew_kb} kB (from {before} kB) during the burst"
    );
    // What was accepted is shipped: the first request's record reaches the collector, cut.
    let line = eventually("the first record stored", WAIT, || async {
        let j = get_json(&format!(
            "{base}/api/v1/logs?agent={AGENT}&q=burst&limit=1000"
        ))
        .await?;
        Ok(j["lines"]
            .as_array()
            .and_then(|l| {
                l.iter().find(|l| {
                    l["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("burst 0 "))
                })
            })
            .cloned())
    })
    .await
    .unwrap();
    assert!(line["text"].as_str().unwrap().ends_with("bytes]"), "{line}");
}
