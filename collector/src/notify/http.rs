//! What the HTTP channels (Slack, webhook) share: their client, how an answer or a failed
//! request becomes a [`SendError`] (delivered, worth retrying after what `Retry-After` asks, or
//! given up), and which parts of a URL are secrets to keep out of error text.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::format::{human_duration, redact};
use super::message::SendError;

/// The HTTP client of the Slack and webhook channels. Redirects are not followed: a POST
/// redirected becomes a GET without its body, and a 200 from there is no delivery.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("lookout-collector/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The secrets to keep out of error text for an HTTP channel: the URL, its path and query (where
/// tokens live), its password, and the HMAC key.
pub(crate) fn url_secrets(url: &reqwest::Url, secret: Option<&str>) -> Vec<String> {
    let mut out = vec![url.as_str().to_string(), url.path().to_string()];
    if let Some(q) = url.query() {
        out.push(format!("{}?{q}", url.path()));
        out.push(q.to_string());
    }
    out.extend(url.password().map(str::to_string));
    out.extend(secret.map(str::to_string));
    // Short strings ("/", "a") would blank out ordinary words.
    out.retain(|s| s.len() >= 4);
    // Longest first, so a secret inside another is replaced with it.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// The longest `Retry-After` honoured; a peer asking for more is retried after this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the peer asked for in `Retry-After`: seconds, or an HTTP date; at most an hour.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    asked_wait(headers).map(|d| d.min(MAX_RETRY_AFTER))
}

fn asked_wait(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some(
        (at - crate::clock::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// How an HTTP answer ends a send: 2xx delivered; 408, 429 and 5xx worth retrying (after what
/// `Retry-After` asks); anything else will fail the same way again. `body` is a redacted
/// snippet of the answer, which says why (Slack's `invalid_blocks`).
pub(crate) fn http_outcome(
    peer: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let mut reason = format!("{peer} answered {status}");
    if !body.is_empty() {
        reason.push_str(": ");
        reason.push_str(body);
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(SendError::Retry {
            reason,
            after: retry_after(headers),
        })
    } else {
        Err(SendError::Permanent(reason))
    }
}

/// The first 300 characters of an answer's body, on one line, without secrets. Reads at most
/// 4 KiB: a peer's error page says why in its first lines, and it is not ours to download.
pub(crate) async fn body_snippet(mut resp: reqwest::Response, secrets: &[String]) -> String {
    const LIMIT: usize = 4096;
    let mut bytes = Vec::new();
    while bytes.len() < LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(LIMIT);
    let text = String::from_utf8_lossy(&bytes);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect();
    redact(&one_line, secrets)
}

/// A failed request (no answer): worth retrying, unless the request could not even be built.
/// The URL is taken out of the error, and the text is redacted besides, as causes may quote it.
pub(crate) fn request_error(
    peer: &str,
    e: reqwest::Error,
    timeout: Duration,
    secrets: &[String],
) -> SendError {
    let e = e.without_url();
    let text = if e.is_timeout() {
        format!("{peer}: no answer within {}", human_duration(timeout))
    } else {
        format!(
            "{peer}: {}",
            redact(&lookout_runtime::error_chain(&e), secrets)
        )
    };
    if e.is_builder() {
        SendError::Permanent(text)
    } else {
        SendError::Retry {
            reason: text,
            after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = crate::clock::now() + chrono::Duration::seconds(120);
        h.insert("retry-after", later.to_rfc2822().parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn secrets_of_a_url_are_redacted() {
        let url: reqwest::Url = "https://u:hunter22@example.com/hook/SECRET123?token=abcd"
            .parse()
            .unwrap();
        let secrets = url_secrets(&url, Some("k3y-k3y"));
        let text = format!("{url} failed; /hook/SECRET123 hunter22 abcd k3y-k3y");
        let out = redact(&text, &secrets);
        for s in [
            "SECRET123",
            "hunter22",
            "token=abcd",
            "k3y-k3y",
            "example.com",
        ] {
            assert!(!out.contains(s), "{out}");
        }
    }
}
