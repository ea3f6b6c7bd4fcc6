//! Signed links that acknowledge an alert from the message that announced it.
//!
//! When `[server] public_url` is set, every firing and reminder note carries, as it is sent,
//! `ack_link = {public_url}/ack/{token}`. The link is a capability: whoever holds it may
//! acknowledge that one firing of that one alert, until it expires, and nothing else.
//! `GET /ack/{token}` only shows what it would acknowledge and a button (chat services and mail
//! scanners fetch links, and must not acknowledge); the button's `POST` acknowledges
//! (web/ack.rs).
//!
//! # The token
//!
//! ```text
//! {alert_id}.{fired_ms}.{expires}.{mac}
//! 42.1795687200000.1796292000.3f0c…(32 hex digits)
//! ```
//!
//! `alert_id` is the alert's id in the store, `fired_ms` when its current firing began (Unix
//! milliseconds), `expires` the Unix second it stops working (`[alerting] ack_link_lifetime`,
//! 7 days, from when the message is sent); `mac` the first 16 bytes (128 bits) of
//! HMAC-SHA256 over `lookout ack link v1\0` and the first three fields as written, as lowercase
//! hex. All four are decimal or hex digits, so the token needs no escaping in a URL, and it is
//! at most [`MAX_TOKEN`] characters: a longer path is refused before anything is parsed.
//!
//! A token is good while its MAC is right (compared in constant time), `expires` has not
//! passed, and the alert it names is still firing the firing that began at `fired_ms`: a
//! resolve ends every link to it, and a later firing of the same alert is not acknowledged
//! by an old message's link.
//!
//! # The key
//!
//! A random 32-byte key made once and kept in the store (`shared_keys`, name `ack_link`), the
//! first collector to start writing it: every collector on a shared database (high
//! availability) signs and verifies with the same key without anyone configuring a secret,
//! links survive restarts and upgrades, and a backup restores the key with the alerts its
//! links name. Reading the database gives the key; it also gives everything a link could do.
//! Deleting the row (and restarting) invalidates every link sent so far.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use lookout_config::CollectorConfig;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The store's name of the key ([`crate::store::alerting::AlertStore::shared_key`]).
pub const KEY_NAME: &str = "ack_link";
/// The longest token accepted; a longer one is refused unread.
pub const MAX_TOKEN: usize = 128;
/// Bytes of the MAC kept in a token.
const MAC_BYTES: usize = 16;

/// The key links are signed with.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// What a good token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    /// The alert's id.
    pub alert_id: i64,
    /// When the firing it acknowledges began, Unix milliseconds.
    pub fired_ms: i64,
    /// When the link stops working.
    pub expires: DateTime<Utc>,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token (wrong shape or length).
    #[error("this is not an acknowledge link: it may have been cut or changed")]
    Malformed,
    /// The MAC is wrong: not made by this Lookout, or changed.
    #[error("this acknowledge link was not made by this Lookout, or has been changed")]
    Forged,
    /// Past its expiry.
    #[error("this acknowledge link has expired")]
    Expired,
}

impl LinkKey {
    /// The key from its stored bytes: the first 32 (the store keeps 32).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut key = [0u8; 32];
        for (k, b) in key.iter_mut().zip(bytes) {
            *k = *b;
        }
        Self(key)
    }

    fn mac(&self, fields: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(b"lookout ack link v1\0");
        mac.update(fields.as_bytes());
        mac.finalize().into_bytes()[..MAC_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The token for the firing of `alert_id` that began at `fired_at`, good until `expires`.
    pub fn sign(&self, alert_id: i64, fired_at: DateTime<Utc>, expires: DateTime<Utc>) -> String {
        let fields = format!(
            "{alert_id}.{}.{}",
            fired_at.timestamp_millis(),
            expires.timestamp()
        );
        let mac = self.mac(&fields);
        format!("{fields}.{mac}")
    }

    /// What `token` names, if this key made it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Signed, LinkError> {
        if token.len() > MAX_TOKEN {
            return Err(LinkError::Malformed);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [id, fired, expires, given] = parts.as_slice() else {
            return Err(LinkError::Malformed);
        };
        let number = |s: &str| -> Result<i64, LinkError> {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(LinkError::Malformed);
            }
            s.parse().map_err(|_| LinkError::Malformed)
        };
        let (alert_id, fired_ms, expires_s) = (number(id)?, number(fired)?, number(expires)?);
        if given.len() != 2 * MAC_BYTES {
            return Err(LinkError::Malformed);
        }
        let fields = &token[..token.len() - given.len() - 1];
        let expected = self.mac(fields);
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(LinkError::Forged);
        }
        let expires = DateTime::from_timestamp(expires_s, 0).ok_or(LinkError::Malformed)?;
        if now >= expires {
            return Err(LinkError::Expired);
        }
        Ok(Signed {
            alert_id,
            fired_ms,
            expires,
        })
    }
}

