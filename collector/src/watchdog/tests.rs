//! The watchdog against a real HTTP receiver (lookout-tests' scripted server) and a real SQLite
//! store.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lookout_config::CollectorConfig;
use lookout_tests::scripted::{Answer, Scripted};

use super::*;

const UUID: &str = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278";

/// A collector's state over a fresh SQLite store, and its watchdog pinging `url`.
async fn watchdog(
    url: &str,
    extra: &str,
) -> (tempfile::TempDir, Arc<crate::state::AppState>, Watchdog) {
    let text = format!("[watchdog]\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n{extra}");
    let config = CollectorConfig::parse(Path::new("c.toml"), &text, &|_| None).unwrap();
    let cfg = config.watchdog.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = crate::store::open(&db, &Default::default()).await.unwrap();
    let state = crate::build_state(store, config, None).await.unwrap();
    let health = Health {
        store: state.store.clone(),
        evaluator: state.evaluator.clone(),
        leadership: state.leadership.clone(),
        me: crate::cluster::Me::new("http://127.0.0.1:7700".into(), 7700),
        max_notification_delay: cfg.max_notification_delay,
    };
    let w = Watchdog::new(cfg, health, state.metrics.clone()).unwrap();
    (dir, state, w)
}

async fn receiver() -> Scripted {
    Scripted::start(|_| Answer::json(200, "OK")).await.unwrap()
}

#[test]
fn fail_goes_after_the_path_and_before_the_query() {
    for (ping, fail) in [
        ("https://hc-ping.com/u", "https://hc-ping.com/u/fail"),
        ("https://hc-ping.com/u/", "https://hc-ping.com/u/fail"),
        (
            "https://hc/ping/key/slug?create=1",
            "https://hc/ping/key/slug/fail?create=1",
        ),
    ] {
        assert_eq!(fail_url(&Url::parse(ping).unwrap()).unwrap().as_str(), fail);
    }
}

#[test]
fn reasons_are_cut_at_a_character() {
    assert_eq!(cut("ééé".into(), 3), "é");
    assert_eq!(cut("abc".into(), 10), "abc");
}

#[tokio::test]
async fn a_healthy_collector_gets_and_a_sick_one_posts_fail_with_its_reasons() {
    let hc = receiver().await;
    let (_dir, state, w) = watchdog(&format!("{}/{UUID}", hc.url), "").await;
    let problems = w
        .health
        .assess(crate::clock::now(), Duration::from_secs(1))
        .await;
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(w.ping(&problems, "").await, Round::Ok);

    let sick = [Problem::Outbox { for_secs: 300 }];
    assert_eq!(w.ping(&sick, &sick[0].to_string()).await, Round::Fail);
    let seen = hc.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", &*format!("/{UUID}"))
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("POST", &*format!("/{UUID}/fail"))
    );
    let body = String::from_utf8_lossy(&seen[1].body);
    assert!(
        body.contains(
            "the notification queue is not draining: a notification has been due for 300s"
        ),
        "{body}"
    );
    assert_eq!(
        seen[1].header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    // Counted, by result.
    state.metrics.watchdog_ping(true, Round::Ok.label());
    let text = state.metrics.encode();
    assert!(
        text.contains("lookout_watchdog_pings_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains("lookout_watchdog_healthy 1"), "{text}");
}

#[tokio::test]
async fn without_report_failures_a_sick_collector_sends_nothing() {
    let hc = receiver().await;
    let (_dir, _state, w) =
        watchdog(&format!("{}/{UUID}", hc.url), "report_failures = false\n").await;
    let sick = [Problem::Store("disk full".into())];
    assert_eq!(w.ping(&sick, "x").await, Round::Withheld);
    assert!(hc.seen().is_empty());
}

#[tokio::test]
async fn refusals_and_silence_are_errors_that_do_not_name_the_secret_path() {
    let hc = Scripted::start(|_| Answer::json(404, "not found"))
        .await
        .unwrap();
    let (_dir, _state, w) = watchdog(&format!("{}/{UUID}", hc.url), "").await;
    assert_eq!(
        w.ping(&[], "").await,
        Round::Error("answered 404 Not Found".into())
    );

    // A peer that accepts and never answers: the ping ends within its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let (_dir2, _state2, w) = watchdog(&format!("http://{addr}/{UUID}"), "").await;
    let started = std::time::Instant::now();
    let Round::Error(e) = w.ping(&[], "").await else {
        panic!("a silent peer took the ping");
    };
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!e.contains(UUID), "{e}");

    // Nobody listening.
    let port = lookout_tests::free_port();
    let (_dir3, _state3, w) = watchdog(&format!("http://127.0.0.1:{port}/{UUID}"), "").await;
    let Round::Error(e) = w.ping(&[], "").await else {
        panic!("a closed port took the ping");
    };
    assert!(e.contains("cannot connect") && !e.contains(UUID), "{e}");
}

#[tokio::test]
async fn a_stalled_tick_loop_is_a_problem() {
    let hc = receiver().await;
    let (_dir, _state, w) = watchdog(&format!("{}/{UUID}", hc.url), "").await;
    // The tick loop never runs here: 20 s on, its last round (the evaluator's creation) is
    // four ticks old. (Paused only now: the store opens in real time.)
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(20)).await;
    // The store's own thread answers in real time: let the clock flow again from here.
    tokio::time::resume();
    let problems = w
        .health
        .assess(crate::clock::now(), Duration::from_secs(5))
        .await;
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Problem::Evaluation { for_secs, .. } if *for_secs >= 20)),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
}
