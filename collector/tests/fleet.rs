//! A fleet that grows and shrinks: ephemeral agents retired without a page, goodbyes that
//! make a stop planned, and checks whose quorum counts the agents that remain. Through the
//! router and the rule engine's ticks, on SQLite; the real binaries' version is
//! tests/tests/fleet.rs.

mod support;

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
name = "perm-1"
token = "perm-1-token-0123456789abcdef"

[[agents]]
name = "eph-2"
token = "eph-2-token-0123456789abcdef"
lifecycle = "ephemeral"
retire_after = "60s"

[[agents]]
name = "eph-3"
token = "eph-3-token-0123456789abcdef"
lifecycle = "ephemeral"
retire_after = "60s"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
timeout = "2s"
"#;

const ADMIN: &str = "admin-token-0123456789abcdef";

struct Fleet {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    batches: usize,
}

impl Fleet {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = support::collector_state(dir.path(), CONFIG).await;
        Self {
            _dir: dir,
            state,
            batches: 0,
        }
    }

    async fn call(&self, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
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

    /// `agent` sends one result of `api` taken at `at`.
    async fn result(&mut self, agent: &str, at: DateTime<Utc>, ok: bool) {
        self.batches += 1;
        let b = Batch {
            version: PROTOCOL_VERSION,
            agent: agent.to_string(),
            batch_id: format!("b{}", self.batches),
            records: vec![Record::CheckResult(CheckResult {
                check: "api".into(),
                check_type: None,
                time: at,
                ok,
                latency_ms: 3.0,
                error: (!ok).then(|| "status 503, expected 2xx".to_string()),
                status_code: Some(if ok { 200 } else { 503 }),
                cert_expiry: None,
                timings: Timings::default(),
            })],
        };
        let req = Request::post("/v1/ingest")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, Encoding::Identity.header_value())
            .header(header::AUTHORIZATION, format!("Bearer {}", token(agent)))
            .body(Body::from(encode_batch(&b, Encoding::Identity).unwrap()))
            .unwrap();
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    async fn goodbye(&self, agent: &str) {
        let (s, j) = self.call("POST", "/v1/goodbye", Some(&token(agent))).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{j}");
    }

    /// Each host's (state, lifecycle), as the API lists them.
    async fn hosts(&self) -> Vec<(String, String, String)> {
        let (s, j) = self.call("GET", "/api/v1/hosts", Some(ADMIN)).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        j["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let text = |k: &str| h[k].as_str().unwrap().to_string();
                (text("name"), text("state"), text("lifecycle"))
            })
            .collect()
    }

    async fn state_of(&self, agent: &str) -> String {
        let hosts = self.hosts().await;
        let host = hosts.iter().find(|h| h.0 == agent);
        host.unwrap_or_else(|| panic!("{agent} not in {hosts:?}"))
            .1
            .clone()
    }

    /// The summaries of the alerts in `state` (`firing`, `resolved`, `all`) of `rule`.
    async fn alerts(&self, state: &str, rule: &str) -> Vec<String> {
        let (s, j) = self
            .call("GET", &format!("/api/v1/alerts?state={state}"), Some(ADMIN))
            .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        j["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"] == rule)
            .map(|a| a["summary"].as_str().unwrap().to_string())
            .collect()
    }

    async fn check_status(&self) -> String {
        let (_, j) = self.call("GET", "/api/v1/checks", Some(ADMIN)).await;
        let api = j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "api")
            .cloned()
            .unwrap();
        api["status"].as_str().unwrap().to_string()
    }
}

fn token(agent: &str) -> String {
    format!("{agent}-token-0123456789abcdef")
}

