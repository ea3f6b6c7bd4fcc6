//! The outbox worker against real peers: an SMTP server that is down for a while, the strict
//! fakes of each HTTP channel's vendor answering 429 (with the wait it asks for, in the vendor's
//! way: `Retry-After`, in the body as Telegram does, in headers of its own as Opsgenie does, or
//! none as ntfy and Pushover) and then 5xx, a refusal given up at once, storm control's digest,
//! and a sender that dies holding a lease. Each notification must arrive exactly once. Rounds
//! are driven with an explicit time, so nothing here waits for backoff.

mod support;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use lookout_collector::notify::{AlertNote, NoteKind, Worker};
use lookout_collector::store::alerting::{AlertState, DeliveryState, NewNotification, Transition};
use lookout_collector::store::{self, Store};
use lookout_collector::telemetry::Metrics;
use lookout_config::CollectorConfig;
use support::http_peer::{Answer, Peer};
use support::smtp::{SinkOptions, SmtpSink};

async fn open(dir: &Path) -> Arc<dyn Store> {
    store::open(
        &format!("sqlite://{}", dir.join("t.db").display()),
        &Default::default(),
    )
    .await
    .unwrap()
}

fn worker(store: &Arc<dyn Store>, channels: &str) -> (Worker, Arc<Metrics>) {
    worker_giving_up(store, channels, std::time::Duration::from_secs(3600))
}

fn worker_giving_up(
    store: &Arc<dyn Store>,
    channels: &str,
    give_up_after: std::time::Duration,
) -> (Worker, Arc<Metrics>) {
    let config = CollectorConfig::parse(Path::new("t.toml"), channels, &|_| None).unwrap();
    let metrics = Arc::new(Metrics::default());
    let w = Worker::new(
        store.clone(),
        lookout_collector::notify::senders(&config.channels),
        give_up_after,
        Arc::default(),
        metrics.clone(),
    );
    (w, metrics)
}

/// A worker for `channels`, their secrets taken from `env` as `${VAR}`s.
fn worker_with_env(
    store: &Arc<dyn Store>,
    channels: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Worker {
    let config = CollectorConfig::parse(Path::new("t.toml"), channels, env).unwrap();
    Worker::new(
        store.clone(),
        lookout_collector::notify::senders(&config.channels),
        std::time::Duration::from_secs(3600),
        Arc::default(),
        Arc::new(Metrics::default()),
    )
}

/// The value of one line of the exposition, `name{labels} value`.
fn counter(metrics: &Metrics, line_start: &str) -> f64 {
    let text = metrics.encode();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Queues one firing note per check for `channel`, each in its own group; returns the alert
/// ids.
async fn queue(
    store: &Arc<dyn Store>,
    channel: &str,
    checks: &[&str],
    at: DateTime<Utc>,
) -> Vec<i64> {
    let mut ids = Vec::new();
    for check in checks {
        let labels: std::collections::BTreeMap<String, String> = [
            ("check".to_string(), check.to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]
        .into();
        let note = AlertNote {
            fingerprint: format!("uptime/{check}"),
            rule: "uptime".into(),
            labels: labels.clone(),
            kind: NoteKind::Firing,
            summary: format!("{check} is down: connection refused"),
            fired_at: at,
            resolved_at: None,
            link: None,
            acked_by: None,
            ack_link: None,
            detail: None,
        };
        let t = Transition {
            fingerprint: note.fingerprint.clone(),
            rule: "uptime".into(),
            labels,
            from: None,
            to: AlertState::Firing,
            at,
            summary: note.summary.clone(),
            fired_at: Some(at),
            notified_at: Some(at),
            recorded_at: at,
        };
        let row = NewNotification {
            channel: channel.into(),
            dedup_key: format!("{}/firing/{}", note.fingerprint, at.timestamp_millis()),
            group_key: format!("route0:check={check}"),
            payload: serde_json::to_value(&note).unwrap(),
            not_before: at,
            escalation: None,
        };
        ids.push(store.record_transition(&t, &[row]).await.unwrap().unwrap());
    }
    ids
}

async fn states(store: &Arc<dyn Store>, alert: i64) -> Vec<(DeliveryState, u32)> {
    store
        .deliveries(alert)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.state, d.attempts))
        .collect()
}

#[tokio::test]
async fn smtp_down_for_a_while_then_up_delivers_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let port = support::free_port();
    let (w, metrics) = worker(
        &store,
        &format!(
            "[[channels]]\nname = \"mail\"\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"lookout@example.com\"\nto = [\"ops@example.com\"]\n"
        ),
    );
    let now = Utc::now();
    let ids = queue(&store, "mail", &["api"], now).await;
    // Down: the attempt fails and is rescheduled, not given up.
    w.round(now).await.unwrap();
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Pending, 1)]);
    let error = store.deliveries(ids[0]).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");
    w.round(now + Duration::minutes(1)).await.unwrap();
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Pending, 2)]);
    // Up: the next round delivers it, once.
    let sink = SmtpSink::start(SinkOptions {
        port: Some(port.get()),
        ..Default::default()
    });
    w.round(now + Duration::minutes(5)).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 3)]
    );
    w.round(now + Duration::minutes(10)).await.unwrap();
    assert_eq!(sink.count(), 1);
    // The failures and the delivery are counted for /metrics.
    let retried = r#"lookout_notifications_total{channel="mail",outcome="retry"}"#;
    let delivered = r#"lookout_notifications_total{channel="mail",outcome="delivered"}"#;
    assert_eq!(counter(&metrics, retried), 2.0);
    assert_eq!(counter(&metrics, delivered), 1.0);
    let parsed = sink.parsed(1);
    assert!(
        parsed["subject"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] api is down"),
        "{parsed}"
    );
}

