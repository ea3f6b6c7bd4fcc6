//! `[watchdog]`: the collector pings an external heartbeat while it is healthy, so that a
//! collector that died, hangs, lost its network or its disk is noticed by something outside
//! its failure domain.
//!
//! The protocol is Healthchecks' (<https://healthchecks.io/docs/http_api/>), which Uptime
//! Kuma's push monitors, Cronitor and others accept too: every `interval`,
//!
//! - healthy: `GET <url>`;
//! - unhealthy, with `report_failures` (the default): `POST <url>/fail` with the reasons as a
//!   short `text/plain` body (Healthchecks keeps the first 10 kB of a ping's body and shows
//!   it in the check's log), so the service pages at once;
//! - unhealthy, without it: nothing, and the service pages when its grace runs out.
//!
//! Healthy means all of ([`health`]): the store takes a real write (this collector's row in
//! `collectors`, the one `GET /api/v1/cluster` lists); rule evaluation's tick loop completed a
//! round within three of its 5 s ticks; no pending notification is overdue by more than
//! `max_notification_delay`; and some collector leads (itself, or with PostgreSQL another one
//! that announced itself within 15 s; a collector that started less than 15 s ago is not yet
//! judged on this, so an election in progress is not reported as a failure).
//!
//! Several collectors (docs/high-availability.md): every collector with `[watchdog]` pings,
//! leader and followers alike, each judging itself. Two ways to set it up, both without any
//! per-host placeholder in the file:
//!
//! - one check per collector: give each its own URL (`url = "${LOOKOUT_WATCHDOG_URL}"`, set per
//!   host); each check pages about its collector, and `/fail` says what is wrong with it;
//! - one check for the cluster: the same URL everywhere with `report_failures = false`: the
//!   check is kept up while any collector is healthy and pages when none is (one unhealthy
//!   collector's `/fail` would otherwise mark down a check the others keep alive).
//!
//! Nothing here can hang the loop: each read of the assessment and the ping itself are bounded
//! by `timeout`. The ping URL's path is its secret: logs show its origin only, and reqwest's
//! errors are shown without their URL. Each ping is counted in
//! `lookout_watchdog_pings_total{result}` ([`crate::telemetry`]).

pub mod health;

use std::sync::Arc;
use std::time::Duration;

use lookout_config::WatchdogConfig;
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;
pub use health::{Health, Problem};

/// The most of the reasons sent with `/fail`: Healthchecks keeps 10 kB of a body.
const MAX_REASON_BYTES: usize = 4096;

/// Why the watchdog could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// `url` is not a URL that a `/fail` can be added to (the configuration checks it is
    /// http(s); the URL itself is not repeated).
    #[error("[watchdog] url: cannot add /fail to it")]
    Url,
    /// The HTTP client could not be built.
    #[error("[watchdog]: cannot build the HTTP client: {0}")]
    Client(String),
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Healthy, and the ping was taken.
    Ok,
    /// Unhealthy, and `/fail` with the reasons was taken.
    Fail,
    /// Unhealthy with `report_failures = false`: nothing sent.
    Withheld,
    /// The heartbeat service did not take the ping (why, without the URL).
    Error(String),
}

impl Round {
    /// The `result` label of `lookout_watchdog_pings_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Round::Ok => "ok",
            Round::Fail => "fail",
            Round::Withheld => "withheld",
            Round::Error(_) => "error",
        }
    }
}

/// The collector's pinger of an external heartbeat.
#[derive(Debug)]
pub struct Watchdog {
    cfg: WatchdogConfig,
    health: Health,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    ping: Url,
    fail: Url,
    /// The URL as logs show it: its origin.
    shown: String,
}

impl Watchdog {
    /// The watchdog of `cfg`, judging `health`, counting in `metrics`.
    pub fn new(
        cfg: WatchdogConfig,
        health: Health,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WatchdogError> {
        let ping = Url::parse(&cfg.url).map_err(|_| WatchdogError::Url)?;
        let fail = fail_url(&ping).ok_or(WatchdogError::Url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("lookout-collector/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the secret path elsewhere; Healthchecks answers directly.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| WatchdogError::Client(describe(&e)))?;
        Ok(Self {
            shown: lookout_config::redact::origin(&cfg.url),
            cfg,
            health,
            metrics,
            http,
            ping,
            fail,
        })
    }

    /// Pings every `interval` until `stop`, the first at once.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(watchdog = %self.shown, interval = ?self.cfg.interval, "pinging the external heartbeat while healthy");
        let mut ticks = tokio::time::interval(self.cfg.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_healthy = true;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let problems = self
                .health
                .assess(crate::clock::now(), self.cfg.timeout)
                .await;
            let healthy = problems.is_empty();
            let reasons = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            if healthy != was_healthy {
                if healthy {
                    tracing::info!(watchdog = %self.shown, "healthy again: pinging the external heartbeat");
                } else {
                    tracing::warn!(watchdog = %self.shown, problems = %reasons, report_failures = self.cfg.report_failures, "unhealthy: the external heartbeat is told /fail, or no longer pinged");
                }
                was_healthy = healthy;
            }
            let round = tokio::select! {
                () = stop.cancelled() => return,
                r = self.ping(&problems, &reasons) => r,
            };
            if let Round::Error(e) = &round {
                tracing::warn!(watchdog = %self.shown, healthy, error = %e, "the external heartbeat did not take the ping");
            }
            self.metrics.watchdog_ping(healthy, round.label());
        }
    }

    /// One ping for the assessment's `problems` (`reasons`: them as one sentence).
    pub async fn ping(&self, problems: &[Problem], reasons: &str) -> Round {
        let request = if problems.is_empty() {
            self.http.get(self.ping.clone())
        } else if self.cfg.report_failures {
            let me = &self.health.me.instance;
            self.http
                .post(self.fail.clone())
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(cut(
                    format!("lookout-collector {me}: {reasons}"),
                    MAX_REASON_BYTES,
                ))
        } else {
            return Round::Withheld;
        };
        // reqwest's own timeout bounds the request; this one bounds anything around it.
        let answer = tokio::time::timeout(
            self.cfg.timeout + Duration::from_millis(100),
            request.send(),
        )
        .await;
        match answer {
            Ok(Ok(r)) if r.status().is_success() => {
                if problems.is_empty() {
                    Round::Ok
                } else {
                    Round::Fail
                }
            }
            Ok(Ok(r)) => Round::Error(format!("answered {}", r.status())),
            Ok(Err(e)) => Round::Error(describe(&e)),
            Err(_) => Round::Error(format!("no answer within {:?}", self.cfg.timeout)),
        }
    }
}

/// `<url>/fail`: the segment added to the path, before any query (`?create=1`).
fn fail_url(ping: &Url) -> Option<Url> {
    let mut fail = ping.clone();
    fail.path_segments_mut().ok()?.pop_if_empty().push("fail");
    Some(fail)
}

/// A reqwest error and its causes, without the URL (see [`lookout_runtime::request_failure`]).
fn describe(e: &reqwest::Error) -> String {
    lookout_runtime::request_failure(e.is_timeout(), e.is_connect(), e)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests;
