//! `lookout-agent`: runs checks and gathers host metrics on one server, and ships them to the
//! collector.
//!
//! Parts:
//! - [`probes`]: run one check once (`http`);
//! - [`scheduler`]: each check on its interval, following assignment changes;
//! - [`host`]: host metrics (CPU, memory, filesystems, network, load);
//! - [`integrations`]: `[[integrations]]`, metrics read from services on the server (Redis);
//! - [`otlp`]: `[otlp]`, the OpenTelemetry receiver for the server's apps' metrics and logs;
//! - [`spool`]: every record on disk until the collector has stored it;
//! - [`shipper`]: batches, sends and retries with backoff;
//! - [`client`]: HTTP to the collector, with failover;
//! - [`versions`]: which protocol version to send, from what the collector says it reads;
//! - [`collector_tls`]: how the agent trusts the collector and proves itself over TLS;
//! - [`credential`]: an enrolled agent's credential: its file, and enrolment;
//! - [`probe_once`]: `lookout-agent probe`, every check once, as a table;
//! - [`local`]: the collector's built-in agent, built from its `[local_agent]`;
//! - [`reload`]: `SIGHUP`, the configuration re-read and put in force, or refused whole;
//! - [`fallback`]: `[fallback]`, the agent's own message when no collector acknowledges its
//!   batches.
//!
//! [`run`] ties them together (the running parts are in `running.rs`); the binary only parses
//! the command line and calls [`run_with_reloads`]. The
//! collector's built-in local agent runs through [`local::LocalAgent`], which calls [`run`].

pub mod client;
pub mod collector_tls;
pub mod credential;
pub mod fallback;
pub mod host;
pub mod integrations;
pub mod local;
pub mod logs;
pub mod otlp;
pub mod probe_once;
pub mod probes;
pub mod reload;
mod running;
pub mod scheduler;
pub mod self_metrics;
pub mod shipper;
pub mod spool;
pub mod versions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lookout_config::{AgentConfig, CheckConfig, HostMetricsConfig, ShippingConfig};
use lookout_protocol::Record;
use tokio_util::sync::CancellationToken;

use spool::{Spool, SpoolConfig};

/// What an agent needs to run, from its configuration file or from the collector's
/// `[local_agent]`.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The agent's name.
    pub name: String,
    /// Collector base URLs, in order of preference.
    pub collector_urls: Vec<String>,
    /// Bearer token (`token`); empty when the agent enrolled or is to enrol.
    pub token: lookout_config::Token,
    /// The fleet's enrolment token, used when there is no `token` and no credential file.
    pub enroll_token: Option<lookout_config::Token>,
    /// The lifecycle asked for at enrolment (`lifecycle`); none leaves it to the collector.
    pub lifecycle: Option<lookout_config::collector::Lifecycle>,
    /// Where an enrolled agent keeps its credential (`<data_dir>/credential`); none for the
    /// collector's local agent.
    pub credential_file: Option<std::path::PathBuf>,
    /// How `https://` collectors are verified and the client certificate, if any.
    pub tls: collector_tls::CollectorTls,
    /// The agent's own labels.
    pub labels: BTreeMap<String, String>,
    /// Host metrics.
    pub host_metrics: HostMetricsConfig,
    /// Shipping.
    pub shipping: ShippingConfig,
    /// Checks the agent runs whatever the collector assigns.
    pub local_checks: Vec<CheckConfig>,
    /// The durable spool.
    pub spool: SpoolConfig,
    /// Most probes running at once.
    pub max_concurrent_probes: usize,
    /// Log files to tail (`[[logs]]`).
    pub logs: Vec<lookout_config::logs::LogSourceConfig>,
    /// Where the tailer keeps its file positions.
    pub logs_dir: std::path::PathBuf,
    /// The systemd journal as a source.
    pub journald: lookout_config::logs::JournaldConfig,
    /// Where to serve the agent's own `/metrics`; none: not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[fallback]`, with where its state is kept; none: off.
    pub fallback: Option<fallback::Settings>,
    /// `[[integrations]]`: services whose metrics are read.
    pub integrations: Vec<lookout_config::IntegrationConfig>,
    /// `[otlp]`: the OpenTelemetry receiver; none: off.
    pub otlp: Option<lookout_config::OtlpConfig>,
}

