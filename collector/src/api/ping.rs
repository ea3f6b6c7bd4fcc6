//! Push monitor pings, Healthchecks.io style: a cron job calls
//!
//! - `GET|POST /v1/ping/{name}?token=...` when it succeeded,
//! - `/v1/ping/{name}/start` when it begins (the run is timed, and must end within `grace`),
//! - `/v1/ping/{name}/fail` when it failed,
//! - `/v1/ping/{name}/{exit_code}` with its exit status (0 is success).
//!
//! The token is the heartbeat's `token`, in the query (`?token=`) or as a bearer token. The
//! body, if any (the job's output), is kept up to 10 KB; one larger than `[server]
//! max_ping_body_bytes` (100 KiB) is refused with 413 before it is read (server::limits).
//! The answer is `OK` as plain text, so `curl -fsS` in a crontab is enough.
//! `GET /api/v1/heartbeats` lists each push monitor's state.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};

use crate::auth::{Pinger, Reader};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::alerting::{Ping, PingKind};

/// Most bytes of a ping's body kept.
const BODY_KEPT: usize = 10 * 1024;

/// `/v1/ping/{name}`: success.
pub async fn success(
    State(state): State<Arc<AppState>>,
    Pinger(name): Pinger,
    body: Bytes,
) -> Result<&'static str, AppError> {
    record(&state, &name, "", &body).await
}

/// `/v1/ping/{name}/{what}`: `start`, `fail` or an exit code.
pub async fn signal(
    State(state): State<Arc<AppState>>,
    Pinger(name): Pinger,
    Path((_, what)): Path<(String, String)>,
    body: Bytes,
) -> Result<&'static str, AppError> {
    record(&state, &name, &what, &body).await
}

async fn record(
    state: &AppState,
    name: &str,
    what: &str,
    body: &[u8],
) -> Result<&'static str, AppError> {
    let (kind, exit_code) = match what {
        "" => (PingKind::Success, None),
        "start" => (PingKind::Start, None),
        "fail" => (PingKind::Fail, None),
        code => match code.parse::<u8>() {
            Ok(0) => (PingKind::Success, Some(0)),
            Ok(c) => (PingKind::Fail, Some(i32::from(c))),
            Err(_) => {
                return Err(AppError::BadRequest(format!(
                    "{code:?}: expected start, fail or an exit code from 0 to 255"
                )));
            }
        },
    };
    let text = (!body.is_empty()).then(|| {
        let cut = &body[..body.len().min(BODY_KEPT)];
        crate::nul::replace(&String::from_utf8_lossy(cut)).into_owned()
    });
    let ping = Ping {
        name: name.to_string(),
        kind,
        exit_code,
        time: crate::clock::now(),
        remote: None,
        body: text,
    };
    state.store.record_ping(&ping).await?;
    state.evaluator.pinged(&ping).await;
    tracing::debug!(heartbeat = %name, kind = kind.as_str(), "ping");
    Ok("OK\n")
}

/// `GET /api/v1/heartbeats`: every push monitor with its state and latest pings.
pub async fn list(State(state): State<Arc<AppState>>, _: Reader) -> Json<serde_json::Value> {
    let list = state.rules.heartbeats(crate::clock::now()).await;
    Json(serde_json::json!({ "heartbeats": list }))
}