/// How notes get their links: the key, `[server] public_url` and `[alerting]
/// ack_link_lifetime`.
#[derive(Debug, Clone)]
pub struct AckLinks {
    key: LinkKey,
    base: Option<String>,
    lifetime: Duration,
}

impl AckLinks {
    /// Links signed with `key`, under the configuration's public URL (none without it).
    pub fn new(key: LinkKey, config: &CollectorConfig) -> Self {
        Self {
            key,
            base: config
                .server
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            lifetime: config.alerting.ack_link_lifetime,
        }
    }

    /// No links (and a key of this process's own, which verifies nothing sent).
    pub fn none() -> Self {
        Self {
            key: LinkKey(crate::sessions::fresh_key()),
            base: None,
            lifetime: Duration::ZERO,
        }
    }

    /// The key, to verify a token with.
    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// The link that acknowledges the firing of `alert_id` that began at `fired_at`, sent at
    /// `now`; `None` without a public URL.
    pub fn link(
        &self,
        alert_id: i64,
        fired_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let base = self.base.as_ref()?;
        let expires = chrono::Duration::from_std(self.lifetime)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now);
        Some(format!(
            "{base}/ack/{}",
            self.key.sign(alert_id, fired_at, expires)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn a_token_names_its_firing_until_it_expires() {
        let key = LinkKey::from_bytes(&[7; 32]);
        let fired = DateTime::from_timestamp_millis(1_795_687_200_123).unwrap();
        let token = key.sign(42, fired, at(1_796_292_000));
        assert!(token.starts_with("42.1795687200123.1796292000."), "{token}");
        assert!(token.len() <= MAX_TOKEN);
        assert_eq!(
            key.verify(&token, at(1_796_291_999)),
            Ok(Signed {
                alert_id: 42,
                fired_ms: 1_795_687_200_123,
                expires: at(1_796_292_000)
            })
        );
        assert_eq!(
            key.verify(&token, at(1_796_292_000)),
            Err(LinkError::Expired)
        );
        // Another key, or any field changed, is forged; a later expiry cannot be written in.
        let other = LinkKey::from_bytes(&[8; 32]);
        assert_eq!(other.verify(&token, at(0)), Err(LinkError::Forged));
        let longer = token.replace(".1796292000.", ".1896292000.");
        assert_eq!(key.verify(&longer, at(0)), Err(LinkError::Forged));
        let another = token.replacen("42.", "43.", 1);
        assert_eq!(key.verify(&another, at(0)), Err(LinkError::Forged));
        let mut flipped = token.clone();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.pop();
        flipped.push_str(last);
        assert_eq!(key.verify(&flipped, at(0)), Err(LinkError::Forged));
    }

    #[test]
    fn what_is_not_a_token_is_malformed() {
        let key = LinkKey::from_bytes(&[7; 32]);
        let good = key.sign(1, at(0), at(10));
        let mac = good.rsplit('.').next().unwrap();
        for bad in [
            String::new(),
            "x".into(),
            "1.2.3".into(),
            format!("1.2.3.4.{mac}"),
            format!("-1.0.10.{mac}"),
            format!("1.0.+10.{mac}"),
            format!("1.0.10.{}", &mac[1..]),
            format!("99999999999999999999.0.10.{mac}"),
            format!("1.0.10.{mac}{}", "0".repeat(200)),
            "9".repeat(10_000),
        ] {
            assert_eq!(
                key.verify(&bad, at(0)),
                Err(LinkError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn links_need_the_public_url() {
        let parse = |toml: &str| {
            CollectorConfig::parse(std::path::Path::new("t.toml"), toml, &|_| None).unwrap()
        };
        let key = LinkKey::from_bytes(&[1; 32]);
        let off = AckLinks::new(key.clone(), &parse(""));
        assert_eq!(off.link(1, at(0), at(0)), None);
        let on = AckLinks::new(
            key.clone(),
            &parse("[server]\npublic_url = \"https://lookout.example/\"\n"),
        );
        let link = on.link(1, at(0), at(100)).unwrap();
        let token = link.strip_prefix("https://lookout.example/ack/").unwrap();
        // Seven days from when it is sent, by default.
        assert_eq!(
            key.verify(token, at(100)).unwrap().expires,
            at(100 + 7 * 86_400)
        );
    }
}
