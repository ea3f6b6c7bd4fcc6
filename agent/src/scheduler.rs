//! Runs each check on its interval, one task per check, and follows changes to the set of checks
//! without a restart: a new check starts, a removed one stops, a changed one restarts.
//!
//! A check's probes fall on a grid of its interval, at a phase taken from its name, so that
//! checks spread over the interval; after a failure the next probe comes `retry_interval` later
//! (default a fifth of the interval), so an outage is confirmed quickly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lookout_config::CheckConfig;
use lookout_protocol::{CheckResult, Record, Timings};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::probes::Prober;
use crate::self_metrics::AgentMetrics;
use crate::spool::{self, Spool};

/// The first probe of a check starts at a random point within this much (or the interval, if
/// shorter), so that checks loaded together do not all fire at once.
const MAX_START_SPREAD: Duration = Duration::from_secs(5);

/// The running checks.
#[derive(Debug)]
pub struct Scheduler {
    prober: Prober,
    spool: Arc<Spool>,
    metrics: Arc<AgentMetrics>,
    shutdown: CancellationToken,
    running: HashMap<String, Running>,
}

#[derive(Debug)]
struct Running {
    check: CheckConfig,
    stop: CancellationToken,
}

impl Scheduler {
    /// A scheduler whose checks write their results to `spool` and stop with `shutdown`.
    pub fn new(
        prober: Prober,
        spool: Arc<Spool>,
        metrics: Arc<AgentMetrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            prober,
            spool,
            metrics,
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
                self.metrics.check_stopped(name);
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
                self.spool.clone(),
                self.metrics.clone(),
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

async fn run_check(
    check: CheckConfig,
    prober: Prober,
    spool: Arc<Spool>,
    metrics: Arc<AgentMetrics>,
    stop: CancellationToken,
) {
    // The first probe soon after start; then on a grid of the interval whose phase comes from
    // the check's name, so many checks spread evenly over their interval (and keep their place
    // across restarts) instead of firing together.
    let spread = check.interval.min(MAX_START_SPREAD);
    let mut next =
        Instant::now() + Duration::from_millis(fastrand::u64(0..spread.as_millis().max(1) as u64));
    let phase = phase_of(&check.name, check.interval);
    let mut last_ok: Option<bool> = None;
    // Passes in a row.
    let mut passes = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let result = probe_isolated(&prober, &check).await;
        let ok = result.ok;
        metrics.probe(&check.name, ok, result.latency_ms / 1000.0);
        if !ok {
            tracing::debug!(check = %check.name, error = result.error.as_deref().unwrap_or(""), "probe failed");
        }
        passes = if ok { passes.saturating_add(1) } else { 0 };
        let record = Record::CheckResult(result);
        let haste = match haste(last_ok, ok, passes, check.success_threshold) {
            Haste::AtOnce => spool::Haste::AtOnce,
            Haste::Flush => spool::Haste::Flush,
            Haste::Steady => spool::Haste::Steady(check.interval),
        };
        spool.push_async(vec![record], haste).await;
        last_ok = Some(ok);
        next = if ok {
            next_on_grid(Instant::now(), check.interval, phase)
        } else {
            // Confirm a failure soon: a real outage shows in a few retries, a blip clears.
            Instant::now() + check.retry_interval()
        };
    }
}

/// How soon a check result should reach the collector.
#[derive(Debug, PartialEq, Eq)]
enum Haste {
    /// A change of state, or the first result.
    AtOnce,
    /// Within the flush interval: what the collector counts to a threshold.
    Flush,
    /// A pass that says nothing new: it rides with a later batch.
    Steady,
}

/// A change of state (and the first result) goes at once; a failure that goes on within the
/// flush interval (the collector counts failures to `failure_threshold`), and so do passes
/// until `success_threshold` of them in a row (`passes`, this one included) have cleared a
/// failure there; a pass after that is steady.
fn haste(last_ok: Option<bool>, ok: bool, passes: u32, success_threshold: u32) -> Haste {
    if last_ok != Some(ok) {
        Haste::AtOnce
    } else if ok && passes > success_threshold.max(1) {
        Haste::Steady
    } else {
        Haste::Flush
    }
}

/// Where in its interval a check's probes fall: stable for a name, spread over the interval.
fn phase_of(name: &str, interval: Duration) -> Duration {
    // A fixed hash (CRC-32), so the phase is the same in every run of every build.
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(u64::from(crc32fast::hash(name.as_bytes())) % ms)
}

/// The first time after `now` that is `phase` past a multiple of `interval` on the wall clock.
fn next_on_grid(now: Instant, interval: Duration, phase: Duration) -> Instant {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let period = interval.as_millis().max(1);
    let into = (since_epoch.as_millis() + period - phase.as_millis() % period) % period;
    let wait = (period - into) as u64;
    now + Duration::from_millis(wait.max(1))
}

/// Runs one probe in a task of its own, so that a panic in a probe fails only its result.
pub async fn probe_isolated(prober: &Prober, check: &CheckConfig) -> CheckResult {
    let (p, c) = (prober.clone(), check.clone());
    isolated(check, async move { p.probe(&c).await }).await
}

/// Runs `probe` in a task of its own; a panic becomes a failed result of `check`. The task is
/// spawned here, not at the first poll, so the future this returns holds only its handle: a
/// check's own task stays small between probes instead of keeping room for the largest probe.
fn isolated(
    check: &CheckConfig,
    probe: impl std::future::Future<Output = CheckResult> + Send + 'static,
) -> impl std::future::Future<Output = CheckResult> {
    let started = chrono::Utc::now();
    let task = tokio::spawn(probe);
    let (name, kind) = (check.name.clone(), check.kind);
    async move {
        match task.await {
            Ok(r) => r,
            Err(e) => CheckResult {
                check: name,
                check_type: Some(kind),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_spread_over_their_interval_and_keep_their_place() {
        let interval = Duration::from_secs(60);
        let phases: Vec<Duration> = (0..200)
            .map(|i| phase_of(&format!("check-{i}"), interval))
            .collect();
        assert_eq!(
            phase_of("check-7", interval),
            phases[7],
            "stable for a name"
        );
        // Spread: every 10 s slice of the minute holds some of 200 checks.
        for slice in 0..6 {
            let n = phases.iter().filter(|p| p.as_secs() / 10 == slice).count();
            assert!(n > 10, "slice {slice} holds {n} of 200");
        }
        let now = Instant::now();
        for p in &phases[..20] {
            let wait = next_on_grid(now, interval, *p) - now;
            assert!(wait > Duration::ZERO && wait <= interval, "{wait:?}");
        }
    }

    #[test]
    fn a_result_waits_only_when_it_says_nothing_new() {
        use Haste::*;
        // Results of one check in order, with success_threshold 3: first result, failures,
        // the passes that clear the failure at the collector, then steady passes.
        let oks = [true, true, false, false, true, true, true, true, true];
        let want = [
            AtOnce, Flush, AtOnce, Flush, AtOnce, Flush, Flush, Steady, Steady,
        ];
        let (mut last, mut passes) = (None, 0);
        for (i, (&ok, w)) in oks.iter().zip(want).enumerate() {
            passes = if ok { passes + 1 } else { 0 };
            assert_eq!(haste(last, ok, passes, 3), w, "result {i}");
            last = Some(ok);
        }
        // With the default success_threshold (1), the second pass in a row is steady.
        assert_eq!(haste(Some(true), true, 2, 1), Steady);
        assert_eq!(haste(Some(false), true, 1, 1), AtOnce);
        assert_eq!(haste(Some(false), false, 0, 1), Flush);
    }

    #[tokio::test]
    async fn a_probe_that_panics_fails_only_its_own_result() {
        let check: CheckConfig = serde_json::from_value(serde_json::json!({
            "name": "boom", "type": "tcp", "address": "127.0.0.1:1"
        }))
        .unwrap();
        let r = isolated(&check, async { panic!("a bug in a probe") }).await;
        assert!(!r.ok);
        assert_eq!(r.check, "boom");
        let e = r.error.unwrap();
        assert!(
            e.starts_with("the probe crashed") && e.contains("a bug in a probe"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failing_check_is_retried_at_its_retry_interval() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(
            Spool::open(crate::spool::SpoolConfig {
                dir: dir.path().to_path_buf(),
                max_bytes: 1 << 20,
                segment_bytes: 1 << 20,
                fsync: crate::spool::FsyncPolicy::Never,
                batch_bytes: 1 << 20,
                flush_interval: Duration::from_secs(1),
                steady_wait: Duration::from_secs(10),
            })
            .unwrap(),
        );
        // A port nobody listens on: every probe fails at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let check: CheckConfig = serde_json::from_value(serde_json::json!({
            "name": "down", "type": "tcp", "address": addr.to_string(),
            "interval": "1s", "timeout": "1s", "retry_interval": "200ms"
        }))
        .unwrap();
        let stop = CancellationToken::new();
        let mut s = Scheduler::new(
            Prober::new(4),
            spool.clone(),
            Arc::new(AgentMetrics::default()),
            stop.clone(),
        );
        s.apply(vec![check]);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stop.cancel();
        // The first probe within 1 s, then one every 200 ms while it fails: at least 6 in
        // 2.5 s, where the interval alone would give at most 3.
        let mut got = 0;
        while let Some(b) = spool.next_batch(100) {
            got += b.records.len();
            spool.ack(&b.batch_id);
        }
        assert!(got >= 6, "{got} probes in 2.5 s");
    }
}
