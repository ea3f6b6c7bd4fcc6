//! The `containers` integration and the `container` check end to end, against podman's Docker
//! API (`podman system service` on a socket in a temporary folder, podman with runc and the
//! host's network as deploy/test/containers.conf says), the real agent and the real collector.
//!
//! A Compose-labelled container `<p>-web-1` (on the Debian base image scripts/lib/deploy.sh
//! imports) prints numbered lines, odd ones on stdout and even ones on stderr, keeping its
//! count in a folder of the test's, and exits 3 under `--restart=on-failure:4`: it runs five
//! times. Then, with the agent stopped, it is replaced (removed, and a new one of the same name
//! and Compose labels run) by one that prints more numbered lines, slowly, and has a health
//! check; the agent is started, and restarted once more while that container prints.
//!
//! Oracles: `podman inspect` (restarts, state, exit code, health), `podman stats` (memory), the
//! count file the containers write (which lines exist), and the collector's own store (each of
//! them stored exactly once, with its stream in its source). The `container` check is down
//! for the exited container, up for the running healthy one, and down once it is stopped; the
//! restart starter rule of docs/integrations.md (with a 1-minute window) fires. Every container
//! made here is removed and the API service stopped at the end, pass or fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lookout_tests::deploy::random_hex;
use lookout_tests::{
    Daemon, READ_TOKEN, check_status, eventually, firing_alerts, last_value, start_collector,
};

const AGENT_TOKEN: &str = "integ-containers-token-0123456789abcdef";
const BASE: &str = "docker.io/library/debian:bookworm-slim";
const WAIT: Duration = Duration::from_secs(60);
/// Runs of the first container: the first and 4 restarts.
const RUNS: u64 = 5;
/// Lines each run of the first container prints.
const PER_RUN: u64 = 4;
/// Lines the replacement prints.
const REPLACEMENT_LINES: u64 = 40;

fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(args);
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/test/containers.conf");
        c.env("CONTAINERS_CONF", conf);
    }
    c
}

