//! End to end: three real agents probe one endpoint and a real collector pages a webhook. One
//! location cut off from the target is no page; two are one page; the collector is killed
//! (`kill -9`) while the alert fires and restarted, and sends nothing again; the target
//! recovers and exactly one resolve arrives.
//!
//! "Cut off" is the target refusing one agent: it reads the agent's name from the probe's
//! `User-Agent` (`lookout-agent/x (probe; agent=edge-2)`) and answers 503 to those cut off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

use lookout_tests::READ_TOKEN;
use lookout_tests::{
    Daemon, Gate, Inbox, bin, eventually, free_port, get_json, serve, start_collector,
};

const AGENTS: [&str; 3] = ["edge-1", "edge-2", "edge-3"];

async fn start_peers() -> (Gate, String, Inbox, String) {
    let gate = Gate::default();
    let target = gate.serve().await;
    let inbox = Inbox::default();
    let hook = serve(axum::Router::new().route("/hook", inbox.handler())).await;
    (gate, target, inbox, format!("{hook}/hook"))
}

fn collector_config(dir: &std::path::Path, port: u16, target: &str, hook: &str) -> String {
    let mut agents = String::new();
    for a in AGENTS {
        agents.push_str(&format!(
            "[[agents]]\nname = \"{a}\"\ntoken = \"{a}-token-0123456789abcdef\"\nlabels = {{ role = \"edge\" }}\n\n"
        ));
    }
    format!(
        r#"
[server]
read_tokens = ["{READ_TOKEN}"]
listen = "127.0.0.1:{port}"
data_dir = "{dir}"

{agents}
[[checks]]
name = "api"
type = "http"
url = "{target}"
interval = "1s"
timeout = "1s"
run_on = ["role=edge"]

[[channels]]
name = "pager"
type = "webhook"
url = "{hook}"
secret = "e2e-webhook-secret"

[[routes]]
channels = ["pager"]
group_wait = "0s"
"#,
        dir = dir.display()
    )
}

fn start_agent(dir: &std::path::Path, name: &str, collector: &str) -> Daemon {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ncollector = \"{collector}\"\ntoken = \"{name}-token-0123456789abcdef\"\ndata_dir = \"{}\"\n\n[host_metrics]\nenabled = false\n\n[shipping]\nassignments_interval = \"1s\"\n",
            data.display()
        ),
    )
    .unwrap();
    lookout_tests::start_agent(&path).unwrap()
}

