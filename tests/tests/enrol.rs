//! Enrolment end to end, with the real binaries: an agent with only the fleet's enrolment
//! token enrols, ships, restarts and ships on its kept credential; a second agent of the same
//! name, a wrong enrolment token and a name outside `allowed_names` are refused with a
//! sentence; `lookout-collector agents` lists, rotates (the agent picks the new credential up
//! and keeps shipping; the old one works within the grace, then 401) and revokes (the agent's
//! next batches are 401, counted, and none of them is stored) against the store of a running
//! collector. The oracles are the collector's API and /metrics, the agent's credential file,
//! and the CLI's own listing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lookout_tests::{Daemon, READ_TOKEN, Target, bin, eventually, get_json, read};

const ENROL: &str = "e2e-fleet-enrol-token-0123456789";
const ADMIN: &str = "e2e-enrol-admin-token-0123456789";
const WAIT: Duration = Duration::from_secs(30);

fn collector_config(dir: &Path, url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{dir}"
admin_token = "{ADMIN}"
read_tokens = ["{READ_TOKEN}"]

[[agents]]
name = "configured"
token = "e2e-configured-agent-0123456789"

[enrollment]
token = "${{LOOKOUT_ENROLL_TOKEN}}"
allowed_names = "web-*"
rotation_grace = "8s"
labels = {{ role = "web" }}

[[checks]]
name = "web"
type = "http"
url = "{url}"
interval = "1s"
timeout = "1s"
run_on = ["role=web"]
"#,
        dir = dir.display()
    )
}

/// Starts the collector with the enrolment token in its environment, as `${...}` takes it.
fn collector(dir: &Path, url: &str) -> (Daemon, String, PathBuf) {
    let path = dir.join("collector.toml");
    std::fs::write(&path, collector_config(dir, url)).unwrap();
    let d = Daemon::start(
        &bin("lookout-collector"),
        &["--config", path.to_str().unwrap()],
        &[("LOOKOUT_ENROLL_TOKEN", ENROL)],
    )
    .unwrap();
    let line = d
        .wait_for_line("collector listening", Duration::from_secs(20))
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .to_string();
    (d, format!("http://{addr}"), path)
}

/// An agent named `name` with only an enrolment token, its data in `data`.
fn agent(base: &str, name: &str, enroll_token: &str, data: &Path) -> Daemon {
    std::fs::create_dir_all(data).unwrap();
    let path = data.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ncollector = \"{base}\"\nenroll_token = \"{enroll_token}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
             [shipping]\nassignments_interval = \"1s\"\nsteady_wait = \"1s\"\nmax_backoff = \"1s\"\n",
            data.display()
        ),
    )
    .unwrap();
    lookout_tests::start_agent(&path).unwrap()
}

