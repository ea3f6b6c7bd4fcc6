//! End to end: the real binaries on loopback, talked to as a user's tools would.

use std::process::Command;
use std::time::Duration;

use lookout_protocol::{Batch, Encoding, LogRecord, PROTOCOL_VERSION, Record, encode_batch};
use lookout_tests::{
    Daemon, READ_TOKEN, Target, bin, check_status, eventually, get_json, start_collector,
};

const AGENT_TOKEN: &str = "e2e-agent-token-0123456789abcdef";

fn collector_config(dir: &std::path::Path, checks: &str) -> String {
    format!(
        r#"
[server]
read_tokens = ["{READ_TOKEN}"]
listen = "127.0.0.1:0"
data_dir = "{dir}"
max_body_bytes = 65536
max_decoded_bytes = 1048576

[[agents]]
name = "edge-1"
token = "{AGENT_TOKEN}"
labels = {{ role = "web" }}

{checks}
"#,
        dir = dir.display()
    )
}

fn target_check(name: &str, url: &str) -> String {
    format!(
        r#"
[[checks]]
name = "{name}"
type = "http"
url = "{url}"
interval = "1s"
timeout = "1s"
run_on = ["role=web"]
"#
    )
}

/// Starts agent `edge-1` with host metrics off, these `[shipping]` settings and one local check
/// (its TOML lines), shipping to `collector`.
fn start_local_check_agent(
    dir: &std::path::Path,
    collector: &str,
    shipping: &str,
    check: &str,
) -> Daemon {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"edge-1\"\ncollector = \"{collector}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n[shipping]\n{shipping}\n\
             [[checks]]\n{check}\n",
            dir.display()
        ),
    )
    .unwrap();
    lookout_tests::start_agent(&path).unwrap()
}

