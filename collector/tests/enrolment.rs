//! Enrolment through the router: `POST /v1/enroll` with no token, a wrong one and the right
//! one; names taken, configured, refused by `allowed_names`; the enrolled credential on the
//! agent routes; revocation, rotation and its grace, and a new enrolment the admin allowed.
//! The store is the oracle for what was kept (`enrolled_agent`, `latest_results`).

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::Utc;
use lookout_protocol::http::CREDENTIAL_ROTATED_HEADER;
use lookout_protocol::{Batch, CheckResult, PROTOCOL_VERSION, Record, Timings};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "enrol-admin-token-0123456789";
const ENROL: &str = "enrol-fleet-token-0123456789";

const CONFIG: &str = r#"
[server]
admin_token = "enrol-admin-token-0123456789"

[[agents]]
name = "configured"
token = "enrol-configured-agent-0123456789"

[enrollment]
token = "enrol-fleet-token-0123456789"
allowed_names = "web-*"
lifecycle = "ephemeral"
rotation_grace = "1s"
[enrollment.labels]
role = "web"
"#;

struct Harness {
    _dir: tempfile::TempDir,
    state: std::sync::Arc<lookout_collector::state::AppState>,
}

impl Harness {
    async fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = support::collector_state(dir.path(), config).await;
        Self { _dir: dir, state }
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn enroll(&self, token: Option<&str>, name: &str) -> (StatusCode, Value) {
        self.enroll_body(token, json!({ "name": name })).await
    }

    async fn enroll_body(&self, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = Request::post("/v1/enroll").header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let (s, _, j) = self
            .call(req.body(Body::from(body.to_string())).unwrap())
            .await;
        (s, j)
    }

    async fn admin(&self, path: &str) -> (StatusCode, Value) {
        let req = Request::post(path).header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
        let (s, _, j) = self.call(req.body(Body::empty()).unwrap()).await;
        (s, j)
    }

    async fn assignments(&self, credential: &str) -> (StatusCode, HeaderMap, Value) {
        let req = Request::get("/v1/assignments")
            .header(header::AUTHORIZATION, format!("Bearer {credential}"));
        self.call(req.body(Body::empty()).unwrap()).await
    }

    async fn ingest(&self, credential: &str, agent: &str, id: &str) -> (StatusCode, Value) {
        let batch = Batch {
            version: PROTOCOL_VERSION,
            agent: agent.into(),
            batch_id: id.into(),
            records: vec![Record::CheckResult(CheckResult {
                check: "own".into(),
                check_type: None,
                time: Utc::now(),
                ok: true,
                latency_ms: 1.0,
                error: None,
                status_code: None,
                cert_expiry: None,
                timings: Timings::default(),
            })],
        };
        let req = Request::post("/v1/ingest")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {credential}"));
        let (s, _, j) = self
            .call(
                req.body(Body::from(serde_json::to_vec(&batch).unwrap()))
                    .unwrap(),
            )
            .await;
        (s, j)
    }

    async fn results_of(&self, agent: &str) -> usize {
        self.state
            .store
            .latest_results()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.agent == agent)
            .count()
    }
}

