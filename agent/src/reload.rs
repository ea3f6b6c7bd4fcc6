//! `SIGHUP`: the agent re-reads its configuration file and puts it in force without a
//! restart, so a new log file, a local check, a label or a moved collector does not cost a
//! stop (checks paused, log files closed, the collector told the agent left).
//!
//! The rule: a new file is applied whole or not at all. It is read and validated by the same
//! loader as at start ([`AgentConfig::load`]), and its client to the collectors is built by the
//! same function (`running::client_for`), before anything changes; any problem there
//! leaves the running configuration in force, logs why (each problem, with file, line and
//! key) and is counted in the agent's `/metrics` ([`crate::self_metrics`]). What cannot change
//! in a running agent ([`restart_only_changes`]) is refused the same way, naming the key.
//!
//! What a reload changes, once the file is valid:
//! - the client: collector URLs, labels (sent with the next assignments request, which is made
//!   at once), `token`, `[shipping] request_timeout` and `max_answer_bytes`. An enrolled agent's
//!   credential (`<data_dir>/credential`) stays as it is: it is not in the file;
//! - local `[[checks]]`: started, stopped or restarted by the scheduler as it does for
//!   assignments, which stay as the collector last sent them;
//! - `[[logs]]` and `[journald]`, when they changed: the reader is stopped (saving its
//!   positions) and started again, so a file that stays resumes at its position, as after a
//!   restart: no line lost or shipped twice. Files already there of a source the reload adds
//!   start as at a first start (`read_from`);
//! - `[host_metrics]`, and `[shipping] assignments_interval`.

use std::path::{Path, PathBuf};

use lookout_config::{AgentConfig, ConfigErrors};

use crate::running::{Agent, client_for};
use crate::{AgentError, AgentSettings};

/// Where reloads read the configuration, the one in force, and the requests for a reload
/// (one per `SIGHUP`).
#[derive(Debug)]
pub struct Reloads {
    path: PathBuf,
    config: AgentConfig,
    /// A message asks for a reload.
    pub(crate) requests: tokio::sync::mpsc::Receiver<()>,
}