#[tokio::test]
async fn slack_429_and_500_are_retried_after_the_wait_and_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let slack = support::slack::start().await;
    let (w, _) = worker(
        &store,
        &format!(
            "[[channels]]\nname = \"slack\"\ntype = \"slack\"\nwebhook_url = \"{}\"\n",
            slack.url(support::slack::HOOK_PATH)
        ),
    );
    slack.then_answer(Answer::new(429, "rate_limited").header("retry-after", "30"));
    slack.then_answer(Answer::new(500, "internal_error"));
    let now = Utc::now();
    let ids = queue(&store, "slack", &["api"], now).await;
    w.round(now).await.unwrap();
    // Retry-After is honoured: nothing is due before 30 s.
    let due = store.next_notification_due().await.unwrap().unwrap();
    assert!(due >= now + Duration::seconds(29), "{due} vs {now}");
    w.round(now + Duration::seconds(20)).await.unwrap();
    assert_eq!(slack.requests().len(), 1);
    w.round(now + Duration::seconds(31)).await.unwrap();
    assert_eq!(slack.requests().len(), 2, "the 500");
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Pending, 2)]);
    w.round(now + Duration::minutes(2)).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 3)]
    );
    w.round(now + Duration::minutes(5)).await.unwrap();
    let requests = slack.requests();
    assert_eq!(requests.len(), 3);
    // All three were the same, valid message.
    for r in &requests {
        assert_eq!(support::slack::validate(&r.body), Ok(()));
        assert_eq!(r.body, requests[0].body);
    }
}

/// One firing alert for the channel `toml` configures (its secrets from `env`), sent through the
/// outbox while `peer` answers `refusals` first: the first refusal's wait (at least
/// `first_wait` seconds, what the peer asked for) is honoured, each refusal is retried, and the
/// alert is delivered once with the next attempt. The requests the peer saw.
async fn retried_until_delivered(
    toml: &str,
    env: &dyn Fn(&str) -> Option<String>,
    peer: &Peer,
    refusals: Vec<Answer>,
    first_wait: i64,
) -> Vec<support::http_peer::Request> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let channel = CollectorConfig::parse(Path::new("t.toml"), toml, env)
        .unwrap()
        .channels[0]
        .name
        .clone();
    let w = worker_with_env(&store, toml, env);
    let n = refusals.len() as u32;
    for a in refusals {
        peer.then_answer(a);
    }
    let now = Utc::now();
    let ids = queue(&store, &channel, &["api"], now).await;
    w.round(now).await.unwrap();
    let due = store.next_notification_due().await.unwrap().unwrap();
    assert!(
        due >= now + Duration::seconds(first_wait - 1),
        "{due} vs {now}"
    );
    // Each later round comes when the row is due again (after the wait or the backoff).
    let mut at = due;
    for _ in 1..=n {
        at = store.next_notification_due().await.unwrap().unwrap() + Duration::seconds(1);
        w.round(at).await.unwrap();
    }
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, n + 1)]
    );
    w.round(at + Duration::minutes(5)).await.unwrap();
    let requests = peer.requests();
    assert_eq!(requests.len(), n as usize + 1);
    requests
}

