//! The shape every HTTP channel shares, so that a channel is one small module: a payload
//! builder ([`Payload`]: a message becomes the bodies to POST) and an endpoint ([`Endpoint`]:
//! where they go, with which headers, and which secrets to keep out of error text).
//! [`HttpChannel`] puts the two together and does the rest once for all of them: the POST with
//! the channel's timeout, the answer read as delivered, retried (408, 429, 5xx, after what
//! `Retry-After` asks, or on a 429 what the peer says in headers or a body of its own) or
//! given up, and error text without the URL or the keys. Retries,
//! backoff, storm control and exactly-once stay where they were, in the outbox's worker: a
//! channel only says how one attempt went.
//!
//! A peer that takes one event per request (PagerDuty) returns several bodies; they are POSTed
//! in order and the first failure ends the attempt, so a retry sends the earlier ones again:
//! such peers must deduplicate (PagerDuty does, by `dedup_key`).
//!
//! A request goes to the endpoint's URL unless its [`Post`] names a path below it (an API
//! with a resource per alert: Opsgenie's `/v2/alerts/{alias}/close`, Matrix's
//! `/_matrix/client/v3/rooms/{room}/send/...`), with the method it names (POST unless it says
//! PUT). Path segments taken from alerts or settings go through [`segment`], so a `/` or a `?`
//! in them stays inside their segment.

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
    /// Headers of this request only, added to the endpoint's (and replacing those of the
    /// same name).
    pub headers: HeaderMap,
    /// A path (and query) below the endpoint's URL, already encoded (see [`segment`]): the
    /// endpoint's own path, then this. `None`: the endpoint's URL as it is.
    pub path: Option<String>,
    /// PUT instead of POST (Matrix sends events with PUT, keyed by a transaction id).
    pub put: bool,
}

impl Post {
    /// A JSON body.
    pub fn json(value: &impl serde::Serialize) -> Result<Self, SendError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| SendError::Permanent(format!("cannot encode the payload: {e}")))?;
        Ok(Self {
            body,
            ..Self::default()
        })
    }

    /// The same request sent to `path` below the endpoint's URL (`/v2/alerts/x/close?a=b`).
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    #[allow(dead_code)]
    /// The same request sent with PUT.
    pub fn put(mut self) -> Self {
        self.put = true;
        self
    }
}

