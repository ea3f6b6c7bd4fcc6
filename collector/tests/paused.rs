//! Time-dependent alerting with tokio's clock paused: a metric rule's `for` and
//! `keep_firing_for`, a log rule's window, a push monitor's period and grace, an agent's
//! timeout, and a route's `group_wait`. The whole pipeline runs (ingest handler, rule engine
//! with its ticks, notification sender, a webhook receiver on loopback) and time moves only when
//! a test calls `tokio::time::advance`, so a test can look just before and just after each edge.
//!
//! The store does its I/O on sqlx's own threads, which tokio cannot see: left idle while waiting
//! for it, a paused runtime would jump its clock to the next timer. A task that only yields keeps
//! the runtime busy, so the clock never moves by itself.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use lookout_collector::clock;
use lookout_collector::state::AppState;
use lookout_collector::store::alerting::{AlertRow, AlertState};
use lookout_protocol::{
    Batch, CheckResult, Encoding, LogRecord, MetricSample, MetricType, PROTOCOL_VERSION, Record,
    Timings, encode_batch,
};
use serde_json::Value;
use support::http_peer::{Answer, Peer};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const AGENTS: &str = r#"
[[agents]]
name = "web-1"
token = "web-1-token-0123456789abcdef"
labels = { role = "web" }
agent_timeout = "{timeout}"

[[channels]]
name = "hook"
type = "webhook"
url = "http://{peer}/hook"
timeout = "1h"
"#;

/// A collector over a fresh SQLite file with its rule ticks and notification sender running,
/// and the webhook receiver its one channel posts to.
///
/// The channels' `timeout` is an hour: the clock jumps by whole ticks while a request may be in
/// flight, and a receiver slow in real time (a loaded machine) must not time out in test time.
struct Harness {
    state: Arc<AppState>,
    peer: Peer,
    stop: CancellationToken,
    batches: usize,
    toml: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// With web-1's `agent_timeout` at ten minutes, out of the way of the other rules.
    async fn start(config: &str) -> Harness {
        Self::start_with_agent_timeout("10m", config).await
    }

    async fn start_with_agent_timeout(timeout: &str, config: &str) -> Harness {
        // Before anything awaits the store: from here on the clock moves only when told.
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
        let peer = Peer::start(|_| Answer::new(204, "")).await;
        let dir = tempfile::tempdir().unwrap();
        let agents = AGENTS
            .replace("{peer}", &peer.addr.to_string())
            .replace("{timeout}", timeout);
        // `{peer}` in `config` too: a test's own channels post to the same receiver.
        let toml = format!("{agents}{config}").replace("{peer}", &peer.addr.to_string());
        let state = support::collector_state(dir.path(), &toml).await;
        let stop = CancellationToken::new();
        tokio::spawn(state.notifier.clone().run(stop.clone()));
        tokio::spawn(state.evaluator.clone().run_ticks(stop.clone()));
        Harness {
            state,
            peer,
            stop,
            batches: 0,
            toml,
            _dir: dir,
        }
    }

    /// Stops this collector and starts another on the same database, as a restart (an
    /// upgrade) does.
    async fn restart(&mut self) {
        self.stop.cancel();
        self.state = support::collector_state(self._dir.path(), &self.toml).await;
        self.stop = CancellationToken::new();
        tokio::spawn(self.state.notifier.clone().run(self.stop.clone()));
        tokio::spawn(self.state.evaluator.clone().run_ticks(self.stop.clone()));
    }

    /// Moves the clock on by `by`, in steps no longer than the rule ticks' period, letting the
    /// woken tasks run between.
    async fn pass(&self, by: Duration) {
        let mut left = by;
        while !left.is_zero() {
            let step = left.min(lookout_collector::evaluation::TICK_EVERY);
            tokio::time::advance(step).await;
            left -= step;
            settle_briefly().await;
        }
    }

    /// Ships `records` from web-1 through the ingest handler, as the agent would.
    async fn ship(&mut self, records: Vec<Record>) {
        self.batches += 1;
        let batch = Batch {
            version: PROTOCOL_VERSION,
            agent: "web-1".into(),
            batch_id: format!("b{}", self.batches),
            records,
        };
        let body = encode_batch(&batch, Encoding::Identity).unwrap();
        let req = Request::post("/v1/ingest")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, "Bearer web-1-token-0123456789abcdef")
            .body(Body::from(body))
            .unwrap();
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    async fn ping(&self, path: &str) {
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }

