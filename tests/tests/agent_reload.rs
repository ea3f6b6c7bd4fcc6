//! The agent's `SIGHUP`, end to end with the real binaries: a reload changes the agent's local
//! checks, labels, log files and collector while it runs; an invalid file, and one that
//! changes a key only a restart can change, are refused with the reason in the agent's log and
//! counted in its `/metrics`, while it goes on shipping on the configuration it had; a valid
//! file after them is taken again. An enrolled agent keeps its credential through a reload.
//!
//! The oracles are the collectors' API and database (which checks report, which labels the
//! agent sent, which log lines are stored, each once), the agent's own `/metrics`, its log and
//! its credential file.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lookout_tests::{
    Daemon, Target, bin, check_status, collector_toml, eventually, free_port, get_json,
    start_agent, start_collector,
};

const TOKEN: &str = "reload-agent-token-0123456789abcdef";
const ENROL: &str = "reload-fleet-enrol-token-0123456789";
const WAIT: Duration = Duration::from_secs(30);

/// The agent's file: `edge` with these labels, collector, local check, log files and extra
/// top-level lines; host metrics off, assignments every second, `/metrics` on `metrics`.
struct AgentFile<'a> {
    dir: &'a Path,
    collector: &'a str,
    metrics: u16,
    labels: &'a str,
    check: (&'a str, &'a str),
    logs: &'a [&'a Path],
    top: &'a str,
}