/// `lookout-collector agents ARGS` on the collector's configuration: (success, stdout, stderr).
fn cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("lookout-collector"))
        .args(["--config", config.to_str().unwrap(), "agents"])
        .args(args)
        .env("LOOKOUT_ENROLL_TOKEN", ENROL)
        .env_remove("RUST_LOG")
        .env("LOOKOUT_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How many results of check `web` agent `name` has stored.
async fn results(base: &str, name: &str) -> usize {
    get_json(&format!(
        "{base}/api/v1/checks/web/results?agent={name}&limit=10000"
    ))
    .await
    .unwrap()["results"]
        .as_array()
        .map_or(0, Vec::len)
}

/// `lookout_ingest_rejects_total{reason="unauthorized"}` in the collector's /metrics.
async fn unauthorized(base: &str) -> u64 {
    let text = read(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("lookout_ingest_rejects_total{reason=\"unauthorized\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn more_results_than(base: &str, name: &str, n: usize) -> usize {
    eventually(
        &format!("{name} storing more than {n} results"),
        WAIT,
        || async {
            let now = results(base, name).await;
            Ok((now > n).then_some(now))
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrols_ships_restarts_on_its_credential_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let (collector, base, config) = collector(dir.path(), &target.url);
    let data = dir.path().join("web-1");
    let mut first = agent(&base, "web-1", ENROL, &data);
    // The check reaches it by the enrolment's labels, so its results show it enrolled.
    let shipped = more_results_than(&base, "web-1", 0).await;
    let file = data.join("credential");
    let credential = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(
        credential.starts_with("lkc_") && credential.len() == 68,
        "{credential}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Restarted, it presents the kept credential: no second enrolment.
    first.signal("TERM").unwrap();
    first.wait_exit(WAIT).unwrap();
    let first_log = first.log_text();
    assert!(first_log.contains("enrolled"), "{first_log}");
    let second = agent(&base, "web-1", ENROL, &data);
    let before = results(&base, "web-1").await.max(shipped);
    more_results_than(&base, "web-1", before).await;
    assert!(
        !second.log_text().contains("enrolled"),
        "{}",
        second.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        credential,
        "the same credential"
    );
    assert_eq!(
        collector.log_text().matches("agent enrolled").count(),
        1,
        "{}",
        collector.log_text()
    );

    // Another agent of the same name (another server, another folder): 409, with what to do.
    let twin_data = dir.path().join("twin");
    let twin = agent(&base, "web-1", ENROL, &twin_data);
    twin.wait_for_line("enrolment refused", WAIT).unwrap();
    let said = twin.log_text();
    assert!(
        said.contains("409") && said.contains("allow-reenroll"),
        "{said}"
    );
    assert!(!twin_data.join("credential").exists());
    // A wrong enrolment token: 401, with what to do.
    let wrong = agent(
        &base,
        "web-2",
        "e2e-not-the-fleet-token-012345678",
        &dir.path().join("web-2"),
    );
    wrong.wait_for_line("enrolment refused", WAIT).unwrap();
    let said = wrong.log_text();
    assert!(
        said.contains("401") && said.contains("enrolment token is wrong"),
        "{said}"
    );
    // A name outside allowed_names: 403, the answer names the key.
    let outside = agent(&base, "db-1", ENROL, &dir.path().join("db-1"));
    outside.wait_for_line("enrolment refused", WAIT).unwrap();
    let said = outside.log_text();
    assert!(
        said.contains("403") && said.contains("allowed_names"),
        "{said}"
    );

    // The listing has one enrolled agent and the configured one; the hosts API says where each
    // comes from.
    let (ok, listed, err) = cli(&config, &["list"]);
    assert!(ok, "{err}");
    let enrolled: Vec<&str> = listed.lines().filter(|l| l.contains("enrolled")).collect();
    assert_eq!(enrolled.len(), 1, "{listed}");
    assert!(enrolled[0].starts_with("web-1 "), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("configured ") && l.contains("config")),
        "{listed}"
    );
    let hosts = get_json(&format!("{base}/api/v1/hosts")).await.unwrap();
    let web1 = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "web-1")
        .unwrap();
    assert_eq!(web1["origin"], "enrolled", "{hosts}");
    assert!(web1["enrolled_at"].is_string(), "{hosts}");
    assert_eq!(web1["labels"]["role"], "web", "{hosts}");

    // The credential is in no log line and not in /metrics.
    let metrics = read(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, text) in [
        ("collector log", collector.log_text()),
        ("first agent log", first_log),
        ("second agent log", second.log_text()),
        ("/metrics", metrics),
    ] {
        assert!(!text.contains(&credential), "{what} shows the credential");
        assert!(!text.contains(ENROL), "{what} shows the enrolment token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rotates_and_revokes_an_agent_of_a_running_collector() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let (_collector, base, config) = collector(dir.path(), &target.url);
    let data = dir.path().join("web-1");
    let agent = agent(&base, "web-1", ENROL, &data);
    more_results_than(&base, "web-1", 0).await;
    let file = data.join("credential");
    let old = std::fs::read_to_string(&file).unwrap().trim().to_string();

    // Config agents are the file's: the CLI says so and changes nothing.
    let (ok, _, err) = cli(&config, &["revoke", "configured"]);
    assert!(!ok && err.contains("configuration file"), "{err}");
    let (ok, _, err) = cli(&config, &["rotate", "nobody"]);
    assert!(!ok && err.contains("no agent named"), "{err}");

    // Rotation: printed once; the agent is handed it (its file changes) and keeps shipping.
    let (ok, said, err) = cli(&config, &["rotate", "web-1"]);
    assert!(ok, "{err}");
    let new = said
        .split_whitespace()
        .find(|w| w.starts_with("lkc_"))
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    assert_ne!(new, old);
    eventually("the agent keeping the new credential", WAIT, || async {
        let kept = std::fs::read_to_string(&file)?;
        Ok((kept.trim() == new).then_some(()))
    })
    .await
    .unwrap();
    let now = results(&base, "web-1").await;
    more_results_than(&base, "web-1", now).await;
    // The old one still works within the grace (8 s from the rotation), then 401.
    let client = reqwest::Client::new();
    let with = |token: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/v1/assignments"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // (Without the new credential in a header: the agent has it, so the store forgot it.)
    let within = with(old.clone()).await;
    assert_eq!(within.status(), 200);
    assert!(within.headers().get("lookout-credential-rotated").is_none());
    eventually(
        "the old credential refused after the grace",
        WAIT,
        || async { Ok((with(old.clone()).await.status() == 401).then_some(())) },
    )
    .await
    .unwrap();
    assert_eq!(with(new.clone()).await.status(), 200);

    // Revocation: the agent's next batches are refused and counted, and none is stored.
    let refused_before = unauthorized(&base).await;
    let (ok, said, err) = cli(&config, &["revoke", "web-1"]);
    assert!(ok && said.contains("revoked"), "{said}{err}");
    eventually("a batch of the revoked agent refused", WAIT, || async {
        Ok((unauthorized(&base).await > refused_before).then_some(()))
    })
    .await
    .unwrap();
    let stored = results(&base, "web-1").await;
    let refused = unauthorized(&base).await;
    eventually("two more batches refused", WAIT, || async {
        Ok((unauthorized(&base).await >= refused + 2).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        results(&base, "web-1").await,
        stored,
        "a result of the revoked agent was stored"
    );
    assert!(
        agent.log_text().contains("401"),
        "the agent says why: {}",
        agent.log_text()
    );
    let (ok, listed, err) = cli(&config, &["list"]);
    assert!(ok, "{err}");
    let row = listed
        .lines()
        .find(|l| l.starts_with("web-1 "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        row.ends_with('Z') && row.matches('T').count() >= 2,
        "revoked time: {row}"
    );
}
