//! What rule evaluation queues in the outbox: routes and groups, silences and maintenance that
//! hold a firing back until they end, agent outages that hold their checks' alerts, reminders
//! that stop at an acknowledgement (which tells the channels that had the firing, once), resolves that follow only a sent firing, and a restart that
//! queues nothing twice. Time is passed in explicitly, so nothing here sleeps.

mod support;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lookout_collector::notify::ack::acknowledge;
use lookout_collector::state::AppState;
use lookout_collector::store::alerting::{AlertState, Notification, Silence};
use lookout_protocol::{CheckResult, MetricSample, MetricType, Record, Timings};

const BASE: &str = r#"
[[agents]]
name = "edge-1"
token = "edge-1-token-0123456789abcdef"

[[agents]]
name = "edge-2"
token = "edge-2-token-0123456789abcdef"
agent_timeout = "20s"

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
interval = "10s"
timeout = "2s"
failure_threshold = 1
quorum = 1

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "2s"
failure_threshold = 1
severity = "warning"

[[channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[channels]]
name = "mail"
type = "email"
url = "smtp://127.0.0.1:25"
from = "lookout@example.com"
to = ["ops@example.com"]
"#;

const ROUTES: &str = r#"
[[routes]]
match = { severity = "critical" }
channels = ["hook", "mail"]
group_wait = "2s"
repeat_interval = "1h"

[[routes]]
channels = ["hook"]
group_by = ["check"]
group_wait = "0s"
"#;

async fn collector(dir: &Path, extra: &str) -> Arc<AppState> {
    support::collector_state(dir, &format!("{BASE}{ROUTES}{extra}")).await
}

fn t0() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_793_491_200_000).unwrap()
}

fn result(check: &str, at: DateTime<Utc>, ok: bool) -> CheckResult {
    CheckResult {
        check: check.into(),
        check_type: None,
        time: at,
        ok,
        latency_ms: 1.0,
        error: (!ok).then(|| "connection refused".to_string()),
        status_code: None,
        cert_expiry: None,
        timings: Timings::default(),
    }
}

async fn send(s: &AppState, agent: &str, at: DateTime<Utc>, results: &[CheckResult]) {
    let records: Vec<Record> = results.iter().cloned().map(Record::CheckResult).collect();
    s.rules.on_batch(agent, at, &records).await.unwrap();
}

/// Everything queued and not yet taken, as (channel, kind, subject, group key); taken so the
/// next call shows only what came after.
async fn take(s: &AppState) -> Vec<(String, String, String, String)> {
    let far = Utc::now() + Duration::days(3650);
    let rows: Vec<Notification> = s
        .store
        .claim_notifications("test", far, far + Duration::hours(1), 1000)
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in rows {
        s.store.mark_delivered(r.id, "test", far).await.unwrap();
        let subject = r.payload["labels"]["check"]
            .as_str()
            .or(r.payload["labels"]["agent"].as_str())
            .unwrap_or("")
            .to_string();
        out.push((
            r.channel,
            r.payload["kind"].as_str().unwrap().to_string(),
            subject,
            r.group_key,
        ));
    }
    out
}

/// The two rows a critical alert makes through the first route: one per channel.
fn both(kind: &str, subject: &str) -> Vec<(String, String, String, String)> {
    rows(&[
        ("hook", kind, subject, "route0:"),
        ("mail", kind, subject, "route0:"),
    ])
}

fn rows(list: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    list.iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect()
}

#[tokio::test]
async fn routes_pick_channels_and_groups_and_a_resolve_follows_a_sent_firing() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path(), "").await;
    let t = t0();
    send(
        &s,
        "edge-1",
        t,
        &[result("api", t, false), result("db", t, false)],
    )
    .await;
    assert_eq!(
        take(&s).await,
        rows(&[
            ("hook", "firing", "api", "route0:"),
            ("mail", "firing", "api", "route0:"),
            ("hook", "firing", "db", "route1:check=db"),
        ])
    );
    send(
        &s,
        "edge-1",
        t + Duration::seconds(10),
        &[result("api", t + Duration::seconds(10), true)],
    )
    .await;
    assert_eq!(take(&s).await, both("resolved", "api"));
    // The alerts API's view: each notification with how it stands.
    let alerts = s.store.alerts(&[AlertState::Resolved]).await.unwrap();
    let api = alerts.iter().find(|a| a.labels["check"] == "api").unwrap();
    let deliveries = s.store.deliveries(api.id).await.unwrap();
    assert_eq!(deliveries.len(), 4, "{deliveries:?}");
}