impl Reloads {
    /// Reloads of the file at `path`, whose `config` the agent starts with, on `requests`.
    pub fn new(
        path: PathBuf,
        config: AgentConfig,
        requests: tokio::sync::mpsc::Receiver<()>,
    ) -> Self {
        Self {
            path,
            config,
            requests,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Re-reads the file and applies it to `agent`, or keeps the running configuration and
    /// says why; counted either way.
    pub(crate) async fn reload(&mut self, agent: &mut Agent) {
        match prepare(&self.path, &self.config) {
            Ok((new, settings, client)) => {
                let changed = apply(agent, settings, client).await;
                self.config = new;
                agent.metrics.config_loaded();
                tracing::info!(path = %self.path.display(), ?changed, "configuration reloaded");
            }
            Err(e) => {
                agent.metrics.config_refused();
                e.log(&self.path);
            }
        }
    }
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read or is not a valid configuration.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// These keys changed, and they change only at a restart.
    #[error("changes only at a restart: {}", .0.join(", "))]
    NeedsRestart(Vec<&'static str>),
    /// The client to the collectors cannot be built from it (its TLS files, say).
    #[error(transparent)]
    Client(AgentError),
}

impl ReloadError {
    /// One line per problem, each ending with what happened: nothing changed.
    fn log(&self, path: &Path) {
        const KEPT: &str = "configuration not reloaded; the running one stays";
        match self {
            ReloadError::Invalid(errors) => {
                for problem in &errors.0 {
                    tracing::error!(path = %path.display(), %problem, "{KEPT}");
                }
            }
            ReloadError::NeedsRestart(keys) => {
                for key in keys {
                    tracing::error!(path = %path.display(), key, "{key} changes only at a restart; {KEPT}");
                }
            }
            ReloadError::Client(e) => {
                tracing::error!(path = %path.display(), error = %e, "{KEPT}")
            }
        }
    }
}

/// The keys whose change between `old` and `new` a running agent cannot take: its identity and
/// what it holds open (the spool, `/metrics`'s and `[otlp]`'s listeners, the process's tracing), and a switch
/// between a `token` and enrolment, which happens at start.
pub fn restart_only_changes(old: &AgentConfig, new: &AgentConfig) -> Vec<&'static str> {
    let (o, n) = (&old.identity, &new.identity);
    let (os, ns) = (&old.shipping, &new.shipping);
    [
        ("name", o.name != n.name),
        ("data_dir", o.data_dir != n.data_dir),
        ("token", o.token.is_empty() != n.token.is_empty()),
        (
            "max_concurrent_probes",
            o.max_concurrent_probes != n.max_concurrent_probes,
        ),
        (
            "telemetry.metrics_listen",
            old.telemetry.metrics_listen != new.telemetry.metrics_listen,
        ),
        ("telemetry", {
            let (mut a, mut b) = (old.telemetry.clone(), new.telemetry.clone());
            a.metrics_listen = None;
            b.metrics_listen = None;
            a != b
        }),
        ("spool", old.spool != new.spool),
        ("otlp", old.otlp != new.otlp),
        ("fallback", old.fallback != new.fallback),
        (
            "shipping.flush_interval",
            os.flush_interval != ns.flush_interval,
        ),
        ("shipping.steady_wait", os.steady_wait != ns.steady_wait),
        (
            "shipping.max_batch_bytes",
            os.max_batch_bytes != ns.max_batch_bytes,
        ),
        (
            "shipping.max_batch_records",
            os.max_batch_records != ns.max_batch_records,
        ),
        ("shipping.max_backoff", os.max_backoff != ns.max_backoff),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// Everything that can fail, before anything changes: the file, the keys that need a
/// restart, the client.
fn prepare(
    path: &Path,
    running: &AgentConfig,
) -> Result<(AgentConfig, AgentSettings, crate::client::CollectorClient), ReloadError> {
    let new = AgentConfig::load(path).map_err(ReloadError::Invalid)?;
    let refused = restart_only_changes(running, &new);
    if !refused.is_empty() {
        return Err(ReloadError::NeedsRestart(refused));
    }
    let settings = AgentSettings::from(new.clone());
    let client = client_for(&settings).map_err(ReloadError::Client)?;
    Ok((new, settings, client))
}

/// Puts `settings` in force in `agent`; the parts that changed, for the log.
async fn apply(
    agent: &mut Agent,
    settings: AgentSettings,
    client: crate::client::CollectorClient,
) -> Vec<&'static str> {
    let (old, new) = (&agent.settings, &settings);
    let mut changed: Vec<&'static str> = [
        ("collector", old.collector_urls != new.collector_urls),
        ("labels", old.labels != new.labels),
        ("token", old.token != new.token),
        (
            "shipping.request_timeout",
            old.shipping.request_timeout != new.shipping.request_timeout,
        ),
        (
            "shipping.max_answer_bytes",
            old.shipping.max_answer_bytes != new.shipping.max_answer_bytes,
        ),
        (
            "shipping.assignments_interval",
            old.shipping.assignments_interval != new.shipping.assignments_interval,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect();
    let checks = old.local_checks != new.local_checks;
    let logs = old.logs != new.logs;
    let journald = old.journald != new.journald;
    let host_metrics = old.host_metrics != new.host_metrics;
    let integrations = old.integrations != new.integrations;
    let collectors = old.collector_urls != new.collector_urls;
    let old = std::mem::replace(&mut agent.settings, settings);
    // Always: the files it read (TLS) may have changed under the same settings.
    agent.client.adopt(client);
    if collectors {
        crate::running::warn_plaintext(&agent.settings, &agent.metrics);
    }
    if checks {
        changed.push("checks");
        agent.apply_checks();
    }
    if logs {
        changed.push("logs");
        if let Some(t) = agent.tailer.take() {
            t.stop().await;
        }
        agent.start_tailer(Some(old.logs));
    }
    if journald {
        changed.push("journald");
        if let Some(j) = agent.journal.take() {
            j.stop().await;
        }
        agent.start_journal();
    }
    if host_metrics {
        changed.push("host_metrics");
        if let Some(stop) = agent.host.take() {
            stop.cancel();
        }
        agent.start_host_metrics();
    }
    if integrations {
        changed.push("integrations");
        if let Some(stop) = agent.integrations.take() {
            stop.cancel();
        }
        agent.start_integrations();
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"a1\"\ncollector = \"http://127.0.0.1:7700\"\n\
                        token = \"a1b2c3d4e5f6a7b8c9d0e1f2a3b4\"\n";

    fn parse(text: &str) -> AgentConfig {
        AgentConfig::parse(Path::new("a.toml"), text, &|_| None).unwrap()
    }

    #[test]
    fn identity_and_what_the_agent_holds_open_need_a_restart() {
        let old = parse(BASE);
        let cases = [
            ("name = \"a2\"", "name"),
            ("data_dir = \"/elsewhere\"", "data_dir"),
            ("max_concurrent_probes = 3", "max_concurrent_probes"),
            (
                "[telemetry]\nmetrics_listen = \"127.0.0.1:9701\"",
                "telemetry.metrics_listen",
            ),
            ("[spool]\nfsync = \"always\"", "spool"),
            ("[otlp]", "otlp"),
            ("[shipping]\nmax_backoff = \"1s\"", "shipping.max_backoff"),
            (
                "[shipping]\nflush_interval = \"2s\"",
                "shipping.flush_interval",
            ),
        ];
        for (change, key) in cases {
            let text = if change.starts_with("name") {
                BASE.replace("name = \"a1\"", change)
            } else if change.starts_with('[') {
                format!("{BASE}{change}\n")
            } else {
                format!("{change}\n{BASE}")
            };
            assert_eq!(restart_only_changes(&old, &parse(&text)), [key], "{change}");
        }
        // A token replaced by another reloads; a token replaced by enrolment does not.
        let enrolled = parse(&BASE.replace(
            "token = \"a1b2c3d4e5f6a7b8c9d0e1f2a3b4\"",
            "enroll_token = \"f1e2d3c4b5a6f7e8d9c0b1a2f3e4\"",
        ));
        assert_eq!(restart_only_changes(&old, &enrolled), ["token"]);
        let other_token = parse(&BASE.replace("a1b2c3d4", "99887766"));
        assert!(restart_only_changes(&old, &other_token).is_empty());
    }

    #[test]
    fn checks_logs_labels_collectors_and_host_metrics_reload() {
        let old = parse(BASE);
        let new = parse(&format!(
            "labels = {{ role = \"web\" }}\n{}\n\
             [host_metrics]\ninterval = \"5s\"\n\
             [shipping]\nassignments_interval = \"2s\"\nrequest_timeout = \"3s\"\n\
             [[checks]]\nname = \"c\"\ntype = \"tcp\"\naddress = \"127.0.0.1:1\"\n\
             [[logs]]\npaths = [\"/var/log/app.log\"]\n\
             [journald]\nenabled = true\n\
             [[integrations]]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
            BASE.replace(
                "collector = \"http://127.0.0.1:7700\"",
                "collector = [\"http://127.0.0.1:7701\", \"http://127.0.0.1:7702\"]"
            )
        ));
        assert!(
            restart_only_changes(&old, &new).is_empty(),
            "{:?}",
            restart_only_changes(&old, &new)
        );
    }
}