/// PagerDuty through the outbox, its routing key from `${ENV}`: a 429 with `Retry-After` and a
/// 502 are retried, and the trigger arrives, valid, with the same `dedup_key` each time.
#[tokio::test]
async fn pagerduty_429_and_502_are_retried_and_the_trigger_arrives_with_one_dedup_key() {
    let pd = support::pagerduty::start().await;
    let toml = format!(
        "[[channels]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key = \"${{PD_ROUTING_KEY}}\"\nurl = \"{}\"\n",
        pd.url(support::pagerduty::PATH)
    );
    let env =
        |k: &str| (k == "PD_ROUTING_KEY").then(|| support::pagerduty::ROUTING_KEY.to_string());
    let refusals = vec![
        Answer::new(429, r#"{"status":"throttle event"}"#).header("retry-after", "30"),
        Answer::new(502, "bad gateway"),
    ];
    let requests = retried_until_delivered(&toml, &env, &pd, refusals, 30).await;
    for r in &requests {
        assert_eq!(
            support::pagerduty::validate(&r.body),
            Ok("uptime/api".to_string())
        );
        assert_eq!(r.body, requests[0].body);
    }
}

/// Telegram through the outbox, its bot token from `${ENV}`: a 429 whose wait is only in the
/// body (`parameters.retry_after`) is honoured, and the message then arrives once.
#[tokio::test]
async fn telegram_429_waits_what_its_body_asks_then_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let tg = support::telegram::start().await;
    let toml = format!(
        "[[channels]]\nname = \"tg\"\ntype = \"telegram\"\nbot_token = \"${{TG_BOT_TOKEN}}\"\nchat_id = -1001234567890\nurl = \"{}\"\n",
        tg.url("")
    );
    let env = |k: &str| (k == "TG_BOT_TOKEN").then(|| support::telegram::TOKEN.to_string());
    let w = worker_with_env(&store, &toml, &env);
    tg.then_answer(support::telegram::too_many_requests(40));
    let now = Utc::now();
    let ids = queue(&store, "tg", &["api"], now).await;
    w.round(now).await.unwrap();
    let due = store.next_notification_due().await.unwrap().unwrap();
    assert!(due >= now + Duration::seconds(39), "{due} vs {now}");
    let error = store.deliveries(ids[0]).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(!error.contains("AAHdqTcv"), "{error}");
    // Before the wait is over, nothing is sent again.
    w.round(now + Duration::seconds(20)).await.unwrap();
    assert_eq!(tg.requests().len(), 1);
    w.round(now + Duration::seconds(41)).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 2)]
    );
    w.round(now + Duration::minutes(5)).await.unwrap();
    let requests = tg.requests();
    assert_eq!(requests.len(), 2);
    let text = support::telegram::validate(&requests[1].body).unwrap();
    assert!(text.starts_with("[FIRING] api is down"), "{text}");
    assert_eq!(requests[1].body, requests[0].body);
}

/// ntfy through the outbox, its token from `${ENV}`: a 429 (without `Retry-After`, as ntfy
/// sends it) is retried after the outbox's backoff, and the message arrives once.
#[tokio::test]
async fn ntfy_429_is_retried_after_the_backoff_and_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let ntfy = support::ntfy::start().await;
    let toml = format!(
        "[[channels]]\nname = \"phone\"\ntype = \"ntfy\"\ntoken = \"${{NTFY_TOKEN}}\"\nurl = \"{}\"\n",
        ntfy.url(&format!("/{}", support::ntfy::TOPIC))
    );
    let env = |k: &str| (k == "NTFY_TOKEN").then(|| support::ntfy::TOKEN.to_string());
    let w = worker_with_env(&store, &toml, &env);
    ntfy.then_answer(support::ntfy::too_many_requests());
    let now = Utc::now();
    let ids = queue(&store, "phone", &["api"], now).await;
    w.round(now).await.unwrap();
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Pending, 1)]);
    let due = store.next_notification_due().await.unwrap().unwrap();
    assert!(due > now, "{due} vs {now}");
    w.round(due).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 2)]
    );
    w.round(now + Duration::minutes(30)).await.unwrap();
    let requests = ntfy.requests();
    assert_eq!(requests.len(), 2);
    let v = support::ntfy::validate(&requests[1].body).unwrap();
    assert_eq!(v["priority"], 5);
    assert_eq!(requests[1].body, requests[0].body);
}

