//! The OpenAPI document at `/api/v1/openapi.json` against the router it describes: every route
//! of `router()` is documented (read from `src/lib.rs`, and the protocol's paths from
//! `protocol/src/http.rs`), every documented operation is routed,
//! and what the handlers answer matches the documented status codes, content types and schemas.
//!
//! Schemas are checked closed: every documented object that lists its properties is validated
//! with `additionalProperties: false`, so a field the document does not name fails too.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{Duration, Utc};
use lookout_collector::state::AppState;
use lookout_protocol::{
    Batch, CheckResult, Encoding, LogRecord, MetricSample, MetricType, PROTOCOL_VERSION, Record,
    Timings, encode_batch,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// What axum's method routers are named, lower case as in an OpenAPI path item.
const METHODS: [&str; 9] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace", "connect",
];

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const AGENT_TOKEN: &str = "web-1-token-0123456789abcdef";
const HEARTBEAT_TOKEN: &str = "backup-token-0123456789abcdef";
const READ_TOKEN: &str = "grafana-read-token-0123456789";
const ENROL_TOKEN: &str = "fleet-enrol-token-0123456789";

/// The names the document's examples use: check `api`, agent `web-1`, heartbeat `backup`.
const CONFIG: &str = r#"
[server]
admin_token = "admin-token-0123456789abcdef"
read_tokens = ["grafana-read-token-0123456789"]
# The document's examples are dated when it was written.
max_record_age = "3650d"

[[agents]]
name = "web-1"
token = "web-1-token-0123456789abcdef"

[enrollment]
token = "fleet-enrol-token-0123456789"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
timeout = "2s"

[[heartbeats]]
name = "backup"
token = "backup-token-0123456789abcdef"
period = "1h"
grace = "5m"
"#;

struct Collector {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Collector {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = support::collector_state(dir.path(), CONFIG).await;
        Self { _dir: dir, state }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // An event stream never ends: its status and type are all there is to check.
        let body = if essence(&content_type) == "text/event-stream" {
            Vec::new()
        } else {
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        };
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Answer {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn document(&self) -> Value {
        let answer = self.get("/api/v1/openapi.json", None).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_type, "application/json");
        serde_json::from_slice(&answer.body).expect("the document is JSON")
    }
}

/// A media type without its parameters: `text/plain` of `text/plain; charset=utf-8`.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

/// `v`, or what its local `$ref` (a chain of them) points to.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        v = r
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .unwrap_or_else(|| panic!("$ref {r:?} points at nothing"));
    }
    v
}

/// Every documented `(path, method, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