fn error(j: &Value) -> String {
    j["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_agent_enrols_with_the_fleet_token_and_its_credential_is_an_agent_token() {
    let h = Harness::new(CONFIG).await;
    let (s, j) = h.enroll(None, "web-1").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    let (s, j) = h
        .enroll(Some("enrol-fleet-token-0123456780"), "web-1")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    assert!(error(&j).contains("[enrollment] token"), "{j}");
    let (s, j) = h
        .enroll(Some("enrol-configured-agent-0123456789"), "web-1")
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "an agent token does not enrol: {j}"
    );
    assert_eq!(h.state.store.enrolled_agents().await.unwrap(), vec![]);

    let (s, j) = h.enroll(Some(ENROL), "web-1").await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(j["name"], "web-1");
    let credential = j["credential"].as_str().unwrap().to_string();
    assert!(
        credential.starts_with("lkc_") && credential.len() == 68,
        "{credential}"
    );
    // Stored by its digest only, with the lifecycle of the configuration.
    let row = h
        .state
        .store
        .enrolled_agent("web-1")
        .await
        .unwrap()
        .unwrap();
    assert!(row.token_sha256 == lookout_config::Token::new(credential.as_str()).digest());
    assert_eq!(row.lifecycle, "ephemeral");
    assert_eq!(row.rotation_pending, None);

    // The credential is an agent's: assignments, ingest, with the enrolment's labels.
    let (s, _, j) = h.assignments(&credential).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let (s, j) = h.ingest(&credential, "web-1", "b1").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(h.results_of("web-1").await, 1);
    let agents = h.state.store.agents().await.unwrap();
    let web1 = agents.iter().find(|a| a.name == "web-1").unwrap();
    assert_eq!(web1.labels.get("role").map(String::as_str), Some("web"));
    // The fleet token is not an agent's.
    let (s, _, _) = h.assignments(ENROL).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Taken, configured, outside allowed_names, not a name.
    let (s, j) = h.enroll(Some(ENROL), "web-1").await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert!(error(&j).contains("allow-reenroll web-1"), "{j}");
    let (s, j) = h.enroll(Some(ENROL), "configured").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not web-*: {j}");
    let (s, j) = h.enroll(Some(ENROL), "db-1").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{j}");
    assert!(error(&j).contains("allowed_names"), "{j}");
    let (s, j) = h.enroll(Some(ENROL), "web 2").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    let long = format!("web-{}", "x".repeat(200));
    let (s, _) = h.enroll(Some(ENROL), &long).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let names: Vec<String> = h
        .state
        .store
        .enrolled_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["web-1"], "nothing refused was stored");
}

