//! The fallback's state machine against a real HTTP receiver on loopback, in short real time
//! (the sends are real requests, which a paused clock would time out), and its payloads
//! against what each peer takes.

use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use lookout_config::FallbackType;

use super::*;

/// A receiver that keeps each request and answers the statuses given in order, then 200,
/// `answer_after` after it has kept the request.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    answer_after: Arc<Mutex<Duration>>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>) -> (Self, String) {
        let r = Receiver {
            statuses: Arc::new(Mutex::new(statuses)),
            ..Default::default()
        };
        let keep = r.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                let status = {
                    let mut s = keep.statuses.lock().unwrap();
                    if s.is_empty() { 200 } else { s.remove(0) }
                };
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::String(
                    String::from_utf8_lossy(&body).into(),
                ));
                keep.seen.lock().unwrap().push((headers, json));
                let wait = *keep.answer_after.lock().unwrap();
                tokio::time::sleep(wait).await;
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret-path", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn events(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, j)| j["event"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Polls until `n` requests arrived; panics after `within`.
    async fn wait_for(&self, n: usize, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let seen = self.seen.lock().unwrap().len();
            if seen >= n {
                return;
            }
            // Not under the lock: `events` takes it.
            assert!(
                std::time::Instant::now() < deadline,
                "{seen} of {n} requests within {within:?}: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn config(kind: FallbackType, url: &str, after_ms: u64) -> FallbackConfig {
    let mut text = format!(
        "name = \"web-1\"\ncollector = \"http://127.0.0.1:1\"\ntoken = \"abcdefghijklmnopqrstuvwxyz\"\n\
         [fallback]\ntype = \"{}\"\nurl = \"{url}\"\njitter = \"50ms\"\ntimeout = \"2s\"\n",
        kind.as_str()
    );
    if kind == FallbackType::Pushover {
        text.push_str("token = \"app-token-1234\"\nuser = \"user-key-5678\"\n");
    }
    if kind == FallbackType::Ntfy {
        text.push_str("token = \"tk_secret\"\n");
    }
    let mut cfg =
        lookout_config::AgentConfig::parse(std::path::Path::new("a.toml"), &text, &|_| None)
            .unwrap()
            .fallback
            .unwrap();
    // Below the configuration's 1 s floor, to keep these tests short.
    cfg.after = Duration::from_millis(after_ms);
    cfg
}

/// A running fallback over `url` with its state in `dir`.
fn start(dir: &std::path::Path, url: &str, after_ms: u64) -> (Arc<Deliveries>, CancellationToken) {
    let deliveries = Arc::new(Deliveries::default());
    let stop = CancellationToken::new();
    let fb = Fallback {
        settings: Settings {
            config: config(FallbackType::Webhook, url, after_ms),
            state_file: dir.join(state::FILE),
        },
        agent: "web-1".into(),
        collectors: vec!["https://collector.example:7700".into()],
        http: send::client().unwrap(),
        metrics: Arc::new(AgentMetrics::default()),
    };
    tokio::spawn(run(fb, deliveries.clone(), stop.clone()));
    (deliveries, stop)
}

#[tokio::test]
async fn one_message_after_after_and_one_when_back_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = Receiver::start(vec![]).await;
    let (d, _stop) = start(dir.path(), &url, 300);
    d.delivered();
    let started = std::time::Instant::now();
    d.failed("cannot connect: connection refused");
    // The shipper keeps failing: each report changes nothing.
    for _ in 0..5 {
        d.failed("cannot connect: connection refused");
    }
    rx.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rx.events(), ["collector_unreachable"]);
    let first = rx.seen.lock().unwrap()[0].1.clone();
    assert_eq!(first["agent"], "web-1");
    assert_eq!(first["error"], "cannot connect: connection refused");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("No collector has stored a batch from web-1 since")
    );
    d.failed("still down");
    d.delivered();
    rx.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(
        rx.events(),
        ["collector_unreachable", "collector_reachable"]
    );
    // Nothing more, however long it stays good.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.seen.lock().unwrap().len(), 2);
    assert_eq!(
        state::load(&dir.path().join(state::FILE)).unwrap(),
        Remembered::default()
    );
}

#[tokio::test]
async fn the_collector_back_while_the_outage_message_is_answered_still_says_so() {
    // The receiver has the "unreachable" message but takes its time to answer; meanwhile the
    // collector takes batches again. The message was taken, so "reachable" must follow.
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = Receiver::start(vec![]).await;
    *rx.answer_after.lock().unwrap() = Duration::from_millis(500);
    let (d, _stop) = start(dir.path(), &url, 100);
    d.failed("refused");
    rx.wait_for(1, Duration::from_secs(5)).await;
    d.delivered();
    rx.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(
        rx.events(),
        ["collector_unreachable", "collector_reachable"]
    );
}

#[tokio::test]
async fn an_outage_shorter_than_after_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = Receiver::start(vec![]).await;
    // `after` well above the outage, so that a loaded machine's late wake-up cannot reach it.
    let (d, _stop) = start(dir.path(), &url, 1500);
    d.failed("refused");
    tokio::time::sleep(Duration::from_millis(100)).await;
    d.delivered();
    // Past when `after` (and its 50 ms jitter) would have sent it.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert!(rx.events().is_empty(), "{:?}", rx.events());
}