/// Pushover through the outbox, its keys from `${ENV}`: a 429 and a 500 are retried, and the
/// emergency arrives once, valid, the same each time.
#[tokio::test]
async fn pushover_429_and_500_are_retried_and_the_emergency_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let po = support::pushover::start().await;
    let toml = format!(
        "[[channels]]\nname = \"po\"\ntype = \"pushover\"\ntoken = \"${{PO_TOKEN}}\"\nuser = \"${{PO_USER}}\"\nurl = \"{}\"\n",
        po.url("")
    );
    let env = |k: &str| match k {
        "PO_TOKEN" => Some(support::pushover::TOKEN.to_string()),
        "PO_USER" => Some(support::pushover::USER.to_string()),
        _ => None,
    };
    let w = worker_with_env(&store, &toml, &env);
    po.then_answer(Answer::new(429, r#"{"status":0,"errors":["over limit"]}"#));
    po.then_answer(Answer::new(500, "oops"));
    let now = Utc::now();
    let ids = queue(&store, "po", &["api"], now).await;
    w.round(now).await.unwrap();
    let due = store.next_notification_due().await.unwrap().unwrap();
    w.round(due).await.unwrap();
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Pending, 2)]);
    let due = store.next_notification_due().await.unwrap().unwrap();
    w.round(due).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 3)]
    );
    w.round(now + Duration::minutes(30)).await.unwrap();
    let requests = po.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.path, "/1/messages.json");
        assert_eq!(
            support::pushover::validate(&r.body),
            Ok(true),
            "an emergency"
        );
        assert_eq!(r.body, requests[0].body);
    }
}

/// Opsgenie through the outbox, its key from `${ENV}`: its 429 (no `Retry-After`; the minute
/// window its `X-RateLimit-Period-In-Sec` names is waited out) and a 503 are retried, and the
/// alert is created once more, valid, with the same alias each time.
#[tokio::test]
async fn opsgenie_429_and_503_are_retried_and_the_alert_is_created_by_one_alias() {
    let og = support::opsgenie::start().await;
    let toml = format!(
        "[[channels]]\nname = \"og\"\ntype = \"opsgenie\"\napi_key = \"${{OPSGENIE_API_KEY}}\"\nurl = \"{}\"\n",
        og.url("")
    );
    let env = |k: &str| (k == "OPSGENIE_API_KEY").then(|| support::opsgenie::API_KEY.to_string());
    let refusals = vec![
        support::opsgenie::throttled(60),
        Answer::new(503, "unavailable"),
    ];
    let requests = retried_until_delivered(&toml, &env, &og, refusals, 60).await;
    for r in &requests {
        assert_eq!(
            support::opsgenie::validate(r),
            Ok(support::opsgenie::Action::Create(Some("uptime/api".into())))
        );
        assert_eq!(r.body, requests[0].body);
    }
}

/// Opsgenie's 429 through the outbox: nothing is sent again before the period its headers
/// name (a minute) has passed, and the alert is then created once; a 429 without those
/// headers is retried after the outbox's backoff, well before.
#[tokio::test]
async fn opsgenie_429_waits_out_the_period_its_headers_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let og = support::opsgenie::start().await;
    let (w, _) = worker(
        &store,
        &format!(
            "[[channels]]\nname = \"og\"\ntype = \"opsgenie\"\napi_key = \"{}\"\nurl = \"{}\"\n",
            support::opsgenie::API_KEY,
            og.url("")
        ),
    );
    og.then_answer(support::opsgenie::throttled(60));
    og.then_answer(support::opsgenie::throttled_without_headers());
    let now = Utc::now();
    let ids = queue(&store, "og", &["api"], now).await;
    w.round(now).await.unwrap();
    let due = store.next_notification_due().await.unwrap().unwrap();
    assert!(
        due >= now + Duration::seconds(59) && due <= now + Duration::seconds(61),
        "{due} vs {now}"
    );
    w.round(now + Duration::seconds(50)).await.unwrap();
    assert_eq!(og.requests().len(), 1, "sent again within the minute");
    // The second 429 names no period: the backoff, seconds rather than a minute.
    w.round(due).await.unwrap();
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Pending, 2)]);
    let again = store.next_notification_due().await.unwrap().unwrap();
    assert!(again - due < Duration::seconds(30), "{again} vs {due}");
    w.round(again).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 3)]
    );
    w.round(again + Duration::minutes(30)).await.unwrap();
    let requests = og.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(
            support::opsgenie::validate(r),
            Ok(support::opsgenie::Action::Create(Some("uptime/api".into())))
        );
    }
}

