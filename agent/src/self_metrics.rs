//! The agent's own figures, served in the Prometheus text format at `/metrics` on
//! `[telemetry] metrics_listen` (off by default). Names live here, in one place:
//!
//! - `lookout_agent_probes_total{check, outcome}`: probes run, `ok` or `failed`;
//! - `lookout_agent_probe_latency_seconds{check}`: the latest probe's duration;
//! - `lookout_agent_batches_total{outcome}`: batches `sent` (stored by the collector), `retry`
//!   (failed, kept for the next try), `rejected` (refused for good, set aside) or `version`
//!   (not sent, or refused, because the collector does not read this agent's protocol
//!   version: kept, and sent again once it does);
//! - `lookout_agent_protocol_version`: the protocol version batches are sent in, 0 while the
//!   collector reads none this agent speaks;
//! - `lookout_agent_shipped_records_total`: records in batches the collector stored;
//! - `lookout_agent_host_metric_samples_total`: host metric samples taken;
//! - `lookout_agent_spool_backlog_records`, `lookout_agent_spool_size_bytes`: what waits in
//!   the spool (read at each scrape);
//! - `lookout_agent_spool_dropped_records_total`: records dropped because the spool was full;
//! - `lookout_agent_plaintext_collector`: 1 when a collector URL is `http://` to another
//!   machine (the agent's token and what it ships cross the network in clear), else 0;
//! - `lookout_agent_fallback_messages_total{message, outcome}`: `[fallback]` messages,
//!   `unreachable` or `reachable`, `sent` or `failed` (not taken after their retries);
//! - `lookout_agent_otlp_items_total{signal, outcome}`: what the OTLP receiver (`[otlp]`) took,
//!   `signal` `metrics` (data points) or `logs` (log records), `outcome` `stored` (in the spool)
//!   or `refused` (counted in the answer's `partial_success`);
//! - `lookout_agent_otlp_requests_total{code}`: its answers, by HTTP status;
//! - `lookout_agent_config_reload_failures_total`: `SIGHUP`s whose configuration was refused
//!   (invalid, or a change that needs a restart), the running one kept;
//! - `lookout_agent_config_last_reload_successful`: 1 when the last reload was applied (or
//!   none was asked for since start), 0 when it was refused;
//! - `lookout_agent_config_last_reload_success_timestamp_seconds`: when the configuration in
//!   force was loaded (at start or by the last applied reload), Unix seconds.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tokio_util::sync::CancellationToken;

use crate::spool::Spool;

/// The registry and the agent's metrics. Counting costs an atomic add whether or not anything
/// scrapes.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    probes: IntCounterVec,
    probe_latency: GaugeVec,
    batches: IntCounterVec,
    protocol_version: IntGauge,
    shipped: IntCounter,
    host_samples: IntCounter,
    backlog: IntGauge,
    spool_bytes: IntGauge,
    dropped: IntCounter,
    plaintext: IntGauge,
    fallback: IntCounterVec,
    reload_failures: IntCounter,
    last_reload_ok: IntGauge,
    last_reload_success: Gauge,
    otlp_items: IntCounterVec,
    otlp_requests: IntCounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("lookout_agent")
}

/// Registers one metric; names are fixed here, so only a programming error can fail it.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry
        .register(Box::new(m.clone()))
        .expect("metric names are unique and valid");
    m
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let r = Registry::new();
        let m = Self {
            probes: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "probes_total",
                        "Probes run, by check and outcome (ok, failed).",
                    ),
                    &["check", "outcome"],
                )
                .expect("valid metric"),
            ),
            probe_latency: register(
                &r,
                GaugeVec::new(
                    opts(
                        "probe_latency_seconds",
                        "The latest probe's duration, by check.",
                    ),
                    &["check"],
                )
                .expect("valid metric"),
            ),
            fallback: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "fallback_messages_total",
                        "[fallback] messages, by message (unreachable, reachable) and outcome (sent, failed).",
                    ),
                    &["message", "outcome"],
                )
                .expect("valid metric"),
            ),
            batches: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "batches_total",
                        "Batches shipped, by outcome: sent, retry, rejected, version.",
                    ),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            protocol_version: register(
                &r,
                IntGauge::with_opts(opts(
                    "protocol_version",
                    "The protocol version batches are sent in; 0 while the collector reads none this agent speaks.",
                ))
                .expect("valid metric"),
            ),
            shipped: register(
                &r,
                IntCounter::with_opts(opts(
                    "shipped_records_total",
                    "Records in batches the collector stored.",
                ))
                .expect("valid metric"),
            ),
            host_samples: register(
                &r,
                IntCounter::with_opts(opts(
                    "host_metric_samples_total",
                    "Host metric samples taken.",
                ))
                .expect("valid metric"),
            ),
            backlog: register(
                &r,
                IntGauge::with_opts(opts(
                    "spool_backlog_records",
                    "Records in the spool waiting to be shipped.",
                ))
                .expect("valid metric"),
            ),
            spool_bytes: register(
                &r,
                IntGauge::with_opts(opts("spool_size_bytes", "The spool's size on disk."))
                    .expect("valid metric"),
            ),
            dropped: register(
                &r,
                IntCounter::with_opts(opts(
                    "spool_dropped_records_total",
                    "Records dropped because the spool was full.",
                ))
                .expect("valid metric"),
            ),
            plaintext: register(
                &r,
                IntGauge::with_opts(opts(
                    "plaintext_collector",
                    "1 when a collector URL is http:// to a host that is not loopback: the token travels in clear.",
                ))
                .expect("valid metric"),
            ),
            reload_failures: register(
                &r,
                IntCounter::with_opts(opts(
                    "config_reload_failures_total",
                    "Configuration reloads refused (invalid, or a change that needs a restart).",
                ))
                .expect("valid metric"),
            ),
            last_reload_ok: register(
                &r,
                IntGauge::with_opts(opts(
                    "config_last_reload_successful",
                    "1 when the last configuration reload was applied (or none was asked for), 0 when it was refused.",
                ))
                .expect("valid metric"),
            ),
            last_reload_success: register(
                &r,
                Gauge::with_opts(opts(
                    "config_last_reload_success_timestamp_seconds",
                    "When the configuration in force was loaded, Unix seconds.",
                ))
                .expect("valid metric"),
            ),
            otlp_items: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "otlp_items_total",
                        "What the OTLP receiver took, by signal (metrics: data points, logs: log records) and outcome (stored, refused).",
                    ),
                    &["signal", "outcome"],
                )
                .expect("valid metric"),
            ),
            otlp_requests: register(
                &r,
                IntCounterVec::new(
                    opts(
                        "otlp_requests_total",
                        "The OTLP receiver's answers, by HTTP status code.",
                    ),
                    &["code"],
                )
                .expect("valid metric"),
            ),
            registry: r,
        };
        // Made when the agent starts, from the configuration it just loaded.
        m.config_loaded();
        // Until an answer says otherwise: what every collector reads.
        m.protocol_version(lookout_protocol::version::UNADVERTISED_VERSION);
        m
    }
}

