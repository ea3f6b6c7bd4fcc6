//! The shape every HTTP channel shares, so that a channel is one small module: a payload
//! builder ([`Payload`]: a message becomes the bodies to POST) and an endpoint ([`Endpoint`]:
//! where they go, with which headers, and which secrets to keep out of error text).
//! [`HttpChannel`] puts the two together and does the rest once for all of them: the POST with
//! the channel's timeout, the answer read as delivered, retried (408, 429, 5xx, after what
//! `Retry-After` asks) or given up, and error text without the URL or the keys. Retries,
//! backoff, storm control and exactly-once stay where they were, in the outbox's worker: a
//! channel only says how one attempt went.
//!
//! A peer that takes one event per request (PagerDuty) returns several bodies; they are POSTed
//! in order and the first failure ends the attempt, so a retry sends the earlier ones again:
//! such peers must deduplicate (PagerDuty does, by `dedup_key`).

use std::fmt;
use std::time::Duration;

use lookout_config::ChannelConfig;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::http::{body_snippet, http_outcome, request_error, url_secrets};
use super::message::{Message, SendError};

/// One request's body and its own headers (a signature over the body, say).
#[derive(Debug, Default)]
pub(crate) struct Post {
    /// The bytes to send, JSON unless a `Content-Type` in `headers` says otherwise.
    pub body: Vec<u8>,
    /// Headers of this request only, added to the endpoint's.
    pub headers: HeaderMap,
}

impl Post {
    /// A JSON body.
    pub fn json(value: &impl serde::Serialize) -> Result<Self, SendError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| SendError::Permanent(format!("cannot encode the payload: {e}")))?;
        Ok(Self {
            body,
            headers: HeaderMap::new(),
        })
    }
}

/// What a channel's module provides: how a message becomes requests.
pub(crate) trait Payload: Send + Sync + 'static {
    /// The peer's name in error text (`Slack`, `PagerDuty`).
    fn peer(&self) -> &'static str;

    /// The requests that deliver `msg` (never empty: [`super::Channel::send`] sends nothing
    /// for a message without notes), POSTed in order.
    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError>;

    /// True when the peer keeps a triggered alert open until it is resolved (an incident
    /// tool): `notify-test` then resolves its test alert after triggering it.
    fn keeps_alerts_open(&self) -> bool {
        false
    }
}

/// Where a channel's requests go: the URL, its headers, its timeout, and the secrets to keep
/// out of error text (the URL's path and query, a password, keys given with
/// [`Endpoint::secret`]).
pub(crate) struct Endpoint {
    url: reqwest::Url,
    http: reqwest::Client,
    timeout: Duration,
    headers: HeaderMap,
    secrets: Vec<String>,
}

impl Endpoint {
    /// The endpoint at `raw` (the channel's setting `key`), else at `default` (a vendor's
    /// public endpoint). The error names the setting and never repeats the URL.
    pub fn new(
        cfg: &ChannelConfig,
        http: reqwest::Client,
        key: &str,
        raw: Option<&str>,
        default: Option<&str>,
    ) -> Result<Self, String> {
        let raw = raw.or(default).ok_or_else(|| format!("{key}: required"))?;
        let url = reqwest::Url::parse(raw).map_err(|e| format!("{key}: not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{key}: expected an http:// or https:// URL"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            secrets: url_secrets(&url, None),
            url,
            http,
            timeout: cfg.timeout,
            headers,
        })
    }

    /// Keeps `secret` (a key sent in a body or a header) out of error text too.
    pub fn secret(mut self, secret: &str) -> Self {
        if secret.len() >= 4 {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret inside another is replaced with it.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
        self
    }

    /// Adds headers to every request (their values marked sensitive by the caller).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    /// POSTs one request; `Ok` with a snippet of the answer when it is a 2xx.
    async fn post(&self, peer: &str, post: Post) -> Result<String, SendError> {
        let mut headers = self.headers.clone();
        headers.extend(post.headers);
        let resp = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .headers(headers)
            .body(post.body)
            .send()
            .await
            .map_err(|e| request_error(peer, e, self.timeout, &self.secrets))?;
        let status = resp.status();
        let answer_headers = resp.headers().clone();
        let snippet = body_snippet(resp, &self.secrets).await;
        http_outcome(peer, status, &answer_headers, &snippet)?;
        Ok(snippet)
    }
}

/// An HTTP channel: a payload builder and its endpoint.
pub struct HttpChannel {
    name: String,
    endpoint: Endpoint,
    payload: Box<dyn Payload>,
}

impl fmt::Debug for HttpChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpChannel")
            .field("name", &self.name)
            .field("peer", &self.payload.peer())
            .finish_non_exhaustive()
    }
}

impl HttpChannel {
    /// The channel `cfg` names, sending what `payload` builds to `endpoint`.
    pub(crate) fn new(cfg: &ChannelConfig, endpoint: Endpoint, payload: impl Payload) -> Self {
        Self {
            name: cfg.name.clone(),
            endpoint,
            payload: Box::new(payload),
        }
    }

    /// The channel's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the peer keeps a triggered alert open until it is resolved.
    pub fn keeps_alerts_open(&self) -> bool {
        self.payload.keeps_alerts_open()
    }

    /// POSTs the requests of `msg` in order; the first that fails ends the attempt.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let peer = self.payload.peer();
        for post in self.payload.posts(msg)? {
            let answer = self.endpoint.post(peer, post).await?;
            tracing::debug!(channel = %self.name, peer, %answer, "delivered");
        }
        Ok(())
    }
}
