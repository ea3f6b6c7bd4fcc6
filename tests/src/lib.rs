//! Helpers for end-to-end tests: start the real `lookout-collector` and `lookout-agent`
//! binaries on loopback, a target HTTP endpoint the test controls, and poll the API.
//!
//! The binaries are the ones cargo built next to the test executable
//! (`cargo build --workspace --bins` or `cargo test --workspace` builds them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod port;
pub use port::{Port, free_port};
pub mod browser;
pub mod deploy;
pub mod escalation;
pub mod logs;
pub mod scripted;
pub mod smtp;
pub mod tls;

/// Path of a workspace binary: the one built by cargo beside this test, or the one
/// `<NAME>_BIN` names.
pub fn bin(name: &str) -> PathBuf {
    // `LOOKOUT_AGENT_BIN` (for `lookout-agent`, and so on) names another build: bench/run
    // measures the agent as deployed, built with its own profile.
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&var) {
        let path = PathBuf::from(path);
        assert!(path.exists(), "{var}={} does not exist", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A running daemon whose stderr is collected; killed when dropped.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `bin` with `args`, collecting its stderr lines.
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // RUST_LOG would take precedence over LOOKOUT_LOG; the tests read info lines.
        cmd.env_remove("RUST_LOG").env("LOOKOUT_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Ok(Self { child, log })
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Ok(l.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "no line with {needle:?} within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`).
    pub fn signal(&self, sig: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{sig} failed");
        Ok(())
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("still running after {timeout:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a collector with this configuration text (written into `dir`) and returns it with its
/// base URL, read from its "collector listening" log line (so `listen` may use port 0).
pub fn start_collector(dir: &Path, config: &str) -> Result<(Daemon, String)> {
    let path = dir.join("collector.toml");
    std::fs::write(&path, config)?;
    let d = Daemon::start(
        &bin("lookout-collector"),
        &["--config", path.to_str().unwrap()],
        &[],
    )?;
    let line = d.wait_for_line("collector listening", Duration::from_secs(20))?;
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .with_context(|| format!("no addr= in {line:?}"))?;
    Ok((d, format!("http://{addr}")))
}

/// The read token (`[server] read_tokens`) of the collectors these tests start: [`get_json`]
/// and [`read`] send it.
pub const READ_TOKEN: &str = "tests-read-token-0123456789abcdef";

/// A collector's configuration: listening on loopback at `port`, keeping its data in `dir`,
/// readable with [`READ_TOKEN`], knowing one agent `agent` by `token`; `extra` goes at the end
/// (more sections).
pub fn collector_toml(dir: &Path, port: u16, agent: &str, token: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
         [[agents]]\nname = \"{agent}\"\ntoken = \"{token}\"\n{extra}",
        dir.display()
    )
}

/// Starts a collector ([`collector_toml`] on a free port, `collector_extra` at its end) and the
/// agent `agent` shipping to it from `dir/agent`, with host metrics off and `agent_extra` after
/// its identity: the two daemons and the collector's base URL.
pub fn start_collector_and_agent(
    dir: &Path,
    agent: &str,
    token: &str,
    collector_extra: &str,
    agent_extra: &str,
) -> Result<(Daemon, String, Daemon)> {
    let (collector, base) =
        start_collector(dir, &collector_toml(dir, 0, agent, token, collector_extra))?;
    let agent_dir = dir.join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let config = agent_dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{agent}\"\ncollector = \"{base}\"\ntoken = \"{token}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n{agent_extra}",
            agent_dir.display()
        ),
    )?;
    let agent = start_agent(&config)?;
    Ok((collector, base, agent))
}

/// Starts the `lookout-agent` binary with the configuration file at `config`.
pub fn start_agent(config: &Path) -> Result<Daemon> {
    Daemon::start(
        &bin("lookout-agent"),
        &["--config", config.to_str().context("config path")?],
        &[],
    )
}

/// An HTTP endpoint on loopback whose answer the test switches: 200 "ok" when up, 503 when down.
pub struct Target {
    /// Its URL.
    pub url: String,
    status: Arc<AtomicU16>,
    _task: tokio::task::JoinHandle<()>,
}

impl Target {
    /// Starts it, up.
    pub async fn start() -> Result<Self> {
        let status = Arc::new(AtomicU16::new(200));
        let s = status.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    let code = axum::http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                    (code, "target\n")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/health", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            status,
            _task: task,
        })
    }

    /// Makes it answer `code` from now on.
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

/// A target that answers each agent's probe by the agent's name: 503 to those cut off from it,
/// 200 to the rest. It reads the name from the probe's `User-Agent`
/// (`lookout-agent/x (probe; agent=edge-2)`), so "cut off" is one location's network path.
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<std::collections::HashSet<String>>>);

impl Gate {
    /// Cuts `agent` off: its probes get 503 from now on.
    pub fn cut(&self, agent: &str) {
        self.0.lock().unwrap().insert(agent.to_string());
    }

    /// Lets every agent through again.
    pub fn restore(&self) {
        self.0.lock().unwrap().clear();
    }

    /// Serves it on loopback; returns its URL (`http://127.0.0.1:PORT/health`).
    pub async fn serve(&self) -> String {
        let gate = self.clone();
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let gate = gate.clone();
                async move {
                    let ua = headers
                        .get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let cut = gate
                        .0
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|a| ua.contains(&format!("agent={a})")));
                    if cut {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "cut off\n")
                    } else {
                        (axum::http::StatusCode::OK, "ok\n")
                    }
                }
            }),
        );
        format!("{}/health", serve(app).await)
    }
}