/// How a batch's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipped {
    /// Stored by the collector.
    Sent,
    /// Failed; kept for the next try.
    Retry,
    /// Refused for good; set aside.
    Rejected,
    /// Not sent, or refused, for its protocol version; kept.
    Version,
}

impl AgentMetrics {
    /// Counts a probe of `check`.
    pub fn probe(&self, check: &str, ok: bool, latency_seconds: f64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.probes.with_label_values(&[check, outcome]).inc();
        self.probe_latency
            .with_label_values(&[check])
            .set(latency_seconds);
    }

    /// Forgets a check that no longer runs.
    pub fn check_stopped(&self, check: &str) {
        for outcome in ["ok", "failed"] {
            let _ = self.probes.remove_label_values(&[check, outcome]);
        }
        let _ = self.probe_latency.remove_label_values(&[check]);
    }

    /// Counts a batch of `records` records that ended as `outcome`.
    pub fn batch(&self, outcome: Shipped, records: usize) {
        let label = match outcome {
            Shipped::Sent => "sent",
            Shipped::Retry => "retry",
            Shipped::Rejected => "rejected",
            Shipped::Version => "version",
        };
        self.batches.with_label_values(&[label]).inc();
        if outcome == Shipped::Sent {
            self.shipped.inc_by(records as u64);
        }
    }

    /// Counts a `[fallback]` message (`unreachable`, `reachable`) by `outcome` (`sent`,
    /// `failed`).
    pub fn fallback_message(&self, message: &str, outcome: &str) {
        self.fallback.with_label_values(&[message, outcome]).inc();
    }

    /// Batches go out in protocol `version` (0: none the collector reads).
    pub fn protocol_version(&self, version: u32) {
        self.protocol_version.set(i64::from(version));
    }

    /// The configuration now in force was loaded (at start, or by an applied reload).
    pub fn config_loaded(&self) {
        self.last_reload_ok.set(1);
        self.last_reload_success
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// A reload was refused: the running configuration stays.
    pub fn config_refused(&self) {
        self.reload_failures.inc();
        self.last_reload_ok.set(0);
    }

    /// Counts what one OTLP request of `signal` (`metrics`, `logs`) gave: `stored` items
    /// spooled, `refused` counted back to the sender.
    pub fn otlp_items(&self, signal: &str, stored: u64, refused: u64) {
        for (outcome, n) in [("stored", stored), ("refused", refused)] {
            self.otlp_items
                .with_label_values(&[signal, outcome])
                .inc_by(n);
        }
    }

    /// Counts one answer of the OTLP receiver.
    pub fn otlp_request(&self, code: u16) {
        self.otlp_requests
            .with_label_values(&[code.to_string().as_str()])
            .inc();
    }

    /// Counts `n` host metric samples.
    pub fn host_samples(&self, n: usize) {
        self.host_samples.inc_by(n as u64);
    }

    /// Whether a collector is reached over plaintext HTTP off this host.
    pub fn plaintext_collector(&self, yes: bool) {
        self.plaintext.set(i64::from(yes));
    }

    /// The exposition text, with the spool's figures as they are now.
    pub fn render(&self, spool: &Spool) -> String {
        self.backlog
            .set(i64::try_from(spool.backlog()).unwrap_or(i64::MAX));
        self.spool_bytes
            .set(i64::try_from(spool.bytes()).unwrap_or(i64::MAX));
        // The spool keeps its own total; the counter catches up to it.
        let dropped = spool.dropped();
        if dropped > self.dropped.get() {
            self.dropped.inc_by(dropped - self.dropped.get());
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// Serves `GET /metrics` on `addr` until `stop`. Binding is done before returning, so a port
/// in use is an error at start, not a silent absence.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<AgentMetrics>,
    spool: Arc<Spool>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving the agent's /metrics");
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a /metrics connection failed");
                        continue;
                    }
                },
            };
            let metrics = metrics.clone();
            let spool = spool.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let response = answer(&req, &metrics, &spool);
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}

fn answer<B>(req: &Request<B>, metrics: &AgentMetrics, spool: &Spool) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(spool),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the agent serves /metrics only\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
