//! Durable delivery under faults: the real binaries, killed and cut off on loopback. Each test
//! checks what the collector stored against the agent's spool sequence numbers (batch ids are
//! `<epoch>-<first>-<last>`): every number from 1 up stored once means nothing lost and nothing
//! twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout_tests::{
    Daemon, Target, collector_toml, coverage, eventually, free_port, get_json, start_collector,
    stored_ranges,
};

const TOKEN: &str = "fault-agent-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

fn collector_config(dir: &Path, port: u16) -> String {
    collector_toml(dir, port, "edge", TOKEN, "")
}

/// An agent with `checks` checks of `url` every second and host metrics every second.
fn agent_config(dir: &Path, port: u16, url: &str, checks: usize, spool: &str) -> PathBuf {
    let mut text = format!(
        "name = \"edge\"\ncollector = \"http://127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
         [host_metrics]\ninterval = \"1s\"\n\
         [shipping]\nmax_backoff = \"500ms\"\n\
         [spool]\n{spool}\n",
        dir.display()
    );
    for i in 0..checks {
        text.push_str(&format!(
            "[[checks]]\nname = \"c{i}\"\ntype = \"http\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n"
        ));
    }
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_agent(config: &Path) -> Daemon {
    lookout_tests::start_agent(config).unwrap()
}

async fn stop(mut d: Daemon) {
    d.signal("TERM").unwrap();
    let status =
        tokio::task::spawn_blocking(move || d.wait_exit(Duration::from_secs(20)).map(|s| (s, d)))
            .await
            .unwrap()
            .unwrap();
    assert!(status.0.success(), "{}", status.1.log_text());
}

/// Waits until the collector has stored everything up to the agent's last sequence number, and
/// returns (stored, missing).
async fn settle(db: &Path) -> (u64, u64) {
    let mut last = (0, 0);
    let mut same = 0;
    for _ in 0..100 {
        let ranges = stored_ranges(db, "edge").await.unwrap();
        let now = coverage(&ranges).unwrap();
        if now == last && now.0 > 0 {
            same += 1;
            if same >= 5 {
                return now;
            }
        } else {
            same = 0;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("delivery did not settle: {last:?}");
}

/// Fault 1: the collector is away for 60 s while the agent runs 5 checks a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_outage_of_a_minute_loses_nothing() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let port = free_port();
    let (collector, base) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    let agent = start_agent(&agent_config(adir.path(), port.get(), &target.url, 5, ""));
    eventually("first results", WAIT, || async {
        Ok(lookout_tests::check_status(&base, "c0")
            .await?
            .filter(|s| s == "up"))
    })
    .await
    .unwrap();
    let db = cdir.path().join("lookout.db");
    stop(collector).await;
    let before = coverage(&stored_ranges(&db, "edge").await.unwrap())
        .unwrap()
        .0;
    let outage_from = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let outage_to = chrono::Utc::now();
    let (collector, _) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    // The backlog drains while the agent goes on: time it (a figure, not an assertion).
    let back = std::time::Instant::now();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let drained = loop {
        let (max, missing) = coverage(&stored_ranges(&db, "edge").await.unwrap()).unwrap();
        // Drained: no gap left, and results produced after the collector came back are in.
        let fresh = get_json(&format!("{base}/api/v1/checks/c0/results?from={since}"))
            .await
            .map(|j| j["results"].as_array().is_some_and(|r| !r.is_empty()))
            .unwrap_or(false);
        if missing == 0 && fresh && max > before + 300 {
            break (max - before, back.elapsed());
        }
        assert!(back.elapsed() < WAIT, "the backlog did not drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop(agent).await;
    let (stored, missing) = settle(&db).await;
    assert_eq!(missing, 0, "records lost");
    // The outage itself: a result every second for every check, none twice.
    let from = outage_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = outage_to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let j = get_json(&format!(
        "{base}/api/v1/checks/c3/results?from={from}&to={to}&limit=1000"
    ))
    .await
    .unwrap();
    let mut times: Vec<i64> = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    times.sort();
    let n = times.len();
    times.dedup();
    assert_eq!(times.len(), n, "a result stored twice");
    assert!(n >= 57, "{n} results for 60 s at 1 s");
    let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(widest < 1_600, "a gap of {widest} ms in the outage");
    eprintln!(
        "fault 1: {stored} records produced and stored, 0 lost, 0 twice; c3: {n} results during the 60 s outage; \
         backlog of {} records drained in {:.2} s ({:.0} records/s)",
        drained.0,
        drained.1.as_secs_f64(),
        drained.0 as f64 / drained.1.as_secs_f64()
    );
    drop(collector);
}

/// Fault 2: kill -9 of the agent at random moments, three times, under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_agent_loses_nothing_and_stores_nothing_twice() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let port = free_port();
    let (_collector, _) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    let config = agent_config(adir.path(), port.get(), &target.url, 20, "");
    let db = cdir.path().join("lookout.db");
    let mut agent = start_agent(&config);
    for _ in 0..3 {
        // A random moment is the point: the kills fall anywhere in the agent's work.
        let ms = 1_000 + u64::from(std::process::id() as u16 % 7) * 300 + fastrand_ms();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        agent.signal("KILL").unwrap();
        drop(agent);
        agent = start_agent(&config);
    }
    // The last agent ships what the killed ones left, and more.
    let at_last_kill = highest_stored(&db).await;
    eventually("records stored after the last kill", WAIT, || async {
        Ok((highest_stored(&db).await > at_last_kill).then_some(()))
    })
    .await
    .unwrap();
    stop(agent).await;
    let (stored, missing) = settle(&db).await;
    assert_eq!(missing, 0, "records lost");
    assert!(stored > 60, "under load: {stored}");
    eprintln!("fault 2: {stored} records produced and stored across 3 kill -9, 0 lost, 0 twice");
}

/// The highest spool sequence number the collector has stored for `edge` (0 before any).
async fn highest_stored(db: &Path) -> u64 {
    if !db.exists() {
        return 0;
    }
    let ranges = stored_ranges(db, "edge").await.unwrap_or_default();
    coverage(&ranges).unwrap().0
}

/// The agent's latest report of its spool's drop count, as the collector stores it: (time,
/// count); `None` before a report with drops.
async fn drop_report(base: &str) -> anyhow::Result<Option<(String, u64)>> {
    let j = get_json(&format!("{base}/api/v1/hosts")).await?;
    let metric = j["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["name"] == "edge"))
        .and_then(|h| h["metrics"].as_array())
        .and_then(|m| {
            m.iter()
                .find(|m| m["name"] == "lookout.agent.spool.dropped")
        })
        .cloned();
    Ok(metric.and_then(|m| {
        let n = m["value"].as_f64().filter(|v| *v > 0.0)? as u64;
        Some((m["time"].as_str()?.to_string(), n))
    }))
}

fn fastrand_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis() as u64
}

/// Fault 3: kill -9 of the collector during ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_collector_loses_no_acknowledged_batch() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let port = free_port();
    let (collector, _) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    let agent = start_agent(&agent_config(adir.path(), port.get(), &target.url, 20, ""));
    let db = cdir.path().join("lookout.db");
    // Ingest under way, then a random moment (the point: the kill falls anywhere in it).
    eventually("records stored", WAIT, || async {
        Ok((highest_stored(&db).await > 0).then_some(()))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500 + fastrand_ms())).await;
    collector.signal("KILL").unwrap();
    drop(collector);
    let before = coverage(&stored_ranges(&db, "edge").await.unwrap()).unwrap();
    // Away for a while (the outage is the point), then back on the same port.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_collector, _) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    eventually("records stored after the restart", WAIT, || async {
        Ok((highest_stored(&db).await > before.0).then_some(()))
    })
    .await
    .unwrap();
    stop(agent).await;
    let (stored, missing) = settle(&db).await;
    assert_eq!(missing, 0, "records lost");
    assert!(
        stored > before.0,
        "stored before the kill {before:?}, after {stored}"
    );
    eprintln!(
        "fault 3: {stored} records produced and stored ({} before the kill -9), 0 lost, 0 twice",
        before.0
    );
}

