//! `[otlp]`: the agent's OpenTelemetry receiver (OTLP/HTTP, protobuf and JSON), so that apps
//! on the server send their own metrics and logs to their local agent, which spools and ships
//! them like its own. Off unless the section is present; on loopback unless `allow_remote` says
//! otherwise, since the receiver asks no credentials (docs/security.md).
//!
//! ```toml
//! [otlp]
//! listen = "127.0.0.1:4318"   # the default; OTLP/HTTP's port
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};

/// `[otlp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Where the receiver listens (`POST /v1/metrics`, `POST /v1/logs`). Default
    /// `"127.0.0.1:4318"`. An address other than loopback needs `allow_remote = true`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Lets `listen` be an address other than loopback: anyone who reaches it can then write
    /// metrics and logs under this agent's name, for the receiver asks no credentials. Default
    /// `false`.
    #[serde(default)]
    pub allow_remote: bool,
    /// Largest request body read, in bytes, as sent (compressed or not); a larger one is
    /// answered 413. Default 1 MiB; 1 KiB to 64 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest body once decompressed (`Content-Encoding: gzip`), in bytes; a body that
    /// inflates past it is answered 413 without being inflated further. Default 4 MiB; at least
    /// `max_body_bytes`, at most 256 MiB.
    #[serde(default = "default_max_decoded_bytes")]
    pub max_decoded_bytes: usize,
    /// Most attributes of a data point kept as labels; a point with more is refused and counted
    /// in the answer's `partial_success`. Default 16; 0 to 64.
    #[serde(default = "default_max_labels")]
    pub max_labels: usize,
    /// Longest label key or value (an attribute's, `service`), in bytes; a point with a longer
    /// one is refused and counted. Default 256; 16 to 1024.
    #[serde(default = "default_max_label_bytes")]
    pub max_label_bytes: usize,
    /// Most requests read and decoded at once; one more is answered 503 with `Retry-After`
    /// (an OTLP exporter retries it). Default 4; 1 to 64.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            allow_remote: false,
            max_body_bytes: default_max_body_bytes(),
            max_decoded_bytes: default_max_decoded_bytes(),
            max_labels: default_max_labels(),
            max_label_bytes: default_max_label_bytes(),
            max_concurrent_requests: default_max_concurrent_requests(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4318))
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_max_decoded_bytes() -> usize {
    4 << 20
}
fn default_max_labels() -> usize {
    16
}
fn default_max_label_bytes() -> usize {
    256
}
fn default_max_concurrent_requests() -> usize {
    4
}

/// Reads `[otlp]` when present, reporting its problems.
pub(crate) fn read(doc: &mut Document<'_>) -> Option<OtlpConfig> {
    let c: OtlpConfig = doc.section("otlp")?;
    let at = KeyPath::key("otlp");
    if !c.listen.ip().is_loopback() && !c.allow_remote {
        doc.error_at(
            &at.child("listen"),
            format!(
                "{} is not a loopback address: the receiver asks no credentials, so anyone who \
                 reaches it could write this agent's data; listen on 127.0.0.1 or ::1, or set \
                 allow_remote = true to accept that",
                c.listen
            ),
        );
    }
    if !(1024..=64 << 20).contains(&c.max_body_bytes) {
        doc.error_at(
            &at.child("max_body_bytes"),
            "must be at least 1024 and at most 67108864 (64 MiB)",
        );
    }
    if c.max_decoded_bytes < c.max_body_bytes || c.max_decoded_bytes > 256 << 20 {
        doc.error_at(
            &at.child("max_decoded_bytes"),
            "must be at least max_body_bytes and at most 268435456 (256 MiB)",
        );
    }
    if c.max_labels > 64 {
        doc.error_at(&at.child("max_labels"), "must be at most 64");
    }
    if !(16..=1024).contains(&c.max_label_bytes) {
        doc.error_at(
            &at.child("max_label_bytes"),
            "must be at least 16 and at most 1024",
        );
    }
    if !(1..=64).contains(&c.max_concurrent_requests) {
        doc.error_at(
            &at.child("max_concurrent_requests"),
            "must be at least 1 and at most 64",
        );
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use crate::agent::parse_after_identity as parse;

    #[test]
    fn off_without_the_section_and_on_loopback_4318_with_it() {
        assert_eq!(parse("").unwrap().otlp, None);
        let c = parse("[otlp]\n").unwrap().otlp.unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:4318");
        assert!(!c.allow_remote);
        let c = parse("[otlp]\nlisten = \"[::1]:14318\"\n")
            .unwrap()
            .otlp
            .unwrap();
        assert_eq!(c.listen.to_string(), "[::1]:14318");
    }

    #[test]
    fn a_listen_off_loopback_needs_allow_remote() {
        for addr in ["0.0.0.0:4318", "192.0.2.7:4318", "[::]:4318"] {
            let errs = parse(&format!("[otlp]\nlisten = \"{addr}\"\n")).unwrap_err();
            assert!(
                errs.contains("a.toml:5:10: otlp.listen:") && errs.contains("allow_remote = true"),
                "{addr}: {errs}"
            );
            let c = parse(&format!(
                "[otlp]\nlisten = \"{addr}\"\nallow_remote = true\n"
            ))
            .unwrap()
            .otlp
            .unwrap();
            assert_eq!(c.listen.to_string(), addr);
        }
    }

    #[test]
    fn bounds_are_checked_and_named() {
        for (extra, key) in [
            ("max_body_bytes = 10", "otlp.max_body_bytes"),
            ("max_decoded_bytes = 2048", "otlp.max_decoded_bytes"),
            ("max_body_bytes = 100000000", "otlp.max_body_bytes"),
            ("max_labels = 65", "otlp.max_labels"),
            ("max_label_bytes = 2", "otlp.max_label_bytes"),
            (
                "max_concurrent_requests = 0",
                "otlp.max_concurrent_requests",
            ),
            ("listen = \"localhost\"", "otlp.listen"),
            ("tls = true", "unknown field"),
        ] {
            let errs = parse(&format!("[otlp]\n{extra}\n")).unwrap_err();
            assert!(errs.contains(key), "{extra}: {errs}");
        }
    }
}