/// `s` percent-encoded as one path segment: every byte but letters, digits and `-._~`.
pub(crate) fn segment(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// The channel's setting `key` (a secret: a routing key, an API key, a token), which must be
/// set and not empty; the error names the key, never the value.
pub(crate) fn required(key: &str, value: Option<&str>) -> Result<String, String> {
    match value {
        None => Err(format!("{key}: required")),
        Some("") => Err(format!("{key}: is empty")),
        Some(v) => Ok(v.to_string()),
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

    /// The wait a refusal's body asks for, for peers that say it there rather than in
    /// `Retry-After` (Telegram's `parameters.retry_after`, Discord's `retry_after`). Asked
    /// only of a 429 without a usable `Retry-After`; `body` is the first 4 KiB of the answer.
    fn retry_after_in_body(&self, _body: &str) -> Option<Duration> {
        None
    }

    /// The wait a refusal's headers ask for other than in `Retry-After`, for peers that say
    /// it in headers of their own (Opsgenie's `X-RateLimit-Period-In-Sec`). Asked only of a
    /// 429 without a usable `Retry-After`, before [`Payload::retry_after_in_body`].
    fn retry_after_in_headers(&self, _headers: &HeaderMap) -> Option<Duration> {
        None
    }
}

/// The payload builder of a channel that sends one JSON body per message (Slack, Teams,
/// Google Chat): the peer's name and the function that builds the body.
pub(crate) struct OneJson {
    /// The peer's name in error text.
    pub peer: &'static str,
    /// The body for a message.
    pub body: fn(&Message) -> serde_json::Value,
}

impl Payload for OneJson {
    fn peer(&self) -> &'static str {
        self.peer
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        Ok(vec![Post::json(&(self.body)(msg))?])
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

    /// Keeps the last segment of the URL's path out of error text on its own too: a chat
    /// service's webhook token (`/api/webhooks/{id}/{token}`, `/hooks/{id}/{token}`), which a
    /// peer may quote without the rest of the path.
    pub fn token_in_path(self) -> Self {
        let token = self
            .url
            .path_segments()
            .and_then(|mut s| s.rfind(|s| !s.is_empty()))
            .map(str::to_string);
        match token {
            Some(t) => self.secret(&t),
            None => self,
        }
    }

    /// Keeps the values of the URL's query parameters `names` out of error text too, decoded
    /// (the encoded query is already): a signature (Teams' `sig`), a key or a token (Google
    /// Chat's), as a peer might quote them alone.
    pub fn query_secrets(mut self, names: &[&str]) -> Self {
        let values: Vec<String> = self
            .url
            .query_pairs()
            .filter(|(k, _)| names.contains(&k.as_ref()))
            .map(|(_, v)| v.into_owned())
            .collect();
        for v in values {
            self = self.secret(&v);
        }
        self
    }

    /// Adds headers to every request (their values marked sensitive by the caller).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers.extend(headers);
        self
    }

    /// The URL of a request to `path` below this endpoint's (see [`Post::path`]).
    fn url_of(&self, path: Option<&str>) -> reqwest::Url {
        let Some(path) = path else {
            return self.url.clone();
        };
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut url = self.url.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(query);
        url
    }

    /// Sends one request; `Ok` with a snippet of the answer when it is a 2xx.
    async fn post(&self, payload: &dyn Payload, post: Post) -> Result<String, SendError> {
        let peer = payload.peer();
        let mut headers = self.headers.clone();
        headers.extend(post.headers);
        let url = self.url_of(post.path.as_deref());
        let method = if post.put {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let resp = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .headers(headers)
            .body(post.body)
            .send()
            .await
            .map_err(|e| request_error(peer, e, self.timeout, &self.secrets))?;
        let status = resp.status();
        let answer_headers = resp.headers().clone();
        let snippet = body_snippet(resp, &self.secrets).await;
        match http_outcome(peer, status, &answer_headers, &snippet) {
            Err(SendError::Retry {
                reason,
                after: None,
            }) if status == reqwest::StatusCode::TOO_MANY_REQUESTS => Err(SendError::Retry {
                after: payload
                    .retry_after_in_headers(&answer_headers)
                    .or_else(|| payload.retry_after_in_body(&snippet))
                    .map(|d| d.min(super::http::MAX_RETRY_AFTER)),
                reason,
            }),
            other => other.map(|()| snippet),
        }
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
            let answer = self.endpoint.post(self.payload.as_ref(), post).await?;
            tracing::debug!(channel = %self.name, peer, %answer, "delivered");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        let cfg: ChannelConfig =
            serde_json::from_value(serde_json::json!({"name": "t", "type": "webhook"})).unwrap();
        Endpoint::new(&cfg, reqwest::Client::new(), "url", Some(url), None).unwrap()
    }

    #[test]
    fn a_token_in_the_path_is_a_secret_on_its_own() {
        let e =
            endpoint("https://chat.example/hooks/id123/tok3n-secret/?wait=true").token_in_path();
        let text = super::super::format::redact("quoted tok3n-secret alone", &e.secrets);
        assert_eq!(text, "quoted <redacted> alone");
        // Without a path, nothing more is taken.
        assert_eq!(
            endpoint("https://chat.example")
                .token_in_path()
                .secrets
                .len(),
            1
        );
    }

    #[test]
    fn a_segment_keeps_its_slashes_and_queries_inside() {
        assert_eq!(segment("uptime/api?x=1 é"), "uptime%2Fapi%3Fx%3D1%20%C3%A9");
        assert_eq!(segment("a-b.c_d~e"), "a-b.c_d~e");
    }

    #[test]
    fn a_path_goes_below_the_endpoints_own() {
        let e = endpoint("https://proxy.example/opsgenie/?k=v");
        assert_eq!(
            e.url_of(None).as_str(),
            "https://proxy.example/opsgenie/?k=v"
        );
        let close = Post::default().at(format!(
            "/v2/alerts/{}/close?identifierType=alias",
            segment("uptime/api")
        ));
        assert_eq!(
            e.url_of(close.path.as_deref()).as_str(),
            "https://proxy.example/opsgenie/v2/alerts/uptime%2Fapi/close?identifierType=alias"
        );
        assert!(!close.put && Post::default().put().put);
        let root = endpoint("https://api.example");
        assert_eq!(
            root.url_of(Some("/1/messages.json")).as_str(),
            "https://api.example/1/messages.json"
        );
    }
}
