//! Each request's limits, as one middleware over every route (the fallback included): the
//! size of its body, the time its body may take to arrive, and the time its answer may take.
//!
//! - Body size: `[server] max_request_body_bytes` (64 KiB), the heartbeat pings
//!   `max_ping_body_bytes` (100 KiB); ingest reads with its own limits (`max_body_bytes`,
//!   `max_decoded_bytes`, in [`crate::ingest`]). A `Content-Length` past the limit is answered
//!   413 before a byte of the body is read; a body without one (chunked) is cut off where it
//!   passes the limit, and answered 413 too.
//! - Body time: `[server] body_timeout`, from the headers on, for every route with a body;
//!   past it 408. Both answers close the connection: the rest of the body is never read.
//! - Answer time: `[server] request_timeout` (after `body_timeout` for a request with a
//!   body), for every route but ingest (which answers once
//!   its batch is stored, after the store's own waits) and the live tail (which streams for
//!   as long as its reader stays); past it 503.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use lookout_config::ServerConfig;

use crate::error::AppError;

/// The live tail's path: it streams, so no answer deadline.
pub const TAIL_PATH: &str = "/api/v1/logs/tail";

/// What [`enforce`] holds requests to, read from `[server]` when the router is built.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    body_bytes: usize,
    ping_body_bytes: usize,
    body_timeout: Duration,
    request_timeout: Duration,
}

impl RequestLimits {
    /// The limits `[server]` sets.
    pub fn new(server: &ServerConfig) -> Self {
        Self {
            body_bytes: server.max_request_body_bytes,
            ping_body_bytes: server.max_ping_body_bytes,
            body_timeout: server.body_timeout,
            request_timeout: server.request_timeout,
        }
    }

    /// The largest body of a path and the key that sets it (none: the handler has its own),
    /// and whether its answer has a deadline.
    fn of(&self, path: &str) -> (Option<BodyLimit>, bool) {
        let other = BodyLimit {
            bytes: self.body_bytes,
            key: "max_request_body_bytes",
        };
        if path == lookout_protocol::http::INGEST_PATH {
            (None, false)
        } else if path == TAIL_PATH {
            (Some(other), false)
        } else if path.starts_with("/v1/ping/") {
            let ping = BodyLimit {
                bytes: self.ping_body_bytes,
                key: "max_ping_body_bytes",
            };
            (Some(ping), true)
        } else {
            (Some(other), true)
        }
    }
}

/// A route's largest body, and the `[server]` key that sets it (named in the 413).
#[derive(Debug, Clone, Copy)]
struct BodyLimit {
    bytes: usize,
    key: &'static str,
}

/// Why a body was cut off: the error its reader sees.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Past the route's limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not whole within `body_timeout`.
    #[error("the request body did not arrive within {}", lookout_config::duration::format(.0))]
    TimedOut(Duration),
    /// The client broke it off, or sent it malformed.
    #[error("the request body broke off: {0}")]
    Broken(#[source] axum::Error),
}

/// Whether `err`, a body's error as a handler sees it, is a body that took too long.
pub fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if matches!(e.downcast_ref::<BodyError>(), Some(BodyError::TimedOut(_))) {
            return true;
        }
        cause = e.source();
    }
    false
}

const READING: u8 = 0;
const TOO_LARGE: u8 = 1;
const TIMED_OUT: u8 = 2;

/// The middleware: see the module's doc.
pub async fn enforce(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (max_body, timed) = limits.of(request.uri().path());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(max), Some(n)) = (max_body, declared)
        && n > max.bytes as u64
    {
        return too_large(max);
    }
    // A request without a body (most GETs) costs nothing more.
    let outcome =
        (request.body().size_hint().exact() != Some(0)).then(|| Arc::new(AtomicU8::new(READING)));
    let request = match &outcome {
        Some(outcome) => request.map(|body| {
            Body::new(GuardedBody {
                inner: body,
                left: max_body.map_or(usize::MAX, |m| m.bytes),
                max: max_body.map_or(usize::MAX, |m| m.bytes),
                deadline: Some(Box::pin(tokio::time::sleep(limits.body_timeout))),
                timeout: limits.body_timeout,
                outcome: outcome.clone(),
            })
        }),
        None => request,
    };
    let response = if timed {
        // The answer's time starts when the body may have arrived: a slow upload is the body
        // deadline's to judge.
        let deadline = match &outcome {
            Some(_) => limits.request_timeout + limits.body_timeout,
            None => limits.request_timeout,
        };
        match tokio::time::timeout(deadline, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                return closing(AppError::Unavailable(format!(
                    "the answer took longer than {} ([server] request_timeout)",
                    lookout_config::duration::format(&limits.request_timeout)
                )));
            }
        }
    } else {
        next.run(request).await
    };
    match outcome.map(|o| o.load(Ordering::Relaxed)) {
        // Only a body with a limit is ever too large.
        Some(TOO_LARGE) => match max_body {
            Some(max) => too_large(max),
            None => response,
        },
        Some(TIMED_OUT) => closing(AppError::RequestTimeout(format!(
            "the request body did not arrive within {} ([server] body_timeout)",
            lookout_config::duration::format(&limits.body_timeout)
        ))),
        _ => response,
    }
}

