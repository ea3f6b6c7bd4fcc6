//! End to end: Lookout's own telemetry, against local receivers that decode what they get.
//!
//! - An OTLP/HTTP receiver decodes the protobuf (opentelemetry-proto) of the spans both daemons
//!   export, and of the check results, host metrics and log lines the collector forwards.
//! - A stand-in for Sentry's host takes the envelopes of both daemons' error events.
//! - The agent's own `/metrics` passes `promtool check metrics`.

use lookout_tests::READ_TOKEN;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lookout_tests::{Daemon, Target, bin, eventually, free_port, start_collector};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message as _;
use serde_json::Value;

/// A request's path and body.
type Request = (String, Vec<u8>);

/// Every request the receiver got, in order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Request>>>);

impl Received {
    fn bodies(&self, path: &str) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// One receiver for everything: OTLP under `/v1/...`, Sentry under `/api/{project}/envelope/`,
/// a webhook that takes messages at `/hook` and refuses them for good at `/hook-bad`.
async fn receiver() -> (String, Received) {
    let got = Received::default();
    async fn keep(
        State(got): State<Received>,
        Path(path): Path<String>,
        body: Bytes,
    ) -> StatusCode {
        got.0
            .lock()
            .unwrap()
            .push((format!("/{path}"), body.to_vec()));
        if path == "hook-bad" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        }
    }
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(keep))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), got)
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| {
            let v = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                any_value::Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), v))
        })
        .collect()
}

/// A span as received: its service's resource attributes, its name and attributes, and the
/// name of its parent (when in the same export).
#[derive(Debug, Clone)]
struct SpanSeen {
    resource: BTreeMap<String, String>,
    name: String,
    attributes: BTreeMap<String, String>,
    parent: Option<String>,
}

fn spans(got: &Received) -> Vec<SpanSeen> {
    let mut out = Vec::new();
    for body in got.bodies("/v1/traces") {
        let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP traces decode");
        for rs in req.resource_spans {
            let resource = attributes(&rs.resource.map(|r| r.attributes).unwrap_or_default());
            let all: Vec<_> = rs.scope_spans.into_iter().flat_map(|s| s.spans).collect();
            for s in &all {
                let parent = all
                    .iter()
                    .find(|p| !s.parent_span_id.is_empty() && p.span_id == s.parent_span_id)
                    .map(|p| p.name.clone());
                out.push(SpanSeen {
                    resource: resource.clone(),
                    name: s.name.clone(),
                    attributes: attributes(&s.attributes),
                    parent,
                });
            }
        }
    }
    out
}

/// Waits until spans with each of `names` have come from `service`; returns all its spans.
async fn wait_spans(got: &Received, service: &str, names: &[&str]) -> Vec<SpanSeen> {
    eventually(
        &format!("{service}'s spans {names:?}"),
        Duration::from_secs(30),
        || async {
            let s: Vec<SpanSeen> = spans(got)
                .into_iter()
                .filter(|s| s.resource.get("service.name").map(String::as_str) == Some(service))
                .collect();
            let all = names.iter().all(|n| s.iter().any(|x| x.name == *n));
            Ok(all.then_some(s))
        },
    )
    .await
    .unwrap()
}

/// A collector that knows agent `web-1`, pages webhook channel `channel` at `hook` at once,
/// and has `telemetry` as its `[telemetry]` section.
fn collector_config(dir: &std::path::Path, channel: &str, hook: &str, telemetry: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\n\
         [[agents]]\nname = \"web-1\"\ntoken = \"web-1-token-0123456789abcdef\"\n\n\
         [[channels]]\nname = \"{channel}\"\ntype = \"webhook\"\nurl = \"{hook}\"\n\n\
         [[routes]]\nchannels = [\"{channel}\"]\ngroup_wait = \"0s\"\n\n\
         [telemetry]\n{telemetry}",
        dir.display()
    )
}

