//! `[[integrations]]`: metrics the agent reads from services on its server, each on its own
//! interval, shipped through the spool like host metrics. This module is the scheduler; each
//! type is one file or folder ([`containers`], [`nginx`], [`postgresql`], [`prometheus`],
//! [`redis`]).
//!
//! Every read is bounded by the integration's `timeout`. Each read also gives
//! `lookout.integration.up` (gauge, 1 read / 0 not), labelled `integration` (its name) and
//! `type`, so a dead peer is a series a rule can watch, not a silence. A failure is logged once
//! when the integration goes from reading to failing (or fails first), and once when it reads
//! again: a peer down for an hour is two lines, not 240. Every sample of an integration carries
//! `integration = <name>` and its `labels`.

pub mod containers;
pub mod nginx;
pub mod postgresql;
pub mod prometheus;
pub mod redis;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lookout_config::{IntegrationConfig, IntegrationType};
use lookout_protocol::{MetricSample, MetricType, Record};
use tokio_util::sync::CancellationToken;

use crate::logs::tap::{Tapped, Taps};
use crate::spool::{Haste, Spool};

/// The gauge each read gives: 1 when it read, 0 when it did not.
pub const UP_METRIC: &str = "lookout.integration.up";

/// When the first read is made after a start, at most (never later than the interval).
const FIRST_READ: Duration = Duration::from_secs(1);

/// Why a read gave nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The integration cannot be set up from its configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The peer could not be reached.
    #[error("connecting: {0}")]
    Connect(String),
    /// The peer refused or broke off the command.
    #[error("{0}")]
    Command(String),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Starts one task per integration; they stop with `stop`. The access logs' taps replace those
/// in `taps`. `logs_dir`: where log positions are kept (a `containers` integration's with
/// `logs = true` go in `containers-<name>` there).
pub fn spawn(
    configs: &[IntegrationConfig],
    spool: Arc<Spool>,
    taps: &Taps,
    logs_dir: &Path,
    stop: &CancellationToken,
) {
    let mut tapped: Vec<Tapped> = Vec::new();
    for c in configs {
        let mut source = Source::new(c);
        if let (Ok(Source::Nginx(s)), Some(a)) = (&mut source, &c.access_log) {
            let tap = Arc::new(nginx::access::AccessTap::new(a.format));
            s.access = Some(tap.clone());
            tapped.push((a.path.clone().into(), tap));
        }
        if let (Ok(Source::Containers(s)), true) = (&mut source, c.logs) {
            let dir = logs_dir.join(format!("containers-{}", c.name));
            let api = s.api().clone();
            s.logs = Some(containers::logs::Logs::new(
                api,
                &dir,
                spool.clone(),
                stop.child_token(),
            ));
        }
        tokio::spawn(run(c.clone(), source, spool.clone(), stop.clone()));
    }
    taps.set(tapped);
}

/// A type's reader.
enum Source {
    Nginx(nginx::Source),
    // Boxed: a Redis client is several times an nginx one.
    Redis(Box<redis::Source>),
    Prometheus(prometheus::Source),
    // Boxed: its connect options are larger still.
    Postgresql(Box<postgresql::Source>),
    Containers(Box<containers::Source>),
}

impl Source {
    fn new(c: &IntegrationConfig) -> Result<Self, ReadError> {
        match c.kind {
            IntegrationType::Nginx => Ok(Source::Nginx(nginx::Source::new(&c.url, c.timeout)?)),
            IntegrationType::Redis => Ok(Source::Redis(Box::new(redis::Source::new(
                &c.url, c.timeout,
            )?))),
            IntegrationType::Prometheus => Ok(Source::Prometheus(prometheus::Source::new(c)?)),
            IntegrationType::Postgresql => Ok(Source::Postgresql(Box::new(
                postgresql::Source::new(&c.url, c.timeout)?,
            ))),
            IntegrationType::Containers => Ok(Source::Containers(Box::new(
                containers::Source::new(&c.url)?,
            ))),
        }
    }

    /// One read's samples, labelled `labels`.
    async fn read(
        &mut self,
        time: chrono::DateTime<chrono::Utc>,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<MetricSample>, ReadError> {
        match self {
            Source::Nginx(s) => {
                let mut out = nginx::stub_samples(&s.stub_status().await?, time, labels);
                if let Some(tap) = &s.access {
                    out.extend(nginx::access_samples(&tap.take(), time, labels));
                }
                Ok(out)
            }
            Source::Postgresql(s) => {
                let reading = s.read().await?;
                if reading.skipped > 0 {
                    tracing::debug!(
                        rows = reading.skipped,
                        "PostgreSQL rows past the bound left"
                    );
                }
                Ok(postgresql::samples(&reading, time, labels))
            }
            Source::Redis(s) => {
                let text = s.info().await?;
                let info = redis::parse(&text);
                if info.skipped > 0 {
                    tracing::debug!(lines = info.skipped, "INFO lines skipped");
                }
                Ok(redis::samples(&info, time, labels))
            }
            Source::Prometheus(s) => {
                let scrape = s.scrape().await?;
                Ok(prometheus::samples(&scrape, time, labels))
            }
            Source::Containers(s) => {
                let reading = s.read().await?;
                if reading.skipped > 0 {
                    tracing::debug!(
                        containers = reading.skipped,
                        "containers past the bound left"
                    );
                }
                Ok(s.samples(&reading, time, labels))
            }
        }
    }
}

/// One integration until `stop`.
async fn run(
    c: IntegrationConfig,
    mut source: Result<Source, ReadError>,
    spool: Arc<Spool>,
    stop: CancellationToken,
) {
    let mut labels = c.labels.clone();
    labels.insert("integration".into(), c.name.clone());
    let mut up_labels = labels.clone();
    up_labels.insert("type".into(), c.kind.as_str().into());
    let first = tokio::time::Instant::now() + FIRST_READ.min(c.interval);
    let mut ticks = tokio::time::interval_at(first, c.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up: Option<bool> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let time = chrono::Utc::now();
        let result = match &mut source {
            Ok(s) => match tokio::time::timeout(c.timeout, s.read(time, &labels)).await {
                Ok(r) => r,
                Err(_) => Err(ReadError::Timeout(c.timeout)),
            },
            Err(e) => Err(e.clone()),
        };
        let up = result.is_ok();
        let mut records: Vec<Record> = match result {
            Ok(samples) => {
                if was_up == Some(false) {
                    tracing::info!(integration = %c.name, r#type = %c.kind, "integration reads again");
                }
                samples.into_iter().map(Record::Metric).collect()
            }
            Err(e) => {
                if was_up != Some(false) {
                    tracing::warn!(
                        integration = %c.name,
                        r#type = %c.kind,
                        url = %c.redacted_url(),
                        error = %e,
                        "integration cannot read its peer; said again when it can"
                    );
                }
                Vec::new()
            }
        };
        was_up = Some(up);
        records.push(Record::Metric(MetricSample {
            name: UP_METRIC.into(),
            labels: up_labels.clone(),
            time,
            value: if up { 1.0 } else { 0.0 },
            metric_type: MetricType::Gauge,
        }));
        spool.push_async(records, Haste::Flush).await;
    }
}
