//! The fallback's two messages as each peer takes them, sent over plain HTTP with the agent's
//! reqwest client (no library per vendor: the agent stays small).
//!
//! - `webhook`: `POST url`, `Content-Type: application/json`:
//!   `{"event": "collector_unreachable" | "collector_reachable", "agent", "collectors"
//!   (their URLs, passwords hidden), "since" (the outage's start, RFC 3339), "at" (now),
//!   "title", "message", "error" (the last delivery error; unreachable only)}`;
//! - `slack`: `POST url` `{"text": "*title*\nmessage"}` (an incoming webhook);
//! - `ntfy`: `POST url` (the topic's URL) with the message as the body and `Title`,
//!   `Priority` (`urgent` when unreachable, `default` when back) and `Tags` headers, and
//!   `Authorization: Bearer <token>` when `token` is set (<https://docs.ntfy.sh/publish/>);
//! - `pushover`: `POST url` (Pushover's Messages API by default) with JSON `token`, `user`,
//!   `title`, `message`, `priority` (1, high, when unreachable; 0 when back)
//!   (<https://pushover.net/api>).
//!
//! A send is retried with backoff up to [`ATTEMPTS`] times on a timeout, a connection error,
//! 408, 429 and 5xx; any other answer ends it. Errors are told without the URL (its path is
//! the secret of a Slack or webhook URL) and without the tokens.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::{FallbackConfig, FallbackType};
use lookout_runtime::backoff::{Backoff, Jitter};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

/// Sends of one message, the first included.
pub const ATTEMPTS: u32 = 5;
/// The wait before the first retry, doubled per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The client the messages go out with: no redirects (a redirect could carry a secret path
/// elsewhere), the system's roots for https.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("lookout-agent/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Which of the two messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No collector has acknowledged a batch for `after`.
    Unreachable,
    /// Delivery resumed.
    Reachable,
}

impl Kind {
    /// The `message` label of `lookout_agent_fallback_messages_total`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Unreachable => "unreachable",
            Kind::Reachable => "reachable",
        }
    }
}

/// One message, in words.
#[derive(Debug, Clone)]
pub struct Note {
    /// Which one.
    pub kind: Kind,
    /// The agent's name.
    pub agent: String,
    /// The collectors' URLs, passwords and secret parameters hidden.
    pub collectors: Vec<String>,
    /// When the outage began.
    pub since: DateTime<Utc>,
    /// Now.
    pub at: DateTime<Utc>,
    /// The last delivery error (unreachable only).
    pub error: Option<String>,
}

impl Note {
    /// A title a person reads first.
    pub fn title(&self) -> String {
        match self.kind {
            Kind::Unreachable => format!("Lookout: {} cannot reach its collector", self.agent),
            Kind::Reachable => format!("Lookout: {} reaches its collector again", self.agent),
        }
    }

    /// What happened, in words.
    pub fn message(&self) -> String {
        let collectors = self.collectors.join(", ");
        let since = self.since.format("%Y-%m-%d %H:%M:%S UTC");
        let lasted = lookout_config::duration::format(&Duration::from_secs(
            (self.at - self.since).num_seconds().max(0) as u64,
        ));
        match self.kind {
            Kind::Unreachable => {
                let error = self
                    .error
                    .as_deref()
                    .map(|e| format!(" The last attempt: {e}."))
                    .unwrap_or_default();
                format!(
                    "No collector has stored a batch from {} since {since} ({lasted}). \
                     Collector: {collectors}.{error} Its records wait in its spool. The \
                     collector or the network to it may be down; the collector's own \
                     alerts may not be going out either.",
                    self.agent
                )
            }
            Kind::Reachable => format!(
                "{} delivers to its collector again ({collectors}); it could not from {since} \
                 for {lasted}. The records spooled meanwhile are being delivered.",
                self.agent
            ),
        }
    }
}

