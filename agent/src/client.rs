//! The agent's HTTP client for the collector: ingest, assignments and enrolment, with failover
//! across the configured collector URLs. An answer that carries a rotated credential
//! ([`CREDENTIAL_ROTATED_HEADER`]) makes the client keep it in the credential file and present
//! it from then on ([`crate::credential`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_config::Token;
use lookout_config::collector::Lifecycle;
use lookout_protocol::http::{
    AGENT_PRODUCT, ASSIGNMENTS_PATH, BACKLOG_HEADER, CREDENTIAL_ROTATED_HEADER, ENROLL_PATH,
    EnrollAnswer, EnrollRequest, GOODBYE_PATH, INGEST_PATH, JSON_CONTENT_TYPE, LABELS_HEADER,
    POLL_HEADER,
};
use lookout_protocol::{Assignments, Batch, Encoding, ZstdBatchEncoder};
use reqwest::StatusCode;

use crate::collector_tls::{CollectorTls, handshake_reason};
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
    /// The collector does not read the batch's protocol version, or shares none with this
    /// agent: the batch is kept and sent again after the next answer ([`crate::versions`]).
    #[error("{0}")]
    Version(String),
    /// The batch could not be encoded.
    #[error("cannot encode the batch: {0}")]
    Encode(#[from] std::io::Error),
}

/// Bytes of an error answer read for its text: the reason shown is cut to
/// [`ERROR_TEXT_BYTES`], so the rest of a long answer is never read.
const ERROR_READ_BYTES: usize = 4096;

/// Longest collector error text kept in a log line or a set-aside batch's reason, in bytes.
pub const ERROR_TEXT_BYTES: usize = 500;

/// How long the agent stays with a later collector before it tries the first again.
pub const BACK_TO_FIRST_AFTER: Duration = Duration::from_secs(10);

/// Talks to one or more collectors, preferring the first that answers, and going back to the
/// first one [`BACK_TO_FIRST_AFTER`] after it left it.
#[derive(Debug)]
pub struct CollectorClient {
    /// Where and how to reach the collectors; std's RwLock, never held across an await.
    /// Replaced whole when the agent's configuration is reloaded ([`CollectorClient::adopt`]):
    /// a request under way finishes with the one it started with.
    connection: std::sync::RwLock<Arc<Connection>>,
    /// The credential presented; std's RwLock, never held across an await. Replaced when the
    /// collector hands over a rotated one.
    token: std::sync::RwLock<Token>,
    /// Where a rotated credential is kept (an enrolled agent's `<data_dir>/credential`).
    credential_file: Option<std::path::PathBuf>,
    /// Index of the collector that answered last: tried first next time.
    current: AtomicUsize,
    /// When the agent last moved off the first collector, or last tried it again; std's
    /// Mutex, never held across an await.
    left_first: std::sync::Mutex<Option<std::time::Instant>>,
    /// The protocol versions the collector that answered last reads.
    versions: crate::versions::CollectorVersions,
}

/// What a configuration says about reaching the collectors: everything of a client but the
/// credential and where it stands among the URLs.
#[derive(Debug)]
struct Connection {
    http: reqwest::Client,
    urls: Vec<String>,
    /// The agent's own labels as JSON, sent with assignment requests.
    labels_json: String,
    /// Largest answer body read (`[shipping] max_answer_bytes`).
    max_answer_bytes: usize,
}

