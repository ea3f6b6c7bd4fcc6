//! How both daemons report on themselves: their own logs on stderr (text for a terminal, JSON
//! lines for a log shipper), `tracing` spans exported over OTLP/HTTP, and errors and panics sent
//! to Sentry. [`init`] sets it all up once, before the runtime starts; the parts that are off
//! install no layer and cost nothing.
//!
//! Spans are at debug level: their callsites are off unless an exporter (or `--log-level
//! debug`) wants them. Spans exported: on the agent `probe` (with `check`, `type`, and the phases `dns`, `connect`,
//! `tls` and `ttfb` as child spans of HTTP probes) and `ship` (a batch sent); on the collector
//! `ingest` (a batch), `store` (its write), `evaluate` (rules over it), `notify` (a message
//! sent). The resource names the service (`lookout-agent` or `lookout-collector`), its version,
//! the environment, and on an agent its name (`service.instance.id`).

use std::collections::BTreeMap;
use std::time::Duration;

use lookout_config::TelemetryConfig;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How the daemon's own log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What [`init`] needs to know about the process.
pub struct Options<'a> {
    /// `lookout-agent` or `lookout-collector`.
    pub service: &'static str,
    /// The agent's name, when the process is (or holds) one.
    pub instance: Option<&'a str>,
    /// Labels sent with every Sentry event as `label.<key>` tags.
    pub labels: &'a BTreeMap<String, String>,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--log-level`: a level or `RUST_LOG`-style directives. None: `RUST_LOG`, then
    /// `LOOKOUT_LOG`, then `info`.
    pub log_level: Option<&'a str>,
    /// `[telemetry]`.
    pub config: &'a TelemetryConfig,
}

/// Keeps the exporters alive; dropping it sends what is still queued.
#[must_use = "dropping the guard stops exporting"]
pub struct Guard {
    tracer: Option<SdkTracerProvider>,
    sentry: Option<sentry::ClientInitGuard>,
}

impl Guard {
    /// True when spans are exported over OTLP.
    pub fn exports_spans(&self) -> bool {
        self.tracer.is_some()
    }

    /// True when errors go to Sentry.
    pub fn reports_errors(&self) -> bool {
        self.sentry.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take()
            && let Err(e) = tracer.shutdown()
        {
            eprintln!("exporting the last spans failed: {e}");
        }
        if let Some(sentry) = self.sentry.take() {
            sentry.close(Some(Duration::from_secs(2)));
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-level` or `RUST_LOG` could not be read.
    #[error("invalid log level {value:?} (from {source_name}): {error}")]
    LogLevel {
        /// The text given.
        value: String,
        /// Where it came from.
        source_name: &'static str,
        /// What is wrong with it.
        error: String,
    },
    /// The Sentry DSN could not be read.
    #[error("invalid Sentry DSN: {0}")]
    Dsn(String),
    /// The OTLP exporter could not be built.
    #[error("cannot export spans to {endpoint}: {error}")]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// What went wrong.
        error: String,
    },
}

/// The log filter: `--log-level`, else `RUST_LOG`, else `LOOKOUT_LOG`, else `info`.
fn log_filter(flag: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let (value, source_name) = match flag {
        Some(v) => (v.to_string(), "--log-level"),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => (v, "RUST_LOG"),
            _ => match std::env::var("LOOKOUT_LOG") {
                Ok(v) if !v.trim().is_empty() => (v, "LOOKOUT_LOG"),
                _ => ("info".to_string(), "the default"),
            },
        },
    };
    EnvFilter::builder()
        .parse(&value)
        .map_err(|e| TelemetryError::LogLevel {
            value,
            source_name,
            error: e.to_string(),
        })
}

/// Sets up logging, span export and Sentry for the process. Call once, from `main`, before the
/// async runtime starts (the exporters own threads of their own).
pub fn init(o: Options<'_>) -> Result<Guard, TelemetryError> {
    let filter = log_filter(o.log_level)?;
    let version = env!("CARGO_PKG_VERSION");
    let environment = o.config.environment().to_string();

    let sentry = match o.config.sentry_dsn(|k| std::env::var(k).ok()) {
        None => None,
        Some(dsn) => {
            // Parsed here first: the options' setter panics on a DSN that does not parse.
            dsn.parse::<sentry::types::Dsn>()
                .map_err(|e| TelemetryError::Dsn(e.to_string()))?;
            let mut options = sentry::ClientOptions::new()
                .dsn(&dsn)
                .release(format!("{}@{version}", o.service))
                .environment(environment.clone())
                .attach_stacktrace(true);
            if let Some(agent) = o.instance {
                options = options.server_name(agent.to_string());
            }
            let guard = sentry::init(options);
            sentry::configure_scope(|scope| {
                scope.set_tag("service", o.service);
                if let Some(agent) = o.instance {
                    scope.set_tag("agent", agent);
                }
                for (k, v) in o.labels {
                    scope.set_tag(&format!("label.{k}"), v);
                }
            });
            Some(guard)
        }
    };

    let tracer = match &o.config.otlp_endpoint {
        None => None,
        Some(base) => {
            let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(&endpoint)
                .with_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| TelemetryError::Otlp {
                    endpoint: endpoint.clone(),
                    error: e.to_string(),
                })?;
            let mut attributes = vec![
                KeyValue::new("service.version", version),
                KeyValue::new("deployment.environment.name", environment.clone()),
            ];
            if let Some(agent) = o.instance {
                attributes.push(KeyValue::new("service.instance.id", agent.to_string()));
                attributes.push(KeyValue::new("lookout.agent", agent.to_string()));
            }
            let resource = opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(o.service)
                .with_attributes(attributes)
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };

    let stderr_layer = match o.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .boxed(),
    };
    // Lookout's spans are at debug level, so that without an exporter (and at the default
    // log level) their callsites are off and cost nothing. The exporter takes Lookout's spans
    // at debug and up, and events at info and up (they become span events).
    let otel_layer = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(o.service))
            .with_filter(filter_fn(|m| {
                if m.is_span() {
                    m.target().starts_with("lookout_") && *m.level() <= Level::DEBUG
                } else {
                    *m.level() <= Level::INFO
                }
            }))
    });
    let sentry_layers = sentry.as_ref().map(|_| {
        // Errors become events; warnings and info become breadcrumbs that go with the next one.
        sentry::integrations::tracing::BreadcrumbLayer::new()
            .with_filter(filter_fn(|m| {
                matches!(*m.level(), Level::WARN | Level::INFO)
            }))
            .and_then(
                sentry::integrations::tracing::ErrorLayer::new().with_filter(LevelFilter::ERROR),
            )
    });
    tracing_subscriber::registry()
        .with(stderr_layer.with_filter(filter))
        .with(otel_layer)
        .with(sentry_layers)
        .init();
    Ok(Guard { tracer, sentry })
}
