//! `[telemetry]`: how a daemon reports on itself. The same section in both files; two keys
//! belong to one daemon only.
//!
//! ```toml
//! [telemetry]
//! otlp_endpoint = "http://otel-collector:4318"   # spans over OTLP/HTTP; default off
//! sentry_dsn = "${SENTRY_DSN}"                   # default: the SENTRY_DSN variable, else off
//! environment = "production"
//! metrics_listen = "127.0.0.1:9701"              # agent: its own /metrics; default off
//! forward_endpoint = "http://otel-collector:4318" # collector: what it receives, as OTLP
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};

/// `[telemetry]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://host:4318`); spans go to `/v1/traces`
    /// there. Default none: no spans are exported and the layer is not installed.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Where errors and panics go. Default none, in which case the `SENTRY_DSN` environment
    /// variable is used when set; an empty string turns Sentry off even then.
    #[serde(default)]
    pub sentry_dsn: Option<String>,
    /// The deployment's name, sent to Sentry and as the `deployment.environment` resource
    /// attribute. Default `"production"`.
    #[serde(default)]
    pub environment: Option<String>,
    /// Agent only: serve the agent's own figures at `/metrics` on this address. Default none.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Collector only: base URL of an OTLP/HTTP receiver that gets what the collector
    /// receives, check results and host metrics as metrics (`/v1/metrics`) and log lines as
    /// logs (`/v1/logs`). Default none.
    #[serde(default)]
    pub forward_endpoint: Option<String>,
}

/// Which daemon reads the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// `lookout-agent`.
    Agent,
    /// `lookout-collector`.
    Collector,
}

impl TelemetryConfig {
    /// The environment's name: the configured one, else `"production"`.
    pub fn environment(&self) -> &str {
        self.environment.as_deref().unwrap_or("production")
    }

    /// The DSN to use: the configured one, else `SENTRY_DSN` from `env`; none when empty.
    pub fn sentry_dsn(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.sentry_dsn
            .clone()
            .or_else(|| env("SENTRY_DSN"))
            .filter(|d| !d.trim().is_empty())
    }
}

/// Reports the section's problems for `daemon`.
pub(crate) fn validate(doc: &mut Document<'_>, t: &TelemetryConfig, daemon: Daemon) {
    let at = KeyPath::key("telemetry");
    for (key, value) in [
        ("otlp_endpoint", &t.otlp_endpoint),
        ("forward_endpoint", &t.forward_endpoint),
    ] {
        if let Some(u) = value {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                Ok(p) => doc.error_at(
                    &at.child(key),
                    format!("scheme {:?}: expected http or https", p.scheme()),
                ),
                Err(e) => doc.error_at(&at.child(key), format!("{u:?} is not a valid URL: {e}")),
            }
        }
    }
    if let Some(dsn) = t.sentry_dsn.as_deref().filter(|d| !d.trim().is_empty()) {
        // A DSN is `scheme://public_key@host[:port]/project_id`.
        match url::Url::parse(dsn) {
            Ok(u) if !u.username().is_empty() && !u.path().trim_matches('/').is_empty() => {}
            Ok(_) => doc.error_at(
                &at.child("sentry_dsn"),
                "expected a DSN like https://<key>@<host>/<project>",
            ),
            Err(e) => doc.error_at(&at.child("sentry_dsn"), format!("not a valid DSN: {e}")),
        }
    }
    if matches!(&t.environment, Some(e) if e.trim().is_empty()) {
        doc.error_at(&at.child("environment"), "must not be empty");
    }
    match daemon {
        Daemon::Agent if t.forward_endpoint.is_some() => doc.error_at(
            &at.child("forward_endpoint"),
            "only the collector forwards what it receives; remove it from the agent's file",
        ),
        Daemon::Collector if t.metrics_listen.is_some() => doc.error_at(
            &at.child("metrics_listen"),
            "the collector serves /metrics on [server] listen; remove it",
        ),
        _ => {}
    }
}