impl From<AgentConfig> for AgentSettings {
    fn from(c: AgentConfig) -> Self {
        let spool = spool_config(c.identity.data_dir.join("spool"), &c.spool, &c.shipping);
        Self {
            name: c.identity.name,
            collector_urls: c.identity.collector.urls(),
            token: c.identity.token,
            enroll_token: c.identity.enroll_token,
            lifecycle: c.identity.lifecycle,
            credential_file: Some(c.identity.data_dir.join(credential::FILE)),
            tls: match (c.identity.ca, c.identity.cert, c.identity.key) {
                (None, None, None) => collector_tls::CollectorTls::System,
                (ca, Some(cert), Some(key)) => collector_tls::CollectorTls::Files {
                    ca,
                    identity: Some((cert, key)),
                },
                // The configuration's validation has cert and key come together.
                (ca, _, _) => collector_tls::CollectorTls::Files { ca, identity: None },
            },
            labels: c.identity.labels,
            host_metrics: c.host_metrics,
            shipping: c.shipping,
            local_checks: c.checks,
            max_concurrent_probes: c.identity.max_concurrent_probes,
            logs: c.logs,
            logs_dir: c.identity.data_dir.join("logs"),
            journald: c.journald,
            metrics_listen: c.telemetry.metrics_listen,
            fallback: c.fallback.map(|config| fallback::Settings {
                config,
                state_file: c.identity.data_dir.join(fallback::state::FILE),
            }),
            integrations: c.integrations,
            otlp: c.otlp,
            spool,
        }
    }
}