/// Matrix through the outbox, its access token from `${ENV}`: `M_LIMIT_EXCEEDED` with
/// `retry_after_ms` is honoured, and the retry is the same transaction, one event.
#[tokio::test]
async fn matrix_429_waits_what_its_body_asks_then_makes_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (mx, events) = support::matrix::start().await;
    let toml = format!(
        "[[channels]]\nname = \"mx\"\ntype = \"matrix\"\naccess_token = \"${{MATRIX_TOKEN}}\"\nroom = \"{}\"\nhomeserver = \"{}\"\n",
        support::matrix::ROOM,
        mx.url("")
    );
    let env = |k: &str| (k == "MATRIX_TOKEN").then(|| support::matrix::TOKEN.to_string());
    let w = worker_with_env(&store, &toml, &env);
    mx.then_answer(support::matrix::limit_exceeded(20_000));
    let now = Utc::now();
    let ids = queue(&store, "mx", &["api"], now).await;
    w.round(now).await.unwrap();
    let due = store.next_notification_due().await.unwrap().unwrap();
    assert!(due >= now + Duration::seconds(19), "{due} vs {now}");
    w.round(now + Duration::seconds(21)).await.unwrap();
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 2)]
    );
    w.round(now + Duration::minutes(30)).await.unwrap();
    let requests = mx.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].path, requests[0].path,
        "the same transaction id"
    );
    assert_eq!(support::matrix::validate(&requests[1].body), Ok(()));
    assert_eq!(events.lock().unwrap().len(), 1);
}

/// Discord through the outbox: a 429 whose wait is in `Retry-After` and, exactly, in its body,
/// then a 503, are retried after the wait and the backoff; the message arrives once, and no
/// error recorded shows the webhook's token.
#[tokio::test]
async fn discord_429_and_503_are_retried_after_the_wait_and_arrive_once() {
    let peer = support::discord::start().await;
    let toml =
        "[[channels]]\nname = \"chat\"\ntype = \"discord\"\nurl = \"${DISCORD_WEBHOOK_URL}\"\n";
    let url = peer.url(&support::discord::path());
    let env = |k: &str| (k == "DISCORD_WEBHOOK_URL").then(|| url.clone());
    let requests = retried_until_delivered(
        toml,
        &env,
        &peer,
        vec![
            support::discord::too_many_requests(29.4),
            Answer::new(503, "upstream connect error"),
        ],
        30,
    )
    .await;
    for r in &requests {
        assert_eq!(r.body, requests[0].body);
    }
    let v = support::discord::validate(&requests[2].body).unwrap();
    assert_eq!(v["embeds"][0]["color"], 0xd73a49);
}

/// One firing alert for a channel of `kind` at `url` (served by `peer`), which refuses it for
/// good: given up at the first attempt, counted as failed, and never sent again. The error
/// recorded.
async fn given_up_at_once(kind: &str, url: &str, peer: &Peer) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (w, metrics) = worker(
        &store,
        &format!("[[channels]]\nname = \"chat\"\ntype = \"{kind}\"\nurl = \"{url}\"\n"),
    );
    let now = Utc::now();
    let ids = queue(&store, "chat", &["api"], now).await;
    w.round(now).await.unwrap();
    assert_eq!(states(&store, ids[0]).await, [(DeliveryState::Failed, 1)]);
    let failed = r#"lookout_notifications_total{channel="chat",outcome="failed"}"#;
    assert_eq!(counter(&metrics, failed), 1.0);
    w.round(now + Duration::hours(1)).await.unwrap();
    assert_eq!(peer.requests().len(), 1, "never sent again");
    store.deliveries(ids[0]).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap()
}

