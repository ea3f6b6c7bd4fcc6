//! A fleet that grows and shrinks, with the real binaries: five agents enrol with one token
//! (three ephemeral by the collector's `[enrollment] lifecycle`, two that ask to be permanent),
//! all probe one endpoint under a majority quorum. An ephemeral and a permanent agent are
//! stopped with SIGTERM and a permanent one is killed: the only page is the killed one's; the
//! ephemeral agent is `retired`, the other stopped one `stopped`, the killed one `down`, and the
//! check stays up throughout. Then the two agents that remain are cut off from the endpoint: the
//! check goes down and pages, which it can only do if the quorum counts the agents that remain
//! (with the leavers' fresh results counted, two of five is no majority). The stopped agent
//! comes back `up`; the retired one's results stay.
//!
//! The oracles are the webhook receiver (every page, whole), `GET /api/v1/hosts` and
//! `GET /api/v1/checks`; the in-process version, tick by tick, is collector/tests/fleet.rs.

use std::path::Path;
use std::time::Duration;

use lookout_tests::{
    Daemon, Gate, Inbox, READ_TOKEN, check_json, check_status, eventually, free_port, get_json,
    serve, start_collector,
};
use serde_json::Value;

const ENROL: &str = "e2e-fleet-scaling-token-0123456789";
const WAIT: Duration = Duration::from_secs(40);
/// The check's interval and timeout: its results stay fresh for 3 × (interval + timeout) =
/// 42 s, longer than the test needs between the stops and the cut, so a leaver's last results
/// would still count if leaving did not take the agent out of the quorum.
const INTERVAL_S: u64 = 12;
const STALE_AFTER: Duration = Duration::from_secs(3 * (INTERVAL_S + 2));

fn collector_config(dir: &Path, port: u16, target: &str, hook: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "{dir}"
read_tokens = ["{READ_TOKEN}"]

[alerting]
agent_timeout = "5s"

[enrollment]
token = "{ENROL}"
labels = {{ role = "web" }}
lifecycle = "ephemeral"
retire_after = "5s"

[[checks]]
name = "api"
type = "http"
url = "{target}"
interval = "{INTERVAL_S}s"
timeout = "2s"
failure_threshold = 1
run_on = ["role=web"]

[[channels]]
name = "pager"
type = "webhook"
url = "{hook}"

[[routes]]
channels = ["pager"]
group_wait = "0s"
"#,
        dir = dir.display()
    )
}

/// Agent `name`, enrolling with the fleet's token; `permanent` asks for that lifecycle.
fn agent(dir: &Path, base: &str, name: &str, permanent: bool) -> Daemon {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("agent.toml");
    let lifecycle = if permanent {
        "lifecycle = \"permanent\"\n"
    } else {
        ""
    };
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ncollector = \"{base}\"\nenroll_token = \"{ENROL}\"\n{lifecycle}\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n[shipping]\n\
             assignments_interval = \"1s\"\n",
            data.display()
        ),
    )
    .unwrap();
    lookout_tests::start_agent(&path).unwrap()
}

