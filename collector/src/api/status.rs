//! `GET /api/v1/status`: the status page's model ([`crate::views::status`]) as JSON, the same
//! figures the page at `/` shows.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;

use crate::auth::Public;
use crate::error::AppError;
use crate::state::AppState;

/// `GET /api/v1/status`, with the time it took in `Server-Timing`.
pub async fn status(
    State(state): State<Arc<AppState>>,
    _: Public,
) -> Result<impl IntoResponse, AppError> {
    let started = std::time::Instant::now();
    let m =
        crate::views::status::model(&state.store, &state.config(), &state.status_history).await?;
    // Serialised here, so that Server-Timing counts it.
    let body = axum::Json(m).into_response();
    Ok((crate::telemetry::server_timing(started), body))
}
