//! The one place where errors become HTTP answers: a clear reason for 4xx, a generic message
//! for 5xx (the cause is logged, not shown).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; the text says how.
    #[error("{0}")]
    BadRequest(String),
    /// No valid bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// The token is valid but not for this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (a name taken); the text says what to do.
    #[error("{0}")]
    Conflict(String),
    /// Too many failed attempts from this address: 429 with `Retry-After` of these seconds.
    #[error("{0}")]
    TooManyAttempts(String, u64),
    /// The body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body's encoding is not one we read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too much work in progress: 429 with `Retry-After: 1`; the client should retry then.
    #[error("{0}")]
    Overloaded(String),
    /// The request's body did not arrive in time: 408.
    #[error("{0}")]
    RequestTimeout(String),
    /// The collector cannot take this now (a limit on work in progress is reached): 503 with
    /// `Retry-After: 5`.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed; the client may retry.
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyAttempts(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let overloaded = matches!(self, AppError::Overloaded(_));
        let wait_for = match &self {
            AppError::TooManyAttempts(_, secs) => Some(*secs),
            _ => None,
        };
        let message = match &self {
            AppError::Store(e) => {
                tracing::error!(error = %e, "storage failed while answering a request");
                "storage is unavailable; retry later".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = (status, Json(json!({ "error": message }))).into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                // A busy collector frees up in moments; a failing store takes longer.
                let wait = match wait_for {
                    Some(secs) => HeaderValue::from(secs),
                    None if overloaded => HeaderValue::from_static("1"),
                    None => HeaderValue::from_static("5"),
                };
                resp.headers_mut().insert(header::RETRY_AFTER, wait);
            }
            _ => {}
        }
        resp
    }
}