/// Waits until each of `agents` has stored at least `n` failed results of check `api` in a row
/// (its newest ones), newer than `since`: the collector has then taken results that confirm the
/// check down at those locations.
async fn failing_at(base: &str, agents: &[&str], n: usize, since: chrono::DateTime<chrono::Utc>) {
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for agent in agents {
        let url = format!("{base}/api/v1/checks/api/results?agent={agent}&from={since}");
        eventually(
            &format!("{n} failures in a row from {agent}"),
            Duration::from_secs(20),
            || async {
                let j = get_json(&url).await?;
                // Newest first.
                let in_a_row = j["results"]
                    .as_array()
                    .map_or(0, |r| r.iter().take_while(|r| r["ok"] == false).count());
                Ok((in_a_row >= n).then_some(()))
            },
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_location_is_no_page_two_are_one_and_a_restart_pages_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, target, inbox, hook) = start_peers().await;
    let port = free_port();
    let config = collector_config(dir.path(), port.get(), &target, &hook);
    let (mut collector, base) = start_collector(dir.path(), &config).unwrap();
    let _agents: Vec<Daemon> = AGENTS
        .iter()
        .map(|a| start_agent(dir.path(), a, &base))
        .collect();
    // All three report the check up.
    eventually(
        "three agents report api",
        Duration::from_secs(30),
        || async {
            let j = get_json(&format!("{base}/api/v1/checks")).await?;
            let agents = j["checks"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "api"))
                .and_then(|c| c["agents"].as_array().map(|a| a.len()))
                .unwrap_or(0);
            Ok((agents == 3).then_some(()))
        },
    )
    .await
    .unwrap();

    // One location cut off: it sees failures, the other two do not; no page.
    gate.cut("edge-2");
    failing_at(&base, &["edge-2"], 3, chrono::Utc::now()).await;
    assert!(
        lookout_tests::firing_alerts(&base).await.is_empty(),
        "one of three is no quorum"
    );
    assert!(inbox.notes().is_empty(), "{:?}", inbox.notes());

    // Two: a quorum; one page.
    gate.cut("edge-3");
    eventually("the firing page", Duration::from_secs(20), || async {
        Ok((!inbox.notes().is_empty()).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        inbox.notes(),
        [("firing".to_string(), "uptime/api".to_string())]
    );
    // What is wrong in words, the locations named because there are several.
    let summary = inbox.alerts()[0]["summary"].as_str().unwrap().to_string();
    assert!(
        summary.starts_with("api is down from 2 of 3 locations (edge-2, edge-3): status 503"),
        "{summary}"
    );
    assert_eq!(lookout_tests::firing_alerts(&base).await, ["uptime/api"]);
    // The page is recorded as delivered. (Killed between the peer's answer and that record, a
    // collector would send it again when its lease ran out: the documented duplicate window,
    // which this test is not about.)
    eventually(
        "the page recorded as delivered",
        Duration::from_secs(10),
        || async {
            let j = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
            let done = j["alerts"][0]["notifications"]
                .as_array()
                .is_some_and(|n| !n.is_empty() && n.iter().all(|n| n["state"] == "delivered"));
            Ok(done.then_some(()))
        },
    )
    .await
    .unwrap();

    // The collector dies while the alert fires, and comes back; the agents keep failing.
    collector.signal("KILL").unwrap();
    collector.wait_exit(Duration::from_secs(5)).unwrap();
    let restarted = chrono::Utc::now();
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();
    eventually(
        "results after the restart",
        Duration::from_secs(20),
        || async {
            let j = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
            Ok(j["alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                .then_some(()))
        },
    )
    .await
    .unwrap();
    // The restarted collector has taken failures from both cut locations again.
    failing_at(&base, &["edge-2", "edge-3"], 2, restarted).await;
    // A second page would be sent now; the wait is for it to have had time to come.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        inbox.notes(),
        [("firing".to_string(), "uptime/api".to_string())],
        "no second page after the restart"
    );

    // Recovery: one resolve.
    gate.restore();
    eventually("the resolve", Duration::from_secs(20), || async {
        Ok((inbox.notes().len() >= 2).then_some(()))
    })
    .await
    .unwrap();
    // No more than the one resolve: the wait gives a repeat the time to come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        inbox.notes(),
        [
            ("firing".to_string(), "uptime/api".to_string()),
            ("resolved".to_string(), "uptime/api".to_string())
        ]
    );
    assert!(lookout_tests::firing_alerts(&base).await.is_empty());
    let alerts = get_json(&format!("{base}/api/v1/alerts?state=resolved"))
        .await
        .unwrap();
    let sent: Vec<&str> = alerts["alerts"][0]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(sent, ["delivered", "delivered"]);
}

/// Tried as a new user would: a check on a port nothing listens on. The page reads as words
/// (`api is down: connection refused`), with no location count for one location and no OS
/// error number; the raw error chain is in the note's `detail`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_says_what_is_wrong_in_words_and_keeps_the_raw_error_in_its_details() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::default();
    let hook = serve(axum::Router::new().route("/hook", inbox.handler())).await;
    // Bound and closed again: nothing listens there.
    let closed = format!("http://127.0.0.1:{}/health", free_port().get());
    let config = collector_config(
        dir.path(),
        free_port().get(),
        &closed,
        &format!("{hook}/hook"),
    );
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();
    let _agent = start_agent(dir.path(), "edge-1", &base);
    let page = eventually("the firing page", Duration::from_secs(30), || async {
        Ok(inbox.messages().into_iter().next())
    })
    .await
    .unwrap();
    assert_eq!(
        page["title"], "[FIRING] api is down: connection refused",
        "{page}"
    );
    let note = &page["alerts"][0];
    assert_eq!(note["summary"], "api is down: connection refused", "{note}");
    // The agent's own words, whole, are in the details.
    let detail = note["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("Connection refused") && detail.contains("127.0.0.1"),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_through_a_channel_and_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::default();
    let hook = serve(axum::Router::new().route("/ok", inbox.handler()).route(
        "/broken",
        axum::routing::post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
    ))
    .await;
    let path = dir.path().join("collector.toml");
    std::fs::write(
        &path,
        format!(
            "[[channels]]\nname = \"pager\"\ntype = \"webhook\"\nurl = \"{hook}/ok\"\n\n[[channels]]\nname = \"broken\"\ntype = \"webhook\"\nurl = \"{hook}/broken\"\n"
        ),
    )
    .unwrap();
    let run = move |channel: &str| {
        let out = std::process::Command::new(bin("lookout-collector"))
            .args([
                "--config",
                path.to_str().unwrap(),
                "notify-test",
                "--channel",
                channel,
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run("pager")
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(
        text.contains("sent a test message through pager (webhook)"),
        "{text}"
    );
    let notes = inbox.notes();
    assert_eq!(
        notes,
        [("firing".to_string(), "test/notify-test".to_string())]
    );

    let (ok, text) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run("broken")
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(
        text.contains("broken (webhook): not delivered, a temporary failure"),
        "{text}"
    );
    assert!(text.contains("500"), "{text}");

    let (ok, text) = tokio::task::spawn_blocking(move || run("nope"))
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        text.contains(r#"no channel named "nope" (channels: ["pager", "broken"])"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_an_api_answer_or_sentry() {
    const HOOK_TOKEN: &str = "SECRETTOKEN123";
    const HMAC_KEY: &str = "HMACSECRET456";
    const SLACK_TOKEN: &str = "SLACKSECRET789";
    const SMTP_PASSWORD: &str = "SMTPSECRET321";
    const PD_KEY: &str = "PDSECRET0123456789abcdef01234567";
    const OG_KEY: &str = "OGSECRET-0123-4567-89ab-cdef01234567";
    const TG_TOKEN: &str = "123456789:TGSECRETabcdefghijklmnopqrstuv";
    const NTFY_TOKEN: &str = "tk_NTFYSECRET0123456789abcdef";
    const PO_TOKEN: &str = "POSECRETapp0123456789abcdefghi";
    const PO_USER: &str = "POSECRETusr0123456789abcdefghi";
    const MX_TOKEN: &str = "syt_MXSECRET0123456789abcdef";
    const DISCORD_TOKEN: &str = "DISCORDSECRET-0123456789_abcdef";
    const TEAMS_SIG: &str = "TEAMSSECRETsig0123456789abcdef";
    const MM_HOOK: &str = "mmsecret0123456789abcdefgh";
    const RC_TOKEN: &str = "RCSECRET0123456789abcdefgh";
    const GCHAT_TOKEN: &str = "GCHATSECRETtok3n0123456789";
    const ADMIN: &str = "ADMINSECRET-0123456789abcdef";
    const AGENT: &str = "AGENTSECRET-0123456789abcdef";
    const OLD_AGENT: &str = "OLDAGENTSECRET-0123456789ab";
    const BEAT: &str = "BEATSECRET-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    // Sentry's envelopes for project 42, kept as sent: a delivery given up for good is an error
    // event, with the log lines before it as breadcrumbs.
    let sentry: Arc<Mutex<Vec<u8>>> = Arc::default();
    let envelopes = sentry.clone();
    // A receiver that refuses and echoes what it was sent, as a badly written peer might.
    let hook = serve(
        axum::Router::new()
            .route(
                "/api/42/envelope/",
                axum::routing::post(move |body: axum::body::Bytes| async move {
                    envelopes.lock().unwrap().extend_from_slice(&body);
                    StatusCode::OK
                }),
            )
            .route(
                // A PagerDuty that echoes the routing key of the event it refuses.
                "/pd/v2/enqueue",
                axum::routing::post(|body: String| async move {
                    let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("refused routing_key={}", event["routing_key"]),
                    )
                }),
            )
            .route(
                // A hook that is gone for good: the delivery is given up, an error.
                "/gone/{*rest}",
                axum::routing::post(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("no such hook key={HMAC_KEY}"),
                    )
                }),
            )
            .fallback(|uri: axum::http::Uri, headers: HeaderMap| async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                // The path and query (Telegram's bot token, Teams' signature, Google Chat's
                // token) and the credentials (Opsgenie's GenieKey, ntfy's and Matrix's Bearer
                // tokens) echoed back; the HMAC key only to the
                // webhook that signs with it (another channel cannot know it is a secret).
                let key = if uri.path().starts_with("/hook/") {
                    HMAC_KEY
                } else {
                    ""
                };
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "rejected {uri} key={key} sig={} auth={}",
                        header("x-lookout-signature"),
                        header("authorization")
                    ),
                )
            }),
    )
    .await;
    let dead = free_port();
    let smtp = free_port();
    let config = format!(
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

[[agents]]
name = "web-1"
token = "{AGENT}"
previous_token = "{OLD_AGENT}"

[[heartbeats]]
name = "backup"
token = "{BEAT}"
period = "1h"

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:{dead}"
interval = "1s"
timeout = "1s"
failure_threshold = 1

[[channels]]
name = "pager"
type = "webhook"
url = "{hook}/hook/{HOOK_TOKEN}?key={HOOK_TOKEN}"
secret = "{HMAC_KEY}"

[[channels]]
name = "gone"
type = "webhook"
url = "{hook}/gone/{HOOK_TOKEN}?key={HOOK_TOKEN}"
secret = "{HMAC_KEY}"

[[channels]]
name = "slack"
type = "slack"
webhook_url = "http://127.0.0.1:{dead}/services/T0/B0/{SLACK_TOKEN}"

[[channels]]
name = "pd"
type = "pagerduty"
routing_key = "{PD_KEY}"
url = "{hook}/pd/v2/enqueue"

[[channels]]
name = "mail"
type = "email"
url = "smtp://alerts:{SMTP_PASSWORD}@127.0.0.1:{smtp}"
from = "lookout@example.com"
to = ["ops@example.com"]

[[channels]]
name = "og"
type = "opsgenie"
api_key = "{OG_KEY}"
url = "{hook}/og"

[[channels]]
name = "tg"
type = "telegram"
bot_token = "{TG_TOKEN}"
chat_id = "12345"
url = "{hook}"

[[channels]]
name = "ntfy"
type = "ntfy"
url = "{hook}/ntfy/alerts"
token = "{NTFY_TOKEN}"

[[channels]]
name = "po"
type = "pushover"
token = "{PO_TOKEN}"
user = "{PO_USER}"
url = "{hook}/po"

[[channels]]
name = "mx"
type = "matrix"
homeserver = "{hook}/mx"
room = "!room:example.org"
access_token = "{MX_TOKEN}"

[[channels]]
name = "dc"
type = "discord"
url = "{hook}/dc/api/webhooks/1234/{DISCORD_TOKEN}"

[[channels]]
name = "teams"
type = "teams"
url = "{hook}/teams/workflows/0b5e/triggers/manual/paths/invoke?api-version=2016-06-01&sv=1.0&sig={TEAMS_SIG}"

[[channels]]
name = "mm"
type = "mattermost"
url = "{hook}/mm/hooks/{MM_HOOK}"

[[channels]]
name = "rc"
type = "rocketchat"
url = "{hook}/rc/hooks/6a1b2c3d/{RC_TOKEN}"

[[channels]]
name = "gchat"
type = "google_chat"
url = "{hook}/gchat/v1/spaces/AAAA/messages?key=AIzaKEY&token={GCHAT_TOKEN}"

[[routes]]
channels = ["pager", "gone", "slack", "pd", "mail", "og", "tg", "ntfy", "po", "mx", "dc", "teams", "mm", "rc", "gchat"]
group_wait = "0s"

[telemetry]
sentry_dsn = "{sentry_dsn}"
"#,
        dir = dir.path().display(),
        sentry_dsn = hook.replacen("http://", "http://publickey@", 1) + "/42",
    );
    let (collector, base) = start_collector(dir.path(), &config).unwrap();
    // Every channel has failed at least once, with its error recorded.
    let alerts = eventually(
        "fifteen failed deliveries",
        Duration::from_secs(30),
        || async {
            let j = get_json(&format!("{base}/api/v1/alerts?state=all")).await?;
            let failed = j["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["notifications"].as_array().cloned().unwrap_or_default())
                .filter(|n| n["last_error"].is_string())
                .count();
            Ok((failed >= 15).then_some(j))
        },
    )
    .await
    .unwrap();
    let answer = alerts.to_string();
    let errors: Vec<&str> = alerts["alerts"][0]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["last_error"].as_str())
        .collect();
    // The errors still say what went wrong.
    assert!(errors.iter().any(|e| e.contains("500")), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("PagerDuty answered 503") && e.contains("routing_key")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("SMTP 127.0.0.1")),
        "{errors:?}"
    );
    // The peer echoed the new channels' credentials, and the errors show them redacted.
    for echoed in ["auth=GenieKey <redacted>", "auth=Bearer <redacted>"] {
        assert!(errors.iter().any(|e| e.contains(echoed)), "{errors:?}");
    }
    let log = collector.log_text();
    assert!(log.contains("notification failed"), "{log}");
    // The failures are counted in /metrics.
    let resp = lookout_tests::read(format!("{base}/metrics"))
        .await
        .unwrap();
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let metrics = resp.text().await.unwrap();
    for channel in [
        "pager", "slack", "pd", "mail", "og", "tg", "ntfy", "po", "mx", "dc", "teams", "mm", "rc",
        "gchat",
    ] {
        let line =
            format!(r#"lookout_notifications_total{{channel="{channel}",outcome="retry"}} "#);
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    // A ping with its token, and every other answer a reader gets.
    reqwest::get(format!("{base}/v1/ping/backup?token={BEAT}"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let mut answers = answer.clone();
    for path in [
        "/api/v1/checks",
        "/api/v1/hosts",
        "/api/v1/heartbeats",
        "/api/v1/cluster",
        "/api/v1/silences",
        "/api/v1/status",
        "/",
    ] {
        let text = lookout_tests::read(format!("{base}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        answers.push_str(&text);
    }
    let answer = answers;
    let sentry = eventually(
        "the failed deliveries in Sentry",
        Duration::from_secs(30),
        || {
            let sentry = sentry.clone();
            async move {
                let text = String::from_utf8_lossy(&sentry.lock().unwrap()).into_owned();
                Ok(text.contains("notification failed").then_some(text))
            }
        },
    )
    .await
    .unwrap();
    assert!(
        sentry.contains("gone"),
        "the event names its channel: {sentry}"
    );
    for secret in [
        HOOK_TOKEN,
        HMAC_KEY,
        SLACK_TOKEN,
        SMTP_PASSWORD,
        PD_KEY,
        OG_KEY,
        TG_TOKEN,
        NTFY_TOKEN,
        PO_TOKEN,
        PO_USER,
        MX_TOKEN,
        DISCORD_TOKEN,
        TEAMS_SIG,
        MM_HOOK,
        RC_TOKEN,
        GCHAT_TOKEN,
        ADMIN,
        AGENT,
        OLD_AGENT,
        BEAT,
        READ_TOKEN,
    ] {
        assert!(!metrics.contains(secret), "{secret} in /metrics");
        assert!(!answer.contains(secret), "{secret} in an answer: {answer}");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(
            !sentry.contains(secret),
            "{secret} sent to Sentry:\n{sentry}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_checks_agents_alerts_and_ingest_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let target = lookout_tests::Target::start().await.unwrap();
    let dead = free_port();
    let config = format!(
        r#"
[server]
read_tokens = ["{READ_TOKEN}"]
listen = "127.0.0.1:0"
data_dir = "{dir}"

[local_agent]
name = "local"

[local_agent.host_metrics]
enabled = false

[[checks]]
name = "web"
type = "http"
url = "{url}"
interval = "1s"
timeout = "1s"

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:{dead}"
interval = "1s"
timeout = "1s"
failure_threshold = 1
"#,
        dir = dir.path().display(),
        url = target.url
    );
    let (_collector, base) = start_collector(dir.path(), &config).unwrap();
    let text = eventually(
        "a scrape with both checks and the alert",
        Duration::from_secs(30),
        || async {
            let text = lookout_tests::read(format!("{base}/metrics"))
                .await?
                .text()
                .await?;
            let ready = text.contains(r#"lookout_check_up{agent="local",check="web"} 1"#)
                && text.contains(r#"lookout_check_up{agent="local",check="db"} 0"#)
                && text.contains(r#"lookout_alerts{state="firing"} 1"#);
            Ok(ready.then_some(text))
        },
    )
    .await
    .unwrap();
    for expected in [
        r#"lookout_check_latency_seconds{agent="local",check="web"} "#,
        r#"lookout_agent_last_seen_timestamp_seconds{agent="local"} "#,
        r#"lookout_ingest_batches_total{outcome="stored"} "#,
        r#"lookout_ingest_records_total{kind="check_result"} "#,
        "lookout_ingest_bytes_total ",
        "lookout_ingest_duration_seconds_bucket{le=\"0.005\"} ",
        "# TYPE lookout_ingest_batches_total counter",
        r#"lookout_rule_evaluations_total{trigger="batch"} "#,
        r#"lookout_agent_spool_backlog_records{agent="local"} "#,
        "lookout_store_write_duration_seconds_count ",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
    // Prometheus's own linter accepts the exposition.
    if let Err(e) = lookout_tests::promtool_check(&text) {
        panic!("{e}\n{text}");
    }
}
