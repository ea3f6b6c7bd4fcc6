//! Probes: run one check once and say what happened.
//!
//! Parts: [`http`] (the `http` check type). Each probe is bounded by its check's `timeout` and
//! reports failures as results, never as errors: a probe that cannot even start (a bad URL, say)
//! is a failed result that says why.

pub mod http;

use std::time::Instant;

use chrono::Utc;
use lookout_config::{CheckConfig, CheckType};
use lookout_protocol::{CheckResult, Timings};

/// Runs probes; holds the clients they share.
#[derive(Debug, Clone)]
pub struct Prober {
    http: http::HttpProber,
}

impl Prober {
    /// A prober with fresh clients.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http::HttpProber::new()?,
        })
    }

    /// Runs `check` once. Never takes much longer than the check's timeout.
    pub async fn probe(&self, check: &CheckConfig) -> CheckResult {
        let time = Utc::now();
        let started = Instant::now();
        let outcome = tokio::time::timeout(check.timeout, async {
            match check.kind {
                CheckType::Http => self.http.probe(check).await,
            }
        })
        .await
        .unwrap_or_else(|_| {
            Outcome::failed(format!(
                "timed out after {}",
                lookout_config::duration::format(&check.timeout)
            ))
        });
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        CheckResult {
            check: check.name.clone(),
            check_type: Some(check.kind),
            time,
            ok: outcome.error.is_none(),
            latency_ms,
            error: outcome.error,
            status_code: outcome.status_code,
            timings: Timings {
                total_ms: Some(latency_ms),
                ..outcome.timings
            },
        }
    }
}

/// What one probe found; [`Prober::probe`] turns it into a result.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
    /// HTTP status, where there was one.
    pub status_code: Option<u16>,
    /// Phase timings the probe measured.
    pub timings: Timings,
}

impl Outcome {
    /// A failure with this reason.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self {
            error: Some(reason.into()),
            ..Self::default()
        }
    }
}
