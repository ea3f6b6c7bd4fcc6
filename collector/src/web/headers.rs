//! Security headers on every answer. HTML (and SVG, which can carry scripts) gets a
//! Content-Security-Policy that lets the pages load their own stylesheet, scripts and images
//! and nothing else: no inline script, so markup that slipped past the templates' escaping
//! still cannot run; no framing (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for
//! older browsers), so another site cannot overlay the admin pages' buttons; forms post only
//! here. Style attributes stay allowed (the charts' bars are sized with them); scripts are not.
//!
//! The status page alone may be embedded, by the origins `[status_page] frame_ancestors`
//! names (an intranet dashboard, say). Every answer also carries `X-Content-Type-Options:
//! nosniff` and `Referrer-Policy: same-origin`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// The policy's fixed part: everything but who may frame the page.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                      base-uri 'none'";

/// The Content-Security-Policy for a page that `ancestors` may frame (none when empty).
pub fn policy(ancestors: &[String]) -> String {
    if ancestors.is_empty() {
        format!("{POLICY}; frame-ancestors 'none'")
    } else {
        format!("{POLICY}; frame-ancestors {}", ancestors.join(" "))
    }
}

/// Adds the headers to whatever the handler answered.
pub async fn add(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let status_page = req.uri().path() == "/";
    let mut resp = next.run(req).await;
    let kind = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let active = kind.starts_with("text/html") || kind.starts_with("image/svg+xml");
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if active {
        let config = state.config();
        let ancestors: &[String] = if status_page {
            &config.status_page.frame_ancestors
        } else {
            &[]
        };
        // The origins were checked when the configuration was read; a value that still does
        // not fit a header leaves the page unframeable.
        let csp = HeaderValue::from_str(&policy(ancestors)).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
        });
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        if ancestors.is_empty() {
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
    resp
}