#[tokio::test]
async fn ephemeral_agents_that_go_silent_are_retired_without_a_page() {
    let mut f = Fleet::new().await;
    let start = Utc::now();
    for agent in ["perm-1", "eph-2", "eph-3"] {
        f.result(agent, start, true).await;
    }
    let hosts = f.hosts().await;
    assert!(
        hosts.contains(&("eph-2".into(), "up".into(), "ephemeral".into())),
        "{hosts:?}"
    );
    assert!(
        hosts.contains(&("perm-1".into(), "up".into(), "permanent".into())),
        "{hosts:?}"
    );
    let rules = f.state.rules.clone();
    // Past the agent timeout (30 s), before retire_after (60 s): the permanent agent pages,
    // the ephemeral ones do not, and are not retired yet.
    rules
        .tick(Utc::now() + Duration::seconds(45))
        .await
        .unwrap();
    let firing = f.alerts("firing", "agent").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert!(firing[0].starts_with("agent perm-1 is down"), "{firing:?}");
    assert_eq!(f.state_of("perm-1").await, "down");
    assert_eq!(f.state_of("eph-2").await, "up");
    // Past retire_after: retired, still no page, and no page later either.
    rules
        .tick(Utc::now() + Duration::seconds(90))
        .await
        .unwrap();
    rules
        .tick(Utc::now() + Duration::seconds(900))
        .await
        .unwrap();
    assert_eq!(f.state_of("eph-2").await, "retired");
    assert_eq!(f.state_of("eph-3").await, "retired");
    assert_eq!(f.alerts("all", "agent").await.len(), 1);
    // A retired agent that ships again is back, without an alert to resolve.
    f.result("eph-2", Utc::now(), true).await;
    assert_eq!(f.state_of("eph-2").await, "up");
    assert_eq!(f.alerts("all", "agent").await.len(), 1);
    // And a restart does not bring the retired one back as silent.
    let config =
        lookout_config::CollectorConfig::parse(std::path::Path::new("t.toml"), CONFIG, &|_| None)
            .unwrap();
    let store = f.state.store.clone();
    let restarted = lookout_collector::build_state(store, config, None)
        .await
        .unwrap();
    restarted
        .rules
        .tick(Utc::now() + Duration::seconds(2000))
        .await
        .unwrap();
    assert_eq!(f.alerts("all", "agent").await.len(), 1);
}

#[tokio::test]
async fn a_goodbye_makes_a_permanent_agents_stop_planned_until_it_ships_again() {
    let mut f = Fleet::new().await;
    // The goodbye is an agent's: no token, or another kind of token, is refused.
    assert_eq!(
        f.call("POST", "/v1/goodbye", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        f.call("POST", "/v1/goodbye", Some(ADMIN)).await.0,
        StatusCode::UNAUTHORIZED
    );
    f.result("perm-1", Utc::now(), true).await;
    f.goodbye("perm-1").await;
    assert_eq!(f.state_of("perm-1").await, "stopped");
    let rules = f.state.rules.clone();
    rules
        .tick(Utc::now() + Duration::seconds(600))
        .await
        .unwrap();
    assert!(f.alerts("all", "agent").await.is_empty());
    assert_eq!(f.state_of("perm-1").await, "stopped");
    // Back: it ships, is up, and a silence without a goodbye pages again.
    f.result("perm-1", Utc::now(), true).await;
    assert_eq!(f.state_of("perm-1").await, "up");
    rules
        .tick(Utc::now() + Duration::seconds(600))
        .await
        .unwrap();
    let firing = f.alerts("firing", "agent").await;
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert!(firing[0].starts_with("agent perm-1 is down"), "{firing:?}");
}

#[tokio::test]
async fn agents_that_leave_stop_counting_in_a_checks_quorum_at_once() {
    let mut f = Fleet::new().await;
    let t0 = Utc::now() - Duration::seconds(30);
    for agent in ["perm-1", "eph-2", "eph-3"] {
        f.result(agent, t0, true).await;
    }
    // The two ephemeral agents go (a scale-in): one says goodbye, one is retired.
    f.goodbye("eph-2").await;
    assert_eq!(f.state_of("eph-2").await, "retired");
    // The one that remains sees the check fail twice (its failure_threshold). Had the two
    // that left still counted (their results are fresh for 36 s), one of three would not be
    // a majority and the check would stay up; of the one that remains, it is.
    f.result("perm-1", t0 + Duration::seconds(10), false).await;
    f.result("eph-3", t0 + Duration::seconds(10), true).await;
    f.goodbye("eph-3").await;
    f.result("perm-1", t0 + Duration::seconds(20), false).await;
    assert_eq!(f.check_status().await, "down");
    assert_eq!(f.alerts("firing", "uptime").await.len(), 1);
    assert!(f.alerts("all", "agent").await.is_empty());
}