#[tokio::test]
async fn a_silenced_alert_is_recorded_quietly_and_notified_when_the_silence_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path(), "").await;
    let now = Utc::now();
    let id = s
        .store
        .create_silence(&Silence {
            id: 0,
            matchers: [("check".to_string(), "api".to_string())].into(),
            starts: now - Duration::minutes(1),
            ends: now + Duration::hours(1),
            created_by: "alice".into(),
            comment: "deploy".into(),
        })
        .await
        .unwrap();
    send(&s, "edge-1", now, &[result("api", now, false)]).await;
    assert_eq!(
        s.store.alerts(&[AlertState::Firing]).await.unwrap().len(),
        1
    );
    assert!(take(&s).await.is_empty(), "silenced: nothing queued");
    s.rules.tick(now).await.unwrap();
    assert!(take(&s).await.is_empty(), "still silenced");
    assert!(s.store.expire_silence(id, Utc::now()).await.unwrap());
    s.rules.tick(Utc::now()).await.unwrap();
    assert_eq!(take(&s).await, both("firing", "api"));
    // Sent once: the next tick queues nothing more (the reminder is an hour away).
    s.rules.tick(Utc::now()).await.unwrap();
    assert!(take(&s).await.is_empty());
}

#[tokio::test]
async fn an_alert_silenced_throughout_resolves_without_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(
        dir.path(),
        r#"
[[maintenance]]
name = "db upgrade"
match = { check = "db" }
starts = "2020-01-01T00:00:00Z"
ends = "2100-01-01T00:00:00Z"
"#,
    )
    .await;
    let now = Utc::now();
    send(
        &s,
        "edge-1",
        now,
        &[result("db", now, false), result("api", now, false)],
    )
    .await;
    // The window covers db only.
    assert_eq!(take(&s).await, both("firing", "api"));
    let later = now + Duration::seconds(10);
    send(&s, "edge-1", later, &[result("db", later, true)]).await;
    s.rules.tick(later).await.unwrap();
    assert!(
        take(&s).await.is_empty(),
        "db fired in maintenance: its resolve is not sent either"
    );
    let resolved = s.store.alerts(&[AlertState::Resolved]).await.unwrap();
    assert_eq!(resolved.len(), 1, "the quiet alert is still in the history");
}

#[tokio::test]
async fn a_down_agent_is_one_page_and_its_backlog_does_not_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path(), "").await;
    let t = Utc::now();
    send(&s, "edge-2", t, &[result("api", t, true)]).await;
    // edge-2 (timeout 20 s) goes silent: one page for the host.
    s.rules.tick(t + Duration::seconds(25)).await.unwrap();
    assert_eq!(take(&s).await, both("firing", "edge-2"));
    // It comes back with a backlog of failures from while it was cut off: the host resolves,
    // the check's alert is recorded but held.
    let back = t + Duration::seconds(60);
    let backlog: Vec<CheckResult> = (1..5)
        .map(|i| result("api", t + Duration::seconds(10 * i), false))
        .collect();
    send(&s, "edge-2", back, &backlog).await;
    assert_eq!(
        s.store.alerts(&[AlertState::Firing]).await.unwrap().len(),
        1
    );
    assert_eq!(take(&s).await, both("resolved", "edge-2"));
    s.rules.tick(back + Duration::seconds(1)).await.unwrap();
    assert!(take(&s).await.is_empty(), "backlog alone does not page");
    // A fresh failure after its return confirms the outage: now it pages.
    let fresh = back + Duration::seconds(5);
    send(&s, "edge-2", fresh, &[result("api", fresh, false)]).await;
    s.rules.tick(fresh).await.unwrap();
    assert_eq!(take(&s).await, both("firing", "api"));
}

