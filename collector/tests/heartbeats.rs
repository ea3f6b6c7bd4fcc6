//! Push monitors through the router: pings with their token, `/start`, `/fail` and exit codes;
//! late then down as time passes; state kept across a restart.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, Utc};
use lookout_collector::state::AppState;
use lookout_collector::store::alerting::AlertState;
use serde_json::Value;
use tower::ServiceExt;

const CONFIG: &str = r#"
[server]
read_tokens = ["beats-read-token-0123456789"]

[[heartbeats]]
name = "backup"
token = "backup-token-0123456789abcdef"
period = "1h"
grace = "5m"

[[heartbeats]]
name = "report"
token = "report-token-0123456789abcdef"
schedule = "0 6 * * *"
"#;

const TOKEN: &str = "backup-token-0123456789abcdef";

async fn collector(dir: &Path) -> Arc<AppState> {
    support::collector_state(dir, CONFIG).await
}

/// Reads the API (`/api/v1/...`) in these tests; pings carry their heartbeat's token.
const READ: &str = "beats-read-token-0123456789";

async fn call(s: &Arc<AppState>, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if uri.starts_with("/api/v1/") {
        req = req.header("authorization", format!("Bearer {READ}"));
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let resp = lookout_collector::router(s.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn beat(s: &Arc<AppState>, name: &str) -> Value {
    let (status, text) = call(s, "GET", "/api/v1/heartbeats", "").await;
    assert_eq!(status, StatusCode::OK);
    let j: Value = serde_json::from_str(&text).unwrap();
    j["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .cloned()
        .unwrap()
}

async fn alert(s: &Arc<AppState>) -> Option<(AlertState, String)> {
    s.store
        .alerts(&[
            AlertState::Pending,
            AlertState::Firing,
            AlertState::Resolved,
        ])
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.fingerprint == "heartbeat/backup")
        .map(|a| (a.state, a.summary))
}

#[tokio::test]
async fn pings_need_the_token_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path()).await;
    let (st, text) = call(&s, "GET", "/v1/ping/nope?token=x", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(text.contains(r#"no heartbeat named \"nope\""#), "{text}");
    let (st, text) = call(&s, "GET", "/v1/ping/backup?token=wrong", "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(text.contains(r#"token for heartbeat \"backup\""#), "{text}");
    let (st, _) = call(&s, "GET", "/v1/ping/backup", "").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, text) = call(
        &s,
        "POST",
        &format!("/v1/ping/backup/256?token={TOKEN}"),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(text.contains("exit code from 0 to 255"), "{text}");
    // Nothing was recorded by the refused pings: still new.
    assert_eq!(beat(&s, "backup").await["state"], "new");
    assert_eq!(beat(&s, "report").await["state"], "new");
    // The token as a bearer works too.
    let req = Request::get("/v1/ping/backup")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = lookout_collector::router(s.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(beat(&s, "backup").await["state"], "up");
}

#[tokio::test]
async fn a_failure_pages_at_once_and_a_success_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path()).await;
    let (st, text) = call(&s, "POST", &format!("/v1/ping/backup?token={TOKEN}"), "").await;
    assert_eq!((st, text.as_str()), (StatusCode::OK, "OK\n"));
    assert_eq!(alert(&s).await, None, "up: no alert");
    let output = "tar: /srv/data: Cannot open: Permission denied\n";
    let (st, _) = call(
        &s,
        "POST",
        &format!("/v1/ping/backup/2?token={TOKEN}"),
        output,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (state, summary) = alert(&s).await.unwrap();
    assert_eq!(state, AlertState::Firing);
    assert!(summary.contains("failed (exit code 2)"), "{summary}");
    let pings = s.store.pings("backup", 10).await.unwrap();
    assert_eq!(pings[0].body.as_deref(), Some(output));
    assert_eq!(pings[0].exit_code, Some(2));
    let (st, _) = call(&s, "GET", &format!("/v1/ping/backup/0?token={TOKEN}"), "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(alert(&s).await.unwrap().0, AlertState::Resolved);
    // /fail says the same as a non-zero code.
    call(
        &s,
        "GET",
        &format!("/v1/ping/backup/fail?token={TOKEN}"),
        "",
    )
    .await;
    assert_eq!(alert(&s).await.unwrap().0, AlertState::Firing);
    // The next run starting is not yet a success: the alert fires on until the run ends well.
    let start = format!("/v1/ping/backup/start?token={TOKEN}");
    call(&s, "GET", &start, "").await;
    assert_eq!(alert(&s).await.unwrap().0, AlertState::Firing);
    call(&s, "GET", &format!("/v1/ping/backup?token={TOKEN}"), "").await;
    assert_eq!(alert(&s).await.unwrap().0, AlertState::Resolved);
}

#[tokio::test]
async fn an_overdue_ping_is_late_then_down_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path()).await;
    call(&s, "GET", &format!("/v1/ping/backup?token={TOKEN}"), "").await;
    let now = Utc::now();
    s.rules.tick(now + Duration::minutes(59)).await.unwrap();
    assert_eq!(alert(&s).await, None);
    s.rules.tick(now + Duration::minutes(62)).await.unwrap();
    let (state, summary) = alert(&s).await.unwrap();
    assert_eq!(state, AlertState::Pending);
    assert!(summary.contains("late: expected by"), "{summary}");
    drop(s);
    // A restart remembers the last ping: the heartbeat goes on to down, not back to new.
    let s = collector(dir.path()).await;
    assert_eq!(beat(&s, "backup").await["state"], "up");
    s.rules.tick(now + Duration::minutes(66)).await.unwrap();
    let (state, summary) = alert(&s).await.unwrap();
    assert_eq!(state, AlertState::Firing);
    assert!(summary.contains("down: no ping since"), "{summary}");
}

#[tokio::test]
async fn a_run_that_starts_and_never_ends_goes_down_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path()).await;
    call(
        &s,
        "GET",
        &format!("/v1/ping/backup/start?token={TOKEN}"),
        "",
    )
    .await;
    let b = beat(&s, "backup").await;
    assert_eq!(b["state"], "started");
    assert!(b["next_due"].is_string(), "{b}");
    let now = Utc::now();
    s.rules.tick(now + Duration::minutes(4)).await.unwrap();
    assert_eq!(alert(&s).await, None);
    s.rules.tick(now + Duration::minutes(6)).await.unwrap();
    let (state, summary) = alert(&s).await.unwrap();
    assert_eq!(state, AlertState::Firing);
    assert!(summary.contains("not finished within 5m"), "{summary}");
}