impl AgentFile<'_> {
    fn text(&self) -> String {
        let logs: String = self
            .logs
            .iter()
            .map(|p| {
                format!(
                    "[[logs]]\npaths = [\"{}\"]\nread_from = \"beginning\"\n",
                    p.display()
                )
            })
            .collect();
        format!(
            "name = \"edge\"\ncollector = \"{}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
             labels = {{ zone = \"{}\" }}\n{}\n\
             [host_metrics]\nenabled = false\n\
             [shipping]\nassignments_interval = \"1s\"\nflush_interval = \"200ms\"\n\
             [telemetry]\nmetrics_listen = \"127.0.0.1:{}\"\n\
             [[checks]]\nname = \"{}\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\
             {logs}",
            self.collector,
            self.dir.display(),
            self.labels,
            self.top,
            self.metrics,
            self.check.0,
            self.check.1,
        )
    }

    fn write(&self) -> PathBuf {
        let path = self.dir.join("agent.toml");
        fs::write(&path, self.text()).unwrap();
        path
    }
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn numbered(tag: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{tag} {i:04}")).collect()
}

/// The log lines a collector stored for `edge`, by text, with how many times each.
async fn stored_lines(data_dir: &Path) -> BTreeMap<String, usize> {
    let url = format!("sqlite://{}?mode=ro", data_dir.join("lookout.db").display());
    let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
        return BTreeMap::new();
    };
    let rows: Vec<(String,)> = sqlx::query_as("SELECT text FROM logs WHERE agent = 'edge'")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    let mut out = BTreeMap::new();
    for (text,) in rows {
        *out.entry(text).or_insert(0) += 1;
    }
    out
}

/// Waits until every one of `lines` is stored.
async fn lines_arrive(data_dir: &Path, lines: &[String], agent: &Daemon) {
    eventually("log lines stored", WAIT, || async {
        let stored = stored_lines(data_dir).await;
        Ok(lines.iter().all(|l| stored.contains_key(l)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
}

/// The labels `edge` last sent to the collector at `base`.
async fn claimed(base: &str) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let j = get_json(&format!("{base}/api/v1/hosts")).await?;
    let host = j["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["name"] == "edge"))
        .cloned();
    Ok(host.and_then(|h| serde_json::from_value(h["claimed_labels"].clone()).ok()))
}

async fn labels_become(base: &str, zone: &str, agent: &Daemon) {
    eventually(&format!("zone {zone} at {base}"), WAIT, || async {
        Ok(claimed(base)
            .await?
            .filter(|l| l.get("zone").map(String::as_str) == Some(zone)))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
}

async fn check_is_up(base: &str, check: &str, agent: &Daemon) {
    eventually(&format!("{check} up at {base}"), WAIT, || async {
        Ok(check_status(base, check)
            .await?
            .filter(|s| s == "up")
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
}

/// Results of `check` from `edge` stored at `base`.
async fn results(base: &str, check: &str) -> usize {
    get_json(&format!(
        "{base}/api/v1/checks/{check}/results?agent=edge&limit=1000"
    ))
    .await
    .ok()
    .and_then(|j| j["results"].as_array().map(Vec::len))
    .unwrap_or(0)
}

/// The agent's own `/metrics`.
async fn agent_metrics(port: u16) -> anyhow::Result<String> {
    Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?)
}

/// Waits until the agent's `/metrics` holds every one of `lines`.
async fn agent_metrics_show(port: u16, lines: &[&str], agent: &Daemon) -> String {
    eventually(&format!("agent /metrics shows {lines:?}"), WAIT, || async {
        let text = agent_metrics(port).await?;
        Ok(lines
            .iter()
            .all(|l| text.lines().any(|x| x == *l))
            .then_some(text))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()))
}

/// Sends SIGHUP and waits for the `n`th log line containing `needle` (the outcome of the
/// reload).
fn reload(agent: &Daemon, needle: &str, n: usize) {
    agent.signal("HUP").unwrap();
    eventually_sync(&format!("{n} × {needle:?}"), || {
        agent.log_text().matches(needle).count() >= n
    })
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
}

fn eventually_sync(what: &str, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    while !ok() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_file_and_keeps_shipping_on_the_old_one_when_the_new_is_refused() {
    let (c1dir, c2dir, adir, logdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let target = Target::start().await.unwrap();
    let (p1, p2) = (free_port(), free_port());
    let (_c1, base1) = start_collector(
        c1dir.path(),
        &collector_toml(c1dir.path(), p1.get(), "edge", TOKEN, ""),
    )
    .unwrap();
    let (one, two) = (logdir.path().join("one.log"), logdir.path().join("two.log"));
    append(&one, numbered("one", 0..10));
    append(&two, numbered("two", 0..5));
    let metrics = free_port().get();
    let mut file = AgentFile {
        dir: adir.path(),
        collector: &base1,
        metrics,
        labels: "a",
        check: ("first", &target.url),
        logs: &[&one],
        top: "",
    };
    let agent = start_agent(&file.write()).unwrap();
    check_is_up(&base1, "first", &agent).await;
    labels_become(&base1, "a", &agent).await;
    lines_arrive(c1dir.path(), &numbered("one", 0..10), &agent).await;
    agent_metrics_show(
        metrics,
        &[
            "lookout_agent_config_last_reload_successful 1",
            "lookout_agent_config_reload_failures_total 0",
        ],
        &agent,
    )
    .await;

    // A reload that changes the local check, the labels and the log files: one.log stays,
    // two.log is added; lines written to one.log around the reload arrive once each.
    append(&one, numbered("one", 10..20));
    let logs_both = [one.as_path(), two.as_path()];
    file.labels = "b";
    file.check = ("second", &target.url);
    file.logs = &logs_both;
    file.write();
    reload(&agent, "configuration reloaded", 1);
    append(&one, numbered("one", 20..30));
    check_is_up(&base1, "second", &agent).await;
    labels_become(&base1, "b", &agent).await;
    let mut want: Vec<String> = numbered("one", 0..30);
    want.extend(numbered("two", 0..5));
    lines_arrive(c1dir.path(), &want, &agent).await;
    // The check the file no longer has stopped: the agent no longer counts its probes.
    let text = agent_metrics(metrics).await.unwrap();
    assert!(
        text.contains("check=\"second\"") && !text.contains("check=\"first\""),
        "{text}"
    );

    // An invalid file: refused, said with its place, counted; the agent ships on.
    fs::write(
        adir.path().join("agent.toml"),
        file.text()
            .replace("interval = \"1s\"\ntimeout", "interval = \"soon\"\ntimeout"),
    )
    .unwrap();
    reload(&agent, "configuration not reloaded", 1);
    let log = agent.log_text();
    assert!(
        log.lines().any(|l| l.contains("configuration not reloaded")
            && l.contains("agent.toml:")
            && l.contains("checks[0].interval")),
        "{log}"
    );
    agent_metrics_show(
        metrics,
        &[
            "lookout_agent_config_last_reload_successful 0",
            "lookout_agent_config_reload_failures_total 1",
        ],
        &agent,
    )
    .await;
    let before = results(&base1, "second").await;
    append(&two, numbered("two", 5..10));
    lines_arrive(c1dir.path(), &numbered("two", 5..10), &agent).await;
    eventually("results of the kept check", WAIT, || async {
        Ok((results(&base1, "second").await > before).then_some(()))
    })
    .await
    .unwrap();

    // A file that moves data_dir: valid, but refused, naming the key.
    let elsewhere = adir.path().join("elsewhere");
    let moved = AgentFile {
        dir: &elsewhere,
        ..file
    };
    fs::write(adir.path().join("agent.toml"), moved.text()).unwrap();
    reload(&agent, "configuration not reloaded", 2);
    assert!(
        agent
            .log_text()
            .lines()
            .any(|l| l.contains("data_dir changes only at a restart")),
        "{}",
        agent.log_text()
    );
    agent_metrics_show(
        metrics,
        &[
            "lookout_agent_config_last_reload_successful 0",
            "lookout_agent_config_reload_failures_total 2",
        ],
        &agent,
    )
    .await;
    assert!(
        !elsewhere.exists(),
        "nothing was opened in the refused data_dir"
    );

    // Valid again, with another collector: the next requests go there, with the new labels.
    let (_c2, base2) = start_collector(
        c2dir.path(),
        &collector_toml(c2dir.path(), p2.get(), "edge", TOKEN, ""),
    )
    .unwrap();
    let file = AgentFile {
        dir: adir.path(),
        collector: &base2,
        labels: "c",
        ..moved
    };
    file.write();
    reload(&agent, "configuration reloaded", 2);
    agent_metrics_show(
        metrics,
        &[
            "lookout_agent_config_last_reload_successful 1",
            "lookout_agent_config_reload_failures_total 2",
        ],
        &agent,
    )
    .await;
    labels_become(&base2, "c", &agent).await;
    check_is_up(&base2, "second", &agent).await;
    append(&one, numbered("one", 30..40));
    lines_arrive(c2dir.path(), &numbered("one", 30..40), &agent).await;

    // Every line of one.log, the file that stayed through every reload, stored once.
    let mut all = stored_lines(c1dir.path()).await;
    for (text, n) in stored_lines(c2dir.path()).await {
        *all.entry(text).or_insert(0) += n;
    }
    for l in numbered("one", 0..40) {
        assert_eq!(all.get(&l), Some(&1), "{l}: {all:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_agent_keeps_its_credential_through_a_reload() {
    let (cdir, adir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port();
    let cpath = cdir.path().join("collector.toml");
    fs::write(
        &cpath,
        collector_toml(
            cdir.path(),
            port.get(),
            "configured",
            TOKEN,
            &format!("[enrollment]\ntoken = \"{ENROL}\"\n"),
        ),
    )
    .unwrap();
    let collector = Daemon::start(
        &bin("lookout-collector"),
        &["--config", cpath.to_str().unwrap()],
        &[],
    )
    .unwrap();
    collector
        .wait_for_line("collector listening", WAIT)
        .unwrap();
    let base = format!("http://127.0.0.1:{}", port.get());
    let config = |zone: &str| {
        format!(
            "name = \"edge\"\ncollector = \"{base}\"\nenroll_token = \"{ENROL}\"\n\
             data_dir = \"{}\"\nlabels = {{ zone = \"{zone}\" }}\n\
             [host_metrics]\nenabled = false\n[shipping]\nassignments_interval = \"1s\"\n",
            adir.path().display()
        )
    };
    let apath = adir.path().join("agent.toml");
    fs::write(&apath, config("a")).unwrap();
    let agent = start_agent(&apath).unwrap();
    labels_become(&base, "a", &agent).await;
    let credential = adir.path().join("credential");
    let kept = fs::read(&credential).unwrap();

    fs::write(&apath, config("b")).unwrap();
    reload(&agent, "configuration reloaded", 1);
    // Its requests still pass with the credential it had: the collector takes the new labels.
    labels_become(&base, "b", &agent).await;
    assert_eq!(
        fs::read(&credential).unwrap(),
        kept,
        "the credential is kept"
    );
    assert_eq!(
        agent
            .log_text()
            .matches("enrolled; the credential is kept in the file")
            .count(),
        1,
        "one enrolment, at start: {}",
        agent.log_text()
    );
}
