//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route the collector serves,
//! written by hand in `openapi.json` beside this file.
//!
//! `tests/openapi.rs` keeps it honest: every route of [`crate::router`] must be in it, every
//! path in it must be routed, and the answers must match its schemas.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn openapi(_: crate::auth::Public) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
