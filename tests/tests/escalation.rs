//! End to end: a real collector walks an escalation policy, each step's channel a webhook
//! receiver of its own, the steps seconds apart. The collector is killed (`kill -9`) between
//! two steps and restarted: each step's receiver gets exactly one firing, none skipped, none
//! repeated. Then the alert is acknowledged through the API, and the step still to come never
//! arrives: the API shows it cancelled (docs/alerting.md, "Escalation").

use std::time::Duration;

use lookout_tests::escalation::{firings, policy_toml, step_receivers};
use lookout_tests::{READ_TOKEN, eventually, free_port, get_json, start_collector};

const ADMIN: &str = "escalation-admin-0123456789abcdef";

/// The steps: which receiver, how long after the firing.
const STEPS: [(&str, u64); 4] = [("s0", 0), ("s1", 5), ("s2", 10), ("s3", 20)];

fn config(dir: &std::path::Path, hook: &str, closed: u16) -> String {
    let policy = policy_toml(hook, &STEPS);
    format!(
        r#"
[server]
read_tokens = ["{READ_TOKEN}"]
admin_token = "{ADMIN}"
listen = "127.0.0.1:0"
data_dir = "{dir}"

[local_agent]
name = "local"

[local_agent.host_metrics]
enabled = false

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:{closed}"
interval = "1s"
timeout = "1s"
failure_threshold = 1

{policy}"#,
        dir = dir.display(),
    )
}

/// The firing alert's id and its notifications as (channel, state), once it fires.
async fn alert(base: &str) -> anyhow::Result<Option<(i64, Vec<(String, String)>)>> {
    let j = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
    let Some(a) = j["alerts"].as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let notes = a["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap_or("").to_string(),
                n["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    Ok(Some((a["id"].as_i64().unwrap_or(0), notes)))
}

/// Waits until `channel`'s step is recorded as `state`.
async fn step_is(base: &str, channel: &str, state: &str) {
    eventually(
        &format!("{channel} {state}"),
        Duration::from_secs(30),
        || async {
            let found = alert(base)
                .await?
                .is_some_and(|(_, n)| n.iter().any(|(c, s)| c == channel && s == state));
            Ok(found.then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_sends_each_step_once_across_a_kill_and_stops_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (inboxes, hook) = step_receivers(&STEPS).await;
    // Bound and closed again: nothing listens there, so the check fails at once.
    let closed = free_port().get();
    let text = config(dir.path(), &hook, closed);
    let (mut collector, base) = start_collector(dir.path(), &text).unwrap();

    // The first step at once, the second five seconds later, each once.
    eventually("the first step", Duration::from_secs(30), || async {
        Ok((firings(&inboxes)[0] == 1).then_some(()))
    })
    .await
    .unwrap();
    let fired = std::time::Instant::now();
    assert_eq!(firings(&inboxes), [1, 0, 0, 0]);
    step_is(&base, "s1", "delivered").await;
    assert_eq!(firings(&inboxes), [1, 1, 0, 0]);

    // Killed between the second step and the third, and restarted on the same database.
    collector.signal("KILL").unwrap();
    collector.wait_exit(Duration::from_secs(5)).unwrap();
    let (_collector, base) = start_collector(dir.path(), &text).unwrap();
    step_is(&base, "s2", "delivered").await;
    assert_eq!(
        firings(&inboxes),
        [1, 1, 1, 0],
        "each step once, none skipped"
    );

    // Acknowledged before the last step: it is cancelled, and never arrives.
    let (id, _) = alert(&base).await.unwrap().unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/alerts/{id}/ack"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    step_is(&base, "s3", "cancelled").await;
    let (_, notes) = alert(&base).await.unwrap().unwrap();
    let firing_steps: Vec<(String, String)> = notes.into_iter().take(STEPS.len()).collect();
    assert_eq!(
        firing_steps,
        [
            ("s0", "delivered"),
            ("s1", "delivered"),
            ("s2", "delivered"),
            ("s3", "cancelled")
        ]
        .map(|(c, s)| (c.to_string(), s.to_string()))
    );
    // Past the last step's time, with a margin: nothing more of the policy arrived.
    let last = Duration::from_secs(STEPS[3].1 + 3);
    tokio::time::sleep(last.saturating_sub(fired.elapsed())).await;
    assert_eq!(firings(&inboxes), [1, 1, 1, 0]);
}