/// Discord refusing the message for good (its webhook deleted): given up at the first
/// attempt, and the recorded error names Discord's reason but not the webhook.
#[tokio::test]
async fn discord_404_is_given_up_at_once_without_the_url() {
    let peer = support::discord::start().await;
    peer.then_answer(support::discord::error(404, 10015, "Unknown Webhook"));
    let url = peer.url(&support::discord::path());
    let error = given_up_at_once("discord", &url, &peer).await;
    assert!(error.contains("Unknown Webhook"), "{error}");
    assert!(
        !error.contains(support::discord::TOKEN) && !error.contains(support::discord::ID),
        "{error}"
    );
}

/// Mattermost and Rocket.Chat through the outbox, their webhook URLs from `${ENV}`:
/// Mattermost's 429 waits what its `Retry-After` asks, Rocket.Chat's what its refusal names
/// in words (it sends no `Retry-After`); a 500 is retried; each message arrives once, the same each time.
#[tokio::test]
async fn mattermost_and_rocketchat_429_and_500_are_retried_and_arrive_once() {
    use support::slack_compat::{Vendor, start, too_many_requests, validate};
    for (vendor, kind, wait) in [
        (Vendor::Mattermost, "mattermost", 30),
        (Vendor::RocketChat, "rocketchat", 30),
    ] {
        let peer = start(vendor).await;
        let toml = format!(
            "[[channels]]\nname = \"chat\"\ntype = \"{kind}\"\nurl = \"${{CHAT_WEBHOOK_URL}}\"\n"
        );
        let url = peer.url(&vendor.path());
        let env = |k: &str| (k == "CHAT_WEBHOOK_URL").then(|| url.clone());
        let requests = retried_until_delivered(
            &toml,
            &env,
            &peer,
            vec![
                too_many_requests(vendor, 30),
                Answer::new(500, "internal error"),
            ],
            wait,
        )
        .await;
        for r in &requests {
            assert_eq!(r.body, requests[0].body);
        }
        let v = validate(vendor, &requests[2].body).unwrap();
        assert_eq!(v["attachments"][0]["color"], "#d73a49", "{kind}");
    }
}

/// A Mattermost hook that is gone: given up at the first attempt, without the URL.
#[tokio::test]
async fn mattermost_400_is_given_up_at_once_without_the_url() {
    use support::slack_compat::{HOOK_SECRET, Vendor, start};
    let peer = start(Vendor::Mattermost).await;
    let url = peer.url(&format!("/hooks/gone{HOOK_SECRET}"));
    let error = given_up_at_once("mattermost", &url, &peer).await;
    assert!(error.contains("Invalid webhook"), "{error}");
    assert!(!error.contains(HOOK_SECRET), "{error}");
}

/// Two reminders of one alert, alike in every word and time, are two deliveries: two Matrix
/// transactions, two events; the retry of one after a 502 is its own transaction again. A
/// transaction id made from the content would be the same for both, and the homeserver (the
/// fake remembers ids as Synapse does) would swallow the second.
#[tokio::test]
async fn matrix_identical_reminders_are_two_transactions_and_a_retry_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (mx, events) = support::matrix::start().await;
    let toml = format!(
        "[[channels]]\nname = \"mx\"\ntype = \"matrix\"\naccess_token = \"{}\"\nroom = \"{}\"\nhomeserver = \"{}\"\n",
        support::matrix::TOKEN,
        support::matrix::ROOM,
        mx.url("")
    );
    let (w, _) = worker(&store, &toml);
    let now = Utc::now();
    let ids = queue(&store, "mx", &["api"], now).await;
    w.round(now).await.unwrap();
    let reminder = |dedup: &str| {
        let note = AlertNote {
            fingerprint: "uptime/api".into(),
            rule: "uptime".into(),
            kind: NoteKind::Reminder,
            summary: "api is down: connection refused".into(),
            fired_at: now,
            ..AlertNote::default()
        };
        NewNotification {
            channel: "mx".into(),
            dedup_key: format!("uptime/api/reminder/{dedup}"),
            group_key: "route0:check=api".into(),
            payload: serde_json::to_value(&note).unwrap(),
            not_before: now,
            escalation: None,
        }
    };
    // The first reminder: a 502, then its retry.
    mx.then_answer(Answer::new(502, "bad gateway"));
    let at = now + Duration::minutes(10);
    let queued = store
        .queue_notifications("uptime/api", AlertState::Firing, at, &[reminder("1")])
        .await
        .unwrap();
    assert!(queued);
    w.round(at).await.unwrap();
    let due = store.next_notification_due().await.unwrap().unwrap();
    w.round(due).await.unwrap();
    // The second, the same in every word.
    let at = now + Duration::minutes(20);
    store
        .queue_notifications("uptime/api", AlertState::Firing, at, &[reminder("2")])
        .await
        .unwrap();
    w.round(at).await.unwrap();
    w.round(at + Duration::minutes(5)).await.unwrap();

    let requests = mx.requests();
    let txn: Vec<&str> = requests
        .iter()
        .map(|r| r.path.strip_prefix(support::matrix::PREFIX).unwrap())
        .collect();
    assert_eq!(txn.len(), 4, "the firing, a reminder twice, the other once");
    assert_eq!(requests[3].body, requests[2].body, "alike in every word");
    assert_eq!(txn[1], txn[2], "a retry is the same transaction");
    assert_ne!(txn[2], txn[3], "another delivery is another transaction");
    assert_ne!(txn[0], txn[1]);
    assert_eq!(events.lock().unwrap().len(), 3, "three events: {txn:?}");
    assert!(
        states(&store, ids[0])
            .await
            .iter()
            .all(|(s, _)| *s == DeliveryState::Delivered),
        "{:?}",
        states(&store, ids[0]).await
    );
}