/// The request that delivers `note` to `cfg`'s peer: its body and headers.
pub fn request(cfg: &FallbackConfig, note: &Note) -> (Vec<u8>, HeaderMap) {
    let mut headers = HeaderMap::new();
    let json = HeaderValue::from_static("application/json");
    let body = match cfg.kind {
        FallbackType::Webhook => {
            headers.insert(CONTENT_TYPE, json);
            serde_json::json!({
                "event": match note.kind {
                    Kind::Unreachable => "collector_unreachable",
                    Kind::Reachable => "collector_reachable",
                },
                "agent": note.agent,
                "collectors": note.collectors,
                "since": note.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "at": note.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "title": note.title(),
                "message": note.message(),
                "error": note.error,
            })
            .to_string()
            .into_bytes()
        }
        FallbackType::Slack => {
            headers.insert(CONTENT_TYPE, json);
            serde_json::json!({ "text": format!("*{}*\n{}", note.title(), note.message()) })
                .to_string()
                .into_bytes()
        }
        FallbackType::Ntfy => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            let (priority, tags) = match note.kind {
                Kind::Unreachable => ("urgent", "rotating_light,lookout"),
                Kind::Reachable => ("default", "white_check_mark,lookout"),
            };
            if let Ok(v) = HeaderValue::from_str(&ascii(&note.title())) {
                headers.insert("Title", v);
            }
            headers.insert("Priority", HeaderValue::from_static(priority));
            headers.insert("Tags", HeaderValue::from_static(tags));
            if let Some(token) = &cfg.token
                && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}"))
            {
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            note.message().into_bytes()
        }
        FallbackType::Pushover => {
            headers.insert(CONTENT_TYPE, json);
            serde_json::json!({
                "token": cfg.token,
                "user": cfg.user,
                "title": note.title(),
                "message": note.message(),
                "priority": match note.kind {
                    Kind::Unreachable => 1,
                    Kind::Reachable => 0,
                },
            })
            .to_string()
            .into_bytes()
        }
    };
    (body, headers)
}

/// A header value from text that may hold any character: what is not printable ASCII becomes
/// `?` (ntfy reads a `Title` header as ASCII unless it is RFC 2047-encoded).
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// Delivery to the collector changed before it went: not sent, and that is right.
    Cancelled,
    /// The peer refused it, or did not take it after every attempt: why.
    Failed(String),
}

/// How one attempt ended.
enum Attempt {
    Sent,
    Retry(String),
    Final(String),
}

/// Sends `note`, retrying as the module says, unless `cancel` resolves before an attempt
/// (delivery to the collector changed meanwhile; an attempt under way is finished): `Ok` once
/// the peer took it.
pub async fn deliver(
    http: &reqwest::Client,
    cfg: &FallbackConfig,
    note: &Note,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<(), Undelivered> {
    let backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF, Jitter::Half);
    let (body, headers) = request(cfg, note);
    let secrets: Vec<&str> = [cfg.token.as_deref(), cfg.user.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 4)
        .collect();
    tokio::pin!(cancel);
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let wait = backoff.wait(attempt - 1);
            tracing::warn!(fallback = cfg.kind.as_str(), message = note.kind.label(), attempt, retry_in_ms = wait.as_millis() as u64, error = %last, "the fallback message was not taken; retrying");
            tokio::select! {
                () = &mut cancel => return Err(Undelivered::Cancelled),
                () = tokio::time::sleep(wait) => {}
            }
        }
        let send = http
            .post(cfg.resolved_url())
            .timeout(cfg.timeout)
            .headers(headers.clone())
            .body(body.clone())
            .send();
        // An attempt under way is finished (within its timeout), not cancelled: the receiver
        // may already have the message, and one taken but counted as not sent would leave its
        // "reachable" message unsent. A change of delivery stops the retries only.
        let outcome = tokio::time::timeout(cfg.timeout + Duration::from_millis(100), send).await;
        let attempt = match outcome {
            Ok(Ok(r)) if r.status().is_success() => Attempt::Sent,
            Ok(Ok(r)) => {
                let status = r.status();
                let why = format!("answered {status}");
                if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
                    Attempt::Retry(why)
                } else {
                    Attempt::Final(why)
                }
            }
            Ok(Err(e)) => Attempt::Retry(hide(describe(&e), &secrets)),
            Err(_) => Attempt::Retry(format!("no answer within {:?}", cfg.timeout)),
        };
        match attempt {
            Attempt::Sent => return Ok(()),
            Attempt::Final(why) => return Err(Undelivered::Failed(why)),
            Attempt::Retry(why) => last = why,
        }
    }
    Err(Undelivered::Failed(format!(
        "{last} (after {ATTEMPTS} attempts)"
    )))
}

/// A reqwest error and its causes, without the URL (see [`lookout_runtime::request_failure`]).
fn describe(e: &reqwest::Error) -> String {
    lookout_runtime::request_failure(e.is_timeout(), e.is_connect(), e)
}

fn hide(mut text: String, secrets: &[&str]) -> String {
    for s in secrets {
        text = text.replace(s, "***");
    }
    text
}
