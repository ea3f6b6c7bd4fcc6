//! Uptime alerts from results arriving through ingest: quorum across agents, one firing and one
//! resolve per outage, and a collector restart that neither repeats nor forgets an alert.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use lookout_collector::state::AppState;
use lookout_protocol::{
    Batch, CheckResult, Encoding, PROTOCOL_VERSION, Record, Timings, encode_batch,
};
use serde_json::Value;
use tower::ServiceExt;

const CONFIG: &str = r#"
[server]
admin_token = "admin-token-0123456789abcdef"

[[agents]]
name = "edge-1"
token = "edge-1-token-0123456789abcdef"

[[agents]]
name = "edge-2"
token = "edge-2-token-0123456789abcdef"

[[agents]]
name = "edge-3"
token = "edge-3-token-0123456789abcdef"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
timeout = "2s"
"#;

/// A collector's state on the database in `dir`, as a start of the collector would make it.
async fn collector(dir: &Path) -> Arc<AppState> {
    support::collector_state(dir, CONFIG).await
}

struct Agents {
    state: Arc<AppState>,
    batches: usize,
    clock: DateTime<Utc>,
}

impl Agents {
    /// One round: each agent sends one result of `api` (10 s apart, as at its interval).
    async fn round(&mut self, oks: [bool; 3]) {
        self.clock += Duration::seconds(10);
        for (i, ok) in oks.iter().enumerate() {
            self.batches += 1;
            let agent = format!("edge-{}", i + 1);
            let b = Batch {
                version: PROTOCOL_VERSION,
                agent: agent.clone(),
                batch_id: format!("b{}", self.batches),
                records: vec![Record::CheckResult(CheckResult {
                    check: "api".into(),
                    check_type: None,
                    time: self.clock,
                    ok: *ok,
                    latency_ms: 3.0,
                    error: (!ok).then(|| "status 503, expected 2xx".to_string()),
                    status_code: Some(if *ok { 200 } else { 503 }),
                    cert_expiry: None,
                    timings: Timings::default(),
                })],
            };
            let req = Request::post("/v1/ingest")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_ENCODING, Encoding::Identity.header_value())
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {agent}-token-0123456789abcdef"),
                )
                .body(Body::from(encode_batch(&b, Encoding::Identity).unwrap()))
                .unwrap();
            let resp = lookout_collector::router(self.state.clone())
                .oneshot(req)
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }

    async fn alerts(&self, state: &str) -> Vec<Value> {
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(
                Request::get(format!("/api/v1/alerts?state={state}"))
                    .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let j: Value = serde_json::from_slice(&bytes).unwrap();
        j["alerts"].as_array().unwrap().clone()
    }

    async fn history(&self) -> Vec<(Option<String>, String)> {
        let alerts = self.alerts("all").await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let id = alerts[0]["id"].as_i64().unwrap();
        self.state
            .store
            .alert_history(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.from.map(|s| s.as_str().to_string()),
                    e.to.as_str().to_string(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn one_location_down_is_no_alert_two_are_one_alert_and_one_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agents {
        state: collector(dir.path()).await,
        batches: 0,
        clock: Utc::now() - Duration::minutes(10),
    };
    a.round([true, true, true]).await;
    for _ in 0..4 {
        a.round([true, true, false]).await;
    }
    assert!(
        a.alerts("all").await.is_empty(),
        "one bad path is not an outage"
    );
    a.round([true, false, false]).await;
    let pending = a.alerts("pending").await;
    assert_eq!(pending.len(), 1);
    a.round([true, false, false]).await;
    let firing = a.alerts("firing").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["labels"]["check"], "api");
    assert_eq!(firing[0]["labels"]["severity"], "critical");
    assert_eq!(
        firing[0]["summary"],
        "api is down from 2 of 3 locations (edge-2, edge-3): status 503, expected 2xx"
    );
    for _ in 0..3 {
        a.round([true, false, false]).await;
    }
    a.round([true, true, true]).await;
    assert!(a.alerts("firing").await.is_empty());
    assert_eq!(a.alerts("resolved").await.len(), 1);
    assert_eq!(
        a.history().await,
        [
            (None, "pending".to_string()),
            (Some("pending".to_string()), "firing".to_string()),
            (Some("firing".to_string()), "resolved".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_restart_neither_repeats_nor_forgets_a_firing_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agents {
        state: collector(dir.path()).await,
        batches: 0,
        clock: Utc::now() - Duration::minutes(10),
    };
    a.round([false, false, false]).await;
    a.round([false, false, false]).await;
    assert_eq!(a.alerts("firing").await.len(), 1);

    // Restart while it is down: still failing, nothing new is recorded.
    a.state = collector(dir.path()).await;
    a.round([false, false, false]).await;
    a.round([false, false, false]).await;
    assert_eq!(
        a.history().await.len(),
        2,
        "pending, firing; no second firing"
    );

    // Restart again; it recovered while the collector was away: resolved, once.
    a.state = collector(dir.path()).await;
    a.round([true, true, true]).await;
    a.round([true, true, true]).await;
    assert_eq!(
        a.history().await,
        [
            (None, "pending".to_string()),
            (Some("pending".to_string()), "firing".to_string()),
            (Some("firing".to_string()), "resolved".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_silent_agent_is_one_alert_and_its_checks_hold_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agents {
        state: collector(dir.path()).await,
        batches: 0,
        clock: Utc::now() - Duration::minutes(10),
    };
    // All three see the check fail: firing.
    a.round([false, false, false]).await;
    a.round([false, false, false]).await;
    assert_eq!(a.alerts("firing").await.len(), 1);
    let rules = a.state.rules.clone();
    let now = Utc::now();
    // Within the timeout, nothing changes.
    rules.tick(now + Duration::seconds(20)).await.unwrap();
    assert_eq!(a.alerts("firing").await.len(), 1);
    // Past it, each silent agent is one alert; the check's alert is neither resolved nor
    // repeated while no agent reports it.
    rules.tick(now + Duration::seconds(400)).await.unwrap();
    let firing = a.alerts("firing").await;
    let agents: Vec<&Value> = firing.iter().filter(|x| x["rule"] == "agent").collect();
    assert_eq!(agents.len(), 3, "{firing:?}");
    assert!(agents.iter().any(|x| {
        x["summary"]
            .as_str()
            .unwrap()
            .starts_with("agent edge-1 is down: silent for 4")
    }));
    assert_eq!(firing.iter().filter(|x| x["rule"] == "uptime").count(), 1);
    rules.tick(now + Duration::seconds(800)).await.unwrap();
    assert_eq!(a.alerts("firing").await.len(), 4, "no repeats");
    // Back: a batch resolves the agent's alert.
    a.clock = now + Duration::seconds(801);
    a.round([false, false, false]).await;
    let firing = a.alerts("firing").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0]["rule"], "uptime");
    let resolved = a.alerts("resolved").await;
    assert!(
        resolved
            .iter()
            .any(|x| x["summary"] == "agent edge-2 is back"),
        "{resolved:?}"
    );
}

/// A request through the router; the JSON answer (Null when there is none).
async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .header("x-lookout-user", "ops@example.com");
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = lookout_collector::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const ADMIN: &str = "admin-token-0123456789abcdef";

#[tokio::test]
async fn a_firing_alert_is_acknowledged_with_the_admin_token_and_who_did_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agents {
        state: collector(dir.path()).await,
        batches: 0,
        clock: Utc::now() - Duration::minutes(10),
    };
    a.round([false, false, false]).await;
    a.round([false, false, false]).await;
    let id = a.alerts("firing").await[0]["id"].as_i64().unwrap();
    let uri = format!("/api/v1/alerts/{id}/ack");
    let (s, j) = call(&a.state, "POST", &uri, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{j}");
    let (s, _) = call(
        &a.state,
        "POST",
        &uri,
        Some("edge-1-token-0123456789abcdef"),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "an agent token is not the admin token"
    );
    let (s, j) = call(&a.state, "POST", &uri, Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    // The X-Lookout-User header it sent names nobody: who acted is the credential's.
    assert_eq!(a.alerts("firing").await[0]["acked_by"], "admin");
    let (s, j) = call(
        &a.state,
        "POST",
        "/api/v1/alerts/999/ack",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(j["error"], "no firing alert with id 999");
}

#[tokio::test]
async fn silences_are_created_listed_and_ended_with_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = collector(dir.path()).await;
    let ends = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let body = serde_json::json!({"matchers": {"check": "api"}, "ends": ends, "comment": "deploy"});
    let (s, _) = call(&state, "POST", "/api/v1/silences", None, Some(body.clone())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, j) = call(
        &state,
        "POST",
        "/api/v1/silences",
        Some(ADMIN),
        Some(serde_json::json!({"matchers": {}, "ends": ends})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j["error"].as_str().unwrap().starts_with("matchers:"), "{j}");
    let past = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let (s, j) = call(
        &state,
        "POST",
        "/api/v1/silences",
        Some(ADMIN),
        Some(serde_json::json!({"matchers": {"check": "api"}, "ends": past})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("must be after starts"),
        "{j}"
    );

    let (s, j) = call(&state, "POST", "/api/v1/silences", Some(ADMIN), Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{j}");
    assert_eq!(j["created_by"], "admin", "not the X-Lookout-User header");
    let id = j["id"].as_i64().unwrap();
    let (_, j) = call(&state, "GET", "/api/v1/silences", Some(ADMIN), None).await;
    let list = j["silences"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["matchers"]["check"], "api");
    assert_eq!(list[0]["comment"], "deploy");
    let (s, _) = call(
        &state,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, j) = call(&state, "GET", "/api/v1/silences", Some(ADMIN), None).await;
    assert!(j["silences"].as_array().unwrap().is_empty(), "{j}");
    let (s, _) = call(
        &state,
        "DELETE",
        &format!("/api/v1/silences/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
