//! Watching the watcher: the collector's `[watchdog]` and the agent's `[fallback]`.
//!
//! A self-hosted monitor cannot report its own death. These two sections put something outside
//! its failure domain in the loop:
//!
//! - `[watchdog]` (collector): an external heartbeat service (Healthchecks' protocol) is pinged
//!   every `interval` while the collector is healthy, and told `/fail` with a reason when it is
//!   not; when the pings stop, that service pages.
//! - `[fallback]` (agent): when no collector has acknowledged a batch for `after`, the agent
//!   itself sends one message over plain HTTP (a webhook, Slack, ntfy or Pushover), and one more
//!   when delivery resumes.
//!
//! Both URLs carry secrets in their path (a Healthchecks UUID, a Slack webhook), so their
//! `Debug` shows only the origin ([`crate::redact::origin`]), and the tokens not at all.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};

/// `[watchdog]` (collector): an external heartbeat pinged while the collector is healthy.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// The ping URL (`https://hc-ping.com/<uuid>`, or a self-hosted Healthchecks'): `GET` it
    /// while healthy, `POST` to `<url>/fail` with the reason while not. Required; http(s). Its
    /// path is a secret: only its origin is ever logged.
    pub url: String,
    /// Time between two pings. Default `"60s"`; 1 s to 1 d. Set the heartbeat service's period
    /// to this, and its grace to at least one more interval.
    #[serde(default = "default_interval", with = "crate::duration")]
    pub interval: Duration,
    /// Longest one health assessment (a store write, a read or two), and then one ping, may
    /// take: a write slower than this counts as a store that is not writable, a ping slower
    /// than this as a failed ping. Default `"10s"`; 100 ms up to `interval`.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// `true`: an unhealthy collector tells the heartbeat service `/fail` with the reason, so it
    /// pages at once. `false`: an unhealthy collector stops pinging instead, and the service
    /// pages when its grace runs out: for several collectors sharing one ping URL, so that one
    /// unhealthy collector cannot mark down a check the others keep alive. Default `true`.
    #[serde(default = "yes")]
    pub report_failures: bool,
    /// The notification queue is not draining when a pending notification has been due for
    /// longer than this. Default `"2m"`; at least 10 s.
    #[serde(default = "default_max_notification_delay", with = "crate::duration")]
    pub max_notification_delay: Duration,
}

impl fmt::Debug for WatchdogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogConfig")
            .field("url", &crate::redact::origin(&self.url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("report_failures", &self.report_failures)
            .field("max_notification_delay", &self.max_notification_delay)
            .finish()
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_notification_delay() -> Duration {
    Duration::from_secs(120)
}
fn yes() -> bool {
    true
}

/// Reads `[watchdog]`, reporting its problems.
pub(crate) fn read_watchdog(doc: &mut Document<'_>) -> Option<WatchdogConfig> {
    let w: WatchdogConfig = doc.section("watchdog")?;
    let at = KeyPath::key("watchdog");
    if let Err(problem) = check_http_url(&w.url) {
        doc.error_at(&at.child("url"), problem);
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&w.interval) {
        doc.error_at(&at.child("interval"), "must be 1s to 1d");
    }
    if w.timeout < Duration::from_millis(100) || w.timeout > w.interval {
        doc.error_at(&at.child("timeout"), "must be 100ms up to interval");
    }
    if w.max_notification_delay < Duration::from_secs(10) {
        doc.error_at(&at.child("max_notification_delay"), "must be at least 10s");
    }
    Some(w)
}

/// Where an agent's fallback message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackType {
    /// A small JSON document POSTed to `url` (docs/alerting.md shows it).
    Webhook,
    /// A Slack incoming webhook at `url`: `{"text": ...}`.
    Slack,
    /// An ntfy topic at `url` (server and topic): the message as the body, with `Title`,
    /// `Priority` and `Tags` headers; `token` as a bearer token when set.
    Ntfy,
    /// Pushover's Messages API: `token` (the application's) and `user` (a user or group key).
    Pushover,
}

impl FallbackType {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackType::Webhook => "webhook",
            FallbackType::Slack => "slack",
            FallbackType::Ntfy => "ntfy",
            FallbackType::Pushover => "pushover",
        }
    }
}

/// Pushover's Messages API, the default `url` of `type = "pushover"`.
pub const PUSHOVER_URL: &str = "https://api.pushover.net/1/messages.json";