/// The spool's runtime settings from its configuration.
pub fn spool_config(
    dir: std::path::PathBuf,
    c: &lookout_config::SpoolSettings,
    shipping: &ShippingConfig,
) -> SpoolConfig {
    SpoolConfig {
        batch_bytes: shipping.max_batch_bytes,
        flush_interval: shipping.flush_interval,
        steady_wait: shipping.steady_wait,
        dir,
        max_bytes: c.max_bytes,
        segment_bytes: c.segment_bytes,
        fsync: match c.fsync {
            lookout_config::Fsync::Always => spool::FsyncPolicy::Always,
            lookout_config::Fsync::Never => spool::FsyncPolicy::Never,
            lookout_config::Fsync::Every(d) => spool::FsyncPolicy::Every(d),
        },
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The spool's folder cannot be used.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// An HTTP client could not be built (no TLS roots, say).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The credential file cannot be read.
    #[error(transparent)]
    Credential(#[from] credential::CredentialError),
    /// No token, no credential file and no enrolment token: nothing to present.
    #[error("no credential: set token, or enroll_token to enrol")]
    NoCredential,
    /// `ca`, `cert` or `key` cannot be used.
    #[error("the collector's TLS settings: {0}")]
    Tls(#[from] collector_tls::TlsFileError),
    /// `[otlp] listen` could not be bound.
    #[error("cannot serve OTLP on {addr}: {source}")]
    OtlpListen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// `[telemetry] metrics_listen` could not be bound.
    #[error("cannot serve /metrics on {addr}: {source}")]
    MetricsListen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` is cancelled, then stops its checks and makes a bounded last
/// attempt to deliver what the spool holds.
pub async fn run(settings: AgentSettings, shutdown: CancellationToken) -> Result<(), AgentError> {
    let Some(mut agent) = running::Agent::start(settings, &shutdown).await? else {
        return Ok(());
    };
    agent.follow(&shutdown, None).await;
    agent.stop().await;
    Ok(())
}

/// Runs the agent of `reloads`' configuration as [`run`] does, and re-reads its file on each
/// of its requests ([`reload`]).
pub async fn run_with_reloads(
    mut reloads: reload::Reloads,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let settings = AgentSettings::from(reloads.config().clone());
    let Some(mut agent) = running::Agent::start(settings, &shutdown).await? else {
        return Ok(());
    };
    agent.follow(&shutdown, Some(&mut reloads)).await;
    agent.stop().await;
    Ok(())
}

/// Local checks plus assigned ones; a local check wins over an assigned one of the same name.
pub fn merge(local: &[CheckConfig], assigned: Vec<CheckConfig>) -> Vec<CheckConfig> {
    let mut out = local.to_vec();
    for c in assigned {
        if local.iter().any(|l| l.name == c.name) {
            tracing::warn!(check = %c.name, "an assigned check has the name of a local check; the local one runs");
        } else {
            out.push(c);
        }
    }
    out
}

/// When the first host metrics sample is taken after the start (at most `interval`).
const FIRST_HOST_SAMPLE: Duration = Duration::from_secs(1);

pub(crate) async fn host_metrics(
    cfg: HostMetricsConfig,
    spool: Arc<Spool>,
    metrics: Arc<self_metrics::AgentMetrics>,
    stop: CancellationToken,
) {
    let interval = cfg.interval;
    let mut collector = match host::HostCollector::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "host metrics unavailable on this system");
            return;
        }
    };
    // CPU usage needs two readings, the collector's creation the first: the first sample comes
    // a second after it (its CPU figures over that second), then one every interval. A server
    // just installed shows as up within a couple of seconds of its agent's start, not an
    // interval later (docs/deployment.md, "One command per server").
    let first = tokio::time::Instant::now() + FIRST_HOST_SAMPLE.min(interval);
    let mut ticks = tokio::time::interval_at(first, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let samples = collector.sample();
        metrics.host_samples(samples.len());
        spool
            .push_async(
                samples.into_iter().map(Record::Metric).collect(),
                spool::Haste::Flush,
            )
            .await;
    }
}

/// How often the spool reports its backlog and drops as metrics.
const SPOOL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Syncs the spool per its policy, and reports `lookout.agent.spool.backlog` (gauge) and
/// `lookout.agent.spool.dropped` (counter since start) every 10 s, so the collector sees drops.
pub(crate) async fn spool_upkeep(
    spool: Arc<Spool>,
    fsync: spool::FsyncPolicy,
    agent: String,
    stop: CancellationToken,
) {
    let sync_every = match fsync {
        spool::FsyncPolicy::Every(d) => Some(d),
        _ => None,
    };
    // Wakes only for work: a sync some time after a write, and the report. An idle agent
    // sleeps, where a fixed 100 ms tick cost it a wakeup ten times a second.
    let mut last_report = tokio::time::Instant::now();
    loop {
        let report_at = last_report + SPOOL_REPORT_EVERY;
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(report_at) => {}
            () = spool.dirtied(), if sync_every.is_some() => {
                if let Some(every) = sync_every {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(every) => {}
                    }
                }
                let s = spool.clone();
                // Syncing waits on the disk: off the runtime's threads.
                if let Err(e) = tokio::task::spawn_blocking(move || s.flush()).await {
                    tracing::warn!(error = %e, "spool sync task failed");
                }
            }
        }
        if last_report.elapsed() >= SPOOL_REPORT_EVERY {
            last_report = tokio::time::Instant::now();
            let time = chrono::Utc::now();
            let labels: std::collections::BTreeMap<String, String> =
                [("agent".to_string(), agent.clone())].into_iter().collect();
            let records = [
                (
                    "lookout.agent.spool.backlog",
                    spool.backlog() as f64,
                    lookout_protocol::MetricType::Gauge,
                ),
                (
                    "lookout.agent.spool.dropped",
                    spool.dropped() as f64,
                    lookout_protocol::MetricType::Counter,
                ),
            ]
            .map(|(name, value, metric_type)| {
                Record::Metric(lookout_protocol::MetricSample {
                    name: name.into(),
                    labels: labels.clone(),
                    time,
                    value,
                    metric_type,
                })
            });
            spool.push_async(records.into(), spool::Haste::Flush).await;
        }
    }
    if let Err(e) = tokio::task::spawn_blocking(move || spool.flush()).await {
        tracing::warn!(error = %e, "spool sync task failed");
    }
}