/// Teams through the outbox: a throttled trigger's 429 with `Retry-After` and a 503 are
/// retried, and the card arrives once, valid, the same each time.
#[tokio::test]
async fn teams_429_and_503_are_retried_and_the_card_arrives_once() {
    let teams = support::teams::start().await;
    let url = teams.url(&format!(
        "{}?{}",
        support::teams::PATH,
        support::teams::query()
    ));
    let toml = "[[channels]]\nname = \"teams\"\ntype = \"teams\"\nurl = \"${TEAMS_URL}\"\n";
    let env = |k: &str| (k == "TEAMS_URL").then(|| url.clone());
    let refusals = vec![
        support::teams::throttled(30),
        Answer::new(503, "service unavailable"),
    ];
    let requests = retried_until_delivered(toml, &env, &teams, refusals, 30).await;
    for r in &requests {
        assert_eq!(support::teams::validate(&r.body), Ok(()));
        assert_eq!(r.body, requests[0].body);
    }
}

/// Teams refusing a card (a 4xx other than 408 and 429): given up at the first attempt, with
/// the reason and without the URL.
#[tokio::test]
async fn teams_400_is_given_up_at_once() {
    let teams = support::teams::start().await;
    teams.then_answer(support::teams::error(
        400,
        "TriggerInputSchemaMismatch",
        "The input body for trigger 'manual' of type 'Request' did not match its schema.",
    ));
    let url = teams.url(&format!(
        "{}?{}",
        support::teams::PATH,
        support::teams::query()
    ));
    let error = given_up_at_once("teams", &url, &teams).await;
    assert!(
        error.contains("Teams answered 400") && error.contains("TriggerInputSchemaMismatch"),
        "{error}"
    );
    assert!(
        !error.contains(support::teams::SIG) && !error.contains(support::teams::PATH),
        "{error}"
    );
}

/// Google Chat through the outbox, its URL from `${ENV}`: a 429 (a space's quota, without
/// `Retry-After`: the backoff applies) and a 500 are retried, and the card arrives once,
/// valid, the same each time.
#[tokio::test]
async fn google_chat_429_and_500_are_retried_and_the_card_arrives_once() {
    let chat = support::google_chat::start().await;
    let url = chat.url(&format!(
        "{}?{}",
        support::google_chat::PATH,
        support::google_chat::query()
    ));
    let toml = "[[channels]]\nname = \"chat\"\ntype = \"google_chat\"\nurl = \"${GCHAT_URL}\"\n";
    let env = |k: &str| (k == "GCHAT_URL").then(|| url.clone());
    let refusals = vec![
        support::google_chat::exhausted(),
        Answer::new(500, "internal error"),
    ];
    let requests = retried_until_delivered(toml, &env, &chat, refusals, 1).await;
    for r in &requests {
        assert!(support::google_chat::validate(&r.body).is_ok());
        assert_eq!(r.body, requests[0].body);
    }
}

