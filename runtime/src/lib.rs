//! `lookout-runtime`: what the agent and the collector share as running daemons, rather than
//! as ends of the protocol (that is `lookout-protocol`). One copy of each, so that both report
//! on themselves, stop, and retry the same way:
//!
//! - [`telemetry`]: their own logs, span export over OTLP and errors sent to Sentry;
//! - [`signal`]: stopping on SIGTERM or Ctrl-C, and the collector's reload on SIGHUP;
//! - [`backoff`]: the one retry policy (the agent's shipper, the collector's notifier);
//! - [`error_chain`]: an error with its causes, as one line for a log or a stored reason;
//! - [`truncate_on_char_boundary`]: a text cut to a length in bytes without splitting a
//!   character (`String::truncate` panics inside one).
//!
//! It depends on nothing the agent did not link before it existed: the agent's binary size is
//! one of its goals (docs/host-metrics.md).

pub mod backoff;
pub mod signal;
pub mod telemetry;

/// An error with its causes, which libraries such as reqwest and lettre keep in `source()`
/// ("error sending request" alone says nothing). A cause whose text the line already holds is
/// left out, so a wrapper that repeats its source does not say it twice.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

/// An HTTP request's failure in words (`timed out`, `cannot connect`, `request failed`), then
/// `e`'s causes, but not `e`'s own text: an HTTP client's error names the request's URL, and a
/// URL may hold a secret (a heartbeat's ping URL, a webhook's path). For the agent's fallback
/// and the collector's watchdog, which send with reqwest (this crate does not link it).
pub fn request_failure(timed_out: bool, connect: bool, e: &dyn std::error::Error) -> String {
    let mut out = if timed_out {
        "timed out"
    } else if connect {
        "cannot connect"
    } else {
        "request failed"
    }
    .to_string();
    if let Some(cause) = e.source() {
        out.push_str(": ");
        out.push_str(&error_chain(cause));
    }
    out
}

/// At most `max` characters (not bytes: a cut never splits a character), `…` marking a cut:
/// what every notification channel does to text a vendor limits, and what a title does to an
/// error.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Cuts `text` to at most `max_bytes` bytes, at the last character boundary at or before
/// it, and returns how many bytes were cut off. Text from a peer may put a multi-byte
/// character anywhere, where `String::truncate` would panic.
pub fn truncate_on_char_boundary(text: &mut String, max_bytes: usize) -> usize {
    if text.len() <= max_bytes {
        return 0;
    }
    let mut at = max_bytes;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let cut = text.len() - at;
    text.truncate(at);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request for url (https://hc-ping.example/SECRET)")]
    struct Sending(#[source] std::io::Error);

    #[test]
    fn a_request_failure_says_what_and_why_without_the_url() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let text = request_failure(false, true, &Sending(refused));
        assert_eq!(text, "cannot connect: refused");
        let timeout = std::io::Error::other("deadline");
        assert_eq!(
            request_failure(true, false, &Sending(timeout)),
            "timed out: deadline"
        );
        assert_eq!(
            request_failure(false, false, &std::fmt::Error),
            "request failed"
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("ééé", 3), "ééé");
        assert_eq!(truncate("éééé", 3), "éé…");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(truncate("abc", 1), "…");
    }

    use super::{error_chain, truncate_on_char_boundary};

    #[test]
    fn text_is_cut_between_characters_never_inside_one() {
        // "é" is two bytes and "€" three: every cut point falls inside one somewhere.
        for prefix in 0..4 {
            let original = format!("{}{}", "a".repeat(prefix), "é€".repeat(200));
            for max in 0..original.len() + 2 {
                let mut t = original.clone();
                let cut = truncate_on_char_boundary(&mut t, max);
                assert!(t.len() <= max, "{max}: {} bytes kept", t.len());
                assert!(max - t.len().min(max) < 3 || t.len() == original.len());
                assert!(original.starts_with(&t));
                assert_eq!(t.len() + cut, original.len());
            }
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one layer")
    }

    #[test]
    fn causes_follow_the_error() {
        let e = layers(&["error sending request", "connection refused"]);
        assert_eq!(error_chain(&e), "error sending request: connection refused");
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = layers(&["tls: bad certificate", "bad certificate", "expired"]);
        assert_eq!(error_chain(&e), "tls: bad certificate: expired");
    }
}
