//! Acknowledging from the message, end to end: the real collector, its built-in agent with a
//! failing check, an escalation policy whose first step emails a real SMTP server (aiosmtpd)
//! at once and whose second posts to a webhook receiver a few seconds later, and headless
//! Chromium (tests/browser/ack.mjs) opening the link read from the email.
//!
//! The router-level cases (a form from another site, expired links, a resolved alert, the
//! acknowledged note sent once) are in collector/tests/ack_link.rs; this test is the whole path
//! a person on call takes, and what follows from it: the second step is cancelled and never
//! sent, and the email channel hears that the alert was acknowledged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_tests::browser::{browser_dir, fail, run_script};
use lookout_tests::smtp::SmtpSink;
use lookout_tests::{Inbox, READ_TOKEN, eventually, free_port, get_json, serve, start_collector};
use serde_json::{Value, json};

/// Who an acknowledgement from a link is recorded as (collector/src/web/ack.rs).
const ACKED_BY: &str = "acknowledge link";
/// When the second step falls due after the firing: long enough for the browser to start and
/// click under load, short enough to wait past.
const SECOND_STEP: Duration = Duration::from_secs(12);
/// How long past the second step's time the receiver is watched.
const MARGIN: Duration = Duration::from_secs(2);
/// Longest wait for the first email, and for the API to show what the test waits for.
const WAIT: Duration = Duration::from_secs(20);

fn config(dir: &std::path::Path, port: u16, smtp: u16, hook: &str, closed: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
read_tokens = ["{READ_TOKEN}"]
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

[[channels]]
name = "mail"
type = "email"
url = "smtp://127.0.0.1:{smtp}"
from = "lookout@example.com"
to = ["oncall@example.com"]

[[channels]]
name = "pager"
type = "webhook"
url = "{hook}/pager"

[[escalations]]
name = "on-call"
steps = [{{ after = "0s", channels = ["mail"] }}, {{ after = "{second}s", channels = ["pager"] }}]

[[routes]]
escalation = "on-call"
group_wait = "0s"
"#,
        dir = dir.display(),
        second = SECOND_STEP.as_secs(),
    )
}

/// The firing alert as the API lists it, once there is one.
async fn firing(base: &str) -> anyhow::Result<Option<Value>> {
    let j = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
    Ok(j["alerts"].as_array().and_then(|a| a.first()).cloned())
}

/// The link after `acknowledge: ` in the email's text part, and the `href` of its HTML part's
/// "Acknowledge" anchor; they must be the same.
fn ack_link(mail: &Value) -> String {
    let part = |kind: &str| {
        mail["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["content_type"] == kind)
            .and_then(|p| p["text"].as_str())
            .unwrap_or_else(|| panic!("no {kind} part in {mail:#}"))
            .to_string()
    };
    let text = part("text/plain");
    let link = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("acknowledge: "))
        .unwrap_or_else(|| panic!("no acknowledge link in the text part:\n{text}"))
        .to_string();
    let html = part("text/html");
    assert!(
        html.contains(&format!("<a href=\"{link}\">Acknowledge</a>")),
        "the HTML part's link differs from the text part's {link}:\n{html}"
    );
    link
}

/// `link` with the last digit of its signature changed.
fn tampered(link: &str) -> String {
    let mut out = link.to_string();
    let last = out.pop().expect("a link");
    out.push(if last == '0' { '1' } else { '0' });
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_in_an_email_acknowledges_in_a_browser_and_stops_the_next_step() {
    browser_dir();
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start().unwrap();
    let pager = Inbox::default();
    let hook = serve(axum::Router::new().route("/pager", pager.handler())).await;
    // The collector's port is known beforehand: its public URL, which the links carry, names it.
    let port = free_port();
    // Reserved and not listened on: the check fails at once.
    let closed = free_port();
    let text = config(dir.path(), port.get(), smtp.port.get(), &hook, closed.get());
    let (collector, base) = start_collector(dir.path(), &text).unwrap();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));

    // The first step's email, and the link it carries.
    let arrived = eventually("the first step's email", WAIT, || async {
        Ok((smtp.count() >= 1).then_some(()))
    })
    .await;
    if let Err(e) = arrived {
        fail(e, &collector);
    }
    let mail = smtp.parsed(1).unwrap();
    let subject = mail["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("[FIRING] db is down"), "{mail:#}");
    let link = ack_link(&mail);
    let alert = firing(&base).await.unwrap().expect("the alert fires");
    let alert_id = alert["id"].as_i64().unwrap();
    assert!(
        link.starts_with(&format!("{base}/ack/{alert_id}.")),
        "{link} does not name alert {alert_id}"
    );
    assert_eq!(alert["acked_by"], Value::Null);
    let fired_at: DateTime<Utc> = alert["fired_at"].as_str().unwrap().parse().unwrap();
    let second_due = fired_at + chrono::Duration::from_std(SECOND_STEP).unwrap();
    println!(
        "email with the link {:?} after the start",
        started.elapsed()
    );

    let expect = json!({
        "link": link,
        "tampered": tampered(&link),
        "alert_id": alert_id,
        "summary": alert["summary"],
        "acked_by": ACKED_BY,
        "read_token": READ_TOKEN,
    });
    let mut acked = None;
    let ran = run_script(
        "ack.mjs",
        &base,
        &[("LOOKOUT_EXPECT", expect.to_string())],
        |event| {
            if event == "acknowledged" {
                acked = Some(Utc::now());
            }
        },
    )
    .await;
    if let Err(e) = ran {
        fail(e, &collector);
    }
    let acked = acked.expect("the script never said it acknowledged");
    println!(
        "acknowledged {} ms after the firing",
        (acked - fired_at).num_milliseconds()
    );
    assert!(
        acked < second_due,
        "acknowledged at {acked}, after the second step fell due at {second_due}: the test's \
         SECOND_STEP is too short for this machine"
    );

    // The API: acknowledged by the link, the second step cancelled.
    let cancelled = eventually("the second step cancelled", WAIT, || async {
        let Some(a) = firing(&base).await? else {
            return Ok(None);
        };
        let steps: Vec<(String, String)> = a["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let field = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                (field("channel"), field("state"))
            })
            .collect();
        let cancelled = steps.contains(&("pager".to_string(), "cancelled".to_string()));
        Ok(cancelled.then_some((a, steps)))
    })
    .await;
    let (alert, steps) = match cancelled {
        Ok(v) => v,
        Err(e) => fail(e, &collector),
    };
    assert_eq!(alert["acked_by"], ACKED_BY);
    assert_eq!(
        steps.iter().filter(|(c, _)| c == "pager").count(),
        1,
        "{steps:?}"
    );

    // Past the second step's time: the receiver got nothing, polled until then.
    let until = second_due + chrono::Duration::from_std(MARGIN).unwrap();
    while Utc::now() < until {
        assert!(
            pager.messages().is_empty(),
            "the second step was sent: {:?}",
            pager.messages()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pager.messages().is_empty(), "{:?}", pager.messages());

    // The email channel, which was sent the firing, hears the acknowledgement, once.
    let told = eventually("the acknowledged email", WAIT, || async {
        Ok((smtp.count() >= 2).then_some(()))
    })
    .await;
    if let Err(e) = told {
        fail(e, &collector);
    }
    let second = smtp.parsed(2).unwrap();
    assert!(
        second["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("[ACKNOWLEDGED] db is down")),
        "{second:#}"
    );
    assert_eq!(
        smtp.count(),
        2,
        "more email than the firing and its acknowledgement"
    );
    println!("done in {:?}", started.elapsed());
}