/// Fault 4: a tiny spool while the collector is away: the agent stays up and counts exactly what
/// it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_the_oldest_and_counts_them() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let port = free_port();
    let config = agent_config(
        adir.path(),
        port.get(),
        &target.url,
        30,
        "max_bytes = 65536\nsegment_bytes = 8192",
    );
    let agent = start_agent(&config);
    agent.wait_for_line("spool full", WAIT).unwrap();
    // Full for a while longer (the point: more records dropped).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_collector, base) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    // The agent reports its drop count every 10 s; wait for a report made after the last drop:
    // two reports in a row with the same count (once the collector is back the spool drains,
    // and nothing more is dropped).
    let mut last: Option<(String, u64)> = None;
    let mut dropped = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let final_dropped = loop {
        if let Some(now) = drop_report(&base).await.unwrap() {
            dropped.get_or_insert(now.1);
            match &last {
                Some((time, n)) if *time != now.0 && *n == now.1 => break now.1,
                Some((time, _)) if *time == now.0 => {}
                _ => last = Some(now),
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no two drop reports alike: last {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop(agent).await;
    let (stored, missing) = settle(&cdir.path().join("lookout.db")).await;
    assert!(missing > 0);
    assert_eq!(
        final_dropped, missing,
        "the reported drop count is what is missing (first report {dropped:?})"
    );
    eprintln!(
        "fault 4: {} records produced, {} stored, {missing} dropped and reported as dropped, 0 twice",
        stored,
        stored - missing
    );
}

/// Fault 5: a spool segment damaged while the agent was stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spool_is_skipped_and_the_agent_goes_on() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let port = free_port();
    let config = agent_config(
        adir.path(),
        port.get(),
        &target.url,
        10,
        "segment_bytes = 4096",
    );
    // No collector yet: everything stays in the spool, until it has segments to spare.
    let agent = start_agent(&config);
    let segments = || {
        let mut segs: Vec<PathBuf> = std::fs::read_dir(adir.path().join("spool"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        segs.retain(|p| p.extension().is_some_and(|x| x == "seg"));
        segs.sort();
        segs
    };
    eventually("four spool segments", WAIT, || async {
        Ok((segments().len() >= 4).then_some(()))
    })
    .await
    .unwrap();
    stop(agent).await;
    let segs = segments();
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 64].fill(0x5a);
    std::fs::write(victim, &bytes).unwrap();

    let (_collector, base) =
        start_collector(cdir.path(), &collector_config(cdir.path(), port.get())).unwrap();
    let agent = start_agent(&config);
    let warning = agent.wait_for_line("damaged spool segment", WAIT).unwrap();
    assert!(
        warning.contains(victim.file_name().unwrap().to_str().unwrap())
            && warning.contains("lost_bytes="),
        "{warning}"
    );
    eventually("new results", WAIT, || async {
        Ok(lookout_tests::check_status(&base, "c0")
            .await?
            .filter(|s| s == "up"))
    })
    .await
    .unwrap();
    stop(agent).await;
    let (stored, missing) = settle(&cdir.path().join("lookout.db")).await;
    assert!(
        (1..=3).contains(&missing),
        "only the damaged records are missing: {missing}"
    );
    eprintln!(
        "fault 5: {stored} records, {missing} lost to the damage (reported in the warning), the rest stored once"
    );
}

/// Several collector URLs: the first is down, the agent fails over to the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_fails_over_to_the_next_collector() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = Target::start().await.unwrap();
    let (dead, live) = (free_port(), free_port());
    let (_collector, base) =
        start_collector(cdir.path(), &collector_config(cdir.path(), live.get())).unwrap();
    let config = agent_config(adir.path(), live.get(), &target.url, 2, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("collector = \"http://127.0.0.1:{live}\""),
        &format!("collector = [\"http://127.0.0.1:{dead}\", \"http://127.0.0.1:{live}\"]"),
    );
    std::fs::write(&config, text).unwrap();
    let agent = start_agent(&config);
    eventually("results through the second collector", WAIT, || async {
        Ok(lookout_tests::check_status(&base, "c1")
            .await?
            .filter(|s| s == "up"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    stop(agent).await;
    let (_, missing) = settle(&cdir.path().join("lookout.db")).await;
    assert_eq!(missing, 0);
}
