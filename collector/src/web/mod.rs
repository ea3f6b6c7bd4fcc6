//! The web pages: the public status page, SVG badges, the admin pages, with their
//! stylesheet and script, and the page a link to acknowledge an alert opens.

pub mod ack;
pub mod admin;
pub mod badge;
pub mod headers;
mod layout;
pub mod page;

use axum::http::header;
use axum::response::IntoResponse;

/// A file of the pages, cached by browsers for five minutes.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

/// `GET /assets/lookout.css`.
pub async fn stylesheet(_: crate::auth::Public) -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/lookout.css"),
    )
}

/// `GET /assets/tail.js`.
pub async fn tail_script(_: crate::auth::Public) -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/tail.js"),
    )
}

/// `GET /assets/status.js`.
pub async fn status_script(_: crate::auth::Public) -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/status.js"),
    )
}