/// Google Chat refusing for good (a space deleted): given up at the first attempt, with
/// Google's reason and without the URL.
#[tokio::test]
async fn google_chat_404_is_given_up_at_once() {
    let chat = support::google_chat::start().await;
    chat.then_answer(support::google_chat::error(
        404,
        "NOT_FOUND",
        "Requested entity was not found.",
    ));
    let url = chat.url(&format!(
        "{}?{}",
        support::google_chat::PATH,
        support::google_chat::query()
    ));
    let error = given_up_at_once("google_chat", &url, &chat).await;
    assert!(
        error.contains("Google Chat answered 404") && error.contains("NOT_FOUND"),
        "{error}"
    );
    assert!(
        !error.contains("GCHATSECRET") && !error.contains(support::google_chat::KEY),
        "{error}"
    );
}

#[tokio::test]
async fn storm_control_sends_what_is_over_the_limit_as_one_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let hook = Peer::start(|_| Answer::new(200, "")).await;
    let (w, _) = worker(
        &store,
        &format!(
            "[[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nmax_per_minute = 2\n",
            hook.url("/hook")
        ),
    );
    let now = Utc::now();
    let ids = queue(&store, "hook", &["a", "b", "c", "d", "e"], now).await;
    w.round(now).await.unwrap();
    assert_eq!(hook.requests().len(), 2, "two messages in the minute");
    assert_eq!(
        states(&store, ids[4]).await,
        [(DeliveryState::Pending, 0)],
        "held, not failed"
    );
    w.round(now + Duration::seconds(30)).await.unwrap();
    assert_eq!(hook.requests().len(), 2, "still within the minute");
    w.round(now + Duration::seconds(61)).await.unwrap();
    let requests = hook.requests();
    assert_eq!(requests.len(), 3, "one digest for the rest");
    let digest = requests[2].json();
    assert_eq!(
        digest["title"],
        "[DIGEST] 3 notifications held back by storm control: 3 firing"
    );
    assert_eq!(digest["alerts"].as_array().unwrap().len(), 3);
    for id in ids {
        assert_eq!(states(&store, id).await, [(DeliveryState::Delivered, 1)]);
    }
}

#[tokio::test]
async fn a_sender_that_dies_holding_a_lease_leaves_the_row_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let hook = Peer::start(|_| Answer::new(200, "")).await;
    let channels = format!(
        "[[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        hook.url("/hook")
    );
    let now = Utc::now();
    let ids = queue(&store, "hook", &["api"], now).await;
    // A collector claims it and dies before sending.
    let claimed = store
        .claim_notifications("dead", now, now + Duration::minutes(2), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let (w, _) = worker(&store, &channels);
    w.round(now + Duration::minutes(1)).await.unwrap();
    assert!(hook.requests().is_empty(), "the lease still holds");
    w.round(now + Duration::minutes(3)).await.unwrap();
    assert_eq!(hook.requests().len(), 1);
    assert_eq!(
        states(&store, ids[0]).await,
        [(DeliveryState::Delivered, 1)]
    );
}

#[tokio::test]
async fn a_notification_failing_past_give_up_after_is_given_up_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let hook = Peer::start(|_| Answer::new(503, "maintenance")).await;
    let (w, metrics) = worker_giving_up(
        &store,
        &format!(
            "[[channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url("/hook")
        ),
        std::time::Duration::from_secs(600),
    );
    let now = Utc::now();
    // Queued 5 minutes ago: still retried.
    let young = queue(&store, "hook", &["api"], now - Duration::minutes(5)).await;
    // Queued 11 minutes ago: given up at this failure.
    let old = queue(&store, "hook", &["db"], now - Duration::minutes(11)).await;
    w.round(now).await.unwrap();
    assert_eq!(
        states(&store, young[0]).await,
        [(DeliveryState::Pending, 1)]
    );
    assert_eq!(states(&store, old[0]).await, [(DeliveryState::Failed, 1)]);
    let error = store.deliveries(old[0]).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(error.starts_with("gave up after 10m: "), "{error}");
    assert!(error.contains("503"), "{error}");
    let failed = r#"lookout_notifications_total{channel="hook",outcome="failed"}"#;
    let retried = r#"lookout_notifications_total{channel="hook",outcome="retry"}"#;
    assert_eq!(counter(&metrics, failed), 1.0);
    assert_eq!(counter(&metrics, retried), 1.0);
    // Given up: never claimed again.
    w.round(now + Duration::hours(1)).await.unwrap();
    assert_eq!(hook.requests().len(), 3);
}