#[tokio::test]
async fn a_restart_during_the_outage_does_not_send_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, url) = Receiver::start(vec![]).await;
    let (d, stop) = start(dir.path(), &url, 200);
    d.failed("refused");
    rx.wait_for(1, Duration::from_secs(5)).await;
    // Stopped once the message is recorded as sent (stopped between the receiver's answer and
    // the write, an agent sends it again: at least once, never lost).
    assert!(sent_is_kept(dir.path()).await.unreachable_sent);
    stop.cancel();
    // The agent starts again, the collector still down.
    let (d, _stop) = start(dir.path(), &url, 200);
    d.failed("refused");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.events(), ["collector_unreachable"]);
    d.delivered();
    rx.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(
        rx.events(),
        ["collector_unreachable", "collector_reachable"]
    );
}

#[tokio::test]
async fn a_damaged_state_file_is_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(state::FILE), "{not json").unwrap();
    let (rx, url) = Receiver::start(vec![]).await;
    let (d, _stop) = start(dir.path(), &url, 100);
    d.failed("refused");
    rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(rx.events(), ["collector_unreachable"]);
    let kept = sent_is_kept(dir.path()).await;
    assert!(kept.unreachable_sent && kept.since.is_some(), "{kept:?}");
}

/// The state file once it says the unreachable message was sent (within 5 s), or as it is
/// then: it is written when the receiver's answer is in, just after the receiver has the
/// message.
async fn sent_is_kept(dir: &std::path::Path) -> state::Remembered {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let kept = state::load(&dir.join(state::FILE)).unwrap();
        if kept.unreachable_sent || std::time::Instant::now() > deadline {
            return kept;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_refused_send_is_retried_and_taken_once() {
    let (rx, url) = Receiver::start(vec![503]).await;
    let cfg = config(FallbackType::Webhook, &url, 1000);
    let note = note(Kind::Unreachable);
    send::deliver(
        &send::client().unwrap(),
        &cfg,
        &note,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        rx.events(),
        ["collector_unreachable", "collector_unreachable"]
    );
    // A 400 is final: not retried.
    let (rx, url) = Receiver::start(vec![400]).await;
    let cfg = config(FallbackType::Webhook, &url, 1000);
    let e = send::deliver(
        &send::client().unwrap(),
        &cfg,
        &note,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e,
        send::Undelivered::Failed("answered 400 Bad Request".into())
    );
    assert_eq!(rx.events().len(), 1);
}

fn note(kind: Kind) -> Note {
    Note {
        kind,
        agent: "web-1".into(),
        collectors: vec!["https://collector.example:7700".into()],
        since: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        at: DateTime::from_timestamp(1_800_000_360, 0).unwrap(),
        error: Some("cannot connect".into()),
    }
}

#[test]
fn each_peer_gets_its_own_shape() {
    let url = "https://peer.example/x";
    let (body, headers) = send::request(
        &config(FallbackType::Slack, url, 1000),
        &note(Kind::Unreachable),
    );
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j.as_object().unwrap().len(), 1);
    let text = j["text"].as_str().unwrap();
    assert!(
        text.starts_with("*Lookout: web-1 cannot reach its collector*\n"),
        "{text}"
    );
    assert!(
        text.contains("since 2027-01-15 08:00:00 UTC (6m)"),
        "{text}"
    );
    assert_eq!(headers["content-type"], "application/json");

    let (body, headers) = send::request(
        &config(FallbackType::Ntfy, url, 1000),
        &note(Kind::Reachable),
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with("web-1 delivers to its collector again"),
        "{text}"
    );
    assert_eq!(
        headers["title"],
        "Lookout: web-1 reaches its collector again"
    );
    assert_eq!(headers["priority"], "default");
    assert_eq!(headers["tags"], "white_check_mark,lookout");
    assert_eq!(headers["authorization"], "Bearer tk_secret");
    assert!(headers["authorization"].is_sensitive());

    let cfg = config(FallbackType::Pushover, url, 1000);
    let (body, _) = send::request(&cfg, &note(Kind::Unreachable));
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["token"], "app-token-1234");
    assert_eq!(j["user"], "user-key-5678");
    assert_eq!(j["priority"], 1);
    assert_eq!(j["title"], "Lookout: web-1 cannot reach its collector");
    assert!(
        j["message"].as_str().unwrap().len() <= 1024,
        "Pushover's limit"
    );
    assert!(
        j["title"].as_str().unwrap().len() <= 250,
        "Pushover's limit"
    );

    let (body, _) = send::request(
        &config(FallbackType::Webhook, url, 1000),
        &note(Kind::Unreachable),
    );
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["event"], "collector_unreachable");
    assert_eq!(j["since"], "2027-01-15T08:00:00Z");
    assert_eq!(j["at"], "2027-01-15T08:06:00Z");
    assert_eq!(j["collectors"][0], "https://collector.example:7700");
}
