//! The agent's configuration (`lookout-agent --config agent.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::CheckConfig;
use crate::document::{Document, EnvLookup, KeyPath};
use crate::error::ConfigErrors;

/// Everything an agent needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The agent's identity: its name, where it ships to, its token and labels.
    pub identity: AgentIdentity,
    /// Host metrics collection.
    pub host_metrics: HostMetricsConfig,
    /// Batching and retry of what the agent ships.
    pub shipping: ShippingConfig,
    /// Checks defined on this agent (run in addition to those the collector assigns).
    pub checks: Vec<CheckConfig>,
}

/// The top-level keys of an agent's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// The agent's name, as the collector knows it (`[[agents]] name`). Required.
    pub name: String,
    /// The collector's base URL, or a list of them tried in order (failover). Required.
    pub collector: CollectorUrls,
    /// The bearer token that the collector's `[[agents]]` entry has for this agent. Required;
    /// write `"${LOOKOUT_AGENT_TOKEN}"` to keep it out of the file.
    pub token: String,
    /// Where the agent keeps its state. Default `"/var/lib/lookout-agent"`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Labels that central checks select on (`run_on = ["role=web"]`). Default none. The
    /// collector's `[[agents]] labels`, where set, take precedence.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/lookout-agent")
}

/// One collector URL or several, tried in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CollectorUrls {
    /// A single collector.
    One(String),
    /// Several collectors, tried in order.
    Many(Vec<String>),
}

impl CollectorUrls {
    /// The URLs in order of preference.
    pub fn urls(&self) -> Vec<String> {
        match self {
            CollectorUrls::One(u) => vec![u.clone()],
            CollectorUrls::Many(v) => v.clone(),
        }
    }
}

/// `[host_metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// Collect host metrics at all. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Time between two samples. Default `"10s"`; at least 1 s.
    #[serde(default = "default_metrics_interval", with = "crate::duration")]
    pub interval: Duration,
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_metrics_interval(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_metrics_interval() -> Duration {
    Duration::from_secs(10)
}

/// `[shipping]`: how records are batched and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingConfig {
    /// Longest a record waits before its batch is sent. Default `"100ms"`, so a failed check
    /// reaches the collector at once.
    #[serde(default = "default_flush", with = "crate::duration")]
    pub flush_interval: Duration,
    /// Most records in one batch. Default 1000.
    #[serde(default = "default_batch_records")]
    pub max_batch_records: usize,
    /// Records held in memory while the collector is unreachable; beyond this the oldest are
    /// dropped and counted. Default 100000.
    #[serde(default = "default_queue_records")]
    pub max_queued_records: usize,
    /// How often assignments are fetched from the collector. Default `"15s"`.
    #[serde(default = "default_assignments_interval", with = "crate::duration")]
    pub assignments_interval: Duration,
    /// Longest wait between two retries of a failed send. Default `"30s"`.
    #[serde(default = "default_max_backoff", with = "crate::duration")]
    pub max_backoff: Duration,
    /// Time one request to the collector may take. Default `"10s"`.
    #[serde(default = "default_request_timeout", with = "crate::duration")]
    pub request_timeout: Duration,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            flush_interval: default_flush(),
            max_batch_records: default_batch_records(),
            max_queued_records: default_queue_records(),
            assignments_interval: default_assignments_interval(),
            max_backoff: default_max_backoff(),
            request_timeout: default_request_timeout(),
        }
    }
}

fn default_flush() -> Duration {
    Duration::from_millis(100)
}
fn default_batch_records() -> usize {
    1000
}
fn default_queue_records() -> usize {
    100_000
}
fn default_assignments_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

const SECTIONS: &[&str] = &["host_metrics", "shipping", "checks"];

impl AgentConfig {
    /// Reads and validates an agent configuration file, with `${VAR}` taken from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = crate::read(path)?;
        Self::parse(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parses and validates an agent configuration from text; `path` is used in errors.
    pub fn parse(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Self, ConfigErrors> {
        let mut doc = Document::parse(path, text, env)?;
        let identity = doc.rest::<AgentIdentity>(SECTIONS);
        let host_metrics = doc.section("host_metrics").unwrap_or_default();
        let shipping = doc.section("shipping").unwrap_or_default();
        let checks = crate::validate_checks(&mut doc, "checks");
        if let Some(id) = &identity {
            validate_identity(&mut doc, id);
        }
        validate_host_metrics(&mut doc, &host_metrics, &KeyPath::key("host_metrics"));
        validate_shipping(&mut doc, &shipping);
        let Some(identity) = identity else {
            return Err(doc.into_errors());
        };
        doc.finish(AgentConfig {
            identity,
            host_metrics,
            shipping,
            checks,
        })
    }
}

fn validate_identity(doc: &mut Document<'_>, id: &AgentIdentity) {
    if id.name.trim().is_empty() {
        doc.error_at(&KeyPath::key("name"), "must not be empty");
    }
    if id.token.trim().is_empty() {
        doc.error_at(&KeyPath::key("token"), "must not be empty");
    }
    let urls = id.collector.urls();
    if urls.is_empty() {
        doc.error_at(&KeyPath::key("collector"), "expected at least one URL");
    }
    for (i, u) in urls.iter().enumerate() {
        let path = match id.collector {
            CollectorUrls::One(_) => KeyPath::key("collector"),
            CollectorUrls::Many(_) => KeyPath::key("collector").index(i),
        };
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => {}
            Ok(p) => doc.error_at(
                &path,
                format!("scheme {:?}: expected http or https", p.scheme()),
            ),
            Err(e) => doc.error_at(&path, format!("{u:?} is not a valid URL: {e}")),
        }
    }
}

pub(crate) fn validate_host_metrics(doc: &mut Document<'_>, h: &HostMetricsConfig, at: &KeyPath) {
    if h.interval < Duration::from_secs(1) {
        doc.error_at(&at.child("interval"), "must be at least 1s");
    }
}

fn validate_shipping(doc: &mut Document<'_>, s: &ShippingConfig) {
    let at = KeyPath::key("shipping");
    if s.max_batch_records == 0 {
        doc.error_at(&at.child("max_batch_records"), "must be at least 1");
    }
    if s.max_queued_records < s.max_batch_records {
        doc.error_at(
            &at.child("max_queued_records"),
            "must be at least max_batch_records",
        );
    }
    if s.assignments_interval < Duration::from_secs(1) {
        doc.error_at(&at.child("assignments_interval"), "must be at least 1s");
    }
    if s.request_timeout.is_zero() {
        doc.error_at(&at.child("request_timeout"), "must be more than 0s");
    }
}