    async fn alert(&self, rule: &str) -> Option<AlertRow> {
        self.state
            .store
            .alerts(&AlertState::ALL)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.rule == rule)
    }

    /// Asserts that `rule`'s alert is in state `want`, waiting up to ten seconds of real time
    /// for it (the clock standing still): a tick woken by the last step may still be at its
    /// store.
    async fn expect_state(&self, rule: &str, want: Option<AlertState>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.alert(rule).await.map(|a| a.state);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{rule}: {got:?}, expected {want:?}"
            );
            tokio::task::yield_now().await;
        }
    }

    /// The webhook messages received so far, as (kinds of its alerts, rules of its alerts).
    fn messages(&self) -> Vec<Vec<(String, String)>> {
        self.peer
            .requests()
            .iter()
            .map(|r| {
                r.json()["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (str_of(&a["kind"]), str_of(&a["rule"])))
                    .collect()
            })
            .collect()
    }

    /// Waits (in real time, the clock standing still) until `n` messages have arrived.
    async fn messages_reach(&self, n: usize) -> Vec<Vec<(String, String)>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Lets woken tasks finish what the store has them waiting on: a short while of real time with
/// the clock standing still.
async fn settle_briefly() {
    let until = Instant::now() + Duration::from_millis(40);
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

fn sample(value: f64) -> Record {
    Record::Metric(MetricSample {
        name: "system.cpu.utilization".into(),
        labels: Default::default(),
        time: clock::now(),
        value,
        metric_type: MetricType::Gauge,
    })
}

fn log_line(text: &str) -> Record {
    Record::Log(LogRecord {
        time: clock::now(),
        source: "/var/log/app.log".into(),
        level: Some("error".into()),
        text: text.into(),
        position: None,
    })
}

fn result(check: &str, ok: bool) -> Record {
    Record::CheckResult(CheckResult {
        check: check.into(),
        check_type: None,
        time: clock::now(),
        ok,
        latency_ms: 3.0,
        error: (!ok).then(|| "status 503, expected 2xx".into()),
        status_code: Some(if ok { 200 } else { 503 }),
        cert_expiry: None,
        timings: Timings::default(),
    })
}

#[tokio::test(start_paused = true)]
async fn a_metric_rule_fires_after_its_for_and_rides_out_a_dip_for_keep_firing_for() {
    let mut h = Harness::start(
        r#"
[[rules]]
name = "cpu-high"
metric = "system.cpu.utilization"
aggregate = "last"
window = "10s"
above = 0.9
for = "60s"
keep_firing_for = "30s"

[[routes]]
channels = ["hook"]
group_wait = "0s"
"#,
    )
    .await;
    // High from t=0, a sample every 10 s: pending until the value has held for 60 s.
    for _ in 0..6 {
        h.ship(vec![sample(0.97)]).await;
        h.pass(Duration::from_secs(10)).await;
    }
    // t=60: the sample at t=50 was the last one before the hold ends.
    h.expect_state("cpu-high", Some(AlertState::Pending)).await;
    assert!(h.messages().is_empty());
    h.ship(vec![sample(0.97)]).await;
    h.expect_state("cpu-high", Some(AlertState::Firing)).await;
    assert_eq!(
        h.messages_reach(1).await,
        [[("firing".into(), "cpu-high".into())]]
    );
    // A dip shorter than keep_firing_for changes nothing.
    h.pass(Duration::from_secs(10)).await;
    h.ship(vec![sample(0.2)]).await;
    h.pass(Duration::from_secs(20)).await;
    h.ship(vec![sample(0.2)]).await;
    h.expect_state("cpu-high", Some(AlertState::Firing)).await;
    h.pass(Duration::from_secs(10)).await;
    h.ship(vec![sample(0.98)]).await;
    // Low for longer than that: resolved, once.
    h.pass(Duration::from_secs(10)).await;
    h.ship(vec![sample(0.1)]).await;
    h.pass(Duration::from_secs(29)).await;
    h.ship(vec![sample(0.1)]).await;
    h.expect_state("cpu-high", Some(AlertState::Firing)).await;
    h.pass(Duration::from_secs(2)).await;
    h.ship(vec![sample(0.1)]).await;
    h.expect_state("cpu-high", Some(AlertState::Resolved)).await;
    let got = h.messages_reach(2).await;
    assert_eq!(
        got,
        [
            [("firing".into(), "cpu-high".into())],
            [("resolved".into(), "cpu-high".into())]
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_log_rule_counts_within_its_sliding_window() {
    let mut h = Harness::start(
        r#"
[[log_rules]]
name = "panics"
pattern = "panic"
threshold = 2
window = "60s"

[[routes]]
channels = ["hook"]
group_wait = "0s"
"#,
    )
    .await;
    // Three matching lines, but never more than two within a minute.
    h.ship(vec![log_line("thread main panicked"), log_line("ok")])
        .await;
    h.pass(Duration::from_secs(40)).await;
    h.ship(vec![log_line("panic again")]).await;
    h.pass(Duration::from_secs(30)).await;
    h.ship(vec![log_line("a third panic")]).await;
    h.expect_state("panics", None).await;
    // A fourth within the minute of the last two: three in the window, more than two.
    h.pass(Duration::from_secs(20)).await;
    h.ship(vec![log_line("panic: index out of range")]).await;
    h.expect_state("panics", Some(AlertState::Firing)).await;
    assert_eq!(
        h.messages_reach(1).await,
        [[("firing".into(), "panics".into())]]
    );
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_is_late_after_its_period_and_down_after_its_grace() {
    let h = Harness::start(
        r#"
[[heartbeats]]
name = "backup"
token = "backup-token-0123456789abcdef"
period = "1h"
grace = "5m"

[[routes]]
channels = ["hook"]
group_wait = "0s"
"#,
    )
    .await;
    h.ping("/v1/ping/backup?token=backup-token-0123456789abcdef")
        .await;
    // Most of the hour at once: the tick that wakes sees the time it wakes at.
    tokio::time::advance(Duration::from_secs(3570)).await;
    h.pass(Duration::from_secs(20)).await;
    h.expect_state("heartbeat", None).await;
    // Overdue: late at the next tick (every 5 s), not yet down.
    h.pass(Duration::from_secs(20)).await;
    h.expect_state("heartbeat", Some(AlertState::Pending)).await;
    h.pass(Duration::from_secs(285)).await;
    h.expect_state("heartbeat", Some(AlertState::Pending)).await;
    assert!(h.messages().is_empty());
    // At 3,895 s still late; past the grace (at 3,900 s): down, and one message.
    h.pass(Duration::from_secs(10)).await;
    h.expect_state("heartbeat", Some(AlertState::Firing)).await;
    assert_eq!(
        h.messages_reach(1).await,
        [[("firing".into(), "heartbeat".into())]]
    );
    // The ping that comes at last resolves it at once.
    h.ping("/v1/ping/backup?token=backup-token-0123456789abcdef")
        .await;
    h.expect_state("heartbeat", Some(AlertState::Resolved))
        .await;
    assert_eq!(h.messages_reach(2).await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_silent_agent_is_down_after_its_timeout_and_back_with_its_next_batch() {
    let mut h = Harness::start_with_agent_timeout(
        "30s",
        r#"
[[routes]]
channels = ["hook"]
group_wait = "0s"
"#,
    )
    .await;
    h.ship(vec![sample(0.1)]).await;
    // agent_timeout = "{timeout}": still up just before, down at the first tick after.
    h.pass(Duration::from_secs(29)).await;
    h.expect_state("agent", None).await;
    h.pass(Duration::from_secs(7)).await;
    h.expect_state("agent", Some(AlertState::Firing)).await;
    let alert = h.alert("agent").await.expect("agent alert");
    assert!(alert.summary.contains("web-1"), "{}", alert.summary);
    assert_eq!(
        h.messages_reach(1).await,
        [[("firing".into(), "agent".into())]]
    );
    h.ship(vec![sample(0.1)]).await;
    h.expect_state("agent", Some(AlertState::Resolved)).await;
    assert_eq!(h.messages_reach(2).await.len(), 2);
}

/// A collector restart (an upgrade) does not page an agent whose timeout is shorter than the
/// time it may take to come back (its retry backoff, its next assignments poll): it is given
/// `RESTART_GRACE` (30 s) from the start, its own timeout again once heard from, and an agent
/// that never comes back is paged after the grace.
#[tokio::test(start_paused = true)]
async fn a_restart_gives_agents_time_to_reconnect_before_paging() {
    let mut h = Harness::start_with_agent_timeout("5s", "").await;
    h.ship(vec![sample(0.1)]).await;
    h.pass(Duration::from_secs(2)).await;
    h.restart().await;
    // Silent 25 s after the start, five times its timeout: still within the grace.
    h.pass(Duration::from_secs(25)).await;
    h.expect_state("agent", None).await;
    h.ship(vec![sample(0.1)]).await;
    h.expect_state("agent", None).await;
    // Heard from: its own 5 s apply again.
    h.pass(Duration::from_secs(11)).await;
    h.expect_state("agent", Some(AlertState::Firing)).await;

    // One that never comes back after a restart: down once the grace has passed.
    let mut h = Harness::start_with_agent_timeout("5s", "").await;
    h.ship(vec![sample(0.1)]).await;
    h.restart().await;
    h.pass(Duration::from_secs(25)).await;
    h.expect_state("agent", None).await;
    h.pass(Duration::from_secs(11)).await;
    h.expect_state("agent", Some(AlertState::Firing)).await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_refused_because_the_collector_is_busy_is_not_down() {
    let mut h = Harness::start_with_agent_timeout(
        "30s",
        r#"
[[routes]]
channels = ["hook"]
group_wait = "0s"
"#,
    )
    .await;
    h.ship(vec![sample(0.1)]).await;
    // At 25 s its next batch is refused with 429: every ingest slot is taken.
    h.pass(Duration::from_secs(25)).await;
    let slots = h.state.ingest_slots().clone();
    let held = slots
        .clone()
        .acquire_many_owned(slots.available_permits() as u32)
        .await
        .unwrap();
    let req = Request::post("/v1/ingest")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer web-1-token-0123456789abcdef")
        .body(Body::from("{}"))
        .unwrap();
    let resp = lookout_collector::router(h.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(held);
    // 36 s after its last stored batch, 11 s after it was refused: not silent, not down.
    h.pass(Duration::from_secs(11)).await;
    h.expect_state("agent", None).await;
    // Silent for real from 25 s on: down at the first tick after 55 s (ticks every 5 s).
    h.pass(Duration::from_secs(26)).await;
    h.expect_state("agent", Some(AlertState::Firing)).await;
}

#[tokio::test(start_paused = true)]
async fn group_wait_gathers_a_burst_into_one_message() {
    let mut h = Harness::start(
        r#"
[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
failure_threshold = 1

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:1"
interval = "10s"
failure_threshold = 1

[[routes]]
channels = ["hook"]
group_wait = "30s"
"#,
    )
    .await;
    h.ship(vec![result("api", false)]).await;
    h.pass(Duration::from_secs(10)).await;
    h.ship(vec![result("db", false), result("api", false)])
        .await;
    h.expect_state("uptime", Some(AlertState::Firing)).await;
    // 29 s after the first alert: nothing sent yet.
    h.pass(Duration::from_secs(19)).await;
    settle_briefly().await;
    assert!(h.messages().is_empty(), "{:?}", h.messages());
    // At 30 s: one message with both.
    h.pass(Duration::from_secs(2)).await;
    let got = h.messages_reach(1).await;
    assert_eq!(
        got,
        [[
            ("firing".into(), "uptime".into()),
            ("firing".into(), "uptime".into())
        ]]
    );
    let body = h.peer.requests()[0].json();
    let checks: Vec<_> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(&a["labels"]["check"]))
        .collect();
    assert_eq!(checks, ["api", "db"]);
    // And nothing more: no second message for the second alert.
    h.pass(Duration::from_secs(60)).await;
    assert_eq!(h.messages().len(), 1);
}

/// The firing messages each path of the receiver has had, in order: (path, check).
fn firings(h: &Harness) -> Vec<String> {
    h.peer
        .requests()
        .iter()
        .filter(|r| {
            r.json()["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n["kind"] == "firing"))
        })
        .map(|r| r.path.clone())
        .collect()
}

/// Waits (up to ten seconds of real time) until `want` firing messages arrived, and a moment
/// more, for one too many to show. The clock moves on by the sender's shortest wait at a time,
/// two seconds in all at most: a round that ends after a step fell due (slow in real time on a
/// loaded machine) sleeps that long before the next.
async fn firings_reach(h: &Harness, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut moved = Duration::ZERO;
    while firings(h).len() < want && Instant::now() < deadline {
        if moved < Duration::from_secs(2) {
            tokio::time::advance(SHORTEST_WAIT).await;
            moved += SHORTEST_WAIT;
        }
        settle_briefly().await;
    }
    settle_briefly().await;
    firings(h)
}

/// The notification sender's shortest sleep between rounds (`notify::worker`).
const SHORTEST_WAIT: Duration = Duration::from_millis(50);

#[tokio::test(start_paused = true)]
async fn an_escalation_walks_its_steps_once_across_a_restart_repeats_and_stops_when_acknowledged() {
    let mut h = Harness::start_with_agent_timeout(
        "1h",
        r#"
[[channels]]
name = "slack"
type = "webhook"
url = "http://{peer}/slack"
timeout = "1h"

[[channels]]
name = "pushover"
type = "webhook"
url = "http://{peer}/pushover"
timeout = "1h"

[[channels]]
name = "pd"
type = "webhook"
url = "http://{peer}/pd"
timeout = "1h"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
failure_threshold = 1

[[escalations]]
name = "on-call"
steps = [
  { after = "0s", channels = ["slack"] },
  { after = "1m", channels = ["pushover"] },
  { after = "3m", channels = ["pd"] },
]
repeat = "2m"

[[routes]]
match = { check = "api" }
escalation = "on-call"
group_wait = "0s"
"#,
    )
    .await;
    h.ship(vec![result("api", false)]).await;
    h.expect_state("uptime", Some(AlertState::Firing)).await;
    h.pass(Duration::from_secs(1)).await;
    assert_eq!(firings_reach(&h, 1).await, ["/slack"]);
    // The second step at a minute, not before.
    h.pass(Duration::from_secs(54)).await;
    assert_eq!(firings(&h), ["/slack"]);
    h.pass(Duration::from_secs(10)).await;
    assert_eq!(firings_reach(&h, 2).await, ["/slack", "/pushover"]);
    // A restart between two steps neither repeats one nor skips the next.
    h.restart().await;
    h.pass(Duration::from_secs(110)).await;
    assert_eq!(firings(&h), ["/slack", "/pushover"]);
    h.pass(Duration::from_secs(10)).await;
    assert_eq!(firings_reach(&h, 3).await, ["/slack", "/pushover", "/pd"]);
    // The last step again every two minutes.
    h.pass(Duration::from_secs(115)).await;
    assert_eq!(firings(&h).len(), 3);
    h.pass(Duration::from_secs(10)).await;
    assert_eq!(
        firings_reach(&h, 4).await,
        ["/slack", "/pushover", "/pd", "/pd"]
    );
    // Acknowledged: nothing more of the policy, however long it fires.
    let alert = h.alert("uptime").await.unwrap();
    assert!(
        lookout_collector::notify::ack::acknowledge(
            &*h.state.store,
            alert.id,
            "alice",
            clock::now()
        )
        .await
        .unwrap()
    );
    h.pass(Duration::from_secs(600)).await;
    settle_briefly().await;
    assert_eq!(firings(&h), ["/slack", "/pushover", "/pd", "/pd"]);
    let deliveries = h.state.store.deliveries(alert.id).await.unwrap();
    let cancelled: Vec<&str> = deliveries
        .iter()
        .filter(|d| d.state == lookout_collector::store::alerting::DeliveryState::Cancelled)
        .map(|d| d.channel.as_str())
        .collect();
    assert_eq!(cancelled, ["pd"], "{deliveries:?}");
}
