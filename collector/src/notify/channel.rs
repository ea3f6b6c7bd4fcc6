//! A configured channel, built from its `[[channels]]` entry, and what the three senders share:
//! how an HTTP answer or a transport error becomes a [`SendError`], how secrets are kept out of
//! error text, and the human forms of times and durations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_config::{ChannelConfig, ChannelType};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::email::EmailChannel;
use super::message::{Message, NoteKind, SendError};
use super::slack::SlackChannel;
use super::webhook::WebhookChannel;

/// A channel ready to send: one per `[[channels]]` entry.
#[derive(Debug)]
pub enum Channel {
    /// Email over SMTP.
    Email(EmailChannel),
    /// A Slack incoming webhook.
    Slack(SlackChannel),
    /// A JSON POST to any URL.
    Webhook(WebhookChannel),
}

impl Channel {
    /// Builds the channel `cfg` describes; the HTTP channels share `http` (its connection pool).
    /// The error names the setting at fault and never repeats a URL or a secret.
    pub fn build(cfg: &ChannelConfig, http: reqwest::Client) -> Result<Channel, String> {
        Ok(match cfg.kind {
            ChannelType::Email => Channel::Email(EmailChannel::new(cfg)?),
            ChannelType::Slack => Channel::Slack(SlackChannel::new(cfg, http)?),
            ChannelType::Webhook => Channel::Webhook(WebhookChannel::new(cfg, http)?),
        })
    }

    /// Sends one message; a message without notes sends nothing.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        if msg.alerts.is_empty() {
            return Ok(());
        }
        match self {
            Channel::Email(c) => c.send(msg).await,
            Channel::Slack(c) => c.send(msg).await,
            Channel::Webhook(c) => c.send(msg).await,
        }
    }

    /// The channel's configured name.
    pub fn name(&self) -> &str {
        match self {
            Channel::Email(c) => c.name(),
            Channel::Slack(c) => c.name(),
            Channel::Webhook(c) => c.name(),
        }
    }
}

/// The colour of a note's state, as `#rrggbb` (Slack attachments, the email's HTML part).
pub(crate) fn color(kind: NoteKind) -> &'static str {
    match kind {
        NoteKind::Firing => "#d73a49",
        NoteKind::Reminder => "#e36209",
        NoteKind::Resolved => "#28a745",
    }
}

/// `4m 12s`, `2h 5m`, `3d 1h`, `12s`, `300ms`: the two largest units, for people.
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && d.subsec_millis() > 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = secs;
    for (size, unit) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || (!parts.is_empty() && parts.len() < 2) {
            parts.push(format!("{n}{unit}"));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // A trailing zero unit ("4m 0s") says nothing.
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

/// `2026-11-26 10:00:00 UTC`.
pub(crate) fn human_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `check=api, location=eu` (label order: by key).
pub(crate) fn label_list(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The link, when it is an http(s) URL: anything else is not put in a message as a link.
pub(crate) fn web_link(link: Option<&str>) -> Option<&str> {
    link.filter(|l| l.starts_with("https://") || l.starts_with("http://"))
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

/// `text` with every one of `secrets` replaced by `<redacted>`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

/// The longest `Retry-After` honoured; a peer asking for more is retried after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
            redact(&lookout_agent::client::error_chain(&e), secrets)
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
    fn durations_read_as_people_say_them() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(s(0)), "0s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(human_duration(s(12)), "12s");
        assert_eq!(human_duration(s(252)), "4m 12s");
        assert_eq!(human_duration(s(240)), "4m");
        assert_eq!(human_duration(s(3_600 + 5)), "1h");
        assert_eq!(human_duration(s(7_500)), "2h 5m");
        assert_eq!(human_duration(s(86_400 * 3 + 3_700)), "3d 1h");
        assert_eq!(human_duration(s(86_400 + 59)), "1d");
    }

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
