//! End to end, the access rules of docs/security.md with the real binaries: the quickstart's
//! admin token, agents that cannot claim checks or report for others, and an agent log without
//! its collector URL's password.

use std::process::Command;
use std::time::Duration;

use lookout_protocol::{Batch, Encoding, PROTOCOL_VERSION, Record, encode_batch};
use lookout_tests::{
    Daemon, READ_TOKEN, Target, bin, check_status, eventually, get_json, start_collector,
};

const AGENT_TOKEN: &str = "e2e-agent-token-0123456789abcdef";

const WAIT: Duration = Duration::from_secs(20);

/// The README's first command, as a newcomer runs it: the quickstart's configuration (on a free
/// port and a fresh folder), which prints an admin token once, keeps it private in the data
/// folder, and lets that token read the API that is closed without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_makes_an_admin_token_once_and_the_api_takes_it() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lookout-data");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/quickstart.toml"
    ))
    .unwrap();
    let port = lookout_tests::free_port();
    let text = text
        .replace("127.0.0.1:7700", &format!("127.0.0.1:{}", port.get()))
        .replace("./lookout-data", data.to_str().unwrap());
    let config = dir.path().join("quickstart.toml");
    std::fs::write(&config, text).unwrap();
    let start = || {
        Command::new(bin("lookout-collector"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // The first start says the token on standard output, in one line.
    let mut first = start();
    let stdout = first.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("admin token"))
    })
    .await
    .unwrap()
    .expect("a line with the admin token");
    let token = line
        .split_whitespace()
        .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no token in {line:?}"))
        .to_string();
    assert!(line.contains("/login"), "{line}");
    let file = data.join("admin_token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is for its owner only");

    let base = format!("http://127.0.0.1:{}", port.get());
    let client = reqwest::Client::new();
    let status = |path: &'static str, token: Option<String>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let mut req = client.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.map(|r| r.status().as_u16())
        }
    };
    eventually("the status page", WAIT, || async {
        Ok(status("/", None).await.ok().filter(|s| *s == 200))
    })
    .await
    .unwrap();
    assert_eq!(status("/api/v1/checks", None).await.unwrap(), 401);
    assert_eq!(
        status("/api/v1/checks", Some(token.clone())).await.unwrap(),
        200
    );
    first.kill().unwrap();
    first.wait().unwrap();

    // The next start reads it back and does not say it again.
    let mut second = start();
    let stdout = second.stdout.take().unwrap();
    let said = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("admin token"))
    });
    eventually("the second start", WAIT, || async {
        Ok(status("/api/v1/checks", Some(token.clone()))
            .await
            .ok()
            .filter(|s| *s == 200))
    })
    .await
    .unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(!said.join().unwrap(), "the token was printed again");
}

/// Agents cannot lie about themselves, with the real binaries: an agent that claims
/// `role = "db"` is not given the database's check (nor its secret); a result sent with one
/// agent's token for another agent's check changes nothing (alert, status page, results) and is
/// counted as refused; a result dated next year is refused while one from two days ago is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_cannot_claim_checks_or_report_for_others_or_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    let url = &target.url;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{dir}"
read_tokens = ["{READ_TOKEN}"]

[[agents]]
name = "edge-1"
token = "{AGENT_TOKEN}"
labels = {{ role = "web" }}

[[agents]]
name = "edge-2"
token = "edge-2-token-0123456789abcdef"
labels = {{ role = "edge" }}

[[checks]]
name = "web"
type = "http"
url = "{url}"
interval = "1s"
timeout = "1s"
failure_threshold = 1
run_on = ["role=web"]

[[checks]]
name = "db"
type = "http"
url = "{url}"
headers = {{ Authorization = "Bearer db-secret-0123456789" }}
interval = "1s"
timeout = "1s"
run_on = ["role=db"]

