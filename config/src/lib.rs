//! Typed configuration of Lookout's two daemons.
//!
//! - [`CollectorConfig`]: `[server]`, `[storage]`, `[[agents]]`, `[local_agent]`, `[[checks]]`,
//!   `[alerting]`, `[[channels]]`, `[[routes]]`, `[[maintenance]]` ([`notify`]), `[[heartbeats]]`
//!   ([`heartbeat`]), `[[rules]]` ([`rule`]),
//!   `[[log_rules]]` ([`log_rule`]), `[telemetry]` ([`telemetry`]), `[watchdog]` ([`watch`]).
//! - [`AgentConfig`]: the agent's name, collector URLs, token and labels, `[host_metrics]`,
//!   `[shipping]`, `[spool]`, local `[[checks]]`, `[[logs]]`, `[journald]`, `[telemetry]` and
//!   `[fallback]` ([`watch`]).
//! - [`CheckConfig`]: one check, the same schema in both files and on the wire.
//!
//! Files are TOML. String values may use `${VAR}` and `${VAR:-default}` to take secrets from the
//! environment. Loading reports every problem at once, each with file, line, column and key
//! ([`ConfigErrors`]). Durations are written `"30s"`, `"5m"`, `"500ms"` ([`duration`]); secrets
//! are [`Token`]s, which do not show themselves in `Debug`.
//! Commented examples live in `config/examples/`.

pub mod agent;
pub mod check;
pub mod check_kinds;
pub mod collector;
pub mod condition;
pub mod document;
pub mod duration;
pub mod error;
pub mod escalation;
pub mod heartbeat;
pub mod integration;
pub mod labels;
pub mod log_rule;
pub mod logs;
pub mod notify;
pub mod otlp;
pub mod redact;
pub mod rule;
pub mod selector;
pub mod telemetry;
pub mod token;
pub mod watch;

use std::collections::HashMap;
use std::path::Path;

pub use agent::{
    AgentConfig, AgentIdentity, CollectorUrls, Fsync, HostMetricsConfig, ShippingConfig,
    SpoolSettings,
};
pub use check::{CheckConfig, CheckType, IpVersion, RecordType};
pub use collector::{
    AgentEntry, CollectorConfig, InstallConfig, LocalAgentConfig, ServerConfig, ServerTlsConfig,
    StorageConfig,
};
pub use condition::{Condition, Observation};
pub use error::{ConfigError, ConfigErrors};
pub use heartbeat::HeartbeatConfig;
pub use integration::{AccessLog, AccessLogFormat, IntegrationConfig, IntegrationType};
pub use log_rule::LogRuleConfig;
pub use notify::{AlertingSettings, ChannelConfig, ChannelType, MaintenanceConfig, RouteConfig};
pub use otlp::OtlpConfig;
pub use rule::{Aggregate, RuleConfig};
pub use selector::Selector;
pub use telemetry::TelemetryConfig;
pub use token::{MIN_TOKEN_LEN, Token, TokenDigest};
pub use watch::{FallbackConfig, FallbackType, WatchdogConfig};

use document::{Document, KeyPath};

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::whole_file(path, format!("cannot read the file: {e}")))
}

/// Reads the `[[key]]` entries, reporting each one's problems (as (field, problem)) and names
/// used twice. Returns the readable entries with their index in the file.
fn read_named<T: serde::de::DeserializeOwned>(
    doc: &mut Document<'_>,
    key: &str,
    what: &str,
    name: fn(&T) -> &String,
    problems: fn(&T) -> Vec<(&'static str, String)>,
) -> Vec<(usize, T)> {
    let items = doc.array_section::<T>(key);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, item) in &items {
        let at = KeyPath::key(key).index(*i);
        for (field, problem) in problems(item) {
            doc.error_at(&at.child(field), problem);
        }
        if let Some(first) = seen.insert(name(item), *i) {
            doc.error_at(
                &at.child("name"),
                format!(
                    "duplicate {what} name {:?} (first at {key}[{first}])",
                    name(item)
                ),
            );
        }
    }
    items
}

/// Reads `[[key]]` checks, reporting invalid values and duplicate names.
fn validate_checks(doc: &mut Document<'_>, key: &str) -> Vec<CheckConfig> {
    read_named(
        doc,
        key,
        "check",
        |c: &CheckConfig| &c.name,
        CheckConfig::problems,
    )
    .into_iter()
    .map(|(_, c)| c)
    .collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod container_tests;

#[cfg(test)]
mod channel_tests;