/// podman's standard output; panics with its standard error when it fails.
fn run(args: &[&str]) -> String {
    let out: Output = podman(args).output().expect("podman is installed");
    assert!(
        out.status.success(),
        "podman {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The API service and the containers made, stopped and removed when dropped.
struct Podman {
    service: Child,
    socket: PathBuf,
    containers: Vec<String>,
}

impl Podman {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("api.sock");
        let service = podman(&[
            "system",
            "service",
            "--time=0",
            &format!("unix://{}", socket.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podman is installed");
        Self {
            service,
            socket,
            containers: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `podman inspect --format`.
    fn inspect(&self, name: &str, format: &str) -> String {
        run(&["inspect", "--format", format, name])
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman(&["rm", "--force", "--time", "0", c]).output();
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.service.id().to_string()])
            .status();
        let _ = self.service.wait();
    }
}

/// The stored log lines of the agent `web-1`: text to the sources it was stored with.
async fn stored_lines(data_dir: &Path) -> BTreeMap<String, Vec<String>> {
    let url = format!("sqlite://{}?mode=ro", data_dir.join("lookout.db").display());
    let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
        return BTreeMap::new();
    };
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT text, source FROM logs WHERE agent = 'web-1'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    pool.close().await;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (text, source) in rows {
        out.entry(text).or_default().push(source);
    }
    out
}

/// How many numbered lines the containers say they printed (their count file).
fn printed(data: &Path) -> u64 {
    std::fs::read_to_string(data.join("n"))
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every line 1..=`n` stored exactly once, odd ones from stdout and even ones from stderr,
/// under the Compose source of `name`; `Err` says what is missing or twice.
fn exactly_once(
    stored: &BTreeMap<String, Vec<String>>,
    n: u64,
    project: &str,
    name: &str,
) -> Result<(), String> {
    let mine: BTreeMap<&String, &Vec<String>> = stored
        .iter()
        .filter(|(t, _)| t.starts_with("seq "))
        .collect();
    let mut wrong = Vec::new();
    for i in 1..=n {
        let text = format!("seq {i}");
        let stream = if i % 2 == 1 { "stdout" } else { "stderr" };
        let want = format!("container:{project}/web/{name}/{stream}");
        match mine.get(&text) {
            Some(s) if s.len() == 1 && s[0] == want => {}
            got => wrong.push(format!("{text}: {got:?}, expected once from {want}")),
        }
    }
    if mine.len() as u64 != n {
        wrong.push(format!("{} numbered lines stored, {n} printed", mine.len()));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// `podman stats`' memory: (usage, limit) in bytes, as it prints them (`3.265MB / 25.28GB`).
fn podman_memory(name: &str) -> (f64, f64) {
    let out = run(&["stats", "--no-stream", "--format", "json", name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = v[0]["mem_usage"].as_str().unwrap().to_string();
    let bytes = |s: &str| -> f64 {
        let s = s.trim();
        let at = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
        let (n, unit) = s.split_at(at);
        let scale = match unit {
            "B" | "" => 1.0,
            "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            u => panic!("unit {u:?} in {text:?}"),
        };
        n.parse::<f64>().unwrap() * scale
    };
    let (u, l) = text.split_once('/').unwrap();
    (bytes(u), bytes(l))
}

fn agent_toml(dir: &Path, base: &str, url: &str, project: &str, name: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"web-1\"\ncollector = \"{base}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
             [[integrations]]\ntype = \"containers\"\nurl = \"{url}\"\ninterval = \"1s\"\n\
             logs = true\n\
             [[checks]]\nname = \"web-service\"\ntype = \"container\"\nurl = \"{url}\"\n\
             compose_service = \"web\"\ncompose_project = \"{project}\"\ninterval = \"1s\"\n\
             timeout = \"1s\"\n\
             [[checks]]\nname = \"web-by-name\"\ntype = \"container\"\nurl = \"{url}\"\n\
             container = \"{name}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path
}

/// Runs `script` in container `name` of Compose service `web` of `project`, with the test's
/// folder `volume` (`host:/data`) and one more option (`option`).
fn run_web(name: &str, project: &str, volume: &str, option: &str, script: &str) {
    let project = format!("com.docker.compose.project={project}");
    run(&[
        "run",
        "-d",
        "--name",
        name,
        "--network=host",
        "--label",
        &project,
        "--label",
        "com.docker.compose.service=web",
        option,
        "-v",
        volume,
        BASE,
        "sh",
        "-c",
        script,
    ]);
}

/// Waits until both `container` checks are `status` (`why` says what for).
async fn checks_are(base: &str, status: &str, why: &str, diagnose: impl Fn() -> String) {
    for check in ["web-service", "web-by-name"] {
        eventually(&format!("{check} {why}"), WAIT, || async {
            Ok((check_status(base, check).await?.as_deref() == Some(status)).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    }
}

/// Waits until each (metric, more labels, value) is stored with `labels` and those.
async fn stored_are(
    base: &str,
    labels: &str,
    want: &[(&str, &str, f64)],
    diagnose: impl Fn() -> String,
) {
    for (metric, extra, want) in want {
        let labels = format!("{labels}{extra}");
        eventually(&format!("{metric} {labels} = {want}"), WAIT, || async {
            let got = last_value(base, "web-1", metric, &labels).await?;
            Ok((got == Some(*want)).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    }
}

/// Stops the agent as a service manager would, and waits for it.
fn stop(mut agent: Daemon) {
    agent.signal("TERM").unwrap();
    agent.wait_exit(Duration::from_secs(20)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_measured_their_lines_shipped_once_and_checked() {
    let exists = podman(&["image", "exists", BASE]).status().expect("podman");
    assert!(
        exists.success(),
        "{BASE} is not in podman's store: scripts/lib/deploy.sh's make_base_image makes it"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut pm = Podman::start(dir.path());
    eventually("podman's API socket", WAIT, || async {
        Ok(pm.socket.exists().then_some(()))
    })
    .await
    .unwrap();
    let project = format!("lk{}", random_hex(8));
    let name = format!("{project}-web-1");
    pm.containers.push(name.clone());

    let (collector, base) = start_collector(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
             [[agents]]\nname = \"web-1\"\ntoken = \"{AGENT_TOKEN}\"\n\
             [[rules]]\nname = \"container-restarts\"\nmetric = \"container.restarts\"\n\
             aggregate = \"rate\"\nwindow = \"1m\"\nabove = 0.05\nseverity = \"warning\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let config = agent_toml(&agent_dir, &base, &pm.url(), &project, &name);
    let mut agent = lookout_tests::start_agent(&config).unwrap();
    eventually("the integration reads podman's API", WAIT, || async {
        let up = last_value(&base, "web-1", "lookout.integration.up", "type=containers").await?;
        Ok((up == Some(1.0)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));

    // Five runs of 4 lines, each run exiting 3.
    let script = format!(
        "n=$(cat /data/n 2>/dev/null || echo 0); for i in $(seq {PER_RUN}); do n=$((n+1)); \
         if [ $((n % 2)) = 1 ]; then echo \"seq $n\"; else echo \"seq $n\" >&2; fi; \
         echo $n > /data/n; sleep 0.1; done; exit 3"
    );
    let volume = format!("{}:/data", data.display());
    run_web(&name, &project, &volume, "--restart=on-failure:4", &script);
    eventually(
        "podman says it restarted 4 times and exited",
        WAIT,
        || async {
            let s = pm.inspect(&name, "{{.RestartCount}} {{.State.Status}}");
            Ok((s == "4 exited").then_some(()))
        },
    )
    .await
    .unwrap();
    let diagnose = |agent: &Daemon| {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };
    let restarts: f64 = pm.inspect(&name, "{{.RestartCount}}").parse().unwrap();
    let exit_code: f64 = pm.inspect(&name, "{{.State.ExitCode}}").parse().unwrap();
    assert_eq!((restarts, exit_code), (4.0, 3.0));
    let health = match pm.inspect(&name, "{{.State.Health.Status}}").as_str() {
        "" => "none".to_string(),
        h => h.to_string(),
    };
    let labels = format!("container={name},compose_service=web,compose_project={project}");
    let health = format!(",status={health}");
    let want = [
        ("container.restarts", "", restarts),
        ("container.exit_code", "", exit_code),
        ("container.running", "", 0.0),
        ("container.health", health.as_str(), 1.0),
    ];
    stored_are(&base, &labels, &want, || diagnose(&agent)).await;
    assert_eq!(printed(&data), RUNS * PER_RUN);
    eventually("every line of the 5 runs stored once", WAIT, || async {
        Ok(exactly_once(
            &stored_lines(dir.path()).await,
            RUNS * PER_RUN,
            &project,
            &name,
        )
        .ok())
    })
    .await
    .unwrap_or_else(|e| {
        let got = futures_lite_block(stored_lines(dir.path()));
        panic!(
            "{e}: {:?}\n{}",
            exactly_once(&got, RUNS * PER_RUN, &project, &name),
            diagnose(&agent)
        )
    });
    eventually("the restart rule fires", WAIT, || async {
        let firing = firing_alerts(&base).await;
        Ok(firing
            .iter()
            .any(|f| f.starts_with("container-restarts/") && f.contains(&name))
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent)));
    checks_are(&base, "down", "down: the container exited", || {
        diagnose(&agent)
    })
    .await;

    // Replaced while the agent is stopped: a new container, same name and Compose labels,
    // printing 40 more lines slowly, with a health check.
    stop(agent);
    run(&["rm", "--force", "--time", "0", &name]);
    let slow = format!(
        "n=$(cat /data/n); for i in $(seq {REPLACEMENT_LINES}); do n=$((n+1)); \
         if [ $((n % 2)) = 1 ]; then echo \"seq $n\"; else echo \"seq $n\" >&2; fi; \
         echo $n > /data/n; sleep 0.2; done; exec sleep infinity"
    );
    run_web(&name, &project, &volume, "--health-cmd=true", &slow);
    agent = lookout_tests::start_agent(&config).unwrap();
    let first = RUNS * PER_RUN;
    eventually("some of the replacement's lines stored", WAIT, || async {
        let stored = stored_lines(dir.path()).await;
        Ok(stored
            .contains_key(&format!("seq {}", first + 10))
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose(&agent)));
    // Restarted while the container prints: it resumes from its checkpoint.
    stop(agent);
    agent = lookout_tests::start_agent(&config).unwrap();
    let total = first + REPLACEMENT_LINES;
    eventually("the replacement printed its lines", WAIT, || async {
        Ok((printed(&data) == total).then_some(()))
    })
    .await
    .unwrap();
    eventually(
        "every line stored once, through the replacement and two agent restarts",
        WAIT,
        || async { Ok(exactly_once(&stored_lines(dir.path()).await, total, &project, &name).ok()) },
    )
    .await
    .unwrap_or_else(|e| {
        let got = futures_lite_block(stored_lines(dir.path()));
        panic!(
            "{e}: {:?}\n{}",
            exactly_once(&got, total, &project, &name),
            diagnose(&agent)
        )
    });

    // podman runs health checks from systemd timers, which this machine has not: run it.
    run(&["healthcheck", "run", &name]);
    assert_eq!(pm.inspect(&name, "{{.State.Health.Status}}"), "healthy");
    let want = [
        ("container.running", "", 1.0),
        ("container.restarts", "", 0.0),
        ("container.health", ",status=healthy", 1.0),
        ("container.health", ",status=starting", 0.0),
    ];
    stored_are(&base, &labels, &want, || diagnose(&agent)).await;
    checks_are(&base, "up", "up: running and healthy", || diagnose(&agent)).await;
    // Memory: the stored figure within a quarter (or 1 MB) of podman's, taken around it.
    let (usage, limit) = podman_memory(&name);
    let stored = |metric: &'static str| {
        let (base, labels) = (base.clone(), labels.clone());
        async move { last_value(&base, "web-1", metric, &labels).await.unwrap() }
    };
    let used = stored("container.memory.usage").await.unwrap();
    assert!(
        (used - usage).abs() <= (usage / 4.0).max(1e6),
        "stored {used} bytes, podman stats {usage}"
    );
    let stored_limit = stored("container.memory.limit").await.unwrap();
    // podman prints the limit to 4 digits.
    assert!(
        (stored_limit - limit).abs() <= limit / 1000.0,
        "stored limit {stored_limit}, podman stats {limit}"
    );
    assert!(stored("container.cpu.time").await.unwrap() > 0.0);

    run(&["stop", "--time", "1", &name]);
    checks_are(&base, "down", "down: stopped", || diagnose(&agent)).await;
    stop(agent);
    let socket = pm.socket.display().to_string();
    drop(pm);
    // Neither the API service (its socket in its arguments) nor a container's conmon (its
    // name in its arguments) is left.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&socket) || c.contains(&name))
        .collect();
    assert!(left.is_empty(), "podman processes left: {left:?}");
    drop(collector);
}

/// Runs a future to its end from a synchronous closure (a failure's diagnosis).
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}
