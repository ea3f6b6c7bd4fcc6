//! The `nginx` integration: nginx's `stub_status` page, read on each interval, its figures named
//! as the OpenTelemetry Collector's nginxreceiver names them (`nginx.connections_accepted`,
//! `nginx.connections_handled`, `nginx.connections_current` by `state`, `nginx.requests`).
//! docs/integrations.md has the table. With `access_log`, the lines the log tailer reads from
//! that file are counted too ([`access`]).
//!
//! `stub_status` (ngx_http_stub_status_module) answers four lines of text:
//!
//! ```text
//! Active connections: 2
//! server accepts handled requests
//!  16 16 31
//! Reading: 0 Writing: 1 Waiting: 1
//! ```
//!
//! The page is read up to [`MAX_BODY_BYTES`]; a longer answer, a status other than 200 or a page
//! without one of the four figures is a read error naming what was missing, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricSample, MetricType};

use super::ReadError;

pub mod access;

use access::{AccessTap, Totals};

/// Most bytes of a `stub_status` answer read (nginx's is about 100).
pub const MAX_BODY_BYTES: usize = 4096;

/// What `stub_status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubStatus {
    /// `Active connections`: open client connections, waiting ones included.
    pub active: u64,
    /// Connections accepted since nginx started.
    pub accepts: u64,
    /// Connections handled (less than `accepts` only when a limit was reached).
    pub handled: u64,
    /// Requests since nginx started.
    pub requests: u64,
    /// Connections whose request header nginx is reading.
    pub reading: u64,
    /// Connections nginx is writing a response to.
    pub writing: u64,
    /// Idle keep-alive connections.
    pub waiting: u64,
}

/// Why a `stub_status` page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StubError {
    /// The page is longer than [`MAX_BODY_BYTES`].
    #[error("the status page is longer than {MAX_BODY_BYTES} bytes: is `url` nginx's stub_status?")]
    TooLong,
    /// A figure is missing or not a whole number.
    #[error("no {0} figure in the status page: is `url` nginx's stub_status?")]
    Missing(&'static str),
}

/// Reads a `stub_status` page.
pub fn parse_stub_status(text: &str) -> Result<StubStatus, StubError> {
    if text.len() > MAX_BODY_BYTES {
        return Err(StubError::TooLong);
    }
    let mut lines = text.lines().map(str::trim);
    let active = lines
        .next()
        .and_then(|l| l.strip_prefix("Active connections:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(StubError::Missing("Active connections"))?;
    if lines.next() != Some("server accepts handled requests") {
        return Err(StubError::Missing("server accepts handled requests"));
    }
    let counts: Vec<u64> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map_while(|w| w.parse().ok())
        .collect();
    let [accepts, handled, requests] = counts[..] else {
        return Err(StubError::Missing("accepts handled requests"));
    };
    let states: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .collect();
    let state = |name: &'static str| -> Result<u64, StubError> {
        states
            .iter()
            .position(|w| *w == name)
            .and_then(|i| states.get(i + 1))
            .and_then(|v| v.parse().ok())
            .ok_or(StubError::Missing(name))
    };
    Ok(StubStatus {
        active,
        accepts,
        handled,
        requests,
        reading: state("Reading:")?,
        writing: state("Writing:")?,
        waiting: state("Waiting:")?,
    })
}

/// The metrics of one `stub_status` read, taken at `time`, each with `labels` and its own.
pub fn stub_samples(
    s: &StubStatus,
    time: DateTime<Utc>,
    labels: &BTreeMap<String, String>,
) -> Vec<MetricSample> {
    let sample = |name: &str, value: u64, metric_type, state: Option<&str>| {
        let mut labels = labels.clone();
        if let Some(state) = state {
            labels.insert("state".into(), state.into());
        }
        MetricSample {
            name: name.into(),
            labels,
            time,
            value: value as f64,
            metric_type,
        }
    };
    vec![
        sample(
            "nginx.connections_accepted",
            s.accepts,
            MetricType::Counter,
            None,
        ),
        sample(
            "nginx.connections_handled",
            s.handled,
            MetricType::Counter,
            None,
        ),
        sample("nginx.requests", s.requests, MetricType::Counter, None),
        sample(
            "nginx.connections_current",
            s.active,
            MetricType::Gauge,
            Some("active"),
        ),
        sample(
            "nginx.connections_current",
            s.reading,
            MetricType::Gauge,
            Some("reading"),
        ),
        sample(
            "nginx.connections_current",
            s.writing,
            MetricType::Gauge,
            Some("writing"),
        ),
        sample(
            "nginx.connections_current",
            s.waiting,
            MetricType::Gauge,
            Some("waiting"),
        ),
    ]
}

/// The metrics of the access log's lines so far, taken at `time`: requests by status class and
/// bytes (totals since the agent started), the interval's `$request_time` percentiles and 5xx
/// share (when it had any), and the lines skipped.
pub fn access_samples(
    t: &Totals,
    time: DateTime<Utc>,
    labels: &BTreeMap<String, String>,
) -> Vec<MetricSample> {
    let sample = |name: &str, value: f64, metric_type, extra: Option<(&str, &str)>| {
        let mut labels = labels.clone();
        if let Some((k, v)) = extra {
            labels.insert(k.into(), v.into());
        }
        MetricSample {
            name: name.into(),
            labels,
            time,
            value,
            metric_type,
        }
    };
    let c = MetricType::Counter;
    let mut out = Vec::with_capacity(12);
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let n = t.by_class[i] as f64;
        out.push(sample(
            "nginx.requests",
            n,
            c,
            Some(("status_class", class)),
        ));
    }
    out.push(sample("nginx.response.body.size", t.bytes as f64, c, None));
    for (reason, n) in [("too_long", t.too_long), ("unparseable", t.unparseable)] {
        out.push(sample(
            "nginx.access_log.skipped",
            n as f64,
            c,
            Some(("reason", reason)),
        ));
    }
    let all: u64 = t.interval.iter().sum();
    if all > 0 {
        out.push(sample(
            "nginx.requests.server_error_ratio",
            t.interval[4] as f64 / all as f64,
            MetricType::Gauge,
            None,
        ));
    }
    for (q, label) in [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")] {
        if let Some(v) = t.latencies.quantile(q) {
            out.push(sample(
                "nginx.request.duration",
                v,
                MetricType::Gauge,
                Some(("quantile", label)),
            ));
        }
    }
    out
}

/// An nginx peer: its `stub_status` URL, the HTTP client kept between reads, and its access
/// log's tap.
pub struct Source {
    client: reqwest::Client,
    url: String,
    /// The tap registered for the access log, when there is one.
    pub access: Option<Arc<AccessTap>>,
}

impl Source {
    /// The peer whose `stub_status` is at `url`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ReadError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ReadError::Config(e.to_string()))?;
        Ok(Self {
            client,
            url: url.to_string(),
            access: None,
        })
    }

    /// The `stub_status` page, read.
    pub async fn stub_status(&self) -> Result<StubStatus, ReadError> {
        let mut resp = self.client.get(&self.url).send().await.map_err(|e| {
            ReadError::Connect(lookout_runtime::request_failure(
                e.is_timeout(),
                e.is_connect(),
                &e,
            ))
        })?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(ReadError::Command(format!(
                "the status page answered {}",
                resp.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ReadError::Command(format!("reading the status page: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ReadError::Command(StubError::TooLong.to_string()));
            }
            body.extend_from_slice(&chunk);
        }
        parse_stub_status(&String::from_utf8_lossy(&body))
            .map_err(|e| ReadError::Command(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
