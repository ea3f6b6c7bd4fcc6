//! The collector's own figures and what it watches, served at `GET /metrics` in the
//! Prometheus text format. Metric names live here, in one place:
//!
//! Counted as things happen:
//! - `lookout_ingest_batches_total{outcome}`: batches `stored`, or `duplicate` (a resend);
//! - `lookout_ingest_records_total{kind}`: `check_result`, `metric` and `log` records stored;
//! - `lookout_ingest_bytes_total`: ingest request bodies, as sent (compressed);
//! - `lookout_ingest_rejects_total{reason}`: refused requests: `unauthorized`, `overloaded`,
//!   `too_large`, `too_many_records`, `unsupported_encoding`, `unsupported_version` (a batch
//!   version this collector does not read: an agent too many releases away), `bad_request`,
//!   `storage`; and
//!   refused records: `unassigned_check`, `too_old`, `in_future`, `too_many_labels`,
//!   `label_too_long`, `string_too_long`, `series_rate`, `too_many_checks` (crate::admission);
//! - `lookout_ingest_cut_total{field}`: stored records cut to a limit: `log_text`
//!   (`max_log_line_bytes`), `error` (`max_string_bytes`);
//! - `lookout_ingest_duration_seconds`: from a batch read to it stored and evaluated;
//! - `lookout_store_write_duration_seconds`: a batch's write to the store, alone;
//! - `lookout_ingest_groups_total`: transactions that stored ingested batches: fewer than the
//!   batches when several arrive together and share one (writer/group.rs);
//! - `lookout_forward_records_total{signal, outcome}`: records forwarded over OTLP
//!   (`[telemetry] forward_endpoint`): `metrics` or `logs`, `sent`, `failed` or `dropped`;
//! - `lookout_agent_spool_backlog_records{agent}`: records waiting in the agent's spool, as it
//!   said with its last batch;
//! - `lookout_rule_evaluations_total{trigger}`: rule evaluations, by what started them:
//!   `batch`, `poll` (an agent asking for its assignments), `ping` (a push monitor), `tick`;
//! - `lookout_notifications_total{channel, outcome}`: messages `delivered`, `retry` (failed,
//!   will be retried), `failed` (given up), `held` (by storm control, for a digest);
//! - `lookout_notification_alerts_total{channel, outcome}`: the alerts in those messages;
//! - with `[watchdog]` only: `lookout_watchdog_pings_total{result}`: pings of the external
//!   heartbeat: `ok` (healthy, delivered), `fail` (`/fail` with the reason, delivered),
//!   `withheld` (unhealthy with `report_failures = false`: nothing sent), `error` (the
//!   heartbeat service did not take it: refused, timed out, unreachable); and
//!   `lookout_watchdog_healthy`, 1 when the last assessment found the collector healthy;
//! - with `[server.tls]` only: `lookout_tls_certificate_reload_failures_total` (a changed
//!   certificate or key that could not be used; the old pair is still served) and
//!   `lookout_tls_handshake_failures_total` (connections whose TLS handshake failed or timed
//!   out).
//!
//! Read from the store at each scrape:
//! - `lookout_check_up{check, agent}`: 1 when the latest result is a success, else 0;
//! - `lookout_check_latency_seconds{check, agent}`: the latest result's latency;
//! - `lookout_check_certificate_expiry_seconds{check, agent}`: time left on the earliest
//!   certificate of the chain (TLS checks and https);
//! - `lookout_agent_last_seen_timestamp_seconds{agent}`: the agent's last batch;
//! - `lookout_alerts{state}`: alerts `pending`, `firing`, `resolved`;
//! - with `[server.tls]` only: `lookout_tls_certificate_expiry_seconds`: time left until the
//!   served certificate's notAfter (as `lookout_check_certificate_expiry_seconds`), and
//!   `lookout_tls_certificate_not_after_timestamp_seconds`, that notAfter.
//!
//! And per answer, for the browser's developer tools: [`server_timing`], the time the status
//! page and `GET /api/v1/status` took to compute.

use chrono::{DateTime, Utc};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::store::alerting::AlertState;
use crate::store::{Store, StoreError};