#[tokio::test]
async fn reminders_repeat_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path(), "").await;
    let t = Utc::now();
    send(
        &s,
        "edge-1",
        t,
        &[result("api", t, false), result("db", t, false)],
    )
    .await;
    assert_eq!(take(&s).await.len(), 3);
    // edge-1 keeps reporting, so it is not down.
    let hour = t + Duration::minutes(61);
    send(&s, "edge-1", hour, &[]).await;
    s.rules.tick(hour).await.unwrap();
    // Only the critical route repeats; db's route has no repeat_interval.
    assert_eq!(take(&s).await, both("reminder", "api"));
    send(&s, "edge-1", hour + Duration::minutes(1), &[]).await;
    s.rules.tick(hour + Duration::minutes(1)).await.unwrap();
    assert!(take(&s).await.is_empty(), "next reminder an hour later");
    let firing = s.store.alerts(&[AlertState::Firing]).await.unwrap();
    let api = firing.iter().find(|a| a.labels["check"] == "api").unwrap();
    let ack = |by: &'static str| {
        let s = s.clone();
        async move {
            acknowledge(s.store.as_ref(), api.id, by, Utc::now())
                .await
                .unwrap()
        }
    };
    assert!(ack("alice").await);
    // The channels that had its firing hear who took it, once.
    assert_eq!(take(&s).await, both("acknowledged", "api"));
    assert!(
        ack("bob").await,
        "a second acknowledgement is answered as the first"
    );
    assert!(take(&s).await.is_empty(), "and queues nothing");
    let two = t + Duration::minutes(125);
    send(&s, "edge-1", two, &[]).await;
    s.rules.tick(two).await.unwrap();
    assert!(take(&s).await.is_empty(), "acknowledged: no reminder");
}

#[tokio::test]
async fn a_restart_while_firing_queues_nothing_again_and_still_sends_the_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let t = Utc::now();
    {
        let s = collector(dir.path(), "").await;
        send(&s, "edge-1", t, &[result("api", t, false)]).await;
        assert_eq!(take(&s).await.len(), 2);
    }
    let s = collector(dir.path(), "").await;
    let later = t + Duration::seconds(10);
    send(&s, "edge-1", later, &[result("api", later, false)]).await;
    s.rules.tick(later).await.unwrap();
    assert!(
        take(&s).await.is_empty(),
        "still firing after the restart: not sent again"
    );
    let up = later + Duration::seconds(10);
    send(&s, "edge-1", up, &[result("api", up, true)]).await;
    assert_eq!(take(&s).await, both("resolved", "api"));
}

const THRESHOLDS: &str = r#"
[[rules]]
name = "disk-full"
metric = "system.filesystem.utilization"
labels = { mountpoint = "/" }
aggregate = "max"
window = "30s"
above = 0.9
for = "20s"
severity = "critical"

[[rules]]
name = "tls-expiry"
metric = "check.cert_days_left"
by = ["check"]
aggregate = "min"
window = "1h"
below = 14
severity = "critical"
"#;

fn disk(at: DateTime<Utc>, value: f64) -> Record {
    Record::Metric(MetricSample {
        name: "system.filesystem.utilization".into(),
        labels: [("mountpoint".to_string(), "/".to_string())].into(),
        time: at,
        value,
        metric_type: MetricType::Gauge,
    })
}