/// An agent `name` with labels role=web and dc=fra, shipping every 200 ms, probing `target`
/// every second as check `api`; `extra` adds sections.
fn agent_config(
    name: &str,
    collector: &str,
    token: &str,
    data: &std::path::Path,
    target: &str,
    extra: &str,
) -> String {
    format!(
        "name = \"{name}\"\ncollector = \"{collector}\"\ntoken = \"{token}\"\ndata_dir = \"{}\"\n\
         labels = {{ role = \"web\", dc = \"fra\" }}\n\n\
         [shipping]\nflush_interval = \"200ms\"\n\n\
         [[checks]]\nname = \"api\"\ntype = \"http\"\nurl = \"{target}\"\ninterval = \"1s\"\n\
         timeout = \"1s\"\nretry_interval = \"200ms\"\n\n{extra}",
        data.display()
    )
}

fn write_agent(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_daemons_export_spans_and_the_collector_forwards_what_arrives() {
    let (otlp, got) = receiver().await;
    let target = Target::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = "web-1-token-0123456789abcdef";
    let config = collector_config(
        dir.path(),
        "pager",
        &format!("{otlp}/hook"),
        &format!(
            "otlp_endpoint = \"{otlp}\"\nforward_endpoint = \"{otlp}\"\nenvironment = \"e2e\"\n"
        ),
    );
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();

    let log_file = dir.path().join("app.log");
    std::fs::write(&log_file, "").unwrap();
    let metrics_port = free_port();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_config = write_agent(
        &agent_dir,
        &agent_config(
            "web-1",
            &base,
            token,
            &agent_dir,
            &target.url,
            &format!(
                "[host_metrics]\ninterval = \"1s\"\ngroups = [\"memory\"]\n\n\
                 [[logs]]\npaths = [\"{}\"]\nread_from = \"beginning\"\n\n\
                 [telemetry]\notlp_endpoint = \"{otlp}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n",
                log_file.display()
            ),
        ),
    );
    let agent = Daemon::start(
        &bin("lookout-agent"),
        &[
            "--config",
            agent_config.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[],
    )
    .unwrap();
    std::fs::write(&log_file, "2026-11-26 ERROR payment failed id=7\n").unwrap();

    // The agent's spans: a probe with its phases, and a shipped batch, named as the agent.
    let agent_spans = wait_spans(
        &got,
        "lookout-agent",
        &["probe", "dns", "connect", "ttfb", "ship"],
    )
    .await;
    let probe = agent_spans.iter().find(|s| s.name == "probe").unwrap();
    assert_eq!(
        probe.attributes.get("check").map(String::as_str),
        Some("api")
    );
    assert_eq!(
        probe.attributes.get("type").map(String::as_str),
        Some("http")
    );
    assert_eq!(probe.attributes.get("ok").map(String::as_str), Some("true"));
    assert_eq!(
        probe
            .resource
            .get("service.instance.id")
            .map(String::as_str),
        Some("web-1")
    );
    assert_eq!(
        probe.resource.get("service.version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    for phase in ["dns", "connect", "ttfb"] {
        let p = agent_spans.iter().find(|s| s.name == phase).unwrap();
        assert_eq!(
            p.parent.as_deref(),
            Some("probe"),
            "{phase} is a child of the probe"
        );
    }

    // The collector's spans: a batch ingested, stored, evaluated.
    let collector_spans =
        wait_spans(&got, "lookout-collector", &["ingest", "store", "evaluate"]).await;
    let ingest = collector_spans
        .iter()
        .find(|s| {
            s.name == "ingest" && s.attributes.get("duplicate").map(String::as_str) == Some("false")
        })
        .expect("a stored batch's ingest span");
    assert_eq!(
        ingest.attributes.get("agent").map(String::as_str),
        Some("web-1")
    );
    assert!(ingest.attributes.get("records").is_some_and(|n| n != "0"));
    assert_eq!(
        ingest
            .resource
            .get("deployment.environment.name")
            .map(String::as_str),
        Some("e2e")
    );
    let store = collector_spans.iter().find(|s| s.name == "store").unwrap();
    assert_eq!(store.parent.as_deref(), Some("ingest"));

    // Forwarded: the check result and host metrics as OTLP metrics of the agent's resource.
    let metrics = eventually("forwarded metrics", Duration::from_secs(30), || {
        let got = got.clone();
        async move {
            let mut seen: BTreeMap<String, (BTreeMap<String, String>, f64)> = BTreeMap::new();
            for body in got.bodies("/v1/metrics") {
                let req = ExportMetricsServiceRequest::decode(body.as_slice()).expect("decodes");
                for rm in req.resource_metrics {
                    let resource =
                        attributes(&rm.resource.map(|r| r.attributes).unwrap_or_default());
                    for m in rm.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                        use opentelemetry_proto::tonic::metrics::v1::{
                            metric::Data, number_data_point::Value as V,
                        };
                        let points = match m.data {
                            Some(Data::Gauge(g)) => g.data_points,
                            Some(Data::Sum(s)) => s.data_points,
                            _ => continue,
                        };
                        if let Some(p) = points.last() {
                            let v = match p.value {
                                Some(V::AsDouble(d)) => d,
                                Some(V::AsInt(i)) => i as f64,
                                None => continue,
                            };
                            seen.insert(m.name.clone(), (resource.clone(), v));
                        }
                    }
                }
            }
            let done =
                seen.contains_key("lookout.check.up") && seen.contains_key("system.memory.usage");
            Ok(done.then_some(seen))
        }
    })
    .await
    .unwrap();
    let (resource, up) = &metrics["lookout.check.up"];
    assert_eq!(*up, 1.0);
    assert_eq!(
        resource.get("lookout.agent").map(String::as_str),
        Some("web-1")
    );
    assert!(metrics["system.memory.usage"].1 > 0.0);

    // Forwarded: the log line, with its level as severity.
    let line = eventually("the forwarded log line", Duration::from_secs(30), || {
        let got = got.clone();
        async move {
            for body in got.bodies("/v1/logs") {
                let req = ExportLogsServiceRequest::decode(body.as_slice()).expect("decodes");
                for l in req
                    .resource_logs
                    .into_iter()
                    .flat_map(|r| r.scope_logs)
                    .flat_map(|s| s.log_records)
                {
                    if let Some(any_value::Value::StringValue(text)) =
                        l.body.as_ref().and_then(|b| b.value.clone())
                        && text.contains("payment failed")
                    {
                        return Ok(Some(l));
                    }
                }
            }
            Ok(None)
        }
    })
    .await
    .unwrap();
    assert_eq!(
        line.severity_text, "error",
        "the level as the agent normalised it"
    );
    assert_eq!(line.severity_number, 17, "SEVERITY_NUMBER_ERROR");

    // A notification sent is a span too: the target goes down, the alert fires.
    target.set_status(503);
    let notify = eventually("the notify span", Duration::from_secs(30), || {
        let got = got.clone();
        async move { Ok(spans(&got).into_iter().find(|s| s.name == "notify")) }
    })
    .await
    .unwrap();
    assert_eq!(
        notify.attributes.get("channel").map(String::as_str),
        Some("pager")
    );
    assert!(
        !got.bodies("/hook").is_empty(),
        "the webhook got the message"
    );

    // The agent's own /metrics: valid for promtool, and counting what happened.
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let probes = text
        .lines()
        .find(|l| l.starts_with(r#"lookout_agent_probes_total{check="api",outcome="ok"}"#))
        .unwrap_or_else(|| panic!("no ok probes counted:\n{text}"));
    let n: f64 = probes.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{probes}");
    assert!(
        text.contains("lookout_agent_batches_total{outcome=\"sent\"}"),
        "{text}"
    );
    let promtool = lookout_tests::promtool_check(&text);
    assert!(promtool.is_ok(), "{promtool:?}\n{text}");
    let not_found = reqwest::get(format!("http://127.0.0.1:{metrics_port}/other"))
        .await
        .unwrap();
    assert_eq!(not_found.status(), 404);

    // --log-format json: every line the agent wrote is one JSON object.
    let log = agent.log_text();
    assert!(!log.is_empty());
    for l in log.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}

/// The items of a Sentry envelope: (item header, payload) pairs.
fn envelope_items(body: &[u8]) -> Vec<(Value, Value)> {
    let text = std::str::from_utf8(body).expect("an envelope is UTF-8 here");
    let mut lines = text.split('\n');
    let _header = lines.next();
    let mut out = Vec::new();
    while let Some(h) = lines.next() {
        if h.trim().is_empty() {
            continue;
        }
        let header: Value = serde_json::from_str(h).expect("item header");
        let payload = lines.next().unwrap_or("");
        out.push((header, serde_json::from_str(payload).unwrap_or(Value::Null)));
    }
    out
}

/// Error events received at the Sentry stand-in for project 42.
fn sentry_events(got: &Received) -> Vec<Value> {
    got.bodies("/api/42/envelope/")
        .iter()
        .flat_map(|b| envelope_items(b))
        .filter(|(h, _)| h["type"] == "event")
        .map(|(_, e)| e)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_of_both_daemons_reach_sentry_with_release_environment_and_identity() {
    let (host, got) = receiver().await;
    let dsn = format!("{}/42", host.replacen("http://", "http://publickey@", 1));
    let target = Target::start().await.unwrap();
    target.set_status(503);
    let dir = tempfile::tempdir().unwrap();
    let token = "web-1-token-0123456789abcdef";
    // The collector: a webhook that refuses every message for good, so the alert's
    // notification fails and is given up, an error.
    let config = collector_config(
        dir.path(),
        "broken",
        &format!("{host}/hook-bad"),
        &format!("sentry_dsn = \"{dsn}\"\nenvironment = \"staging\"\n"),
    );
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();
    let agent_config = |name: &str, token: &str| {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        write_agent(
            &data,
            &agent_config(
                name,
                &base,
                token,
                &data,
                &target.url,
                "[host_metrics]\nenabled = false\n",
            ),
        )
    };
    let _agent = lookout_tests::start_agent(&agent_config("web-1", token)).unwrap();
    // A second agent with a token the collector does not know: its batches are refused for
    // good, an error on the agent. Its Sentry DSN comes from the environment.
    let stranger = Daemon::start(
        &bin("lookout-agent"),
        &[
            "--config",
            agent_config("web-9", "not-a-known-token-000000000")
                .to_str()
                .unwrap(),
        ],
        &[("SENTRY_DSN", dsn.as_str())],
    )
    .unwrap();

    let events = eventually(
        "error events from both daemons",
        Duration::from_secs(40),
        || {
            let got = got.clone();
            async move {
                let events = sentry_events(&got);
                let from = |release: &str| {
                    events.iter().any(|e| {
                        e["release"]
                            .as_str()
                            .is_some_and(|r| r.starts_with(release))
                    })
                };
                Ok((from("lookout-collector@") && from("lookout-agent@")).then_some(events))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", stranger.log_text()));

    let collector_event = events
        .iter()
        .find(|e| {
            e["release"]
                .as_str()
                .is_some_and(|r| r.starts_with("lookout-collector@"))
        })
        .unwrap();
    assert_eq!(
        collector_event["release"],
        format!("lookout-collector@{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(collector_event["environment"], "staging");
    // Sentry's protocol leaves `level` out when it is the default, `error`.
    let level = |e: &Value| e["level"].as_str().unwrap_or("error").to_string();
    assert_eq!(level(collector_event), "error");
    assert_eq!(collector_event["tags"]["service"], "lookout-collector");
    let text = collector_event.to_string();
    assert!(text.contains("notification failed"), "{collector_event:#}");
    assert!(
        text.contains("broken"),
        "the channel is named: {collector_event:#}"
    );

    let agent_event = events
        .iter()
        .find(|e| {
            e["release"]
                .as_str()
                .is_some_and(|r| r.starts_with("lookout-agent@"))
        })
        .unwrap();
    assert_eq!(agent_event["environment"], "production", "the default");
    assert_eq!(level(agent_event), "error");
    assert_eq!(agent_event["server_name"], "web-9");
    assert_eq!(agent_event["tags"]["agent"], "web-9");
    assert_eq!(agent_event["tags"]["label.role"], "web");
    assert_eq!(agent_event["tags"]["label.dc"], "fra");
    assert!(
        agent_event
            .to_string()
            .contains("collector refused a batch"),
        "{agent_event:#}"
    );
}

#[test]
fn a_bad_telemetry_section_or_log_level_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_agent(
        dir.path(),
        "name = \"a\"\ncollector = \"http://127.0.0.1:1\"\ntoken = \"agent-token-0123456789abcdef\"\n\n[telemetry]\notlp_endpoint = \"ftp://x\"\nforward_endpoint = \"http://x\"\nsentry_dsn = \"not a dsn\"\n",
    );
    let out = std::process::Command::new(bin("lookout-agent"))
        .args(["--config", path.to_str().unwrap(), "validate"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("telemetry.otlp_endpoint") && err.contains("expected http or https"),
        "{err}"
    );
    assert!(
        err.contains("telemetry.forward_endpoint") && err.contains("only the collector"),
        "{err}"
    );
    assert!(err.contains("telemetry.sentry_dsn"), "{err}");

    let ok = write_agent(
        dir.path(),
        "name = \"a\"\ncollector = \"http://127.0.0.1:1\"\ntoken = \"agent-token-0123456789abcdef\"\n",
    );
    let out = std::process::Command::new(bin("lookout-agent"))
        .args([
            "--config",
            ok.to_str().unwrap(),
            "--log-level",
            "lookout_agent=loud",
            "validate",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("invalid log level") && err.contains("--log-level"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_sets_the_level_and_the_flag_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let start = |env: &[(&str, &str)], args: &[&str]| {
        // The collector's port stays dead: nothing listens there while the test runs.
        let (port, dead) = (free_port(), free_port());
        let path = write_agent(
            dir.path(),
            &format!(
                "name = \"a\"\ncollector = \"http://127.0.0.1:{dead}\"\ntoken = \"agent-token-0123456789abcdef\"\ndata_dir = \"{}\"\n\n[host_metrics]\nenabled = false\n\n[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n",
                dir.path().join(format!("d{port}")).display()
            ),
        );
        let mut all = vec!["--config", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let d = Daemon::start(&bin("lookout-agent"), &all, env).unwrap();
        (d, port, dead)
    };
    // Running once /metrics answers; and past the point where "agent started" (info) is
    // written once it warns that it cannot fetch its assignments (from a port where nothing
    // listens), which comes after it, on the same stream.
    async fn running(d: &Daemon, port: u16) {
        eventually(
            "the agent's /metrics",
            Duration::from_secs(20),
            || async move {
                Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                    .await
                    .ok()
                    .map(|_| ()))
            },
        )
        .await
        .unwrap();
        d.wait_for_line("cannot fetch assignments", Duration::from_secs(20))
            .unwrap();
    }
    let (quiet, port, _dead) = start(&[("RUST_LOG", "warn")], &[]);
    running(&quiet, port.get()).await;
    assert!(
        !quiet.log_text().contains("agent started"),
        "{}",
        quiet.log_text()
    );
    let (loud, port, _dead) = start(&[("RUST_LOG", "warn")], &["--log-level", "info"]);
    running(&loud, port.get()).await;
    assert!(
        loud.log_text().contains("agent started"),
        "{}",
        loud.log_text()
    );
}