#[tokio::test]
async fn an_agent_may_ask_for_its_lifecycle_and_nothing_else() {
    let h = Harness::new(CONFIG).await;
    let (s, j) = h
        .enroll_body(
            Some(ENROL),
            json!({"name": "web-2", "lifecycle": "permanent"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let (s, j) = h
        .enroll_body(
            Some(ENROL),
            json!({"name": "web-3", "lifecycle": "forever"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
    assert!(error(&j).contains("\"forever\" is neither"), "{j}");
    let (s, j) = h
        .enroll_body(
            Some(ENROL),
            json!({"name": "web-4", "labels": {"role": "db"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no other key: {j}");
    let rows: Vec<(String, String)> = h
        .state
        .store
        .enrolled_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.lifecycle))
        .collect();
    // The section says ephemeral; web-2 asked to be permanent.
    assert_eq!(rows, [("web-2".to_string(), "permanent".to_string())]);
}

#[tokio::test]
async fn a_configured_name_is_taken_and_enrolment_is_off_without_its_section() {
    let open = CONFIG.replace("allowed_names = \"web-*\"\n", "");
    let h = Harness::new(&open).await;
    let (s, j) = h.enroll(Some(ENROL), "configured").await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert!(error(&j).contains("[[agents]]"), "{j}");
    let (s, j) = h.admin("/api/v1/agents/configured/revoke").await;
    assert_eq!(s, StatusCode::CONFLICT, "{j}");
    assert!(error(&j).contains("configuration file"), "{j}");
    let (s, _) = h.admin("/api/v1/agents/configured/rotate").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = h.admin("/api/v1/agents/nobody/revoke").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let off = Harness::new("[server]\nadmin_token = \"enrol-admin-token-0123456789\"\n").await;
    let (s, j) = off.enroll(Some(ENROL), "web-1").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{j}");
    assert!(error(&j).contains("set [enrollment] token"), "{j}");
}

#[tokio::test]
async fn ten_wrong_enrolment_tokens_then_the_address_waits() {
    let h = Harness::new(CONFIG).await;
    for i in 0..10 {
        let (s, _) = h
            .enroll(Some("enrol-fleet-token-9999999999"), "web-1")
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let req = Request::post("/v1/enroll")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {ENROL}"))
        .body(Body::from(r#"{"name":"web-1"}"#))
        .unwrap();
    let (s, headers, _) = h.call(req).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "even the right one waits");
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((500..=600).contains(&wait), "{wait}");
}

#[tokio::test]
async fn a_revoked_agent_is_refused_and_nothing_of_its_batch_is_stored() {
    let h = Harness::new(CONFIG).await;
    let (_, j) = h.enroll(Some(ENROL), "web-1").await;
    let credential = j["credential"].as_str().unwrap().to_string();
    assert_eq!(h.ingest(&credential, "web-1", "b1").await.0, StatusCode::OK);
    let (s, j) = h.admin("/api/v1/agents/web-1/revoke").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert!(j["revoked_at"].is_string(), "{j}");
    let (s, j) = h.ingest(&credential, "web-1", "b2").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    assert!(error(&j).contains("revoked"), "{j}");
    assert_eq!(h.results_of("web-1").await, 1, "only the batch before");
    assert_eq!(h.assignments(&credential).await.0, StatusCode::UNAUTHORIZED);
    // Rotating a revoked agent makes no sense; enrolling again needs the admin.
    assert_eq!(
        h.admin("/api/v1/agents/web-1/rotate").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(h.enroll(Some(ENROL), "web-1").await.0, StatusCode::CONFLICT);
    let (s, j) = h.admin("/api/v1/agents/web-1/allow-reenroll").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let (s, j) = h.enroll(Some(ENROL), "web-1").await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    let again = j["credential"].as_str().unwrap().to_string();
    assert_ne!(again, credential);
    assert_eq!(h.ingest(&again, "web-1", "b3").await.0, StatusCode::OK);
    assert_eq!(
        h.ingest(&credential, "web-1", "b4").await.0,
        StatusCode::UNAUTHORIZED,
        "the revoked credential stays refused"
    );
    assert_eq!(
        h.enroll(Some(ENROL), "web-1").await.0,
        StatusCode::CONFLICT,
        "the permission was used up"
    );
}

#[tokio::test]
async fn a_rotated_credential_is_handed_over_and_the_old_one_ends_after_the_grace() {
    let h = Harness::new(CONFIG).await;
    let (_, j) = h.enroll(Some(ENROL), "web-1").await;
    let old = j["credential"].as_str().unwrap().to_string();
    let (s, _, _) = h.assignments(&old).await;
    assert_eq!(s, StatusCode::OK);
    let (s, j) = h.admin("/api/v1/agents/web-1/rotate").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let new = j["credential"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    // A request with the old one is answered, with the new one in a header.
    let (s, headers, _) = h.assignments(&old).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers[CREDENTIAL_ROTATED_HEADER], new.as_str());
    // With the new one: no header, and the store soon forgets the new credential itself.
    let (s, headers, _) = h.assignments(&new).await;
    assert_eq!(s, StatusCode::OK);
    assert!(headers.get(CREDENTIAL_ROTATED_HEADER).is_none());
    let started = Instant::now();
    loop {
        let row = h
            .state
            .store
            .enrolled_agent("web-1")
            .await
            .unwrap()
            .unwrap();
        if row.rotation_pending.is_none() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The old one ends with the grace (1 s here).
    let started = Instant::now();
    let refusal = loop {
        let (s, j) = h
            .ingest(
                &old,
                "web-1",
                &format!("o{}", started.elapsed().as_millis()),
            )
            .await;
        if s == StatusCode::UNAUTHORIZED {
            break j;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "old still valid"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error(&refusal).contains("grace has ended"), "{refusal}");
    assert_eq!(h.ingest(&new, "web-1", "n1").await.0, StatusCode::OK);
}
