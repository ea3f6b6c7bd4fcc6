//! The webhook channel: a JSON POST to any URL, signed when `secret` is set.
//!
//! # The request
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! X-Lookout-Signature: sha256=<hex>      (when `secret` is set)
//! <the configured `headers`>
//!
//! {
//!   "version": 1,
//!   "group_key": "<route and group_by label values>",
//!   "title": "[FIRING] api is down: connection refused",
//!   "alerts": [
//!     {
//!       "fingerprint": "<rule + labels>",
//!       "rule": "uptime",
//!       "labels": {"check": "api", "severity": "critical"},
//!       "kind": "firing",                 // or "reminder", "acknowledged", "resolved"
//!       "summary": "api is down: connection refused",
//!       "detail": "connecting to 10.0.0.5:443: Connection refused (os error 111)",
//!       "fired_at": "2026-11-26T10:00:00Z",        // RFC 3339, UTC
//!       "resolved_at": "2026-11-26T10:04:12Z",     // resolved notes only
//!       "acked_by": "alice",                       // acknowledged notes only
//!       "link": "https://status.example.com/...",  // when [server] public_url is set
//!       "ack_link": "https://status.example.com/ack/<token>"  // the same, firing and
//!                                                  // reminder notes: acknowledges after a
//!                                                  // confirmation (notify/link.rs)
//!     }
//!   ]
//! }
//! ```
//!
//! Invariants: `version` ([`PAYLOAD_VERSION`]) changes when a field is removed, renamed or
//! changes meaning; fields may be added within a version, so receivers ignore what they do not
//! know. `alerts` is never empty and keeps the order the notes were queued in.
//!
//! The signature is the lowercase hex HMAC-SHA256 of the body's exact bytes, keyed with the
//! secret: a receiver computes it over the raw body before parsing it and compares in constant
//! time. The signature covers the body only, so a receiver that must refuse replays keeps the
//! `(fingerprint, kind, fired_at)` it has seen.
//!
//! # The answer
//!
//! 2xx: delivered. 429 (with `Retry-After`, seconds or a date), 408 and 5xx: retried. Other 4xx
//! and 3xx: given up. Error text never holds the URL (it may carry a token) or the secret.

use hmac::{Hmac, KeyInit, Mac};
use lookout_config::ChannelConfig;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use sha2::Sha256;

use super::endpoint::{self, Endpoint, HttpChannel, Post};
use super::message::{AlertNote, Message, PAYLOAD_VERSION, SendError};

/// The header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "x-lookout-signature";

/// The body of a webhook request (see the module's doc for the schema).
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// The schema's version: [`PAYLOAD_VERSION`].
    pub version: u32,
    /// The group the notes belong to (route and `group_by` label values).
    pub group_key: &'a str,
    /// [`Message::title`].
    pub title: String,
    /// The notes, in the order they were queued.
    pub alerts: &'a [AlertNote],
}

impl<'a> Payload<'a> {
    /// The payload of `msg`.
    pub fn new(msg: &'a Message) -> Self {
        Self {
            version: PAYLOAD_VERSION,
            group_key: &msg.group_key,
            title: msg.title(),
            alerts: &msg.alerts,
        }
    }
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed with secret>`: the value of
/// [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 2 * digest.len());
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Builds the channel from a `webhook` entry (`url`, `secret`, `headers`, `timeout`).
/// `Content-Type`, `Content-Length`, `Host` and the signature header are Lookout's to set.
pub fn channel(cfg: &ChannelConfig, http: reqwest::Client) -> Result<HttpChannel, String> {
    let endpoint = Endpoint::new(cfg, http, "url", cfg.url.as_deref(), None)?;
    if cfg.secret.as_deref() == Some("") {
        return Err("secret: is empty".into());
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
        if [
            CONTENT_TYPE,
            reqwest::header::CONTENT_LENGTH,
            reqwest::header::HOST,
            HeaderName::from_static(SIGNATURE_HEADER),
        ]
        .contains(&name)
        {
            return Err(format!("headers: {name} is set by Lookout"));
        }
        // The value may be a credential: not repeated, and hidden from Debug output.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("headers: the value of {name} is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let mut endpoint = endpoint.headers(headers);
    if let Some(secret) = &cfg.secret {
        endpoint = endpoint.secret(secret);
    }
    let payload = Webhook {
        secret: cfg.secret.clone(),
    };
    Ok(HttpChannel::new(cfg, endpoint, payload))
}

/// The webhook's payload builder: [`Payload`], signed when a secret is set.
struct Webhook {
    secret: Option<String>,
}

impl endpoint::Payload for Webhook {
    fn peer(&self) -> &'static str {
        "webhook"
    }

    fn posts(&self, msg: &Message) -> Result<Vec<Post>, SendError> {
        let mut post = Post::json(&Payload::new(msg))?;
        if let Some(secret) = &self.secret {
            let value = HeaderValue::from_str(&signature(secret.as_bytes(), &post.body))
                .map_err(|e| SendError::Permanent(format!("cannot sign the payload: {e}")))?;
            post.headers.insert(SIGNATURE_HEADER, value);
        }
        Ok(vec![post])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
