//! The receiver's HTTP/1.1 server (hyper, as the agent's `/metrics`): routes, body bounds,
//! decoding, and the answers of the module doc of [`super`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use lookout_config::OtlpConfig;
use lookout_protocol::{DecodeError, Encoding};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Limits, Mapped};
use crate::self_metrics::AgentMetrics;
use crate::spool::{Haste, Spool};

/// Most connections open at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 64;
/// Largest read buffer of a connection (its request line and headers must fit).
const READ_BUFFER: usize = 64 * 1024;
/// Longest wait for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// What a 503 asks the sender to wait, in seconds.
const RETRY_AFTER_SECONDS: &str = "5";

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The receiver's shared state.
struct Receiver {
    config: OtlpConfig,
    metrics: Arc<AgentMetrics>,
    limits: Limits,
    spool: Arc<Spool>,
    /// Requests being read and decoded.
    busy: Semaphore,
}

/// Which signal a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Metrics,
    Logs,
}

impl Signal {
    /// Its name in the agent's `/metrics`.
    fn label(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

/// A request body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// Listens on `config.listen` and serves until `stop`; the address it listens on. Binding is
/// done before this returns, so an address in use is the caller's error.
pub async fn serve(
    config: OtlpConfig,
    spool: Arc<Spool>,
    metrics: Arc<AgentMetrics>,
    stop: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "OTLP receiver listening (/v1/metrics, /v1/logs)");
    let receiver = Arc::new(Receiver {
        limits: Limits::from(&config),
        busy: Semaphore::new(config.max_concurrent_requests),
        config,
        spool,
        metrics,
    });
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = connections.clone().acquire_owned().await else {
                return;
            };
            let stream = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an OTLP connection failed");
                        continue;
                    }
                },
            };
            let receiver = receiver.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let receiver = receiver.clone();
                    async move {
                        let response = receiver.answer(req).await;
                        receiver.metrics.otlp_request(response.status().as_u16());
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    // hyper's read buffer grows to ~400 KiB a connection by default: 25 MiB
                    // over MAX_CONNECTIONS busy ones.
                    .max_buf_size(READ_BUFFER)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = conn => {}
                }
                drop(permit);
            });
        }
    });
    Ok(addr)
}

impl Receiver {
    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let signal = match req.uri().path() {
            "/v1/metrics" => Signal::Metrics,
            "/v1/logs" => Signal::Logs,
            "/v1/traces" if req.method() == Method::POST => {
                return status(
                    StatusCode::NOT_IMPLEMENTED,
                    format_of(&req).unwrap_or(Format::Json),
                    "traces are not received by the Lookout agent: it takes /v1/metrics and \
                     /v1/logs only; send traces to a tracing backend",
                );
            }
            "/v1/traces" => return not_post(),
            _ => {
                return status(
                    StatusCode::NOT_FOUND,
                    Format::Json,
                    "not found: the Lookout agent's OTLP receiver takes POST /v1/metrics and \
                     POST /v1/logs",
                );
            }
        };
        if req.method() != Method::POST {
            return not_post();
        }
        let Some(format) = format_of(&req) else {
            return status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Format::Json,
                "Content-Type must be application/x-protobuf or application/json",
            );
        };
        let encoding = req
            .headers()
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?"));
        let encoding = match Encoding::from_header(encoding) {
            Ok(e) => e,
            Err(e) => return status(StatusCode::UNSUPPORTED_MEDIA_TYPE, format, &e.to_string()),
        };
        let max_body = self.config.max_body_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body as u64) {
            return too_large(format, max_body, "");
        }
        let Ok(_permit) = self.busy.try_acquire() else {
            drain(req.into_body(), max_body).await;
            return busy(
                format,
                "the receiver is reading max_concurrent_requests requests already",
            );
        };
        if self.spool.nearly_full() {
            drain(req.into_body(), max_body).await;
            return busy(
                format,
                "the agent's spool is nearly full (its collector is away?)",
            );
        }
        let capacity = declared.map_or(0, |n| n as usize);
        let body =
            match tokio::time::timeout(BODY_TIMEOUT, read(req.into_body(), capacity, max_body))
                .await
            {
                Ok(Ok(b)) => b,
                Ok(Err(Read::TooLarge)) => return too_large(format, max_body, ""),
                Ok(Err(Read::Broken(e))) => {
                    return status(
                        StatusCode::BAD_REQUEST,
                        format,
                        &format!("reading the body: {e}"),
                    );
                }
                Err(_) => {
                    return status(
                        StatusCode::REQUEST_TIMEOUT,
                        format,
                        &format!("the body did not arrive within {BODY_TIMEOUT:?}"),
                    );
                }
            };
        let max_decoded = self.config.max_decoded_bytes;
        // Not copied when it is not compressed: a request's memory is its body and its decoding.
        let body = match encoding {
            Encoding::Identity => body,
            _ => match lookout_protocol::decompress(&body, encoding, max_decoded) {
                Ok(b) => b,
                Err(DecodeError::TooLarge { .. }) => {
                    return too_large(
                        format,
                        max_decoded,
                        " once decompressed (max_decoded_bytes)",
                    );
                }
                Err(e) => return status(StatusCode::BAD_REQUEST, format, &e.to_string()),
            },
        };
        let now = chrono::Utc::now();
        let decoded = match signal {
            Signal::Metrics => decode::<ExportMetricsServiceRequest>(&body, format)
                .map(|r| super::metrics::map(&r, &self.limits, now)),
            Signal::Logs => decode::<ExportLogsServiceRequest>(&body, format)
                .map(|r| super::logs::map(&r, &self.limits, now)),
        };
        drop(body);
        let mapped = match decoded {
            Ok(m) => m,
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    format,
                    &format!("the body is not an OTLP {signal:?} request: {e}"),
                );
            }
        };
        if mapped.rejected > 0 {
            tracing::debug!(
                signal = ?signal,
                rejected = mapped.rejected,
                reasons = ?mapped.reasons,
                "OTLP points refused"
            );
        }
        let message = mapped.message();
        let Mapped {
            records,
            rejected,
            points,
            ..
        } = mapped;
        let stored = match signal {
            // A histogram point is several samples: count points, as the sender does.
            Signal::Metrics => points,
            Signal::Logs => records.len() as u64,
        };
        self.metrics
            .otlp_items(signal.label(), stored, rejected.unsigned_abs());
        if !records.is_empty() {
            self.spool.push_async(records, Haste::Flush).await;
        }
        success(signal, format, rejected, message)
    }
}