/// `[fallback]` (agent): one message when no collector has acknowledged a batch for `after`,
/// one more when delivery resumes. Its `Debug` shows the URL's origin only and no token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// `webhook`, `slack`, `ntfy` or `pushover`. Required.
    #[serde(rename = "type")]
    pub kind: FallbackType,
    /// Where to send: the webhook's URL, Slack's incoming webhook, the ntfy topic's URL
    /// (`https://ntfy.sh/my-topic`). Required but for pushover, whose default is
    /// `https://api.pushover.net/1/messages.json`. http(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long no collector may acknowledge a batch (while the agent has some to send) before
    /// the message goes. Default `"5m"`; 1 s to 1 d.
    #[serde(default = "default_after", with = "crate::duration")]
    pub after: Duration,
    /// A random wait, from none up to this, before each message, so the agents that see one
    /// outage do not all send at the same instant (and an outage that ends meanwhile sends
    /// nothing). Default `"1m"`; at most `after`.
    #[serde(default = "default_jitter", with = "crate::duration")]
    pub jitter: Duration,
    /// pushover: the application's API token (required). ntfy: an access token, sent as
    /// `Authorization: Bearer` (optional). Write `"${VAR}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// pushover: the user or group key (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Longest one send may take. Default `"10s"`; 100 ms to 1 m.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
}

impl fmt::Debug for FallbackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("FallbackConfig")
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(crate::redact::origin))
            .field("after", &self.after)
            .field("jitter", &self.jitter)
            .field("token", &hidden(&self.token))
            .field("user", &hidden(&self.user))
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn default_after() -> Duration {
    Duration::from_secs(300)
}
fn default_jitter() -> Duration {
    Duration::from_secs(60)
}

impl FallbackConfig {
    /// The URL to send to, with pushover's default filled in.
    pub fn resolved_url(&self) -> &str {
        match (&self.url, self.kind) {
            (Some(u), _) => u,
            (None, FallbackType::Pushover) => PUSHOVER_URL,
            // Validation requires `url` for the other types.
            (None, _) => "",
        }
    }
}

/// Reads `[fallback]`, reporting its problems.
pub(crate) fn read_fallback(doc: &mut Document<'_>) -> Option<FallbackConfig> {
    let f: FallbackConfig = doc.section("fallback")?;
    let at = KeyPath::key("fallback");
    match &f.url {
        Some(u) => {
            if let Err(problem) = check_http_url(u) {
                doc.error_at(&at.child("url"), problem);
            }
        }
        None if f.kind != FallbackType::Pushover => {
            doc.error_at(&at, format!("type = {:?} needs url", f.kind.as_str()));
        }
        None => {}
    }
    let set = |v: &Option<String>| v.as_ref().is_some_and(|s| !s.trim().is_empty());
    match f.kind {
        FallbackType::Pushover => {
            for (key, v) in [("token", &f.token), ("user", &f.user)] {
                if !set(v) {
                    doc.error_at(&at, format!("type = \"pushover\" needs {key}"));
                }
            }
        }
        FallbackType::Ntfy => {
            if f.user.is_some() {
                doc.error_at(&at.child("user"), "only for type = \"pushover\"");
            }
        }
        FallbackType::Webhook | FallbackType::Slack => {
            for (key, v) in [("token", &f.token), ("user", &f.user)] {
                if v.is_some() {
                    doc.error_at(
                        &at.child(key),
                        "only for type = \"pushover\" (and token for \"ntfy\")",
                    );
                }
            }
        }
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&f.after) {
        doc.error_at(&at.child("after"), "must be 1s to 1d");
    }
    if f.jitter > f.after {
        doc.error_at(&at.child("jitter"), "must be at most after");
    }
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&f.timeout) {
        doc.error_at(&at.child("timeout"), "must be 100ms to 1m");
    }
    Some(f)
}

