//! Watching the watcher (issue #31), end to end with the real binaries: the collector's
//! `[watchdog]` pings an external heartbeat receiver (a real HTTP server here, keeping each
//! request with its arrival time) only while it is healthy, and an agent's `[fallback]` tells
//! another receiver, once each way, that its collector is gone and back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lookout_tests::scripted::{Answer, Scripted, Seen};
use lookout_tests::{collector_toml, eventually, free_port, get_json, start_collector};

const TOKEN: &str = "watch-agent-token-0123456789abcdef";
const UUID: &str = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278";
const INTERVAL: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(30);

async fn receiver() -> Scripted {
    Scripted::start(|_| Answer::json(200, "OK")).await.unwrap()
}

fn watchdog_section(hc: &Scripted, extra: &str) -> String {
    format!(
        "[watchdog]\nurl = \"{}/ping/{UUID}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n{extra}",
        hc.url
    )
}

/// An agent with host metrics every second and `[fallback]` to `hook`.
fn agent_config(dir: &Path, port: u16, hook: &str) -> PathBuf {
    let text = format!(
        "name = \"edge\"\ncollector = \"http://127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
         [host_metrics]\ninterval = \"1s\"\n\
         [shipping]\nflush_interval = \"200ms\"\nmax_backoff = \"500ms\"\n\
         [fallback]\ntype = \"webhook\"\nurl = \"{hook}\"\nafter = \"3s\"\njitter = \"500ms\"\ntimeout = \"2s\"\n",
        dir.display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn gets(hc: &Scripted) -> Vec<Seen> {
    hc.seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path == format!("/ping/{UUID}"))
        .collect()
}

fn events(fb: &Scripted) -> Vec<(String, Instant)> {
    fb.seen()
        .into_iter()
        .map(|s| {
            let j: serde_json::Value = serde_json::from_slice(&s.body).unwrap_or_default();
            (j["event"].as_str().unwrap_or("?").to_string(), s.at)
        })
        .collect()
}

/// Polls until `fb` has received `n` messages.
async fn messages(fb: &Scripted, n: usize, timeout: Duration) -> Vec<(String, Instant)> {
    eventually(&format!("{n} fallback messages"), timeout, || async {
        let e = events(fb);
        Ok((e.len() >= n).then_some(e))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; received: {:?}", events(fb)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_stops_with_the_collector_and_the_fallback_says_so_once_each_way() {
    let (hc, fb) = (receiver().await, receiver().await);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = collector_toml(
        dir.path(),
        port.get(),
        "edge",
        TOKEN,
        &watchdog_section(&hc, ""),
    );
    let (collector, base) = start_collector(dir.path(), &config).unwrap();
    // The URL's secret path never reaches the log.
    collector
        .wait_for_line("pinging the external heartbeat", WAIT)
        .unwrap();
    let adir = tempfile::tempdir().unwrap();
    let agent = lookout_tests::start_agent(&agent_config(
        adir.path(),
        port.get(),
        &format!("{}/hook/secret", fb.url),
    ))
    .unwrap();
    eventually("the agent's batches stored", WAIT, || async {
        let j = get_json(&format!("{base}/api/v1/hosts")).await?;
        Ok(j["hosts"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["name"] == "edge"))
            .map(|_| ()))
    })
    .await
    .unwrap();
    eventually("two heartbeat pings", WAIT, || async {
        Ok((gets(&hc).len() >= 2).then_some(()))
    })
    .await
    .unwrap();
    assert!(
        hc.seen_at(&format!("/ping/{UUID}/fail")).is_empty(),
        "{:?}",
        hc.seen()
    );

    // The collector dies (SIGKILL).
    let log = collector.log_text();
    drop(collector);
    let killed = Instant::now();
    // Pings stop within two intervals: none arrives later. Waited out in full, as the
    // assertion is about silence; the fallback's `after` runs meanwhile.
    tokio::time::sleep(INTERVAL * 2 + Duration::from_millis(500)).await;
    let last = gets(&hc).last().map(|s| s.at).unwrap();
    assert!(
        last < killed + INTERVAL * 2,
        "a ping {:?} after the kill",
        last - killed
    );
    assert!(!log.contains(UUID), "{log}");

    // One "unreachable" message, not before `after`.
    let got = messages(&fb, 1, WAIT).await;
    assert_eq!(got[0].0, "collector_unreachable");
    assert!(
        got[0].1 >= killed + AFTER,
        "sent {:?} after the kill",
        got[0].1 - killed
    );
    let first: serde_json::Value = serde_json::from_slice(&fb.seen()[0].body).unwrap();
    assert_eq!(first["agent"], "edge");
    assert_eq!(first["collectors"][0], format!("http://127.0.0.1:{port}"));
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("No collector has stored a batch from edge")
    );
    // The heartbeat stays silent while the collector is down.
    assert!(gets(&hc).last().map(|s| s.at) == Some(last));

    // The collector comes back on its port and data: one "back" message, and pings again.
    let (collector, _) = start_collector(dir.path(), &config).unwrap();
    let restarted = Instant::now();
    let got = messages(&fb, 2, WAIT).await;
    assert_eq!(got[1].0, "collector_reachable", "{got:?}");
    eventually("pings after the restart", WAIT, || async {
        Ok(gets(&hc).iter().any(|s| s.at > restarted).then_some(()))
    })
    .await
    .unwrap();
    // Nothing more: polled for a while after, with delivery going on.
    let until = Instant::now() + AFTER * 2;
    while Instant::now() < until {
        assert_eq!(events(&fb).len(), 2, "{:?}", events(&fb));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agent_log = agent.log_text();
    assert!(!agent_log.contains("secret"), "{agent_log}");
    drop((agent, collector));
}

/// A store that does not take a write: the test holds an exclusive lock on the table the
/// watchdog writes (`collectors`) in an open transaction on the same PostgreSQL, as a stuck
/// migration or a runaway `LOCK TABLE` would. The watchdog's write times out, it says `/fail`
/// with the reason, and pings again once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_takes_no_write_is_reported_with_fail_and_then_pings_again() {
    let Some(db) = lookout_tests::pg_database("watchdog").await else {
        return;
    };
    let hc = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!("[storage]\nurl = \"{db}\"\n{}", watchdog_section(&hc, ""));
    let config = collector_toml(dir.path(), port.get(), "edge", TOKEN, &extra);
    let (collector, _) = start_collector(dir.path(), &config).unwrap();
    // Not one /fail while it starts and wins the election.
    eventually("a healthy ping (leading)", WAIT, || async {
        Ok((!gets(&hc).is_empty()).then_some(()))
    })
    .await
    .unwrap();

    assert!(
        hc.seen_at(&format!("/ping/{UUID}/fail")).is_empty(),
        "{:?}",
        hc.seen()
    );

    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE collectors IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let locked = Instant::now();
    let fail = eventually("a /fail", WAIT, || async {
        Ok(hc
            .seen_at(&format!("/ping/{UUID}/fail"))
            .into_iter()
            .find(|s| s.at > locked))
    })
    .await
    .unwrap();
    assert_eq!(fail.method, "POST");
    let body = String::from_utf8_lossy(&fail.body).to_string();
    assert!(
        body.contains("the store is not writable: a write did not finish within 1s"),
        "{body}"
    );
    // No success ping while the store is stuck (one already on its way may land just after).
    let healthy_after = gets(&hc)
        .iter()
        .filter(|s| s.at > locked + INTERVAL)
        .count();
    assert_eq!(healthy_after, 0, "{:?}", hc.seen());

    tx.rollback().await.unwrap();
    let released = Instant::now();
    eventually("pings again", WAIT, || async {
        Ok(gets(&hc).iter().any(|s| s.at > released).then_some(()))
    })
    .await
    .unwrap();
    collector
        .wait_for_line("unhealthy: the external heartbeat is told /fail", WAIT)
        .unwrap();
    assert!(!collector.log_text().contains(UUID));
    let metrics = lookout_tests::read(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lookout_watchdog_pings_total{result=\"fail\"}"),
        "{metrics}"
    );
    drop(collector);
}
