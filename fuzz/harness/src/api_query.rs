//! The API's query parameters (times, steps, cursors, limits, label filters, names in the
//! path), sent to the collector's real router over a real SQLite store that holds a little of
//! everything, with the admin token: what a reader of the API can send.
//!
//! The collector's state is built once per process (opening and migrating the store is most of
//! the cost); each input is one request. A handler that panics is the finding, and so is a
//! 500: a query that reaches the store in a form the store refuses is a query the API should
//! have refused itself with a 400.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tokio::runtime::Runtime;
use tower::ServiceExt;

use crate::input::Input;

const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789abcdef";
const AGENT_TOKEN: &str = "fuzz-agent-token-0123456789abcdef";

const CONFIG: &str = r#"
[server]
admin_token = "fuzz-admin-token-0123456789abcdef"

[[agents]]
name = "web-1"
token = "fuzz-agent-token-0123456789abcdef"
labels = { role = "web" }

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:9/"
run_on = ["role=web"]

[[heartbeats]]
name = "backup"
period = "1h"
token = "fuzz-ping-token-0123456789abcdef"
"#;

/// Routes that read query parameters, `{}` where the input's name goes.
const ROUTES: [&str; 10] = [
    "/api/v1/metrics",
    "/api/v1/logs",
    "/api/v1/checks/{}/results",
    "/api/v1/checks/{}/uptime",
    "/api/v1/alerts",
    "/api/v1/silences",
    "/api/v1/checks",
    "/api/v1/status",
    "/badge/{}/uptime",
    "/badge/{}/status",
];

struct Collector {
    runtime: Runtime,
    router: Router,
}

fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let router = runtime.block_on(start());
        Collector { runtime, router }
    })
}

/// The collector's state over a fresh SQLite store in a folder of its own under the temporary
/// folder, with one batch of each kind of record stored. The folder is left when the process
/// ends (the state lives in a static); the next process removes those of processes gone.
async fn start() -> Router {
    let dir = crate::scratch::process_dir("lookout-fuzz-api-");
    let config =
        lookout_config::CollectorConfig::parse(std::path::Path::new("fuzz.toml"), CONFIG, &|_| {
            None
        })
        .expect("the fuzz configuration loads");
    let url = format!("sqlite://{}", dir.join("fuzz.db").display());
    let store = lookout_collector::store::open(&url, &config.storage)
        .await
        .expect("the store opens");
    let state = lookout_collector::build_state(store, config, None)
        .await
        .expect("the state builds");
    let router = lookout_collector::router(Arc::clone(&state));
    let answer = router
        .clone()
        .oneshot(
            Request::post("/v1/ingest")
                .header(header::AUTHORIZATION, format!("Bearer {AGENT_TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(seed_batch()))
                .expect("a request"),
        )
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::OK, "the seed batch is stored");
    router
}

fn seed_batch() -> String {
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now - chrono::Duration::minutes(minutes)).to_rfc3339();
    let mut records = Vec::new();
    for m in [1, 2, 30, 90] {
        let t = at(m);
        records.push(format!(
            r#"{{"kind":"check_result","check":"api","time":"{t}","ok":{},"latency_ms":12.5,"status_code":200}}"#,
            m % 2 == 0
        ));
        records.push(format!(
            r#"{{"kind":"metric","name":"system.cpu.utilization","labels":{{"cpu":"0","state":"user"}},"time":"{t}","value":0.25}}"#
        ));
        records.push(format!(
            r#"{{"kind":"log","time":"{t}","source":"/var/log/app.log","level":"error","text":"connection refused {m}"}}"#
        ));
    }
    format!(
        r#"{{"version":1,"agent":"web-1","batch_id":"fuzz-seed","records":[{}]}}"#,
        records.join(",")
    )
}

/// Input: a byte choosing the route, the name for routes that take one (up to a newline),
/// then the query string, with the bytes a URI cannot hold percent-encoded.
pub fn api_query(data: &[u8]) {
    let mut input = Input::new(data);
    let route = ROUTES[input.choose(ROUTES.len())];
    let path = if route.contains("{}") {
        route.replace("{}", &encode(input.until(b'\n'), false))
    } else {
        route.to_string()
    };
    let query = encode(input.rest(), true);
    let uri = format!("{path}?{query}");
    let Ok(request) = Request::get(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::empty())
    else {
        return;
    };
    let c = collector();
    let status = c.runtime.block_on(async {
        let answer = c.router.clone().oneshot(request).await.expect("infallible");
        let status = answer.status();
        // The body too: a handler's answer is built as it is streamed.
        let _ = axum::body::to_bytes(answer.into_body(), 64 << 20).await;
        status
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "GET {uri}");
}

/// Percent-encodes what a URI's path segment (or query) cannot hold as it is.
fn encode(bytes: &[u8], query: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$'()*+,;:@".contains(&b)
            || (query && b"=&/?%".contains(&b));
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