#[tokio::test]
async fn metric_rules_fire_after_their_hold_and_tls_expiry_is_a_rule_on_probe_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path(), THRESHOLDS).await;
    let t = Utc::now();
    let at = |secs| t + Duration::seconds(secs);
    s.rules
        .on_batch("edge-1", at(0), &[disk(at(0), 0.95)])
        .await
        .unwrap();
    assert!(take(&s).await.is_empty(), "pending: 0 of 20 s");
    let pending = s.store.alerts(&[AlertState::Pending]).await.unwrap();
    assert_eq!(
        pending[0].fingerprint,
        "disk-full/agent=edge-1,mountpoint=/"
    );
    s.rules
        .on_batch("edge-1", at(10), &[disk(at(10), 0.97)])
        .await
        .unwrap();
    assert!(take(&s).await.is_empty());
    s.rules
        .on_batch("edge-1", at(20), &[disk(at(20), 0.96)])
        .await
        .unwrap();
    assert_eq!(take(&s).await, both("firing", "edge-1"));
    let firing = s.store.alerts(&[AlertState::Firing]).await.unwrap();
    assert_eq!(
        firing[0].summary,
        "disk-full: max system.filesystem.utilization{mountpoint=/} on edge-1 = 0.97, above 0.9"
    );
    // Under again once the high samples leave the 30 s window.
    s.rules
        .on_batch("edge-1", at(40), &[disk(at(40), 0.5)])
        .await
        .unwrap();
    assert!(take(&s).await.is_empty(), "max over the window still 0.96");
    s.rules
        .on_batch("edge-1", at(60), &[disk(at(60), 0.5)])
        .await
        .unwrap();
    assert_eq!(take(&s).await.len(), 2, "resolved to both channels");

    // A certificate 10 days from expiry, seen by two agents: one alert for the check.
    let mut r = result("api", at(70), true);
    r.cert_expiry = Some(at(70) + Duration::days(10));
    send(&s, "edge-1", at(70), &[r.clone()]).await;
    send(&s, "edge-2", at(70), &[r]).await;
    let notes = take(&s).await;
    assert_eq!(notes, both("firing", "api"));
    let tls = s.store.alerts(&[AlertState::Firing]).await.unwrap();
    assert_eq!(tls[0].fingerprint, "tls-expiry/check=api");
    assert!(
        tls[0]
            .summary
            .starts_with("tls-expiry: min check.cert_days_left{check=api} = 10"),
        "{}",
        tls[0].summary
    );
}

#[tokio::test]
async fn log_rules_page_through_the_same_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(
        dir.path(),
        r#"
[[log_rules]]
name = "panics"
pattern = "panicked at"
agents = ["name=edge-1"]
threshold = 1
window = "1m"
severity = "critical"
"#,
    )
    .await;
    let t = Utc::now();
    let at = |secs| t + Duration::seconds(secs);
    let log = |secs, text: &str| {
        Record::Log(lookout_protocol::LogRecord {
            time: at(secs),
            source: "/var/log/app.log".into(),
            level: Some("error".into()),
            text: text.into(),
            position: None,
        })
    };
    let lines = [
        log(0, "thread 'main' panicked at src/lib.rs:10"),
        log(1, "request served"),
    ];
    s.rules.on_batch("edge-1", at(1), &lines).await.unwrap();
    s.rules
        .on_batch("edge-2", at(1), &[log(1, "thread 'x' panicked at a.rs")])
        .await
        .unwrap();
    assert!(
        take(&s).await.is_empty(),
        "one line is not more than 1; edge-2 not selected"
    );
    s.rules
        .on_batch("edge-1", at(5), &[log(5, "thread 'y' panicked at b.rs")])
        .await
        .unwrap();
    assert_eq!(take(&s).await, both("firing", "edge-1"));
    let firing = s.store.alerts(&[AlertState::Firing]).await.unwrap();
    assert_eq!(firing[0].fingerprint, "panics/agent=edge-1");
    // Quiet for a minute: the tick resolves it (both agents keep shipping: neither is down).
    s.rules.on_batch("edge-1", at(70), &[]).await.unwrap();
    s.rules.on_batch("edge-2", at(70), &[]).await.unwrap();
    s.rules.tick(at(70)).await.unwrap();
    assert_eq!(take(&s).await, both("resolved", "edge-1"));
}

#[tokio::test]
async fn an_agent_that_polls_slowly_gets_a_longer_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = collector(dir.path(), "").await;
    let t = Utc::now();
    // edge-1 asks for its assignments every minute: down after 3 minutes of silence, not 30 s.
    s.rules
        .on_poll("edge-1", t, Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    s.rules.on_poll("edge-2", t, None).await.unwrap();
    s.rules.tick(t + Duration::seconds(100)).await.unwrap();
    // edge-2 has its own agent_timeout of 20 s.
    assert_eq!(take(&s).await, both("firing", "edge-2"));
    s.rules.tick(t + Duration::seconds(181)).await.unwrap();
    assert_eq!(take(&s).await, both("firing", "edge-1"));
}