/// Closes every object schema that lists its properties, so that an undocumented field fails.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, child) in map.iter_mut() {
                if !matches!(key.as_str(), "example" | "examples" | "default" | "const") {
                    close_objects(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Validates `instance` against `schema`, whose `$ref`s point into the document's components.
fn validate(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let mut schemas = doc["components"]["schemas"].clone();
    close_objects(&mut schemas);
    let mut root = schema.clone();
    close_objects(&mut root);
    let root_map = root.as_object_mut().expect("a schema is an object");
    root_map.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    root_map.insert("components".into(), json!({ "schemas": schemas }));
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{what}: the documented schema does not compile: {e}"));
    let errors = validator.iter_errors(instance).into_errors();
    assert!(
        errors.is_empty(),
        "{what}: the answer does not match its documented schema\n{errors}{instance:#}"
    );
}

/// Checks an answer of `method path` against the document: its status is documented, its
/// content type is one documented for that status, and its body matches the schema. Returns
/// the body when it is JSON.
fn conforms(doc: &Value, path: &str, method: &str, answer: &Answer) -> Option<Value> {
    let code = answer.status.as_str();
    let what = format!("{} {path} answered {code}", method.to_uppercase());
    let response = doc["paths"][path][method]["responses"]
        .get(code)
        .unwrap_or_else(|| panic!("{what}, which its documentation does not list"));
    let Some(content) = resolve(doc, response)
        .get("content")
        .and_then(Value::as_object)
    else {
        assert!(
            answer.body.is_empty(),
            "{what}, documented without a body, with one"
        );
        return None;
    };
    let (_, media) = content
        .iter()
        .find(|(documented, _)| essence(documented) == essence(&answer.content_type))
        .unwrap_or_else(|| {
            let documented: Vec<&String> = content.keys().collect();
            panic!(
                "{what} as {:?}; documented: {documented:?}",
                answer.content_type
            )
        });
    let schema = &media["schema"];
    if essence(&answer.content_type) == "application/json" {
        let body: Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("{what} with a body that is not JSON: {e}"));
        validate(doc, schema, &body, &what);
        Some(body)
    } else {
        if let Ok(text) = std::str::from_utf8(&answer.body)
            && !answer.body.is_empty()
        {
            validate(doc, schema, &Value::String(text.into()), &what);
        }
        None
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request to a documented operation, made of what the document gives: each path parameter's
/// example, each required query parameter's example, the credential of its first security
/// requirement and its request body's example.
fn sample_request(doc: &Value, path: &str, method: &str, op: &Value) -> Request<Body> {
    let what = format!("{} {path}", method.to_uppercase());
    let params: Vec<&Value> = [&doc["paths"][path]["parameters"], &op["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .map(|p| resolve(doc, p))
        .collect();
    let example = |p: &Value| match &p["example"] {
        Value::String(s) => s.clone(),
        Value::Null => panic!("{what}: parameter {} has no example", p["name"]),
        other => other.to_string(),
    };
    let mut uri = path.to_string();
    let mut query = Vec::new();
    for p in &params {
        let name = p["name"].as_str().expect("a parameter has a name");
        match p["in"].as_str() {
            Some("path") => {
                let slot = format!("{{{name}}}");
                assert!(
                    uri.contains(&slot),
                    "{what}: no {slot} for its path parameter"
                );
                uri = uri.replace(&slot, &example(p));
            }
            Some("query") if p["required"] == true => {
                query.push(format!("{name}={}", encode(&example(p))));
            }
            _ => {}
        }
    }
    assert!(
        !uri.contains('{'),
        "{what}: a path parameter is not documented"
    );
    let mut req = Request::builder().method(method.to_uppercase().as_str());
    let requirement = op
        .get("security")
        .or_else(|| doc.get("security"))
        .and_then(|s| s.get(0))
        .and_then(Value::as_object);
    for scheme in requirement.into_iter().flat_map(|r| r.keys()) {
        match scheme.as_str() {
            "adminToken" => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            }
            "readToken" => req = req.header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}")),
            "agentToken" => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {AGENT_TOKEN}"))
            }
            "heartbeatToken" => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {HEARTBEAT_TOKEN}"))
            }
            "heartbeatTokenQuery" => query.push(format!("token={HEARTBEAT_TOKEN}")),
            "enrolmentToken" => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {ENROL_TOKEN}"))
            }
            other => panic!("{what}: no credential for security scheme {other:?}"),
        }
    }
    if !query.is_empty() {
        uri = format!("{uri}?{}", query.join("&"));
    }
    let body = match op.get("requestBody").map(|b| resolve(doc, b)) {
        None => Body::empty(),
        Some(b) => {
            let (media_type, media) = b["content"]
                .as_object()
                .and_then(|c| c.iter().next())
                .unwrap_or_else(|| panic!("{what}: a request body without content"));
            let body = match &media["example"] {
                Value::String(s) => s.clone(),
                Value::Null => panic!("{what}: its request body has no example"),
                other => other.to_string(),
            };
            let media_type = if media_type.contains('*') {
                "text/plain"
            } else {
                media_type
            };
            req = req.header(header::CONTENT_TYPE, media_type);
            Body::from(body)
        }
    };
    req.uri(uri).body(body).unwrap()
}