fn start_agent(dir: &std::path::Path, collector: &str) -> Daemon {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "edge-1"
collector = "{collector}"
token = "${{E2E_AGENT_TOKEN}}"
data_dir = "{dir}"

[host_metrics]
interval = "1s"

[shipping]
assignments_interval = "1s"
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    Daemon::start(
        &bin("lookout-agent"),
        &["--config", path.to_str().unwrap()],
        &[("E2E_AGENT_TOKEN", AGENT_TOKEN)],
    )
    .unwrap()
}

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_goes_up_then_down_and_host_metrics_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let (mut collector, base) = start_collector(
        dir.path(),
        &collector_config(dir.path(), &target_check("target", &target.url)),
    )
    .unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let mut agent = start_agent(agent_dir.path(), &base);

    let up = eventually("check up", WAIT, || async {
        Ok(check_status(&base, "target").await?.filter(|s| s == "up"))
    })
    .await;
    up.unwrap_or_else(|e| {
        panic!(
            "{e}\ncollector:\n{}\nagent:\n{}",
            collector.log_text(),
            agent.log_text()
        )
    });

    target.set_status(503);
    eventually("check down", WAIT, || async {
        Ok(check_status(&base, "target").await?.filter(|s| s == "down"))
    })
    .await
    .unwrap();

    // The raw results show both states, from this agent, with the reason.
    let results = get_json(&format!("{base}/api/v1/checks/target/results?agent=edge-1"))
        .await
        .unwrap();
    let results = results["results"].as_array().unwrap().clone();
    assert!(results.iter().any(|r| r["ok"] == true));
    let failed = results.iter().find(|r| r["ok"] == false).unwrap();
    assert_eq!(failed["error"], "status 503, expected 2xx");
    assert_eq!(failed["agent"], "edge-1");
    assert!(failed["latency_ms"].as_f64().unwrap() > 0.0);

    // Host metrics for the agent, with the values a user graphs.
    let metrics = eventually("host metrics", WAIT, || async {
        let j = get_json(&format!("{base}/api/v1/hosts")).await?;
        let host = j["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "edge-1")
            .cloned();
        Ok(host.and_then(|h| {
            let m = h["metrics"].as_array().cloned().unwrap_or_default();
            (m.iter().any(|x| x["name"] == "system.cpu.utilization")).then_some(m)
        }))
    })
    .await
    .unwrap();
    for name in [
        "system.memory.usage",
        "system.memory.limit",
        "system.cpu.load_average.1m",
        "system.filesystem.usage",
        "system.network.io",
    ] {
        assert!(
            metrics.iter().any(|m| m["name"] == name),
            "{name} missing: {metrics:?}"
        );
    }

    // The collector rolls results up in the background: the uptime API, which reads only
    // rollups, sees both the successes and the failures within a few seconds.
    eventually("rollups", WAIT, || async {
        let j = get_json(&format!(
            "{base}/api/v1/checks/target/uptime?step=1m&agent=edge-1"
        ))
        .await?;
        let total = &j["total"];
        let seen = total["count"].as_u64().unwrap_or(0) >= 2
            && total["failures"].as_u64().unwrap_or(0) >= 1;
        Ok(seen.then_some(()))
    })
    .await
    .unwrap();

    // Both stop cleanly on SIGTERM.
    agent.signal("TERM").unwrap();
    assert!(
        agent.wait_exit(Duration::from_secs(10)).unwrap().success(),
        "{}",
        agent.log_text()
    );
    collector.signal("TERM").unwrap();
    assert!(
        collector
            .wait_exit(Duration::from_secs(15))
            .unwrap()
            .success(),
        "{}",
        collector.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_assignment_changes_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let (collector, base) = start_collector(
        dir.path(),
        &collector_config(dir.path(), &target_check("first", &target.url)),
    )
    .unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = start_agent(agent_dir.path(), &base);
    eventually("first up", WAIT, || async {
        Ok(check_status(&base, "first").await?.filter(|s| s == "up"))
    })
    .await
    .unwrap();

    // Add a check to the file and tell the collector to reload it.
    let both = format!(
        "{}{}",
        target_check("first", &target.url),
        target_check("second", &target.url)
    );
    std::fs::write(
        dir.path().join("collector.toml"),
        collector_config(dir.path(), &both),
    )
    .unwrap();
    collector.signal("HUP").unwrap();
    eventually("second up", WAIT, || async {
        Ok(check_status(&base, "second").await?.filter(|s| s == "up"))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\ncollector:\n{}\nagent:\n{}",
            collector.log_text(),
            agent.log_text()
        )
    });

    // A broken edit is refused and the running configuration stays.
    std::fs::write(dir.path().join("collector.toml"), "[[checks]]\nname = 1\n").unwrap();
    collector.signal("HUP").unwrap();
    collector
        .wait_for_line("configuration not reloaded", WAIT)
        .unwrap();
    assert_eq!(
        check_status(&base, "second").await.unwrap().as_deref(),
        Some("up")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_answers_401_400_and_413() {
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base) =
        start_collector(dir.path(), &collector_config(dir.path(), "")).unwrap();
    let client = reqwest::Client::new();
    let send = |token: &str, body: Vec<u8>, enc: Encoding| {
        client
            .post(format!("{base}/v1/ingest"))
            .bearer_auth(token)
            .header("content-encoding", enc.header_value())
            .body(body)
            .send()
    };
    let batch = |text_len: usize| Batch {
        version: PROTOCOL_VERSION,
        agent: "edge-1".into(),
        batch_id: format!("b-{text_len}"),
        records: vec![Record::Log(LogRecord {
            time: chrono::Utc::now(),
            source: "e2e".into(),
            level: None,
            text: "y".repeat(text_len),
            position: None,
        })],
    };

    let ok = send(
        AGENT_TOKEN,
        encode_batch(&batch(10), Encoding::Zstd).unwrap(),
        Encoding::Zstd,
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["stored"], 1);

    let r = send("wrong-token-wrong-token", vec![], Encoding::Identity)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let r = send(AGENT_TOKEN, b"[1,2,3]".to_vec(), Encoding::Identity)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed batch"),
        "{body}"
    );

    // Larger than max_body_bytes as sent, and (compressed small) larger than max_decoded_bytes.
    let r = send(AGENT_TOKEN, vec![b'{'; 70_000], Encoding::Identity)
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let bomb = encode_batch(&batch(2_000_000), Encoding::Zstd).unwrap();
    assert!(bomb.len() < 65536);
    let r = send(AGENT_TOKEN, bomb, Encoding::Zstd).await.unwrap();
    assert_eq!(r.status(), 413);

    // The collector is still up and answering after all that.
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn a_broken_config_names_file_line_and_column_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:7700\"\n\n[[checks]]\nname = \"x\"\ntype = \"http\"\nurl = \"http://x/\"\ninterval = \"soon\"\n",
    )
    .unwrap();
    for args in [vec!["validate", "--config"], vec!["--config"]] {
        let mut a = args.clone();
        a.push(path.to_str().unwrap());
        let out = Command::new(bin("lookout-collector"))
            .args(&a)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!(
            "{}:8:12: checks[0].interval: invalid duration \"soon\"",
            path.display()
        );
        assert!(
            err.contains(&want),
            "{args:?}: expected {want:?} in:\n{err}"
        );
    }

    let agent = dir.path().join("agent.toml");
    std::fs::write(
        &agent,
        "name = \"a\"\ncollector = \"http://127.0.0.1:1\"\ntoken = \"${E2E_UNSET_TOKEN_VAR}\"\n",
    )
    .unwrap();
    let out = Command::new(bin("lookout-agent"))
        .args(["validate", "--config", agent.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:3:9: token: environment variable E2E_UNSET_TOKEN_VAR is not set",
            agent.display()
        )),
        "{err}"
    );

    let out = Command::new(bin("lookout-collector"))
        .args(["validate", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml: cannot read the file")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_probe_prints_a_table_and_fails_when_a_check_fails() {
    let target = Target::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    // No collector listens at that address: local checks still run.
    let write = |status: &str| {
        std::fs::write(
            &path,
            format!(
                "name = \"a\"\ncollector = \"http://127.0.0.1:9\"\ntoken = \"agent-token-0123456789abcdef\"\n\
                 [[checks]]\nname = \"local-target\"\ntype = \"http\"\nurl = \"{}\"\nexpected_status = [{status}]\n",
                target.url
            ),
        )
        .unwrap();
    };
    let run = || {
        let path = path.clone();
        std::thread::spawn(move || {
            Command::new(bin("lookout-agent"))
                .args(["probe", "--config", path.to_str().unwrap()])
                .output()
                .unwrap()
        })
        .join()
        .unwrap()
    };
    write("200");
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().next().unwrap().starts_with("CHECK"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("local-target"))
        .unwrap();
    assert!(row.contains(" ok ") && row.contains("200"), "{row}");
    assert!(text.contains("note: assigned checks not run"), "{text}");

    write("204");
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("local-target"))
        .unwrap();
    assert!(
        row.contains("FAIL") && row.contains("status 200, expected 204"),
        "{row}"
    );
}

