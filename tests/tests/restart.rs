//! A collector restart, as in an upgrade (docs/deployment.md, "Upgrades and version skew"):
//! SIGTERM, down for several check intervals, started again on the same data. The agent spools
//! and resends, so every result it produced is stored (no hole in the results' times, its
//! spool's sequence numbers all stored once, as many results as it counts probes), the status
//! page's days show no failure, no missing time and no incident for the restart, and nothing
//! pages: no alert of any state, for the check or for the agent, though the collector was away
//! for longer than the agent's timeout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use lookout_tests::{
    Daemon, Target, check_status, collector_toml, coverage, eventually, free_port, get_json,
    start_collector, stored_ranges,
};

const TOKEN: &str = "restart-agent-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(60);
/// The check's interval, and how long the collector stays down: longer than the agent's
/// timeout (5 s, the least it may be), so a restart that judged the agent by its silence
/// would page.
const INTERVAL: Duration = Duration::from_secs(1);
const DOWN: Duration = Duration::from_secs(8);
/// The widest gap allowed between two results: the interval and slack for a shared machine.
const MAX_GAP_MS: i64 = 2_500;

fn collector_config(dir: &Path, port: u16, target: &str) -> String {
    collector_toml(
        dir,
        port,
        "edge",
        TOKEN,
        &format!(
            "agent_timeout = \"5s\"\n\
             [[checks]]\nname = \"web\"\ntype = \"http\"\nurl = \"{target}\"\ninterval = \"1s\"\n\
             timeout = \"1s\"\n"
        ),
    )
}

fn agent_config(dir: &Path, port: u16, metrics: u16) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"edge\"\ncollector = \"http://127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
             \
             [telemetry]\nmetrics_listen = \"127.0.0.1:{metrics}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

async fn stop(mut d: Daemon) {
    d.signal("TERM").unwrap();
    tokio::task::spawn_blocking(move || d.wait_exit(WAIT).map(|s| (s, d)))
        .await
        .unwrap()
        .map(|(s, d)| assert!(s.success(), "{}", d.log_text()))
        .unwrap();
}