/// Each agent's state in `GET /api/v1/hosts`, by name.
async fn states(base: &str) -> anyhow::Result<Vec<(String, String)>> {
    let j = get_json(&format!("{base}/api/v1/hosts")).await?;
    let mut out: Vec<(String, String)> = j["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or("").to_string(),
                h["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

/// The firing pages received, as (rule, the label naming what fired).
fn pages(inbox: &Inbox) -> Vec<(String, String)> {
    inbox
        .alerts()
        .iter()
        .filter(|a| a["kind"] == "firing")
        .map(|a: &Value| {
            let labels = &a["labels"];
            let what = labels["agent"].as_str().or(labels["check"].as_str());
            (
                a["rule"].as_str().unwrap_or("").to_string(),
                what.unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Fails the test if check `api` is anything but up.
async fn assert_check_up(base: &str, when: &str) {
    let status = check_status(base, "api").await.unwrap();
    assert_eq!(status.as_deref(), Some("up"), "check api {when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_enrolled_agents_leave_in_three_ways_and_only_the_killed_permanent_one_pages() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Gate::default();
    let target = gate.serve().await;
    let inbox = Inbox::default();
    let hook = serve(axum::Router::new().route("/hook", inbox.handler())).await;
    let port = free_port();
    let config = collector_config(dir.path(), port.get(), &target, &format!("{hook}/hook"));
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();

    // web-1..3 take the section's lifecycle (ephemeral); web-4 and web-5 ask to be permanent.
    let mut agents: Vec<Daemon> = (1..=5)
        .map(|i| agent(dir.path(), &base, &format!("web-{i}"), i >= 4))
        .collect();
    let all_up = expect(&[
        ("web-1", "up"),
        ("web-2", "up"),
        ("web-3", "up"),
        ("web-4", "up"),
        ("web-5", "up"),
    ]);
    eventually("five agents up", WAIT, || async {
        Ok((states(&base).await? == all_up).then_some(()))
    })
    .await
    .unwrap();
    eventually("the check up at five locations", WAIT, || async {
        let api = check_json(&base, "api").await?;
        let five = api["agents"].as_array().is_some_and(|a| a.len() == 5);
        Ok((five && api["status"] == "up").then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(pages(&inbox), vec![], "nothing is down yet");

    // Two clean stops (web-1 ephemeral, web-4 permanent) and one kill (web-5, permanent).
    for i in [0, 3] {
        agents[i].signal("TERM").unwrap();
        let status = agents[i].wait_exit(Duration::from_secs(15)).unwrap();
        assert!(status.success(), "web-{} exits cleanly: {status}", i + 1);
        assert!(
            agents[i].log_text().contains("said goodbye"),
            "web-{} said goodbye:\n{}",
            i + 1,
            agents[i].log_text()
        );
    }
    agents[4].signal("KILL").unwrap();
    agents[4].wait_exit(Duration::from_secs(5)).unwrap();

    let after = expect(&[
        ("web-1", "retired"),
        ("web-2", "up"),
        ("web-3", "up"),
        ("web-4", "stopped"),
        ("web-5", "down"),
    ]);
    eventually("retired, stopped, down", WAIT, || async {
        assert_check_up(&base, "while agents leave").await;
        Ok((states(&base).await? == after).then_some(()))
    })
    .await
    .unwrap();
    // A retired agent's history stays.
    let j = get_json(&format!("{base}/api/v1/checks/api/results?agent=web-1"))
        .await
        .unwrap();
    let kept = j["results"].as_array().map_or(0, Vec::len);
    assert!(kept >= 1, "web-1's results after it retired: {j}");
    // The killed agent's page. web-1 and web-4 fell silent before web-5, so a page for either
    // would have been due at the same tick or earlier.
    eventually("the killed agent's page", WAIT, || async {
        Ok((!pages(&inbox).is_empty()).then_some(()))
    })
    .await
    .unwrap();
    let agent_pages = pages(&inbox);
    assert_eq!(agent_pages.len(), 1, "{:#?}", inbox.alerts());
    assert_eq!(agent_pages[0].1, "web-5", "{:#?}", inbox.alerts());
    assert_check_up(&base, "after the agents left").await;

    // The two that remain lose the endpoint: two of the three agents still counted (web-2,
    // web-3 and the killed web-5, whose last results are fresh) is a majority. Counting the
    // leavers too, two of five would not be.
    gate.cut("web-2");
    gate.cut("web-3");
    eventually("the check's page", WAIT, || async {
        Ok(pages(&inbox)
            .iter()
            .any(|(_, what)| what == "api")
            .then_some(()))
    })
    .await
    .unwrap();
    // Only meaningful while the leavers' last results would still be fresh: check it.
    let fired_at = inbox
        .alerts()
        .iter()
        .find(|a| a["kind"] == "firing" && a["labels"]["check"] == "api")
        .and_then(|a| a["fired_at"].as_str().map(str::to_string))
        .unwrap();
    let fired_at = chrono::DateTime::parse_from_rfc3339(&fired_at).unwrap();
    let api = check_json(&base, "api").await.unwrap();
    for leaver in ["web-1", "web-4"] {
        let last = api["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["agent"] == leaver))
            .and_then(|a| a["time"].as_str())
            .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
            .unwrap();
        let age = (fired_at - last).to_std().unwrap();
        assert!(
            age < STALE_AFTER,
            "{leaver}'s last result was {age:?} old when the check fired, stale anyway \
             ({STALE_AFTER:?}): this run does not show the quorum following the fleet"
        );
    }
    assert_eq!(
        check_status(&base, "api").await.unwrap().as_deref(),
        Some("down")
    );
    assert_eq!(pages(&inbox).len(), 2, "{:#?}", inbox.alerts());

    // The stopped permanent agent comes back, on its kept credential.
    agents[3] = agent(dir.path(), &base, "web-4", true);
    let back = expect(&[
        ("web-1", "retired"),
        ("web-2", "up"),
        ("web-3", "up"),
        ("web-4", "up"),
        ("web-5", "down"),
    ]);
    eventually("web-4 back up", WAIT, || async {
        Ok((states(&base).await? == back).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(pages(&inbox).len(), 2, "{:#?}", inbox.alerts());
}
