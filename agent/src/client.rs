//! The agent's HTTP client for the collector: ingest and assignments, with failover across the
//! configured collector URLs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_protocol::http::{
    AGENT_PRODUCT, ASSIGNMENTS_PATH, BACKLOG_HEADER, INGEST_PATH, JSON_CONTENT_TYPE, LABELS_HEADER,
    POLL_HEADER,
};
use lookout_protocol::{Assignments, Batch, Encoding, ZstdBatchEncoder};
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER,
};

/// Why a request to the collector did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: no collector answered, or one answered 5xx, 408 or 429.
    #[error("collector unavailable: {reason}")]
    Retryable {
        /// What happened.
        reason: String,
        /// The wait the collector asked for (`Retry-After`), if any.
        retry_after: Option<Duration>,
    },
    /// The collector refused the request for good (another 4xx): retrying cannot help.
    #[error("collector refused the request ({status}): {reason}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The collector's explanation.
        reason: String,
    },
    /// The batch could not be encoded.
    #[error("cannot encode the batch: {0}")]
    Encode(#[from] std::io::Error),
}

/// How long the agent stays with a later collector before it tries the first again.
pub const BACK_TO_FIRST_AFTER: Duration = Duration::from_secs(10);

/// Talks to one or more collectors, preferring the first that answers, and going back to the
/// first one [`BACK_TO_FIRST_AFTER`] after it left it.
#[derive(Debug)]
pub struct CollectorClient {
    http: reqwest::Client,
    urls: Vec<String>,
    token: String,
    /// The agent's own labels as JSON, sent with assignment requests.
    labels_json: String,
    /// Index of the collector that answered last: tried first next time.
    current: AtomicUsize,
    /// When the agent last moved off the first collector, or last tried it again; std's
    /// Mutex, never held across an await.
    left_first: std::sync::Mutex<Option<std::time::Instant>>,
}

impl CollectorClient {
    /// A client for these base URLs (tried in order) with this agent token.
    pub fn new(
        urls: Vec<String>,
        token: String,
        labels: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, crate::AgentError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(format!("{AGENT_PRODUCT}/{}", env!("CARGO_PKG_VERSION")))
            .build()?;
        let urls = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        Ok(Self {
            http,
            urls,
            token,
            labels_json: serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
            current: AtomicUsize::new(0),
            left_first: std::sync::Mutex::new(None),
        })
    }

    /// Sends a batch; `Ok` means the collector has stored it (or had stored it before).
    /// `backlog`: the records waiting in the spool, this batch's included.
    #[tracing::instrument(
        name = "ship",
        level = "debug",
        skip_all,
        fields(batch = %batch.batch_id, records = batch.records.len(), backlog),
        err(Display, level = "debug"),
    )]
    pub async fn send(&self, batch: &Batch, backlog: u64) -> Result<(), SendError> {
        // A compression context per batch: kept between batches it holds 130 KB of tables
        // the whole time, for batches that come seconds apart. One that cannot be made (no
        // memory) is no fault of the batch: it is tried again.
        let mut encoder = ZstdBatchEncoder::new().map_err(|e| SendError::Retryable {
            reason: format!("cannot set up zstd: {e}"),
            retry_after: None,
        })?;
        let body = encoder.encode(batch)?;
        self.with_failover(|base| {
            self.http
                .post(format!("{base}{INGEST_PATH}"))
                .header(AUTHORIZATION, format!("Bearer {}", self.token))
                .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
                .header(CONTENT_ENCODING, Encoding::Zstd.header_value())
                .header(BACKLOG_HEADER, backlog)
                .body(body.clone())
        })
        .await
        .map(|_| ())
    }

    /// Fetches this agent's assignments; `Ok(None)` when they are still `revision`.
    pub async fn assignments(
        &self,
        revision: Option<&str>,
        poll_every: Duration,
    ) -> Result<Option<(Assignments, Vec<String>)>, SendError> {
        let resp = self
            .with_failover(|base| {
                let mut req = self
                    .http
                    .get(format!("{base}{ASSIGNMENTS_PATH}"))
                    .header(AUTHORIZATION, format!("Bearer {}", self.token))
                    .header(LABELS_HEADER, &self.labels_json)
                    .header(POLL_HEADER, poll_every.as_millis().to_string());
                if let Some(r) = revision {
                    req = req.header(IF_NONE_MATCH, format!("\"{r}\""));
                }
                req
            })
            .await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let etag = resp.headers().get(ETAG).cloned();
        let body = resp.bytes().await.map_err(|e| SendError::Retryable {
            reason: format!("reading assignments: {e}"),
            retry_after: None,
        })?;
        let (assignments, skipped) =
            Assignments::decode_lenient(&body).map_err(|e| SendError::Rejected {
                status: 200,
                reason: format!("assignments are not readable: {e}; etag {etag:?}"),
            })?;
        Ok(Some((assignments, skipped)))
    }

    /// Sends the request built by `build` to each collector in turn, starting with the one that
    /// answered last, until one answers with a success or a final refusal.
    /// Where a request starts: the collector that answered last, unless that is not the first
    /// and it has been a while: then the first again, so an agent returns to it once it is back.
    fn start_index(&self) -> usize {
        let current = self.current.load(Ordering::Relaxed);
        let mut left = self.left_first.lock().unwrap_or_else(|p| p.into_inner());
        if current == 0 {
            *left = None;
            return 0;
        }
        match *left {
            Some(t) if t.elapsed() < BACK_TO_FIRST_AFTER => current,
            Some(_) => {
                // Try the first; if it still fails, the next try is a while away again.
                *left = Some(std::time::Instant::now());
                0
            }
            None => {
                *left = Some(std::time::Instant::now());
                current
            }
        }
    }

    async fn with_failover<F>(&self, build: F) -> Result<reqwest::Response, SendError>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let start = self.start_index();
        let mut last = None;
        for k in 0..self.urls.len() {
            let i = (start + k) % self.urls.len();
            let base = &self.urls[i];
            match build(base).send().await {
                Ok(resp)
                    if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED =>
                {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(resp);
                }
                Ok(resp) => {
                    let err = error_from(resp).await;
                    if let SendError::Rejected { .. } = err {
                        self.current.store(i, Ordering::Relaxed);
                        return Err(err);
                    }
                    tracing::debug!(collector = %lookout_config::redact::url(base), error = %err, "collector did not take the request");
                    last = Some(err);
                }
                Err(e) => {
                    // reqwest's errors carry the URL, password and all: said once, redacted.
                    let shown = lookout_config::redact::url(base);
                    let e = e.without_url();
                    tracing::debug!(collector = %shown, error = %e, "collector unreachable");
                    last = Some(SendError::Retryable {
                        reason: format!("{shown}: {}", lookout_runtime::error_chain(&e)),
                        retry_after: None,
                    });
                }
            }
        }
        Err(last.unwrap_or(SendError::Retryable {
            reason: "no collector URL configured".into(),
            retry_after: None,
        }))
    }
}

async fn error_from(resp: reqwest::Response) -> SendError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let url = resp.url().to_string();
    let mut reason = resp.text().await.unwrap_or_default();
    reason.truncate(500);
    let reason = format!("{url}: {status}: {reason}");
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        SendError::Retryable {
            reason,
            retry_after,
        }
    } else {
        SendError::Rejected {
            status: status.as_u16(),
            reason,
        }
    }
}