/// A `Server-Timing` header with the time since `started`: `app;dur=12.3` (ms).
pub fn server_timing(started: std::time::Instant) -> [(axum::http::header::HeaderName, String); 1] {
    [(
        axum::http::header::HeaderName::from_static("server-timing"),
        format!("app;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0),
    )]
}

/// Why a scrape could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Reading the store failed.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    /// The exposition could not be written.
    #[error("encoding the metrics: {0}")]
    Encode(#[from] prometheus::Error),
}

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted by the peer.
    Delivered,
    /// Failed; it will be tried again.
    Retry,
    /// Failed and given up.
    Failed,
    /// Held back by storm control, for a digest.
    Held,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "retry",
            Outcome::Failed => "failed",
            Outcome::Held => "held",
        }
    }
}

/// The registry and the collector's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    notifications: IntCounterVec,
    notification_alerts: IntCounterVec,
    batches: IntCounterVec,
    records: IntCounterVec,
    bytes: IntCounter,
    rejects: IntCounterVec,
    cuts: IntCounterVec,
    ingest_seconds: Histogram,
    store_seconds: Histogram,
    groups: IntCounter,
    forwarded: IntCounterVec,
    backlog: IntGaugeVec,
    evaluations: IntCounterVec,
    check_up: IntGaugeVec,
    check_latency: GaugeVec,
    check_cert: GaugeVec,
    agent_seen: GaugeVec,
    alerts: IntGaugeVec,
    /// Registered when the collector serves TLS: absent, not zero, without it.
    tls: std::sync::OnceLock<TlsMetrics>,
    /// Registered with `[watchdog]`: absent, not zero, without it.
    watchdog: std::sync::OnceLock<WatchdogMetrics>,
    // tokio's Mutex: one scrape refreshes the store-read gauges at a time, across awaits.
    scrape: tokio::sync::Mutex<()>,
}

/// The `[watchdog]` metrics.
#[derive(Debug)]
struct WatchdogMetrics {
    pings: IntCounterVec,
    healthy: IntGauge,
}

/// The `[server.tls]` metrics.
#[derive(Debug)]
struct TlsMetrics {
    reload_failures: IntCounter,
    handshake_failures: IntCounter,
    expiry: prometheus::Gauge,
    not_after: prometheus::IntGauge,
}

impl TlsMetrics {
    fn new(r: &Registry) -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("lookout");
        Self {
            reload_failures: register(
                r,
                IntCounter::with_opts(opts(
                    "tls_certificate_reload_failures_total",
                    "Changed TLS certificates or keys that could not be used; the old pair is still served.",
                ))
                .expect("valid metric"),
            ),
            handshake_failures: register(
                r,
                IntCounter::with_opts(opts(
                    "tls_handshake_failures_total",
                    "Connections whose TLS handshake failed or timed out.",
                ))
                .expect("valid metric"),
            ),
            expiry: register(
                r,
                prometheus::Gauge::with_opts(opts(
                    "tls_certificate_expiry_seconds",
                    "Time left until the served TLS certificate's notAfter.",
                ))
                .expect("valid metric"),
            ),
            not_after: register(
                r,
                prometheus::IntGauge::with_opts(opts(
                    "tls_certificate_not_after_timestamp_seconds",
                    "The served TLS certificate's notAfter, in seconds since the Unix epoch.",
                ))
                .expect("valid metric"),
            ),
        }
    }
}