/// The agent's own count of the probes of `web` it ran (`lookout_agent_probes_total`).
async fn probes_run(metrics: u16) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("lookout_agent_probes_total{") && l.contains("check=\"web\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

/// Times (ms since the epoch) of `web`'s results since `from`, sorted; each result once.
async fn result_times(base: &str, from: DateTime<Utc>) -> Vec<i64> {
    let from = from.to_rfc3339_opts(SecondsFormat::Secs, true);
    let j = get_json(&format!(
        "{base}/api/v1/checks/web/results?from={from}&limit=10000"
    ))
    .await
    .unwrap();
    let mut times: Vec<i64> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["ok"], true, "{r}");
            DateTime::parse_from_rfc3339(r["time"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    times.sort();
    let n = times.len();
    times.dedup();
    assert_eq!(times.len(), n, "a result stored twice");
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_restart_loses_nothing_makes_no_gap_and_pages_nobody() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let (port, metrics) = (free_port(), free_port());
    let config = collector_config(cdir.path(), port.get(), &target.url);
    let started = Utc::now() - chrono::Duration::seconds(5);
    let (collector, base) = start_collector(cdir.path(), &config).unwrap();
    let agent =
        lookout_tests::start_agent(&agent_config(adir.path(), port.get(), metrics.get())).unwrap();
    eventually("web up, with a few results", WAIT, || async {
        let up = check_status(&base, "web").await?.is_some_and(|s| s == "up");
        Ok((up && result_times(&base, started).await.len() >= 5).then_some(()))
    })
    .await
    .unwrap();

    // The restart: SIGTERM, down for several intervals, started again on the same data.
    stop(collector).await;
    let down_from = Utc::now();
    // A clean stop leaves the database in its one file: the WAL folded in and removed.
    let db = cdir.path().join("lookout.db");
    assert!(!cdir.path().join("lookout.db-wal").exists(), "-wal left");
    assert!(!cdir.path().join("lookout.db-shm").exists(), "-shm left");
    // The outage is the scenario, not a wait for something: nothing to poll for.
    tokio::time::sleep(DOWN).await;
    let down_to = Utc::now();
    let back = Instant::now();
    let (collector, base) = start_collector(cdir.path(), &config).unwrap();

    // The spool resends: results from after the restart arrive, and the outage fills in.
    eventually("the spool's backlog stored", WAIT, || async {
        let (_, missing) = coverage(&stored_ranges(&db, "edge").await?)?;
        let times = result_times(&base, started).await;
        let fresh = times
            .last()
            .is_some_and(|t| *t > down_to.timestamp_millis() + 2_000);
        Ok((missing == 0 && fresh).then_some(()))
    })
    .await
    .unwrap();
    let drained = back.elapsed();
    assert_eq!(
        check_status(&base, "web").await.unwrap().as_deref(),
        Some("up"),
        "the check's state after the restart"
    );

    // Every probe the agent ran is stored: its own count, read before it stops, is at most
    // what the collector has once the agent has shipped everything and said goodbye.
    let ran = probes_run(metrics.get()).await.unwrap();
    stop(agent).await;
    let (last_seq, missing) = coverage(&stored_ranges(&db, "edge").await.unwrap()).unwrap();
    assert_eq!(missing, 0, "spool records lost (of {last_seq})");
    let times = result_times(&base, started).await;
    // At most a few more: probes run between the reading and the stop (one a second).
    assert!(
        times.len() as u64 >= ran && times.len() as u64 <= ran + 3,
        "{} results stored, the agent ran {ran} probes",
        times.len()
    );
    let (widest, at) = times.windows(2).map(|w| (w[1] - w[0], w[0])).max().unwrap();
    assert!(
        widest <= MAX_GAP_MS,
        "a hole of {widest} ms in the results after {at} (down {} to {})",
        down_from.timestamp_millis(),
        down_to.timestamp_millis()
    );
    let in_outage = times
        .iter()
        .filter(|t| (down_from.timestamp_millis()..down_to.timestamp_millis()).contains(t))
        .count();
    let expected = DOWN.as_millis() as usize / INTERVAL.as_millis() as usize;
    assert!(
        in_outage + 1 >= expected,
        "{in_outage} results while the collector was down for {DOWN:?}"
    );

    // The status page's 90 days (its rollups): every stored result counted, none failed, no
    // incident, 100 % over 24 h.
    let stored = times.len() as u64;
    let check = eventually("the status page counts every result", WAIT, || async {
        let j = get_json(&format!("{base}/api/v1/status")).await?;
        let check = j["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["checks"].as_array().into_iter().flatten())
            .find(|c| c["name"] == "web")
            .cloned();
        let counted: u64 = check
            .as_ref()
            .map(|c| {
                c["days"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        Ok((counted >= stored).then_some(check))
    })
    .await
    .unwrap()
    .unwrap();
    let days = check["days"].as_array().unwrap();
    let counted: u64 = days.iter().map(|d| d["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, stored, "{check}");
    for d in days {
        assert_eq!(d["failures"], 0, "{d}");
        assert_eq!(d["incidents"], 0, "{d}");
        if d["count"].as_u64().unwrap() > 0 {
            assert_eq!(d["uptime"], 1.0, "{d}");
        }
    }
    assert_eq!(check["uptime"]["24h"], 1.0, "{check}");

    // Nothing paged: no alert of any state, for the check or for the agent.
    let alerts = get_json(&format!("{base}/api/v1/alerts?state=all"))
        .await
        .unwrap();
    assert_eq!(alerts["alerts"], serde_json::json!([]), "{alerts}");
    eprintln!(
        "restart: down {DOWN:?}; {stored} results of web stored for {ran} probes run, \
         {in_outage} of them while the collector was down; widest gap {widest} ms; spool \
         records 1..{last_seq} all stored; backlog drained {:.1} s after the start",
        drained.as_secs_f64()
    );
    stop(collector).await;
}