/// `Ok` for an http:// or https:// URL with a host; the problem never repeats the URL, whose
/// path may be a secret.
fn check_http_url(u: &str) -> Result<(), String> {
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Ok(()),
        Ok(_) => Err("expected an http:// or https:// URL".to_string()),
        Err(e) => Err(format!("not a valid URL ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{AgentConfig, CollectorConfig};

    const AGENT: &str = "name = \"web-1\"\ncollector = \"http://127.0.0.1:7700\"\ntoken = \"abcdefghijklmnopqrstuvwxyz\"\n";

    fn collector(text: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::parse(Path::new("c.toml"), text, &|_| None).map_err(|e| e.to_string())
    }

    fn agent(extra: &str) -> Result<AgentConfig, String> {
        AgentConfig::parse(Path::new("a.toml"), &format!("{AGENT}{extra}"), &|_| None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn watchdog_defaults_and_its_secret_path() {
        let c =
            collector("[watchdog]\nurl = \"https://hc-ping.com/5bf66975-d4c7-4bf5\"\n").unwrap();
        let w = c.watchdog.clone().unwrap();
        assert_eq!(w.interval, std::time::Duration::from_secs(60));
        assert_eq!(w.timeout, std::time::Duration::from_secs(10));
        assert!(w.report_failures);
        let shown = format!("{c:?}");
        assert!(!shown.contains("5bf66975"), "{shown}");
        assert!(shown.contains("https://hc-ping.com/***"), "{shown}");
        assert!(collector("").unwrap().watchdog.is_none());
    }

    #[test]
    fn watchdog_problems_are_named() {
        for (text, key, problem) in [
            ("[watchdog]\ninterval = \"5s\"\n", "watchdog", "url"),
            (
                "[watchdog]\nurl = \"ftp://x/secret-uuid\"\n",
                "watchdog.url",
                "http",
            ),
            (
                "[watchdog]\nurl = \"https://x/a\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
                "watchdog.timeout",
                "up to interval",
            ),
            (
                "[watchdog]\nurl = \"https://x/a\"\ninterval = \"0s\"\n",
                "watchdog.interval",
                "1s to 1d",
            ),
            (
                "[watchdog]\nurl = \"https://x/a\"\nmax_notification_delay = \"1s\"\n",
                "watchdog.max_notification_delay",
                "at least 10s",
            ),
            (
                "[watchdog]\nurl = \"https://x/a\"\nevery = \"1s\"\n",
                "watchdog",
                "every",
            ),
        ] {
            let e = collector(text).unwrap_err();
            assert!(e.contains(key) && e.contains(problem), "{text}: {e}");
            assert!(!e.contains("secret-uuid"), "{e}");
        }
    }

    #[test]
    fn fallback_defaults_and_types() {
        let a =
            agent("[fallback]\ntype = \"webhook\"\nurl = \"https://hooks.example/T0/B1/secret\"\n")
                .unwrap();
        let f = a.fallback.clone().unwrap();
        assert_eq!(f.after, std::time::Duration::from_secs(300));
        assert_eq!(f.jitter, std::time::Duration::from_secs(60));
        let shown = format!("{a:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let p =
            agent("[fallback]\ntype = \"pushover\"\ntoken = \"apptoken\"\nuser = \"userkey\"\n")
                .unwrap()
                .fallback
                .unwrap();
        assert_eq!(p.resolved_url(), super::PUSHOVER_URL);
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("apptoken") && !shown.contains("userkey"),
            "{shown}"
        );
        agent("[fallback]\ntype = \"ntfy\"\nurl = \"https://ntfy.sh/t\"\ntoken = \"tk_x\"\n")
            .unwrap();
        agent("[fallback]\ntype = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\nafter = \"1s\"\njitter = \"0s\"\n").unwrap();
        assert!(agent("").unwrap().fallback.is_none());
    }

    #[test]
    fn fallback_problems_are_named() {
        for (extra, key, problem) in [
            ("[fallback]\ntype = \"webhook\"\n", "fallback", "needs url"),
            (
                "[fallback]\ntype = \"pushover\"\nuser = \"u\"\n",
                "fallback",
                "needs token",
            ),
            (
                "[fallback]\ntype = \"pushover\"\ntoken = \"t\"\n",
                "fallback",
                "needs user",
            ),
            (
                "[fallback]\ntype = \"slack\"\nurl = \"https://x/y\"\ntoken = \"t\"\n",
                "fallback.token",
                "only for",
            ),
            (
                "[fallback]\ntype = \"webhook\"\nurl = \"https://x/y\"\nafter = \"10s\"\njitter = \"20s\"\n",
                "fallback.jitter",
                "at most after",
            ),
            (
                "[fallback]\ntype = \"webhook\"\nurl = \"https://x/y\"\nafter = \"0s\"\n",
                "fallback.after",
                "1s to 1d",
            ),
            (
                "[fallback]\ntype = \"sms\"\nurl = \"https://x/y\"\n",
                "fallback",
                "sms",
            ),
            (
                "[fallback]\ntype = \"ntfy\"\nurl = \"mailto:secret@x\"\n",
                "fallback.url",
                "http",
            ),
        ] {
            let e = agent(extra).unwrap_err();
            assert!(e.contains(key) && e.contains(problem), "{extra}: {e}");
        }
    }
}