/// Builds and registers one metric.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    // Names and labels are fixed here, so registering cannot fail but by a programming error.
    registry
        .register(Box::new(m.clone()))
        .expect("metric names are unique and valid");
    m
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help).namespace("lookout"), labels)
            .expect("valid metric"),
    )
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        registry,
        GaugeVec::new(Opts::new(name, help).namespace("lookout"), labels).expect("valid metric"),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new();
        Self {
            notifications: counter_vec(
                &r,
                "notifications_total",
                "Notification messages by channel and outcome: delivered, retry, failed (given up), held (storm control).",
                &["channel", "outcome"],
            ),
            notification_alerts: counter_vec(
                &r,
                "notification_alerts_total",
                "Alerts in notification messages, by channel and outcome.",
                &["channel", "outcome"],
            ),
            batches: counter_vec(
                &r,
                "ingest_batches_total",
                "Ingested batches: stored, or duplicate (a resend already stored).",
                &["outcome"],
            ),
            records: counter_vec(
                &r,
                "ingest_records_total",
                "Records stored, by kind: check_result, metric, log.",
                &["kind"],
            ),
            bytes: register(
                &r,
                IntCounter::with_opts(
                    Opts::new(
                        "ingest_bytes_total",
                        "Ingest request bodies as sent, in bytes.",
                    )
                    .namespace("lookout"),
                )
                .expect("valid metric"),
            ),
            rejects: counter_vec(
                &r,
                "ingest_rejects_total",
                "Refused ingest requests, by reason.",
                &["reason"],
            ),
            cuts: counter_vec(
                &r,
                "ingest_cut_total",
                "Stored records cut to a limit, by field.",
                &["field"],
            ),
            ingest_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "ingest_duration_seconds",
                        "From a batch read to it stored and evaluated.",
                    )
                    .namespace("lookout")
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            store_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "store_write_duration_seconds",
                        "A batch's write to the store (one transaction).",
                    )
                    .namespace("lookout")
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            groups: register(
                &r,
                IntCounter::with_opts(
                    Opts::new(
                        "ingest_groups_total",
                        "Transactions that stored ingested batches (several batches share one when they arrive together).",
                    )
                    .namespace("lookout"),
                )
                .expect("valid metric"),
            ),
            forwarded: counter_vec(
                &r,
                "forward_records_total",
                "Records forwarded over OTLP, by signal (metrics, logs) and outcome (sent, failed, dropped).",
                &["signal", "outcome"],
            ),
            backlog: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "agent_spool_backlog_records",
                        "Records waiting in the agent's spool, as it said with its last batch.",
                    )
                    .namespace("lookout"),
                    &["agent"],
                )
                .expect("valid metric"),
            ),
            evaluations: counter_vec(
                &r,
                "rule_evaluations_total",
                "Rule evaluations, by what started them: batch, poll, ping, tick.",
                &["trigger"],
            ),
            check_up: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "check_up",
                        "1 when the check's latest result at this agent is a success, else 0.",
                    )
                    .namespace("lookout"),
                    &["check", "agent"],
                )
                .expect("valid metric"),
            ),
            check_latency: gauge_vec(
                &r,
                "check_latency_seconds",
                "The latency of the check's latest result at this agent.",
                &["check", "agent"],
            ),
            check_cert: gauge_vec(
                &r,
                "check_certificate_expiry_seconds",
                "Time left until the earliest certificate of the chain the check saw expires.",
                &["check", "agent"],
            ),
            agent_seen: gauge_vec(
                &r,
                "agent_last_seen_timestamp_seconds",
                "When the agent last delivered a batch, as a Unix time.",
                &["agent"],
            ),
            alerts: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("alerts", "Alerts by state: pending, firing, resolved.")
                        .namespace("lookout"),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            registry: r,
            tls: std::sync::OnceLock::new(),
            watchdog: std::sync::OnceLock::new(),
            scrape: tokio::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts one message of `alerts` alerts to `channel`.
    pub fn notification(&self, channel: &str, outcome: Outcome, alerts: usize) {
        let labels = [channel, outcome.as_str()];
        self.notifications.with_label_values(&labels).inc();
        self.notification_alerts
            .with_label_values(&labels)
            .inc_by(alerts as u64);
    }

    /// Counts an ingested batch: its size as sent, whether it was new, its records by kind,
    /// and how long storing and evaluating it took.
    pub fn batch(&self, bytes: usize, duplicate: bool, kinds: [(&str, usize); 3], seconds: f64) {
        self.bytes.inc_by(bytes as u64);
        let outcome = if duplicate { "duplicate" } else { "stored" };
        self.batches.with_label_values(&[outcome]).inc();
        if !duplicate {
            for (kind, n) in kinds {
                self.records.with_label_values(&[kind]).inc_by(n as u64);
            }
        }
        self.ingest_seconds.observe(seconds);
    }

    /// Times one batch's write to the store.
    pub fn store_write(&self, seconds: f64) {
        self.store_seconds.observe(seconds);
    }

    /// Counts one transaction of ingested batches.
    pub fn ingest_group(&self) {
        self.groups.inc();
    }

    /// Counts `n` records forwarded as `signal` (`metrics`, `logs`) with `outcome` (`sent`,
    /// `failed`, `dropped`).
    pub fn forwarded(&self, signal: &str, outcome: &str, n: usize) {
        self.forwarded
            .with_label_values(&[signal, outcome])
            .inc_by(n as u64);
    }

    /// Records an agent's spool backlog, as it reported it.
    pub fn backlog(&self, agent: &str, records: u64) {
        self.backlog
            .with_label_values(&[agent])
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Counts a rule evaluation started by `trigger` (`batch`, `poll`, `ping`, `tick`).
    pub fn evaluation(&self, trigger: &str) {
        self.evaluations.with_label_values(&[trigger]).inc();
    }

    /// Counts one watchdog ping by `result` (`ok`, `fail`, `withheld`, `error`), and says
    /// whether the assessment before it found the collector `healthy`. The first call
    /// registers the watchdog's metrics.
    pub fn watchdog_ping(&self, healthy: bool, result: &str) {
        let m = self.watchdog.get_or_init(|| WatchdogMetrics {
            pings: counter_vec(
                &self.registry,
                "watchdog_pings_total",
                "Pings of the external heartbeat ([watchdog]): ok, fail (/fail with the reason), withheld (unhealthy, report_failures = false), error (not taken).",
                &["result"],
            ),
            healthy: register(
                &self.registry,
                IntGauge::with_opts(
                    Opts::new(
                        "watchdog_healthy",
                        "1 when the watchdog's last assessment found this collector healthy, else 0.",
                    )
                    .namespace("lookout"),
                )
                .expect("valid metric"),
            ),
        });
        m.pings.with_label_values(&[result]).inc();
        m.healthy.set(i64::from(healthy));
    }

    /// Counts a refused ingest request.
    pub fn reject(&self, reason: &str) {
        self.rejects.with_label_values(&[reason]).inc();
    }

    /// A stored record's `field` was cut to a limit.
    pub fn cut(&self, field: &str) {
        self.cuts.with_label_values(&[field]).inc();
    }

    fn tls(&self) -> &TlsMetrics {
        self.tls.get_or_init(|| TlsMetrics::new(&self.registry))
    }

    /// The served TLS certificate is valid until `not_after` (Unix seconds).
    pub fn tls_serving(&self, not_after: i64) {
        self.tls().not_after.set(not_after);
    }

    /// Counts a certificate reload that kept the old pair.
    pub fn tls_reload_failed(&self) {
        self.tls().reload_failures.inc();
    }

    /// Counts a failed TLS handshake.
    pub fn tls_handshake_failed(&self) {
        self.tls().handshake_failures.inc();
    }

    /// The exposition text, with the gauges read from `store` at `now`.
    pub async fn render(
        &self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<String, ScrapeError> {
        let _one = self.scrape.lock().await;
        self.check_up.reset();
        self.check_latency.reset();
        self.check_cert.reset();
        for r in store.latest_results().await? {
            let labels = [r.check.as_str(), r.agent.as_str()];
            self.check_up
                .with_label_values(&labels)
                .set(i64::from(r.ok));
            self.check_latency
                .with_label_values(&labels)
                .set(r.latency_ms / 1000.0);
            if let Some(e) = r.cert_expiry {
                let left = (e - now).num_milliseconds() as f64 / 1000.0;
                self.check_cert.with_label_values(&labels).set(left);
            }
        }
        self.agent_seen.reset();
        for a in store.agents().await? {
            if let Some(t) = a.last_seen {
                let secs = t.timestamp_millis() as f64 / 1000.0;
                self.agent_seen.with_label_values(&[&a.name]).set(secs);
            }
        }
        let all = AlertState::ALL;
        let alerts = store.alerts(&all).await?;
        for state in all {
            let n = alerts.iter().filter(|a| a.state == state).count();
            self.alerts
                .with_label_values(&[state.as_str()])
                .set(n as i64);
        }
        if let Some(tls) = self.tls.get() {
            let left = tls.not_after.get() as f64 - now.timestamp_millis() as f64 / 1000.0;
            tls.expiry.set(left);
        }
        Ok(TextEncoder::new().encode_to_string(&self.registry.gather())?)
    }

    /// The exposition text of the counters alone (no store reads).
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