impl CollectorClient {
    /// A client for these base URLs (tried in order) with this agent token, doing TLS as
    /// `tls` says, which waits `timeout` for a request and reads answers of up to
    /// `max_answer_bytes`.
    pub fn new(
        urls: Vec<String>,
        token: Token,
        labels: &BTreeMap<String, String>,
        tls: &CollectorTls,
        timeout: Duration,
        max_answer_bytes: usize,
    ) -> Result<Self, crate::AgentError> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(format!("{AGENT_PRODUCT}/{}", env!("CARGO_PKG_VERSION")));
        let http = tls.apply(builder)?.build()?;
        let urls = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        Ok(Self {
            connection: std::sync::RwLock::new(Arc::new(Connection {
                http,
                urls,
                labels_json: serde_json::to_string(labels).unwrap_or_else(|_| "{}".into()),
                max_answer_bytes,
            })),
            token: std::sync::RwLock::new(token),
            credential_file: None,
            current: AtomicUsize::new(0),
            left_first: std::sync::Mutex::new(None),
            versions: Default::default(),
        })
    }

    /// Takes the URLs, labels, timeouts and TLS of `fresh`, a client built from a reloaded
    /// configuration, for the requests that start from now on. The credential presented
    /// stays (an enrolled agent's, perhaps rotated since it was read) unless `fresh` has a
    /// `token` of its own from the configuration.
    pub fn adopt(&self, fresh: CollectorClient) {
        let connection = fresh
            .connection
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let token = fresh.token.into_inner().unwrap_or_else(|p| p.into_inner());
        if !token.is_empty() {
            self.set_token(token);
        }
        *self.connection.write().unwrap_or_else(|p| p.into_inner()) = connection;
        // The list may be another one now: start again from its first.
        self.current.store(0, Ordering::Relaxed);
        *self.left_first.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The connection requests start with now.
    fn connection(&self) -> Arc<Connection> {
        self.connection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Keeps a credential the collector hands over in `file` (an enrolled agent's).
    pub fn with_credential_file(mut self, file: std::path::PathBuf) -> Self {
        self.credential_file = Some(file);
        self
    }

    /// The protocol versions the collector that answered last reads.
    pub fn versions(&self) -> &crate::versions::CollectorVersions {
        &self.versions
    }

    /// Presents `token` from now on.
    pub fn set_token(&self, token: Token) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// `Bearer <credential>`.
    fn authorization(&self) -> String {
        let token = self.token.read().unwrap_or_else(|p| p.into_inner());
        format!("Bearer {}", token.expose())
    }

    /// A new credential in `resp`'s [`CREDENTIAL_ROTATED_HEADER`]: kept in the credential file,
    /// then presented. One that cannot be kept is not used either (a restart would present
    /// the old one, which ends with its grace): the collector offers it again next time.
    fn take_rotated(&self, resp: &reqwest::Response) {
        let Some(new) = resp
            .headers()
            .get(CREDENTIAL_ROTATED_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 1024)
        else {
            return;
        };
        let new = Token::new(new);
        if *self.token.read().unwrap_or_else(|p| p.into_inner()) == new {
            return;
        }
        if let Some(file) = &self.credential_file
            && let Err(e) = crate::credential::write(file, &new)
        {
            tracing::error!(error = %e, "the collector rotated this agent's credential, but the new one cannot be kept; still presenting the old one");
            return;
        }
        self.set_token(new);
        tracing::info!(
            "the collector rotated this agent's credential; presenting the new one from now on"
        );
    }

    /// Enrols as `name` with the fleet's `enroll_token`, asking for `lifecycle` if given: the
    /// credential the collector gives.
    pub async fn enroll(
        &self,
        name: &str,
        enroll_token: &Token,
        lifecycle: Option<Lifecycle>,
    ) -> Result<Token, SendError> {
        let body = serde_json::to_vec(&EnrollRequest {
            name: name.to_string(),
            lifecycle: lifecycle.map(|l| l.as_str().to_string()),
        })
        .map_err(|e| SendError::Encode(std::io::Error::other(e)))?;
        let conn = self.connection();
        let mut resp = self
            .with_failover(&conn, |base| {
                conn.http
                    .post(format!("{base}{ENROLL_PATH}"))
                    .header(AUTHORIZATION, format!("Bearer {}", enroll_token.expose()))
                    .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
                    .body(body.clone())
            })
            .await?;
        let bad = |reason: String| SendError::Retryable {
            reason,
            retry_after: None,
        };
        let body = match read_at_most(&mut resp, ERROR_READ_BYTES).await {
            Ok(Body::Whole(b)) => b,
            Ok(Body::Longer(_)) => return Err(bad("the enrolment answer is too long".into())),
            Err(e) => {
                return Err(bad(format!(
                    "reading the enrolment answer: {}",
                    e.without_url()
                )));
            }
        };
        let answer: EnrollAnswer = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the enrolment answer is not readable: {e}")))?;
        let credential = Token::new(answer.credential.trim());
        if credential.is_empty() || answer.name != name {
            return Err(bad(
                "the enrolment answer names no credential for this agent".into(),
            ));
        }
        Ok(credential)
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
        let conn = self.connection();
        self.with_failover(&conn, |base| {
            conn.http
                .post(format!("{base}{INGEST_PATH}"))
                .header(AUTHORIZATION, self.authorization())
                .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
                .header(CONTENT_ENCODING, Encoding::Zstd.header_value())
                .header(BACKLOG_HEADER, backlog)
                .body(body.clone())
        })
        .await
        .map(|_| ())
        .map_err(|e| match e {
            // Refused by a collector that does not read this version (its answer names the
            // versions it reads, or says so as every release has): no fault of the batch.
            SendError::Rejected {
                status: 400,
                reason,
            } if self.versions.refuses(batch.version)
                || reason.contains(lookout_protocol::version::REFUSAL_TEXT) =>
            {
                SendError::Version(format!(
                    "the collector does not read protocol version {} (it reads {}): {reason}",
                    batch.version,
                    self.versions.collector()
                ))
            }
            e => e,
        })
    }

    /// Tells the collector this agent is stopping cleanly, so that its silence does not page
    /// (a permanent agent is shown stopped, an ephemeral one is retired).
    pub async fn goodbye(&self) -> Result<(), SendError> {
        let conn = self.connection();
        self.with_failover(&conn, |base| {
            conn.http
                .post(format!("{base}{GOODBYE_PATH}"))
                .header(AUTHORIZATION, self.authorization())
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
        let conn = self.connection();
        let resp = self
            .with_failover(&conn, |base| {
                let mut req = conn
                    .http
                    .get(format!("{base}{ASSIGNMENTS_PATH}"))
                    .header(AUTHORIZATION, self.authorization())
                    .header(LABELS_HEADER, &conn.labels_json)
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
        let mut resp = resp;
        let body = match read_at_most(&mut resp, conn.max_answer_bytes).await {
            Ok(Body::Whole(body)) => body,
            // Not retried sooner than the next poll: the same collector would send it again.
            Ok(Body::Longer(_)) => {
                return Err(SendError::Rejected {
                    status: resp.status().as_u16(),
                    reason: format!(
                        "the assignments answer is longer than [shipping] max_answer_bytes ({} bytes); not read",
                        conn.max_answer_bytes
                    ),
                });
            }
            Err(e) => {
                return Err(SendError::Retryable {
                    reason: format!("reading assignments: {}", e.without_url()),
                    retry_after: None,
                });
            }
        };
        let (assignments, skipped) =
            Assignments::decode_lenient(&body).map_err(|e| SendError::Rejected {
                status: 200,
                reason: format!("assignments are not readable: {e}; etag {etag:?}"),
            })?;
        Ok(Some((assignments, skipped)))
    }

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

    /// Sends the request built by `build` to each collector of `conn` in turn, starting with
    /// the one that answered last, until one answers with a success or a final refusal.
    async fn with_failover<F>(
        &self,
        conn: &Connection,
        build: F,
    ) -> Result<reqwest::Response, SendError>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        // A list shorter than the index kept (after a reload): from its first.
        let start = self.start_index() % conn.urls.len().max(1);
        let mut last = None;
        for k in 0..conn.urls.len() {
            let i = (start + k) % conn.urls.len();
            let base = &conn.urls[i];
            let sent = build(base).send().await;
            if let Ok(resp) = &sent {
                self.take_rotated(resp);
                self.versions.learn(resp.headers());
            }
            match sent {
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
                    let chain = lookout_runtime::error_chain(&e);
                    // A TLS failure leads with what it is: an operator greps for "certificate
                    // expired", not for rustls's wording.
                    let reason = match handshake_reason(&e) {
                        Some(why) => format!("{shown}: TLS handshake failed: {why} ({chain})"),
                        None => format!("{shown}: {chain}"),
                    };
                    last = Some(SendError::Retryable {
                        reason,
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

/// An answer's body as read by [`read_at_most`].
#[derive(Debug)]
enum Body {
    /// All of it.
    Whole(Vec<u8>),
    /// Its first bytes (at most the limit); there was more, which was not read.
    Longer(Vec<u8>),
}

/// Reads at most `max` bytes of `resp`'s body, chunk by chunk, so a collector (or something
/// posing as one) that sends without end costs no more than `max` bytes of memory.
async fn read_at_most(resp: &mut reqwest::Response, max: usize) -> Result<Body, reqwest::Error> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Ok(Body::Longer(Vec::new()));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = max - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok(Body::Longer(out));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(out))
}

/// The text of an error answer for a log line or a stored reason: its first
/// [`ERROR_TEXT_BYTES`] bytes, invalid UTF-8 replaced, cut between characters.
fn error_text(body: Body) -> String {
    let (bytes, longer) = match body {
        Body::Whole(b) => (b, false),
        Body::Longer(b) => (b, true),
    };
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    let cut = lookout_runtime::truncate_on_char_boundary(&mut text, ERROR_TEXT_BYTES);
    if cut > 0 || longer {
        text.push_str("…[cut]");
    }
    text
}

async fn error_from(mut resp: reqwest::Response) -> SendError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let url = resp.url().to_string();
    // A body that breaks off is still an answer: its status says what happened.
    let reason = match read_at_most(&mut resp, ERROR_READ_BYTES).await {
        Ok(body) => error_text(body),
        Err(e) => format!("(the answer's body broke off: {})", e.without_url()),
    };
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

#[cfg(test)]
mod tests {
    use super::{Body, CollectorClient, ERROR_TEXT_BYTES, error_text};
    use lookout_config::Token;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A collector that takes goodbyes and keeps who sent each: (its name, the
    /// `Authorization` header).
    async fn collector(name: &'static str, seen: Arc<Mutex<Vec<(String, String)>>>) -> String {
        let app = axum::Router::new().route(
            lookout_protocol::http::GOODBYE_PATH,
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push((name.to_string(), auth));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn client(url: &str, token: &str) -> CollectorClient {
        CollectorClient::new(
            vec![url.to_string()],
            Token::new(token),
            &Default::default(),
            &crate::collector_tls::CollectorTls::System,
            Duration::from_secs(5),
            1 << 20,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_reloaded_client_goes_to_the_new_collector_with_the_credential_it_had() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (
            collector("a", seen.clone()).await,
            collector("b", seen.clone()).await,
        );
        // An enrolled agent: no token in its file, the credential it was given presented.
        let running = client(&a, "");
        running.set_token(Token::new("enrolled-credential"));
        running.goodbye().await.unwrap();
        // Reloaded: another collector, still no token in the file.
        running.adopt(client(&b, ""));
        running.goodbye().await.unwrap();
        // Reloaded with a token of its own in the file: that one from now on.
        running.adopt(client(&b, "token-from-the-file"));
        running.goodbye().await.unwrap();
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("a".to_string(), bearer("enrolled-credential")),
                ("b".to_string(), bearer("enrolled-credential")),
                ("b".to_string(), bearer("token-from-the-file")),
            ]
        );
    }

    #[test]
    fn error_text_is_cut_between_characters_and_survives_invalid_utf8() {
        // A three-byte character straddling byte 500, at each of its offsets.
        for pad in 497..=500 {
            let mut body = "a".repeat(pad).into_bytes();
            body.extend_from_slice("€€€".as_bytes());
            let text = error_text(Body::Whole(body));
            let kept = text.trim_end_matches("…[cut]");
            assert!(
                kept.len() <= ERROR_TEXT_BYTES,
                "{pad}: {} bytes",
                kept.len()
            );
            assert!(kept.starts_with(&"a".repeat(pad)));
        }
        let text = error_text(Body::Whole(vec![b'x', 0xff, 0xfe, b'y']));
        assert_eq!(text, "x\u{fffd}\u{fffd}y");
        assert_eq!(error_text(Body::Longer(b"abc".to_vec())), "abc…[cut]");
        assert_eq!(error_text(Body::Whole(b"short".to_vec())), "short");
    }
}