/// Why a body was not read.
enum Read {
    /// It is longer than the bound.
    TooLarge,
    /// The connection failed under it.
    Broken(hyper::Error),
}

/// Reads a body into one buffer (of `capacity`, its declared length, at first), at most `max`
/// bytes.
async fn read(
    mut body: hyper::body::Incoming,
    capacity: usize,
    max: usize,
) -> Result<Vec<u8>, Read> {
    let mut out = Vec::with_capacity(capacity.min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Read::Broken)?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > max {
                return Err(Read::TooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

/// Reads a body and drops it as it comes, at most `max` bytes and for at most
/// [`BODY_TIMEOUT`]: a sender refused before its body was read then gets the answer, where
/// closing the connection on its unread body would have reset it mid-send.
async fn drain(mut body: hyper::body::Incoming, max: usize) {
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > max {
                break;
            }
        }
    };
    if tokio::time::timeout(BODY_TIMEOUT, read).await.is_err() {
        tracing::debug!("a refused OTLP request's body did not end in time");
    }
}

/// What a body decodes as, by its format.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    format: Format,
) -> Result<T, String> {
    match format {
        Format::Protobuf => T::decode(body).map_err(|e| e.to_string()),
        Format::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
    }
}

/// The format `Content-Type` names (its media type, parameters aside), or none.
fn format_of<B>(req: &Request<B>) -> Option<Format> {
    let value = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        PROTOBUF => Some(Format::Protobuf),
        JSON => Some(Format::Json),
        _ => None,
    }
}

/// The 200 answer: an `Export*ServiceResponse`, with `partial_success` when something was
/// refused.
fn success(
    signal: Signal,
    format: Format,
    rejected: i64,
    message: String,
) -> Response<Full<Bytes>> {
    let partial = rejected > 0 || !message.is_empty();
    let body = match (format, signal) {
        (Format::Protobuf, Signal::Metrics) => ExportMetricsServiceResponse {
            partial_success: partial.then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }
        .encode_to_vec(),
        (Format::Protobuf, Signal::Logs) => ExportLogsServiceResponse {
            partial_success: partial.then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }
        .encode_to_vec(),
        // Written here rather than by the messages' serde: OTLP's JSON has 64-bit integers as
        // strings.
        (Format::Json, _) if !partial => b"{}".to_vec(),
        (Format::Json, _) => {
            let key = match signal {
                Signal::Metrics => "rejectedDataPoints",
                Signal::Logs => "rejectedLogRecords",
            };
            serde_json::json!({
                "partialSuccess": { key: rejected.to_string(), "errorMessage": message }
            })
            .to_string()
            .into_bytes()
        }
    };
    respond(StatusCode::OK, format, body)
}

/// `google.rpc.Status`, the body of OTLP/HTTP's error answers (its `details` left out).
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answer with a `google.rpc.Status` in `format`.
fn status(code: StatusCode, format: Format, message: &str) -> Response<Full<Bytes>> {
    // The gRPC code that goes with each HTTP status, as gRPC-gateways map them.
    let grpc = match code {
        StatusCode::NOT_FOUND => 5,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::NOT_IMPLEMENTED | StatusCode::METHOD_NOT_ALLOWED => 12,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        StatusCode::REQUEST_TIMEOUT => 4,
        _ => 3,
    };
    let body = match format {
        Format::Protobuf => Status {
            code: grpc,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Format::Json => serde_json::json!({ "code": grpc, "message": message })
            .to_string()
            .into_bytes(),
    };
    respond(code, format, body)
}

fn not_post() -> Response<Full<Bytes>> {
    let mut r = status(
        StatusCode::METHOD_NOT_ALLOWED,
        Format::Json,
        "only POST: OTLP/HTTP exports are POST requests",
    );
    r.headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
    r
}

fn too_large(format: Format, limit: usize, what: &str) -> Response<Full<Bytes>> {
    status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format,
        &format!("the body is larger than {limit} bytes{what}: send smaller batches"),
    )
}

/// 503 with `Retry-After`, which OTLP exporters honour.
fn busy(format: Format, why: &str) -> Response<Full<Bytes>> {
    let mut r = status(
        StatusCode::SERVICE_UNAVAILABLE,
        format,
        &format!("{why}; retry after {RETRY_AFTER_SECONDS} s"),
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    r
}

fn respond(code: StatusCode, format: Format, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    let content_type = match format {
        Format::Protobuf => PROTOBUF,
        Format::Json => JSON,
    };
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A `google.rpc.Status` answer's code and message, for the tests.
#[cfg(test)]
pub(super) fn tests_status(body: &[u8]) -> (i32, String) {
    let s = Status::decode(body).expect("a protobuf Status");
    (s.code, s.message)
}
