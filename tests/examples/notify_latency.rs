//! Detection latency, end to end: from the moment a checked endpoint stops answering 200 to the
//! moment the firing notification reaches a Slack-style webhook receiver, a PagerDuty Events API
//! v2 receiver (which takes only a well-formed `trigger` with the routing key as a page) and a
//! real SMTP server (aiosmtpd). Real binaries: a collector and an agent, a check every 1 s with
//! `failure_threshold = 1`, a route with `group_wait = "0s"`.
//!
//! Each trial has its own check and target (one check going up and down again and again would
//! be flapping, which is held quiet on purpose): after a random pause (so the stop falls
//! anywhere in the probe schedule) the target switches to 503; the times until each receiver
//! has the firing message are recorded; the target recovers and the resolves are awaited.
//! Prints median, p99 and max per receiver.
//!
//! Run by `bench/alerting.sh` and `bench/run` (they build the binaries and this example in
//! release mode first; `LOOKOUT_AGENT_BIN` picks the agent binary). Needs python3 with aiosmtpd.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use lookout_tests::smtp::SmtpSink;
use lookout_tests::{Daemon, Target, bin, start_collector};

/// The PagerDuty routing key the channel is configured with and the receiver expects.
const PD_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

/// Arrival times of the requests a receiver got, with whether each was a firing message.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(Instant, bool)>>>);

impl Arrivals {
    fn firing_after(&self, t: Instant) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(at, firing)| *firing && *at >= t)
            .map(|(at, _)| *at)
    }
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let p99 = &v[((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
    println!(
        "| {name} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
        v.len(),
        ms(&v[0]),
        ms(&v[v.len() / 2]),
        ms(p99),
        ms(v.last().unwrap())
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut targets = Vec::new();
    for _ in 0..trials {
        targets.push(Target::start().await.unwrap());
    }
    let slack = Arrivals::default();
    let s = slack.clone();
    let app = axum::Router::new().route(
        "/services/T0/B0/X",
        axum::routing::post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let text = String::from_utf8_lossy(&body);
                s.0.lock()
                    .unwrap()
                    .push((Instant::now(), text.contains("[FIRING]")));
                (StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack_url = format!("http://{}/services/T0/B0/X", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // PagerDuty: a trigger counts when it carries the routing key, a dedup_key and a payload
    // with summary, source and severity, as the Events API v2 requires; it answers 202.
    let pager = Arrivals::default();
    let p = pager.clone();
    let pd_app = axum::Router::new().route(
        "/v2/enqueue",
        axum::routing::post(move |body: axum::body::Bytes| {
            let p = p.clone();
            async move {
                let at = Instant::now();
                let event: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let trigger = event["event_action"] == "trigger"
                    && event["routing_key"] == PD_KEY
                    && event["dedup_key"].is_string()
                    && ["summary", "source", "severity"]
                        .iter()
                        .all(|k| event["payload"][k].is_string());
                p.0.lock().unwrap().push((at, trigger));
                (StatusCode::ACCEPTED, r#"{"status":"success"}"#)
            }
        }),
    );
    let pd_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pd_url = format!("http://{}/v2/enqueue", pd_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(pd_listener, pd_app).await.unwrap() });
    let smtp = SmtpSink::start().expect("an SMTP server");
    let smtp_port = &smtp.port;

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
# It reads each check's status from the API, without a read token.
public_read = true

[[agents]]
name = "edge-1"
token = "bench-agent-token-0123456789abcdef"

{checks}
[[channels]]
name = "slack"
type = "slack"
webhook_url = "{slack_url}"
max_per_minute = 0

[[channels]]
name = "mail"
type = "email"
url = "smtp://127.0.0.1:{smtp_port}"
from = "lookout@example.com"
to = ["ops@example.com"]
max_per_minute = 0

[[channels]]
name = "pd"
type = "pagerduty"
routing_key = "{PD_KEY}"
url = "{pd_url}"
max_per_minute = 0

[[routes]]
channels = ["slack", "mail", "pd"]
group_wait = "0s"
"#,
        data = dir.path().display(),
        checks = targets
            .iter()
            .enumerate()
            .map(|(i, t)| format!(
                "[[checks]]\nname = \"api-{i}\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"1s\"\nfailure_threshold = 1\n\n",
                t.url
            ))
            .collect::<String>()
    );
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();
    let agent_conf = dir.path().join("agent.toml");
    std::fs::write(
        &agent_conf,
        format!(
            "name = \"edge-1\"\ncollector = \"{base}\"\ntoken = \"bench-agent-token-0123456789abcdef\"\ndata_dir = \"{}\"\n\n[host_metrics]\nenabled = false\n\n[shipping]\nassignments_interval = \"1s\"\n",
            dir.path().join("agent").display()
        ),
    )
    .unwrap();
    let _agent = Daemon::start(
        &bin("lookout-agent"),
        &["--config", agent_conf.to_str().unwrap()],
        &[],
    )
    .unwrap();
    // Wait until the agent reports every check up.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..trials {
        let name = format!("api-{i}");
        while lookout_tests::check_status(&base, &name)
            .await
            .ok()
            .flatten()
            .as_deref()
            != Some("up")
        {
            assert!(Instant::now() < deadline, "{name} never came up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut to_slack = Vec::new();
    let mut to_mail = Vec::new();
    let mut to_pd = Vec::new();
    for (trial, target) in targets.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(1000 + fastrand::u64(0..1000))).await;
        let mails_before = smtp.count();
        let stopped = Instant::now();
        target.set_status(503);
        let deadline = stopped + Duration::from_secs(10);
        let (mut slack_at, mut mail_at, mut pd_at) = (None, None, None);
        while slack_at.is_none() || mail_at.is_none() || pd_at.is_none() {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: no notification within 10 s"
            );
            if slack_at.is_none() {
                slack_at = slack.firing_after(stopped);
            }
            if pd_at.is_none() {
                pd_at = pager.firing_after(stopped);
            }
            if mail_at.is_none() && smtp.count() > mails_before {
                mail_at = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        to_slack.push(slack_at.unwrap() - stopped);
        to_mail.push(mail_at.unwrap() - stopped);
        to_pd.push(pd_at.unwrap() - stopped);
        // Recover and wait for both resolves.
        let slack_before = slack.count();
        let pd_before = pager.count();
        target.set_status(200);
        let deadline = Instant::now() + Duration::from_secs(10);
        while slack.count() <= slack_before
            || pager.count() <= pd_before
            || smtp.count() < mails_before + 2
        {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: no resolve within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "trial {:>2}: slack {:>5} ms, mail {:>5} ms, pagerduty {:>5} ms",
            trial + 1,
            to_slack.last().unwrap().as_millis(),
            to_mail.last().unwrap().as_millis(),
            to_pd.last().unwrap().as_millis()
        );
    }
    println!("| receiver | trials | min | median | p99 | max |");
    println!("|---|---|---|---|---|---|");
    stats("Slack webhook (fake receiver)", to_slack);
    stats("SMTP (aiosmtpd)", to_mail);
    stats("PagerDuty Events API v2 (fake receiver)", to_pd);
}