[[checks]]
name = "edge"
type = "http"
url = "{url}"
interval = "1h"
run_on = ["role=edge"]
"#,
        dir = dir.path().display()
    );
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();
    // The real agent says it is a database server.
    let agent_dir = tempfile::tempdir().unwrap();
    let path = agent_dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"edge-1\"\ncollector = \"{base}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\nlabels = {{ role = \"db\", zone = \"b\" }}\n[host_metrics]\nenabled = false\n\
             [shipping]\nassignments_interval = \"1s\"\n",
            agent_dir.path().display()
        ),
    )
    .unwrap();
    let _agent = lookout_tests::start_agent(&path).unwrap();
    eventually("edge-1 reporting its own check", WAIT, || async {
        Ok(check_status(&base, "web").await?.filter(|s| s == "up"))
    })
    .await
    .unwrap();
    // What it says of itself is shown under what the configuration says, and selects nothing.
    let hosts = get_json(&format!("{base}/api/v1/hosts")).await.unwrap();
    let edge1 = &hosts["hosts"][0]["labels"];
    assert_eq!(edge1["zone"], "b", "a label it sent is shown: {hosts}");
    assert_eq!(edge1["role"], "web", "the configured label wins: {hosts}");
    let claimed = &hosts["hosts"][0]["claimed_labels"];
    assert_eq!(
        claimed["role"], "db",
        "and the claim is kept beside: {hosts}"
    );
    assert_eq!(claimed["zone"], "b", "{hosts}");
    let client = reqwest::Client::new();
    let assignments = client
        .get(format!("{base}/v1/assignments"))
        .bearer_auth(AGENT_TOKEN)
        .header("lookout-agent-labels", r#"{"role":"db"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(assignments.contains("\"web\""), "{assignments}");
    assert!(
        !assignments.contains("\"db\"") && !assignments.contains("db-secret"),
        "a claimed label gave a check: {assignments}"
    );
    let db = get_json(&format!("{base}/api/v1/checks/db/results"))
        .await
        .unwrap();
    assert_eq!(db["results"].as_array().map(Vec::len), Some(0), "{db}");

    // edge-2 reports edge-1's check down, again and again, and one of its own from next year
    // and one from two days ago.
    let now = chrono::Utc::now();
    let result = |check: &str, time: chrono::DateTime<chrono::Utc>, ok: bool| {
        Record::CheckResult(lookout_protocol::CheckResult {
            check: check.into(),
            check_type: None,
            time,
            ok,
            latency_ms: 1.0,
            error: (!ok).then(|| "forged".to_string()),
            status_code: None,
            cert_expiry: None,
            timings: Default::default(),
        })
    };
    let mut records: Vec<Record> = (0..5)
        .map(|i| result("web", now - chrono::Duration::seconds(i), false))
        .collect();
    records.push(result("edge", now + chrono::Duration::days(365), false));
    records.push(result("edge", now - chrono::Duration::days(2), true));
    let batch = Batch {
        version: PROTOCOL_VERSION,
        agent: "edge-2".into(),
        batch_id: "forged-1".into(),
        records,
    };
    let answer: serde_json::Value = client
        .post(format!("{base}/v1/ingest"))
        .bearer_auth("edge-2-token-0123456789abcdef")
        .header("content-type", "application/json")
        .body(encode_batch(&batch, Encoding::Identity).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["stored"], 1, "{answer}");
    let reasons: Vec<&str> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["unassigned_check"; 5]
            .into_iter()
            .chain(["in_future"])
            .collect::<Vec<_>>()
    );
    // Nothing of it reached the check, its alert or the public page; the late result is kept.
    let web = get_json(&format!("{base}/api/v1/checks/web/results?agent=edge-2"))
        .await
        .unwrap();
    assert_eq!(web["results"].as_array().map(Vec::len), Some(0), "{web}");
    assert_eq!(
        check_status(&base, "web").await.unwrap().as_deref(),
        Some("up")
    );
    let alerts = get_json(&format!("{base}/api/v1/alerts")).await.unwrap();
    assert!(!alerts.to_string().contains("\"web\""), "{alerts}");
    let status = reqwest::get(format!("{base}/api/v1/status"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let web_public = status["groups"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web")
        .unwrap();
    assert_eq!(web_public["status"], "up");
    assert!(web_public["error"].is_null());
    assert!(status["open_incidents"].as_array().unwrap().is_empty());
    let since =
        (now - chrono::Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let edge = get_json(&format!(
        "{base}/api/v1/checks/edge/results?agent=edge-2&from={since}"
    ))
    .await
    .unwrap();
    let kept = edge["results"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{edge}");
    assert_eq!(kept[0]["ok"], true);
    let metrics = lookout_tests::read(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (reason, n) in [("unassigned_check", 5), ("in_future", 1)] {
        let line = format!("lookout_ingest_rejects_total{{reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&line), "no {line:?} in /metrics");
    }
}

/// A password in the agent's collector URL reaches none of its log lines, at debug level,
/// while the collector cannot be reached (when reqwest's errors name the URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_logs_its_collector_url_without_the_password() {
    const SECRET: &str = "URLSECRET0123456789";
    let dir = tempfile::tempdir().unwrap();
    let dead = lookout_tests::free_port();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"edge-1\"\ncollector = \"http://lookout:{SECRET}@127.0.0.1:{}\"\n\
             token = \"{AGENT_TOKEN}\"\ndata_dir = \"{}\"\n[host_metrics]\nenabled = false\n",
            dead.get(),
            dir.path().display()
        ),
    )
    .unwrap();
    let agent = Daemon::start(
        &bin("lookout-agent"),
        &["--config", path.to_str().unwrap()],
        &[("LOOKOUT_LOG", "debug")],
    )
    .unwrap();
    agent.wait_for_line("collector unreachable", WAIT).unwrap();
    let log = agent.log_text();
    assert!(
        log.contains("agent started") && log.contains("***@127.0.0.1"),
        "{log}"
    );
    assert!(
        !log.contains(SECRET),
        "the password in the agent's log:\n{log}"
    );
}
