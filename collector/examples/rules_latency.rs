//! How long from the arrival of the check result that decides an alert to the alert handed to
//! notification (its transition and outbox rows committed), through the real ingest path:
//! the HTTP handler decodes the batch, stores it, evaluates it and records the transition.
//!
//! Each batch carries the deciding result of its own check (`failure_threshold = 1`): a
//! failure that makes it fire, and later a success that resolves it, each queueing one webhook
//! notification. (One check flipping back and forth would turn flapping and stop deciding.) SQLite on a temporary file, as the collector runs by default. Prints the
//! percentiles of the whole request and of the evaluation alone (from the batch stored to the
//! outbox committed).
//!
//! `cargo run --release -p lookout-collector --example rules_latency [-- transitions]`

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use lookout_config::CollectorConfig;
use lookout_protocol::{
    Batch, CheckResult, Encoding, PROTOCOL_VERSION, Record, Timings, encode_batch,
};
use tower::ServiceExt;

fn config(port: u16) -> String {
    format!(
        r#"
[[agents]]
name = "edge-1"
token = "edge-1-token-0123456789abcdef"

[[channels]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:{port}/hook"

[[routes]]
channels = ["pager"]
group_wait = "0s"
"#
    )
}

fn checks(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[checks]]\nname = \"api-{i}\"\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\ninterval = \"1s\"\ntimeout = \"1s\"\nfailure_threshold = 1\n\n"
            )
        })
        .collect()
}

fn batch(id: &str, check: usize, ok: bool) -> Vec<u8> {
    let b = Batch {
        version: PROTOCOL_VERSION,
        agent: "edge-1".into(),
        batch_id: id.to_string(),
        records: records(check, ok),
    };
    encode_batch(&b, Encoding::Identity).expect("encode")
}

fn records(check: usize, ok: bool) -> Vec<Record> {
    vec![Record::CheckResult(CheckResult {
        check: format!("api-{check}"),
        check_type: None,
        time: Utc::now(),
        ok,
        latency_ms: 2.0,
        error: (!ok).then(|| "status 503, expected 2xx".to_string()),
        status_code: Some(if ok { 200 } else { 503 }),
        cert_expiry: None,
        timings: Timings::default(),
    })]
}

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let at = |q: f64| {
        v[((v.len() as f64 * q).ceil() as usize)
            .saturating_sub(1)
            .min(v.len() - 1)]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<48} n={:<5} p50 {:>6.3} ms  p90 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms",
        v.len(),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(*v.last().expect("samples"))
    );
}

/// A webhook receiver answering 204 on a thread of its own, so that the notification worker
/// delivers each message once, as it would in production, instead of retrying a refused
/// connection while the measurement runs.
fn receiver() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(|| async { StatusCode::NO_CONTENT }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    port
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let transitions: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = receiver();
    let text = format!("{}{}", config(port), checks(transitions * 2));
    let config = CollectorConfig::parse(Path::new("bench.toml"), &text, &|_| None).expect("config");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = lookout_collector::store::open(&url, &Default::default())
        .await
        .expect("store");
    let state = lookout_collector::build_state(store.clone(), config, None)
        .await
        .expect("state");
    let app = lookout_collector::router(state.clone());

    // Through the ingest handler: checks 0..n fire, then resolve.
    let mut request_times = Vec::with_capacity(transitions * 2);
    for (pass, ok) in [(0, false), (1, true)] {
        for check in 0..transitions {
            let body = batch(&format!("p{pass}-{check}"), check, ok);
            let req = Request::post("/v1/ingest")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_ENCODING, Encoding::Identity.header_value())
                .header(
                    header::AUTHORIZATION,
                    "Bearer edge-1-token-0123456789abcdef",
                )
                .body(Body::from(body))
                .expect("request");
            let started = Instant::now();
            let resp = app.clone().oneshot(req).await.expect("answer");
            request_times.push(started.elapsed());
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }
    // The evaluation alone, straight into the engine: checks n..2n fire, then resolve.
    let mut evaluation_times = Vec::with_capacity(transitions * 2);
    for ok in [false, true] {
        for check in transitions..transitions * 2 {
            let records = records(check, ok);
            let started = Instant::now();
            state
                .rules
                .on_batch("edge-1", Utc::now(), &records)
                .await
                .expect("evaluate");
            evaluation_times.push(started.elapsed());
        }
    }
    let alerts = store
        .alerts(&[lookout_collector::store::alerting::AlertState::Resolved])
        .await
        .expect("alerts");
    let mut queued = 0;
    for a in &alerts {
        queued += store.deliveries(a.id).await.expect("deliveries").len();
    }
    assert_eq!(
        queued,
        transitions * 4,
        "each firing and resolve queued one notification"
    );
    println!(
        "deciding results: {}; notifications queued: {queued}",
        transitions * 4
    );
    percentiles(
        "ingest request, deciding batch (store+evaluate)",
        request_times,
    );
    percentiles("evaluation: stored -> outbox committed", evaluation_times);
}