fn too_large(max: BodyLimit) -> Response {
    closing(AppError::PayloadTooLarge(format!(
        "the request body is larger than this route takes ({} bytes) ([server] {})",
        max.bytes, max.key
    )))
}

/// An answer after which the connection closes: what is left of the body is never read.
fn closing(error: AppError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body cut off past its size or its deadline; the middleware reads which from
/// `outcome` once the handler has answered.
struct GuardedBody {
    inner: Body,
    left: usize,
    max: usize,
    /// Until the body's end.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    outcome: Arc<AtomicU8>,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.left {
                        this.outcome.store(TOO_LARGE, Ordering::Relaxed);
                        this.deadline = None;
                        return Poll::Ready(Some(Err(BodyError::TooLarge(this.max))));
                    }
                    this.left -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.deadline = None;
                Poll::Ready(Some(Err(BodyError::Broken(e))))
            }
            Poll::Pending => {
                let late = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if !late {
                    return Poll::Pending;
                }
                this.outcome.store(TIMED_OUT, Ordering::Relaxed);
                this.deadline = None;
                Poll::Ready(Some(Err(BodyError::TimedOut(this.timeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> Router {
        let limits = RequestLimits {
            body_bytes: 1024,
            ping_body_bytes: 2048,
            body_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        };
        Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                }),
            )
            .route("/echo", post(|body: Bytes| async move { body }))
            .route(
                lookout_protocol::http::INGEST_PATH,
                post(|body: Body| async move {
                    match axum::body::to_bytes(body, usize::MAX).await {
                        Ok(b) => (StatusCode::OK, format!("{} bytes", b.len())),
                        Err(e) => (
                            StatusCode::BAD_REQUEST,
                            format!("timed out: {}", timed_out(&e)),
                        ),
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(limits, enforce))
    }

    async fn call(request: Request) -> (StatusCode, String, Option<String>) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let connection = response
            .headers()
            .get(header::CONNECTION)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            String::from_utf8_lossy(&body).into_owned(),
            connection,
        )
    }

    fn post_to(path: &str, body: Body) -> Request {
        Request::post(path).body(body).unwrap()
    }

    /// A body that sends `first` and then nothing more.
    fn stalled(first: &'static [u8]) -> Body {
        use futures_util::StreamExt as _;
        let stream =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(first))])
                .chain(futures_util::stream::pending());
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_past_request_timeout_is_503() {
        let started = tokio::time::Instant::now();
        let (status, body, _) = call(Request::get("/slow").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("the answer took longer than 30s ([server] request_timeout)"),
            "{body}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_past_body_timeout_is_408_and_closes() {
        let started = tokio::time::Instant::now();
        let (status, body, connection) = call(post_to("/echo", stalled(b"a few bytes"))).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert!(
            body.contains("did not arrive within 1m ([server] body_timeout)"),
            "{body}"
        );
        assert_eq!(connection.as_deref(), Some("close"));
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        // Ingest reads its body itself: it sees a timeout, not a body too large.
        let (status, _, _) =
            call(post_to(lookout_protocol::http::INGEST_PATH, stalled(b"{"))).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_413_with_or_without_a_length() {
        let declared = Request::post("/echo")
            .header(header::CONTENT_LENGTH, "1025")
            .body(Body::from(vec![b'x'; 1025]))
            .unwrap();
        let chunked = post_to(
            "/echo",
            Body::from_stream(futures_util::stream::iter(
                (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 300]))),
            )),
        );
        for request in [declared, chunked] {
            let (status, body, connection) = call(request).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            assert!(
                body.contains("larger than this route takes (1024 bytes)"),
                "{body}"
            );
            assert_eq!(connection.as_deref(), Some("close"));
        }
        // At the limit it passes; ingest's own limit is the handler's.
        let (status, body, _) = call(post_to("/echo", Body::from(vec![b'x'; 1024]))).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 1024));
        let (status, body, _) = call(post_to(
            lookout_protocol::http::INGEST_PATH,
            Body::from(vec![b'x'; 100_000]),
        ))
        .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "100000 bytes"));
    }
}
