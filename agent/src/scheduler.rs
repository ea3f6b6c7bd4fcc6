//! Runs each check on its interval, one task per check, and follows changes to the set of checks
//! without a restart: a new check starts, a removed one stops, a changed one restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lookout_config::CheckConfig;
use lookout_protocol::{CheckResult, Record, Timings};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::probes::Prober;
use crate::spool::Spool;

/// The first probe of a check starts at a random point within this much (or the interval, if
/// shorter), so that checks loaded together do not all fire at once.
const MAX_START_SPREAD: Duration = Duration::from_secs(5);

/// The running checks.
#[derive(Debug)]
pub struct Scheduler {
    prober: Prober,
    queue: Arc<Spool>,
    shutdown: CancellationToken,
    running: HashMap<String, Running>,
}

#[derive(Debug)]
struct Running {
    check: CheckConfig,
    stop: CancellationToken,
}

impl Scheduler {
    /// A scheduler whose checks write their results to the spool `queue` and stop with `shutdown`.
    pub fn new(prober: Prober, queue: Arc<Spool>, shutdown: CancellationToken) -> Self {
        Self {
            prober,
            queue,
            shutdown,
            running: HashMap::new(),
        }
    }

    /// Makes `checks` the running set.
    pub fn apply(&mut self, checks: Vec<CheckConfig>) {
        let wanted: HashMap<String, CheckConfig> =
            checks.into_iter().map(|c| (c.name.clone(), c)).collect();
        self.running.retain(|name, r| {
            let keep = wanted.get(name) == Some(&r.check);
            if !keep {
                r.stop.cancel();
                tracing::info!(check = %name, "check stopped");
            }
            keep
        });
        for (name, check) in wanted {
            if self.running.contains_key(&name) {
                continue;
            }
            let stop = self.shutdown.child_token();
            tokio::spawn(run_check(
                check.clone(),
                self.prober.clone(),
                self.queue.clone(),
                stop.clone(),
            ));
            tracing::info!(check = %name, interval = %lookout_config::duration::format(&check.interval), "check started");
            self.running.insert(name, Running { check, stop });
        }
    }

    /// Names of the running checks, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.running.keys().cloned().collect();
        v.sort();
        v
    }
}

async fn run_check(check: CheckConfig, prober: Prober, queue: Arc<Spool>, stop: CancellationToken) {
    let spread = check.interval.min(MAX_START_SPREAD);
    let delay = Duration::from_millis(fastrand::u64(0..spread.as_millis().max(1) as u64));
    let mut ticks = tokio::time::interval_at(Instant::now() + delay, check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let result = probe_isolated(&prober, &check).await;
        if !result.ok {
            tracing::debug!(check = %check.name, error = result.error.as_deref().unwrap_or(""), "probe failed");
        }
        queue.push(&Record::CheckResult(result));
    }
}

/// Runs one probe in a task of its own, so that a panic in a probe fails only its result.
pub async fn probe_isolated(prober: &Prober, check: &CheckConfig) -> CheckResult {
    let started = chrono::Utc::now();
    let (p, c) = (prober.clone(), check.clone());
    match tokio::spawn(async move { p.probe(&c).await }).await {
        Ok(r) => r,
        Err(e) => CheckResult {
            check: check.name.clone(),
            check_type: Some(check.kind),
            time: started,
            ok: false,
            latency_ms: 0.0,
            error: Some(format!("the probe crashed: {e}")),
            status_code: None,
            cert_expiry: None,
            timings: Timings::default(),
        },
    }
}
