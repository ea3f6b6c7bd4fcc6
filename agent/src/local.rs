//! The collector's built-in agent: an agent inside the collector process that gathers the
//! collector machine's host metrics and ships them through the same ingest path a remote agent
//! uses, so they are stored, evaluated and shown like any other agent's. This is the one door
//! from the collector into the agent crate: it hands over its `[local_agent]` section, where it
//! listens and the token it made for this agent, and runs what [`LocalAgent::new`] builds.
//!
//! Everything else is an agent's default: default shipping, no checks of its own (the
//! collector assigns them as to any agent), no log sources, no `/metrics` of its own. Its spool
//! and log positions live under the collector's data folder.

use std::path::Path;

use lookout_config::{LocalAgentConfig, ShippingConfig};
use tokio_util::sync::CancellationToken;

pub use crate::AgentError;
use crate::AgentSettings;
pub use crate::collector_tls::CollectorTls;

/// The folder, under the collector's `data_dir`, of the local agent's spool.
pub const SPOOL_DIR: &str = "local-agent-spool";
/// The folder, under the collector's `data_dir`, where the local agent keeps log positions.
pub const LOGS_DIR: &str = "local-agent-logs";

/// A local agent ready to run.
#[derive(Debug, Clone)]
pub struct LocalAgent {
    settings: AgentSettings,
}

impl LocalAgent {
    /// `[local_agent]` as an agent that ships to `collector_url` with `token` (over TLS as
    /// `tls` says, when the collector serves HTTPS), keeping its spool and log positions
    /// under `data_dir` ([`SPOOL_DIR`], [`LOGS_DIR`]).
    pub fn new(
        config: &LocalAgentConfig,
        collector_url: String,
        token: String,
        tls: CollectorTls,
        data_dir: &Path,
    ) -> Self {
        let shipping = ShippingConfig::default();
        let spool = crate::spool_config(data_dir.join(SPOOL_DIR), &config.spool, &shipping);
        Self {
            settings: AgentSettings {
                name: config.name.clone(),
                collector_urls: vec![collector_url],
                token: lookout_config::Token::new(token),
                enroll_token: None,
                lifecycle: None,
                credential_file: None,
                tls,
                labels: config.labels.clone(),
                host_metrics: config.host_metrics.clone(),
                shipping,
                local_checks: Vec::new(),
                max_concurrent_probes: lookout_config::agent::default_max_concurrent_probes(),
                logs: Vec::new(),
                logs_dir: data_dir.join(LOGS_DIR),
                journald: Default::default(),
                metrics_listen: None,
                fallback: None,
                integrations: Vec::new(),
                otlp: None,
                spool,
            },
        }
    }

    /// What it runs with.
    pub fn settings(&self) -> &AgentSettings {
        &self.settings
    }

    /// Runs it until `shutdown`, as [`crate::run`] runs any agent: a last bounded delivery
    /// follows the stop, so the collector's server must still answer until this returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        crate::run(self.settings, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ships_to_the_collector_with_its_spool_under_data_dir() {
        let config = LocalAgentConfig {
            enabled: true,
            name: "local".into(),
            labels: [("role".to_string(), "collector".to_string())].into(),
            host_metrics: Default::default(),
            spool: Default::default(),
        };
        let agent = LocalAgent::new(
            &config,
            "http://127.0.0.1:8080".into(),
            "t".repeat(64),
            CollectorTls::System,
            Path::new("/var/lib/lookout"),
        );
        let s = agent.settings();
        assert_eq!(s.name, "local");
        assert_eq!(s.collector_urls, ["http://127.0.0.1:8080"]);
        assert_eq!(s.token.expose(), "t".repeat(64));
        assert_eq!(s.labels, config.labels);
        assert_eq!(s.spool.dir, Path::new("/var/lib/lookout/local-agent-spool"));
        assert_eq!(s.logs_dir, Path::new("/var/lib/lookout/local-agent-logs"));
        assert!(s.local_checks.is_empty() && s.logs.is_empty() && s.metrics_listen.is_none());
        assert_eq!(s.shipping, ShippingConfig::default());
    }
}
