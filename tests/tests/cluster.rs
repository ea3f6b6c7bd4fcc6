//! End to end: two collectors on one PostgreSQL, one agent shipping to both (the first, the
//! second when the first is gone, and the first again once it is back). An endpoint goes down; the leading collector is killed
//! with `kill -9` during the outage; the endpoint recovers. Exactly one firing and one resolved
//! notification reach the webhook. Then again with the other collector killed, and once more
//! after the leader's database session is cut.
//!
//! Needs PostgreSQL at `LOOKOUT_TEST_PG_URL` (`scripts/test` starts one); each run makes a
//! database of its own.

use std::time::{Duration, Instant};

use lookout_tests::READ_TOKEN;
use lookout_tests::{
    Daemon, Inbox, Target, bin, check_status, eventually, free_port, get_json, serve,
};

/// Notes of `kind` in `inbox`.
fn count(inbox: &Inbox, kind: &str) -> usize {
    inbox.notes().iter().filter(|(k, _)| k == kind).count()
}

struct Setup {
    dir: tempfile::TempDir,
    db: String,
    target: String,
    hook: String,
}

impl Setup {
    /// Starts a collector on `port` and waits until it answers.
    fn collector(&self, name: &str, port: u16) -> Daemon {
        let data = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
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
labels = {{ role = "web" }}

[[checks]]
name = "api"
type = "http"
url = "{target}"
interval = "1s"
timeout = "1s"
run_on = ["role=web"]

[[channels]]
name = "pager"
type = "webhook"
url = "{hook}"

[[routes]]
channels = ["pager"]
group_wait = "0s"
"#,
                data = data.display(),
                db = self.db,
                target = self.target,
                hook = self.hook,
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
}

/// `GET /api/v1/cluster` of the collector at `base`: (leader's address, this one's instance,
/// collectors listed).
async fn cluster(base: &str) -> anyhow::Result<(Option<String>, String, usize)> {
    let j = get_json(&format!("{base}/api/v1/cluster")).await?;
    let list = j["collectors"].as_array().cloned().unwrap_or_default();
    let leader = list
        .iter()
        .find(|c| c["leader"] == true)
        .and_then(|c| c["address"].as_str())
        .map(String::from);
    let this = list
        .iter()
        .find(|c| c["this"] == true)
        .and_then(|c| c["instance"].as_str())
        .unwrap_or("")
        .to_string();
    Ok((leader, this, list.len()))
}

/// Waits until the collector at `base` says `leader` leads; returns how long that took.
async fn led_by(base: &str, leader: &str, within: Duration) -> Duration {
    let started = Instant::now();
    eventually(&format!("{leader} leading"), within, || async move {
        let (l, _, _) = cluster(base).await?;
        Ok((l.as_deref() == Some(leader)).then_some(()))
    })
    .await
    .unwrap();
    started.elapsed()
}

/// Waits until the firing alert's notifications are recorded as delivered (read through the
/// collector at `base`), so a kill that follows cannot fall between the send and that record
/// (which would resend the page after the lease: the documented duplicate window, which this
/// test is not about).
async fn delivered(base: &str) {
    eventually(
        "the page recorded as delivered",
        Duration::from_secs(10),
        || async move {
            let j = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
            let done = j["alerts"][0]["notifications"]
                .as_array()
                .is_some_and(|n| !n.is_empty() && n.iter().all(|n| n["state"] == "delivered"));
            Ok(done.then_some(()))
        },
    )
    .await
    .unwrap();
}

async fn wait_notes(inbox: &Inbox, kind: &str, n: usize, what: &str) {
    eventually(what, Duration::from_secs(30), || async move {
        Ok((count(inbox, kind) >= n).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; notes: {:?}", inbox.notes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_outage_leaves_one_page_and_one_resolve() {
    let Some(db) = lookout_tests::pg_database("cluster").await else {
        return;
    };
    let target = Target::start().await.unwrap();
    let inbox = Inbox::default();
    let hook = format!(
        "{}/hook",
        serve(axum::Router::new().route("/hook", inbox.handler())).await
    );
    let setup = Setup {
        dir: tempfile::tempdir().unwrap(),
        db,
        target: target.url.clone(),
        hook,
    };
    let (pa, pb) = (free_port(), free_port());
    let (a_url, b_url) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );

    let mut a = setup.collector("a", pa.get());
    led_by(&a_url, &a_url, Duration::from_secs(15)).await;
    let mut b = setup.collector("b", pb.get());
    eventually("both collectors listed", Duration::from_secs(15), || {
        let b_url = b_url.clone();
        async move { Ok((cluster(&b_url).await?.2 == 2).then_some(())) }
    })
    .await
    .unwrap();
    assert_eq!(
        cluster(&b_url).await.unwrap().0.as_deref(),
        Some(a_url.as_str())
    );

    let agent_dir = setup.dir.path().join("agent");
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
    eventually(
        "the check up, seen from the follower",
        Duration::from_secs(30),
        || {
            let b_url = b_url.clone();
            async move {
                Ok((check_status(&b_url, "api").await?.as_deref() == Some("up")).then_some(()))
            }
        },
    )
    .await
    .unwrap();

    // Round 1: a leads. The endpoint goes down and a pages.
    target.set_status(503);
    wait_notes(&inbox, "firing", 1, "the first page").await;
    delivered(&a_url).await;
    a.signal("KILL").unwrap();
    a.wait_exit(Duration::from_secs(5)).unwrap();
    let took = led_by(&b_url, &b_url, Duration::from_secs(20)).await;
    println!("round 1: b took the lead {took:?} after a was killed");
    target.set_status(200);
    wait_notes(&inbox, "resolved", 1, "the first resolve").await;

    // Round 2: a comes back, follows; b leads and is killed mid-outage.
    let a = setup.collector("a", pa.get());
    eventually("a back and following", Duration::from_secs(20), || {
        let a_url = a_url.clone();
        let b_url = b_url.clone();
        async move {
            let (leader, _, n) = cluster(&a_url).await?;
            Ok((leader.as_deref() == Some(b_url.as_str()) && n >= 2).then_some(()))
        }
    })
    .await
    .unwrap();
    // The agent goes back to its first collector once that is back.
    eventually(
        "the agent shipping to a again",
        Duration::from_secs(30),
        || {
            let a_url = a_url.clone();
            async move {
                let text = lookout_tests::read(format!("{a_url}/metrics"))
                    .await?
                    .text()
                    .await?;
                Ok(text
                    .lines()
                    .any(|l| l.starts_with(r#"lookout_ingest_batches_total{outcome="stored"}"#))
                    .then_some(()))
            }
        },
    )
    .await
    .unwrap();
    target.set_status(503);
    wait_notes(&inbox, "firing", 2, "the second page").await;
    delivered(&b_url).await;
    b.signal("KILL").unwrap();
    b.wait_exit(Duration::from_secs(5)).unwrap();
    let took = led_by(&a_url, &a_url, Duration::from_secs(20)).await;
    println!("round 2: a took the lead {took:?} after b was killed");
    target.set_status(200);
    wait_notes(&inbox, "resolved", 2, "the second resolve").await;

    // Round 3: the leader loses its database connection (its session is terminated, as a
    // restarted or failed-over PostgreSQL would). It stops leading, and leads again once it
    // holds the lock on a new connection; an outage then is still paged once.
    let term = |base: String| async move {
        let j = get_json(&format!("{base}/api/v1/cluster")).await?;
        Ok::<_, anyhow::Error>(
            j["collectors"][0]["leader_since"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()),
        )
    };
    let before = term(a_url.clone()).await.unwrap().expect("a leads");
    let admin = sqlx::PgPool::connect(&setup.db).await.unwrap();
    // The lock of this test's database only: other tests' collectors on the same server hold
    // the same key in theirs. Polled: the leader may be between two holds of it.
    let cut: i64 = eventually("the leader's lock held", Duration::from_secs(10), || {
        let admin = admin.clone();
        async move {
            let cut: i64 = sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
                 JOIN pg_database d ON d.oid = l.database
                 WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = 7700200
                   AND l.granted AND d.datname = current_database()",
            )
            .fetch_one(&admin)
            .await?;
            Ok((cut > 0).then_some(cut))
        }
    })
    .await
    .unwrap();
    assert_eq!(cut, 1, "one session holds the leader's lock");
    let cut_at = Instant::now();
    eventually(
        "a leading again, on a new connection",
        Duration::from_secs(20),
        || {
            let a_url = a_url.clone();
            async move {
                let now = term(a_url).await?;
                Ok(now.filter(|t| *t > before).map(|_| ()))
            }
        },
    )
    .await
    .unwrap();
    println!(
        "round 3: a led again {:?} after its connection was cut",
        cut_at.elapsed()
    );
    target.set_status(503);
    wait_notes(&inbox, "firing", 3, "the third page").await;
    target.set_status(200);
    wait_notes(&inbox, "resolved", 3, "the third resolve").await;

    // Nothing more comes: no repeat of any page or resolve. (Waiting here is the point: a
    // repeat would come after a lease or a reminder, and nothing observable says it will not.)
    tokio::time::sleep(Duration::from_secs(4)).await;
    let notes = inbox.notes();
    let kinds: Vec<&str> = notes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "firing", "resolved", "firing", "resolved", "firing", "resolved"
        ],
        "{notes:?}"
    );
    assert!(
        notes.iter().all(|(_, f)| f == &notes[0].1),
        "one alert: {notes:?}"
    );
    drop(a);
}
