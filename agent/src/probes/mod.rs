//! Probes: run one check once and say what happened.
//!
//! Parts: [`http`], [`tcp`], [`tls`], [`dns`], [`icmp`], [`postgres`], [`redis`], [`smtp`],
//! [`grpc`], [`websocket`], [`domain`], [`container`] (one per check type), and [`net`]
//! (resolving in the system's order, connecting, the TLS handshake that reads a chain whether
//! or not it verifies). Each probe is bounded by its check's
//! `timeout` and reports failures as results, never as errors: a probe that cannot even start (a
//! bad URL, say) is a failed result that says why. Each type's `probe` fills an [`Outcome`] with
//! what it observed and returns why it failed, if it did. After the type's own test, the check's
//! conditions are evaluated against what the probe observed; every failing one is reported with
//! the value found.

pub mod container;
pub mod dns;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod net;
pub mod postgres;
pub mod redis;
pub mod smtp;
pub mod tcp;
pub mod tls;
pub mod websocket;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::Semaphore;
use tracing::Instrument as _;

use chrono::{DateTime, Utc};
use lookout_config::{CheckConfig, CheckType, Observation};
use lookout_protocol::{CheckResult, Timings};

/// Runs probes; holds what they share (TLS settings and trust stores, DNS resolvers, the limit
/// on probes at once).
#[derive(Debug, Clone)]
pub struct Prober {
    tls: net::Tls,
    dns: dns::Resolvers,
    rdap: domain::Rdap,
    running: Arc<Semaphore>,
    user_agent: String,
}

impl Prober {
    /// A prober running at most `max_concurrent` probes at once; trust stores and resolvers
    /// are loaded when a check first needs them.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            tls: net::Tls::new(),
            dns: dns::Resolvers::default(),
            rdap: domain::Rdap::default(),
            running: Arc::new(Semaphore::new(max_concurrent.max(1))),
            user_agent: http::user_agent(None),
        }
    }

    /// Names the agent in the `User-Agent` of HTTP probes
    /// (`lookout-agent/0.1.0 (probe; agent=edge-1)`), so a target's operators can tell which
    /// location a request came from.
    pub fn identified_as(mut self, agent: &str) -> Self {
        self.user_agent = http::user_agent(Some(agent));
        self
    }

    /// Runs `check` once, when a slot is free. Never takes much longer than the check's timeout
    /// once it runs.
    pub async fn probe(&self, check: &CheckConfig) -> CheckResult {
        // The semaphore is never closed, so acquiring only waits.
        let _slot = self.running.acquire().await;
        let time = Utc::now();
        let started = Instant::now();
        let span = tracing::debug_span!(
            "probe",
            check = %check.name,
            r#type = check.kind.as_str(),
            ok = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let mut outcome = tokio::time::timeout(
            check.timeout,
            async {
                let mut out = Outcome::default();
                let done = match check.kind {
                    CheckType::Http => {
                        http::probe(&self.tls, &self.user_agent, check, &mut out).await
                    }
                    CheckType::Tcp => tcp::probe(check, &mut out).await,
                    CheckType::Tls => tls::probe(&self.tls, check, &mut out).await,
                    CheckType::Dns => self.dns.probe(check, &mut out).await,
                    CheckType::Icmp => icmp::probe(check, &mut out).await,
                    CheckType::Postgres => postgres::probe(check, &mut out).await,
                    CheckType::Redis => redis::probe(check, &mut out).await,
                    CheckType::Smtp => smtp::probe(check, &mut out).await,
                    CheckType::Grpc => {
                        grpc::probe(&self.tls, &self.user_agent, check, &mut out).await
                    }
                    CheckType::Websocket => {
                        websocket::probe(&self.tls, &self.user_agent, check, &mut out).await
                    }
                    CheckType::Domain => self.rdap.probe(check, &mut out).await,
                    CheckType::Container => container::probe(check, &mut out).await,
                };
                out.error = done.err();
                out
            }
            .instrument(span.clone()),
        )
        .await
        .unwrap_or_else(|_| Outcome {
            error: Some(format!(
                "timed out after {}",
                lookout_config::duration::format(&check.timeout)
            )),
            ..Outcome::default()
        });
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        span.record("latency_ms", latency_ms);
        outcome.seen.response_time_ms = latency_ms;
        if outcome.error.is_none() {
            let failed: Vec<String> = check
                .conditions
                .iter()
                .filter_map(|c| c.evaluate(&outcome.seen).err())
                .collect();
            if !failed.is_empty() {
                outcome.error = Some(format!("condition failed: {}", failed.join("; ")));
            }
        }
        span.record("ok", outcome.error.is_none());
        if let Some(e) = &outcome.error {
            span.record("error", e.as_str());
        }
        CheckResult {
            check: check.name.clone(),
            check_type: Some(check.kind),
            time,
            ok: outcome.error.is_none(),
            latency_ms,
            error: outcome.error,
            status_code: outcome.status_code,
            cert_expiry: outcome.cert_expiry.map(DateTime::<Utc>::from),
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
    /// When the earliest certificate of the chain expires, where there was a chain.
    pub cert_expiry: Option<SystemTime>,
    /// What conditions test.
    pub seen: Observation,
}