/// Serves `app` on a loopback port; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// What a webhook receiver got: each request's JSON body, in order of arrival.
#[derive(Clone, Default)]
pub struct Inbox(Arc<Mutex<Vec<serde_json::Value>>>);

impl Inbox {
    /// A `POST` handler that keeps each body and answers 200.
    pub fn handler(&self) -> axum::routing::MethodRouter {
        let inbox = self.clone();
        axum::routing::post(move |body: axum::body::Bytes| {
            let inbox = inbox.clone();
            async move {
                let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                inbox.0.lock().unwrap().push(v);
                axum::http::StatusCode::OK
            }
        })
    }

    /// Every message received (the webhook's whole body), in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().clone()
    }

    /// Every alert note received, whole, in order.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|m| m["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Every alert note received, as (kind, fingerprint), in order.
    pub fn notes(&self) -> Vec<(String, String)> {
        self.alerts()
            .iter()
            .map(|a| {
                (
                    a["kind"].as_str().unwrap_or("").to_string(),
                    a["fingerprint"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

/// GETs `url` as a reader: with [`READ_TOKEN`].
pub async fn read(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(READ_TOKEN)
        .send()
        .await
}

/// GETs JSON from `url`, as a reader.
pub async fn get_json(url: &str) -> Result<serde_json::Value> {
    let resp = read(url).await?;
    let status = resp.status();
    let body = resp.text().await?;
    anyhow::ensure!(status.is_success(), "{url}: {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The fingerprints of the alerts firing now, through the API of the collector at `base`;
/// none while it does not answer.
pub async fn firing_alerts(base: &str) -> Vec<String> {
    get_json(&format!("{base}/api/v1/alerts?state=firing"))
        .await
        .map(|j| {
            j["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|a| a["fingerprint"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The newest stored value of `agent`'s metric `name` with `labels` (`k=v,k2=v2`, as
/// written: this encodes them), at a 1 s step, through the API of the collector at `base`; none yet.
pub async fn last_value(base: &str, agent: &str, name: &str, labels: &str) -> Result<Option<f64>> {
    // Encoded: a `+` (as in `le=+Inf`) would otherwise arrive as a space.
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/metrics"),
        [
            ("agent", agent),
            ("name", name),
            ("labels", labels),
            ("step", "1s"),
        ],
    )?;
    let j = get_json(url.as_str()).await?;
    Ok(j["series"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|s| s["points"].as_array())
        .and_then(|p| p.last())
        .and_then(|p| p["last"].as_f64()))
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {timeout:?} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Check `name` as `GET /api/v1/checks` lists it (its status, its agents' last results), or
/// `Null` when it is not listed.
pub async fn check_json(base: &str, name: &str) -> Result<serde_json::Value> {
    let j = get_json(&format!("{base}/api/v1/checks")).await?;
    Ok(j["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null))
}

/// The status of check `name` in `GET /api/v1/checks`, if listed.
pub async fn check_status(base: &str, name: &str) -> Result<Option<String>> {
    Ok(check_json(base, name).await?["status"]
        .as_str()
        .map(String::from))
}

/// A process's CPU time so far (user + system, in seconds) and its peak resident memory
/// (VmHWM, in KiB), from /proc.
pub fn process_figures(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Fields 14 and 15 of stat (utime, stime), counted after the command's ")", in clock ticks
    // of 1/100 s.
    ((ticks(11) + ticks(12)) / 100.0, hwm)
}

/// Runs `promtool check metrics` (Debian's prometheus package; `scripts/test` installs it) on
/// an exposition text; `Err` carries what promtool said.
pub fn promtool_check(text: &str) -> Result<()> {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("promtool (Debian's prometheus package; scripts/test installs it)")?;
    promtool
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())?;
    let out = promtool.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The batches a collector stored for `agent`, as (first, last, records): spool sequence
/// numbers from the batch id (`<epoch>-<first>-<last>`) and the records it held, read from the
/// collector's SQLite database.
pub async fn stored_ranges(db: &Path, agent: &str) -> Result<Vec<(u64, u64, u64)>> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT batch_id, records FROM ingested_batches WHERE agent = $1")
            .bind(agent)
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    let mut out = Vec::new();
    for (id, records) in rows {
        let mut parts = id.rsplitn(3, '-');
        let last = parts.next().context("last")?.parse()?;
        let first = parts.next().context("first")?.parse()?;
        out.push((first, last, records as u64));
    }
    out.sort();
    Ok(out)
}

/// Checks that no sequence number was stored twice; returns the highest number stored and how
/// many numbers up to it were never stored (records the agent lost or dropped).
///
/// A batch holds every record from its first to its last number that was not acknowledged
/// before it was formed, so ranges can nest: a batch of the oldest records that reaches into
/// the fresh ones skips those a fresh batch already delivered. So the ranges are merged where
/// they overlap, and within each merged stretch the batches' record counts must not add up to
/// more than the numbers it spans (that would be a record stored twice).
pub fn coverage(ranges: &[(u64, u64, u64)]) -> Result<(u64, u64)> {
    let mut sorted = ranges.to_vec();
    sorted.sort();
    let mut expect = 1;
    let mut missing = 0;
    let mut i = 0;
    while i < sorted.len() {
        let (start, mut end, mut records) = sorted[i];
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].0 <= end {
            end = end.max(sorted[j].1);
            records += sorted[j].2;
            j += 1;
        }
        let span = end - start + 1;
        anyhow::ensure!(
            start >= expect,
            "batch {start}-{end} overlaps an earlier one: stored twice"
        );
        anyhow::ensure!(
            records <= span,
            "batches {start}-{end} hold {records} records for {span} numbers: stored twice"
        );
        missing += start - expect + (span - records);
        expect = end + 1;
        i = j;
    }
    Ok((expect - 1, missing))
}

/// A fresh database named `lookout_<purpose>_<random>` on the tests' PostgreSQL
/// (`LOOKOUT_TEST_PG_URL`; `scripts/test` starts one), as a URL; `None` when there is none and
/// none is required (`LOOKOUT_REQUIRE_PG`).
pub async fn pg_database(purpose: &str) -> Option<String> {
    let Ok(admin) = std::env::var("LOOKOUT_TEST_PG_URL") else {
        assert!(
            std::env::var("LOOKOUT_REQUIRE_PG").is_err(),
            "LOOKOUT_REQUIRE_PG is set but LOOKOUT_TEST_PG_URL is not"
        );
        eprintln!("skipped: no PostgreSQL (set LOOKOUT_TEST_PG_URL, or run scripts/test)");
        return None;
    };
    let name = format!("lookout_{purpose}_{:08x}", fastrand::u32(..));
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("LOOKOUT_TEST_PG_URL answers");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE template0"
    )))
    .execute(&pool)
    .await
    .expect("a database of the test's own");
    let i = admin
        .rfind('/')
        .expect("LOOKOUT_TEST_PG_URL has a database part");
    Some(format!("{}/{name}", &admin[..i]))
}

#[cfg(test)]
mod tests {
    use super::coverage;

    #[test]
    fn coverage_takes_nested_batches_and_finds_records_stored_twice_or_lost() {
        // 1-10, then fresh 14-16 delivered first, then 11-20 skipping them (7 records).
        assert_eq!(
            coverage(&[(1, 10, 10), (14, 16, 3), (11, 20, 7)]).unwrap(),
            (20, 0)
        );
        // The same, but the later batch held 14-16 again.
        let e = coverage(&[(1, 10, 10), (14, 16, 3), (11, 20, 10)]).unwrap_err();
        assert!(e.to_string().contains("stored twice"), "{e}");
        // A gap before a batch, and a batch short of its range.
        assert_eq!(coverage(&[(1, 5, 5), (8, 10, 2)]).unwrap(), (10, 3));
    }
}