#[tokio::test]
async fn the_served_document_is_openapi_3_1_of_this_version() {
    let doc = Collector::new().await.document().await;
    let openapi = doc["openapi"].as_str().expect("openapi is a string");
    assert!(openapi.starts_with("3.1."), "openapi {openapi}");
    assert_eq!(doc["info"]["title"], "Lookout collector API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for (path, method, op) in operations(&doc) {
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}: no responses"
        );
    }
    // Every reference resolves.
    fn each_ref<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                out.extend(map.get("$ref").and_then(Value::as_str));
                map.values().for_each(|child| each_ref(child, out));
            }
            Value::Array(items) => items.iter().for_each(|child| each_ref(child, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    each_ref(&doc, &mut refs);
    assert!(
        refs.len() > 50,
        "only {} $refs: a parse gone wrong?",
        refs.len()
    );
    let dangling: Vec<&str> = refs
        .into_iter()
        .filter(|r| r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_none())
        .collect();
    assert!(dangling.is_empty(), "$refs to nothing: {dangling:?}");
}

#[tokio::test]
async fn every_route_is_documented() {
    // The router is built from this table, so it lists every route.
    let routes: Vec<(String, String)> = lookout_collector::routes::table()
        .routes
        .iter()
        .map(|r| (r.path.to_string(), r.method.as_str().to_lowercase()))
        .collect();
    assert!(
        routes.len() >= 20,
        "only {} routes: {routes:?}",
        routes.len()
    );
    let doc = Collector::new().await.document().await;
    let missing: Vec<String> = routes
        .iter()
        .filter(|(path, method)| doc["paths"][path][method].is_null())
        .map(|(path, method)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "routed but not in openapi.json: {missing:#?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let c = Collector::new().await;
    let doc = c.document().await;
    let ops = operations(&doc);
    assert!(ops.len() >= 20, "only {} documented operations", ops.len());
    let mut unrouted = Vec::new();
    for (path, method, op) in &ops {
        let answer = c.send(sample_request(&doc, path, method, op)).await;
        let handler_404 =
            serde_json::from_slice::<Value>(&answer.body).is_ok_and(|j| j["error"].is_string());
        // The router's own answers: 405 for a method it does not route, an empty 404 for a
        // path it does not route. No handler answers 405.
        if answer.status == StatusCode::METHOD_NOT_ALLOWED
            || answer.status == StatusCode::NOT_FOUND && !handler_404
        {
            unrouted.push(format!(
                "{} {path}: {}",
                method.to_uppercase(),
                answer.status
            ));
            continue;
        }
        conforms(&doc, path, method, &answer);
    }
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:#?}"
    );
}

/// A batch from `web-1`: a failed result of `api`, a memory sample and a log line.
fn batch(id: &str, at: chrono::DateTime<Utc>) -> Vec<u8> {
    let b = Batch {
        version: PROTOCOL_VERSION,
        agent: "web-1".into(),
        batch_id: id.into(),
        records: vec![
            Record::CheckResult(CheckResult {
                check: "api".into(),
                check_type: None,
                time: at,
                ok: false,
                latency_ms: 12.5,
                error: Some("status 503, expected 2xx".into()),
                status_code: Some(503),
                cert_expiry: Some(at + Duration::days(30)),
                timings: Timings {
                    dns_ms: Some(1.0),
                    total_ms: Some(12.5),
                    ..Timings::default()
                },
            }),
            Record::Metric(MetricSample {
                name: "system.memory.usage".into(),
                labels: [("state".to_string(), "used".to_string())].into(),
                time: at,
                value: 1.2e9,
                metric_type: MetricType::Gauge,
            }),
            Record::Log(LogRecord {
                time: at,
                source: "/var/log/app.log".into(),
                level: Some("error".into()),
                text: "connection refused".into(),
                position: None,
            }),
        ],
    };
    encode_batch(&b, Encoding::Identity).unwrap()
}

#[tokio::test]
async fn answers_match_the_documented_schemas() {
    let c = Collector::new().await;
    let doc = c.document().await;

    // Data through the routes, each answer checked too: two failed results fire an alert.
    let now = Utc::now();
    for (i, at) in [now - Duration::seconds(20), now - Duration::seconds(10)]
        .into_iter()
        .enumerate()
    {
        let req = Request::post("/v1/ingest")
            .header(header::AUTHORIZATION, format!("Bearer {AGENT_TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(batch(&format!("b-{i}"), at)))
            .unwrap();
        let answer = c.send(req).await;
        assert_eq!(answer.status, StatusCode::OK);
        let body = conforms(&doc, "/v1/ingest", "post", &answer).unwrap();
        assert_eq!(body["stored"], 3);
    }
    let ping = c
        .get(&format!("/v1/ping/backup?token={HEARTBEAT_TOKEN}"), None)
        .await;
    assert_eq!(ping.status, StatusCode::OK);
    conforms(&doc, "/v1/ping/{name}", "get", &ping);
    let silence = json!({
        "matchers": {"check": "other"},
        "ends": (now + Duration::hours(1)).to_rfc3339(),
        "comment": "a test",
    });
    let req = Request::post("/api/v1/silences")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(silence.to_string()))
        .unwrap();
    let answer = c.send(req).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    conforms(&doc, "/api/v1/silences", "post", &answer);

    // Every GET with a JSON answer, with data in it so that the schemas see real items.
    let gets: [(&str, &str, Option<&str>, &str); 13] = [
        (
            "/api/v1/checks",
            "/api/v1/checks",
            Some(READ_TOKEN),
            "/checks/0/agents/0",
        ),
        (
            "/api/v1/hosts",
            "/api/v1/hosts",
            Some(READ_TOKEN),
            "/hosts/0/metrics/0",
        ),
        (
            "/api/v1/checks/{name}/results",
            "/api/v1/checks/api/results",
            Some(READ_TOKEN),
            "/results/1",
        ),
        (
            "/api/v1/checks/{name}/uptime",
            "/api/v1/checks/api/uptime?step=1m&agent=web-1",
            Some(READ_TOKEN),
            "/total",
        ),
        (
            "/api/v1/alerts",
            "/api/v1/alerts",
            Some(READ_TOKEN),
            "/alerts/0",
        ),
        (
            "/api/v1/silences",
            "/api/v1/silences",
            Some(READ_TOKEN),
            "/silences/0",
        ),
        (
            "/api/v1/heartbeats",
            "/api/v1/heartbeats",
            Some(READ_TOKEN),
            "/heartbeats/0/last_success",
        ),
        (
            "/api/v1/logs",
            "/api/v1/logs?limit=1",
            Some(ADMIN_TOKEN),
            "/next_cursor",
        ),
        (
            "/api/v1/cluster",
            "/api/v1/cluster",
            Some(READ_TOKEN),
            "/collectors",
        ),
        (
            "/api/v1/metrics",
            "/api/v1/metrics?agent=web-1&name=system.memory.usage&step=10s",
            Some(READ_TOKEN),
            "/series/0/points/0",
        ),
        (
            "/v1/assignments",
            "/v1/assignments",
            Some(AGENT_TOKEN),
            "/checks/0",
        ),
        (
            "/api/v1/status",
            "/api/v1/status",
            None,
            "/groups/0/checks/0/days/89",
        ),
        (
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            None,
            "/paths",
        ),
    ];
    for (template, uri, token, must_have) in gets {
        let answer = c.get(uri, token).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {uri}");
        let body = conforms(&doc, template, "get", &answer).unwrap();
        assert!(
            body.pointer(must_have).is_some_and(|v| !v.is_null()),
            "GET {uri}: no {must_have} to check in {body:#}"
        );
    }

    // Acknowledging the alert the failures fired.
    let alerts = c.get("/api/v1/alerts?state=firing", Some(READ_TOKEN)).await;
    let alerts = conforms(&doc, "/api/v1/alerts", "get", &alerts).unwrap();
    let id = alerts["alerts"][0]["id"].as_i64().expect("a firing alert");
    let req = Request::post(format!("/api/v1/alerts/{id}/ack"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .header("x-lookout-user", "ops")
        .body(Body::empty())
        .unwrap();
    let answer = c.send(req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = conforms(&doc, "/api/v1/alerts/{id}/ack", "post", &answer).unwrap();
    assert_eq!(body["acked_by"], "admin", "not the X-Lookout-User header");

    // An error: the shared Error schema, through the 400 documented and on its own.
    let answer = c
        .get("/api/v1/alerts?state=sideways", Some(READ_TOKEN))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let body = conforms(&doc, "/api/v1/alerts", "get", &answer).unwrap();
    validate(
        &doc,
        &json!({"$ref": "#/components/schemas/Error"}),
        &body,
        "a 400",
    );
}

/// The answers of the server's own limits, which no handler gives, are documented where they
/// can happen: a NUL in the URL of every operation under `/api/` and `/admin` (400), and a
/// body past its route's limit for every operation that takes one (413).
#[tokio::test]
async fn the_limits_answers_are_documented_on_every_operation_they_reach() {
    let c = Collector::new().await;
    let doc = c.document().await;
    let mut reached = (0, 0);
    for (path, method, op) in &operations(&doc) {
        let sample = || sample_request(&doc, path, method, op);
        if path.starts_with("/api/") || path.starts_with("/admin") {
            let (mut parts, body) = sample().into_parts();
            let uri = parts.uri.to_string();
            let sep = if uri.contains('?') { '&' } else { '?' };
            parts.uri = format!("{uri}{sep}q=%00").parse().unwrap();
            let answer = c.send(Request::from_parts(parts, body)).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method} {path}");
            conforms(&doc, path, method, &answer);
            reached.0 += 1;
        }
        if op.get("requestBody").is_some() {
            let (mut parts, body) = sample().into_parts();
            parts
                .headers
                .insert(header::CONTENT_LENGTH, (100u64 << 20).into());
            let answer = c.send(Request::from_parts(parts, body)).await;
            assert_eq!(
                answer.status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {path}"
            );
            conforms(&doc, path, method, &answer);
            reached.1 += 1;
        }
    }
    assert!(reached.0 >= 20 && reached.1 >= 5, "{reached:?}");
}
