//! End to end: two collectors on one PostgreSQL walk an escalation policy, each step's channel
//! a webhook receiver of its own, the steps seconds apart. The leader is killed (`kill -9`)
//! between two steps: the other collector takes the lead and sends the next steps, each
//! exactly once, none skipped (docs/alerting.md, "Escalation").
//!
//! Needs PostgreSQL at `LOOKOUT_TEST_PG_URL` (`scripts/test` starts one); each run makes a
//! database of its own.

use std::time::Duration;

use lookout_tests::escalation::{firings, policy_toml, step_receivers};
use lookout_tests::{Daemon, READ_TOKEN, bin, eventually, free_port, get_json};

/// The steps: which receiver, how long after the firing.
const STEPS: [(&str, u64); 3] = [("s0", 0), ("s1", 8), ("s2", 14)];

fn collector(
    dir: &std::path::Path,
    name: &str,
    port: u16,
    db: &str,
    hook: &str,
    closed: u16,
) -> Daemon {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let policy = policy_toml(hook, &STEPS);
    let path = data.join("collector.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
read_tokens = ["{READ_TOKEN}"]
listen = "127.0.0.1:{port}"
data_dir = "{data}"

[storage]
url = "{db}"

[[agents]]
name = "web-1"
token = "web-1-token-0123456789abcdef"

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:{closed}"
interval = "1s"
timeout = "1s"
failure_threshold = 1

{policy}"#,
            data = data.display(),
        ),
    )
    .unwrap();
    let d = Daemon::start(
        &bin("lookout-collector"),
        &["--config", path.to_str().unwrap()],
        &[],
    )
    .unwrap();
    d.wait_for_line("collector listening", Duration::from_secs(20))
        .unwrap();
    d
}

/// The leader's address as the collector at `base` sees it.
async fn leader(base: &str) -> anyhow::Result<Option<String>> {
    let j = get_json(&format!("{base}/api/v1/cluster")).await?;
    Ok(j["collectors"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["leader"] == true))
        .and_then(|c| c["address"].as_str())
        .map(String::from))
}

/// Waits until the firing alert's step to `channel` is recorded as delivered.
async fn delivered(base: &str, channel: &str) {
    eventually(
        &format!("{channel} delivered"),
        Duration::from_secs(40),
        || async move {
            let j = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
            let done = j["alerts"][0]["notifications"].as_array().is_some_and(|n| {
                n.iter()
                    .any(|n| n["channel"] == channel && n["state"] == "delivered")
            });
            Ok(done.then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_between_steps_leaves_each_step_sent_once_by_the_other() {
    let Some(db) = lookout_tests::pg_database("cluster_escalation").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (inboxes, hook) = step_receivers(&STEPS).await;
    let closed = free_port().get();
    let (pa, pb) = (free_port(), free_port());
    let (a_url, b_url) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let mut a = collector(dir.path(), "a", pa.get(), &db, &hook, closed);
    eventually("a leading", Duration::from_secs(15), || async {
        Ok((leader(&a_url).await?.as_deref() == Some(a_url.as_str())).then_some(()))
    })
    .await
    .unwrap();
    let _b = collector(dir.path(), "b", pb.get(), &db, &hook, closed);
    eventually("b following a", Duration::from_secs(15), || async {
        Ok((leader(&b_url).await?.as_deref() == Some(a_url.as_str())).then_some(()))
    })
    .await
    .unwrap();

    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_config = agent_dir.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "name = \"web-1\"\ncollector = [\"{a_url}\", \"{b_url}\"]\ntoken = \"web-1-token-0123456789abcdef\"\ndata_dir = \"{}\"\n\n[host_metrics]\nenabled = false\n\n[shipping]\nassignments_interval = \"1s\"\nflush_interval = \"200ms\"\nmax_backoff = \"1s\"\nrequest_timeout = \"2s\"\n",
            agent_dir.display()
        ),
    )
    .unwrap();
    let _agent = lookout_tests::start_agent(&agent_config).unwrap();

    // a leads and sends the first step.
    eventually("the first step", Duration::from_secs(40), || async {
        Ok((firings(&inboxes)[0] == 1).then_some(()))
    })
    .await
    .unwrap();
    delivered(&a_url, "s0").await;
    assert_eq!(firings(&inboxes), [1, 0, 0]);

    // a dies before the second step; b takes the lead and sends the rest, each once.
    a.signal("KILL").unwrap();
    a.wait_exit(Duration::from_secs(5)).unwrap();
    eventually("b leading", Duration::from_secs(30), || async {
        Ok((leader(&b_url).await?.as_deref() == Some(b_url.as_str())).then_some(()))
    })
    .await
    .unwrap();
    delivered(&b_url, "s1").await;
    delivered(&b_url, "s2").await;
    assert_eq!(firings(&inboxes), [1, 1, 1], "each step once, none skipped");
}