#[test]
fn both_binaries_print_their_version() {
    for b in ["lookout-collector", "lookout-agent"] {
        let out = Command::new(bin(b)).arg("--version").output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{b} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_agent_runs_checks_and_host_metrics_in_the_collector_process() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let config = format!(
        r#"
[server]
read_tokens = ["{READ_TOKEN}"]
listen = "127.0.0.1:0"
data_dir = "{dir}"

[local_agent]
name = "solo"
labels = {{ role = "web" }}

[local_agent.host_metrics]
interval = "1s"

{check}
"#,
        dir = dir.path().display(),
        check = target_check("target", &target.url)
    );
    let (collector, base) = start_collector(dir.path(), &config).unwrap();
    eventually("local check up", WAIT, || async {
        Ok(check_status(&base, "target").await?.filter(|s| s == "up"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", collector.log_text()));
    let checks = get_json(&format!("{base}/api/v1/checks")).await.unwrap();
    assert_eq!(checks["checks"][0]["agents"][0]["agent"], "solo");
    eventually("local host metrics", WAIT, || async {
        let j = get_json(&format!("{base}/api/v1/hosts")).await?;
        let solo = j["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "solo")
            .cloned();
        Ok(solo.filter(|h| h["metrics"].as_array().is_some_and(|m| !m.is_empty())))
    })
    .await
    .unwrap();
    // The database is where the configuration says.
    assert!(dir.path().join("lookout.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_probing_while_the_collector_is_away_and_delivers_when_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    // A port with nobody on it yet: the collector comes up there later.
    let port = lookout_tests::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = start_local_check_agent(
        agent_dir.path(),
        &base,
        "max_backoff = \"1s\"\nassignments_interval = \"1s\"",
        &format!(
            "name = \"local-target\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"",
            target.url
        ),
    );
    agent
        .wait_for_line("shipping failed; will retry", WAIT)
        .unwrap();
    let outage_started = chrono::Utc::now();
    // The outage lasts a while (the point: results pile up in the spool).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let config =
        collector_config(dir.path(), "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let (_collector, _) = start_collector(dir.path(), &config).unwrap();
    // Results probed during the outage arrive, not only the ones after it.
    let results = eventually("results from the outage", WAIT, || async {
        let j = get_json(&format!("{base}/api/v1/checks/local-target/results")).await;
        let Ok(j) = j else { return Ok(None) };
        let r = j["results"].as_array().cloned().unwrap_or_default();
        Ok((r.len() >= 3).then_some(r))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
    let oldest = results.last().unwrap()["time"].as_str().unwrap();
    let oldest = chrono::DateTime::parse_from_rfc3339(oldest).unwrap();
    assert!(
        oldest <= outage_started + chrono::Duration::seconds(1),
        "oldest {oldest}, outage {outage_started}"
    );
    let status = check_status(&base, "local-target").await.unwrap();
    assert_eq!(
        status.as_deref(),
        Some("up"),
        "an agent-local check is listed too"
    );
}

/// Routine results travel in batches (here every 8 s), but a result that changes a check's
/// state is sent at once: the collector sees the check go down within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_is_sent_at_once_while_routine_results_wait_for_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let (_collector, base) =
        start_collector(dir.path(), &collector_config(dir.path(), "")).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = start_local_check_agent(
        agent_dir.path(),
        &base,
        "flush_interval = \"8s\"",
        &format!(
            "name = \"t\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nretry_interval = \"1s\"",
            target.url
        ),
    );
    let count = || async {
        let j = get_json(&format!("{base}/api/v1/checks/t/results")).await?;
        Ok::<usize, anyhow::Error>(j["results"].as_array().map_or(0, |r| r.len()))
    };
    // The first result is a change (from nothing): it arrives at once, alone.
    eventually("first result", Duration::from_secs(8), || async {
        Ok((count().await? >= 1).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    let first_seen = std::time::Instant::now();
    // The next ones (still up) wait for the batch: over 3 s, none arrives. (The wait is the
    // point: it asserts that nothing comes.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count().await.unwrap(),
        1,
        "routine results were not held for the batch"
    );
    // The target fails: the first failing result goes at once, well before the 8 s batch.
    target.set_status(503);
    let changed = std::time::Instant::now();
    eventually("the check down", Duration::from_secs(4), || async {
        Ok(check_status(&base, "t").await?.filter(|s| s == "down"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    assert!(
        first_seen.elapsed() < Duration::from_secs(8),
        "the change arrived only with the batch"
    );
    eprintln!(
        "state change reached the collector {:?} after the target changed",
        changed.elapsed()
    );
}

/// A steady result (a pass after a pass) says nothing new: it waits up to `steady_wait` for a
/// batch, where other records wait `flush_interval`; the first result goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_result_waits_up_to_steady_wait() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let (_collector, base) =
        start_collector(dir.path(), &collector_config(dir.path(), "")).unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = start_local_check_agent(
        agent_dir.path(),
        &base,
        "flush_interval = \"200ms\"\nsteady_wait = \"2s\"",
        &format!(
            "name = \"t\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"3s\"\ntimeout = \"1s\"",
            target.url
        ),
    );
    // Polls until the collector holds `n` results; answers how long after its probe the
    // newest arrived (within the 100 ms between polls).
    let base = base.as_str();
    let arrival_delay = |n: usize| async move {
        eventually("results", Duration::from_secs(12), || async {
            let j = get_json(&format!("{base}/api/v1/checks/t/results")).await?;
            let results = j["results"].as_array().cloned().unwrap_or_default();
            if results.len() < n {
                return Ok(None);
            }
            let newest: chrono::DateTime<chrono::Utc> =
                results[0]["time"].as_str().unwrap_or_default().parse()?;
            Ok(Some((chrono::Utc::now() - newest).to_std()?))
        })
        .await
    };
    let first = arrival_delay(1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    assert!(
        first < Duration::from_secs(1),
        "the first result went at once: {first:?}"
    );
    let second = arrival_delay(2)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    assert!(
        second >= Duration::from_millis(1800) && second < Duration::from_millis(2900),
        "a steady result waited {second:?}, not steady_wait (2 s)"
    );
}
