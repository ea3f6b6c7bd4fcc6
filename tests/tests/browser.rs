//! The web pages in a real browser: headless Chromium (Debian's `chromium` package) driven by
//! playwright-core from npm, both installed by `scripts/test`.
//!
//! Each test starts the real collector, gives it data the way a user's agents would (the ingest
//! API, or the built-in local agent probing a [`Target`]), then runs one script of
//! `tests/browser/` ([`lookout_tests::browser::run_script`]). The acknowledge link's page is
//! tested from a real message in `ack_link.rs`.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::{
    Batch, CheckResult, Encoding, PROTOCOL_VERSION, Record, Timings, encode_batch,
};
use lookout_tests::READ_TOKEN;
use lookout_tests::browser::{browser_dir, fail, run_script};
use lookout_tests::{Target, check_status, eventually, get_json, start_collector};
use serde_json::{Value, json};

/// Longest wait for the collector's rollups or a check's state.
const WAIT: Duration = Duration::from_secs(20);

const SEEDER: &str = "seeder";
const SEEDER_TOKEN: &str = "browser-seeder-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "browser-admin-token-0123456789abcdef";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// A collector on a loopback port with the seeding agent, the admin token, and `extra`.
fn config(dir: &Path, extra: &str) -> String {
    config_with(dir, "", extra)
}

/// [`config`] with `server` added to its `[server]` section.
fn config_with(dir: &Path, server: &str, extra: &str) -> String {
    format!(
        r#"
[server]
{server}
read_tokens = ["{READ_TOKEN}"]
# The seeder stores results of the last 90 days, for the daily bars.
max_record_age = "100d"
listen = "127.0.0.1:0"
data_dir = "{dir}"
admin_token = "{ADMIN_TOKEN}"

[[agents]]
name = "{SEEDER}"
token = "{SEEDER_TOKEN}"

{extra}
"#,
        dir = dir.display()
    )
}

/// One seeded probe result: the check, how long ago, and whether it passed.
struct Seed {
    check: &'static str,
    age: chrono::Duration,
    ok: bool,
}

fn seed(check: &'static str, age: chrono::Duration, ok: bool) -> Seed {
    Seed { check, age, ok }
}

/// Posts the results to `/v1/ingest` as the seeding agent, as of `now`.
async fn ingest(base: &str, seeds: &[Seed], now: DateTime<Utc>) {
    let records = seeds
        .iter()
        .map(|s| {
            Record::CheckResult(CheckResult {
                check: s.check.to_string(),
                check_type: None,
                time: now - s.age,
                ok: s.ok,
                latency_ms: 20.0,
                error: (!s.ok).then(|| "status 500, expected 2xx".to_string()),
                status_code: Some(if s.ok { 200 } else { 500 }),
                cert_expiry: None,
                timings: Timings {
                    total_ms: Some(20.0),
                    ..Timings::default()
                },
            })
        })
        .collect();
    let batch = Batch {
        version: PROTOCOL_VERSION,
        agent: SEEDER.into(),
        batch_id: format!("seed-{}", now.timestamp_millis()),
        records,
    };
    let body = encode_batch(&batch, Encoding::Identity).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/ingest"))
        .bearer_auth(SEEDER_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer = resp.text().await.unwrap();
    assert!(status.is_success(), "ingest: {status}: {answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["stored"], seeds.len(), "ingest: {answer}");
}

/// An uptime figure as the page shows it: floored to two decimals, "100%" only when nothing
/// failed, "–" without results.
fn percent(count: u64, failures: u64) -> String {
    if count == 0 {
        return "–".into();
    }
    if failures == 0 {
        return "100%".into();
    }
    let basis_points = (count - failures) * 10_000 / count;
    format!("{}.{:02}%", basis_points / 100, basis_points % 100)
}

/// What the status page should show of `check`, given the results seeded for it as of `now`:
/// uptime over the last 24 hours (the current hour and the 23 before) and over the last 7, 30
/// and 90 UTC days (today included), and each seeded day's figure.
fn expected_check(check: &str, state: &str, seeds: &[Seed], now: DateTime<Utc>) -> Value {
    let times: Vec<(i64, bool)> = seeds
        .iter()
        .filter(|s| s.check == check)
        .map(|s| ((now - s.age).timestamp_millis(), s.ok))
        .collect();
    let figure = |keep: &dyn Fn(i64) -> bool| {
        let kept: Vec<bool> = times
            .iter()
            .filter(|(t, _)| keep(*t))
            .map(|(_, ok)| *ok)
            .collect();
        let failures = kept.iter().filter(|ok| !**ok).count();
        percent(kept.len() as u64, failures as u64)
    };
    let now_ms = now.timestamp_millis();
    let first_hour = now_ms.div_euclid(HOUR_MS) * HOUR_MS - 23 * HOUR_MS;
    let today = now_ms.div_euclid(DAY_MS);
    let within_days = |n: i64| move |t: i64| today - t.div_euclid(DAY_MS) < n;
    let mut days: Vec<i64> = times.iter().map(|(t, _)| t.div_euclid(DAY_MS)).collect();
    days.sort_unstable();
    days.dedup();
    let days: Vec<Value> = days
        .into_iter()
        .map(|d| {
            json!({
                "date": date(d),
                "figure": figure(&|t| t.div_euclid(DAY_MS) == d),
            })
        })
        .collect();
    json!({
        "name": check,
        "state": state,
        "uptime": {
            "24 h": figure(&|t| t >= first_hour),
            "7 d": figure(&within_days(7)),
            "30 d": figure(&within_days(30)),
            "90 d": figure(&within_days(90)),
        },
        "days": days,
    })
}

/// `YYYY-MM-DD` of a day number (days since the Unix epoch, UTC).
fn date(day: i64) -> String {
    DateTime::from_timestamp_millis(day * DAY_MS)
        .expect("a day in range")
        .format("%Y-%m-%d")
        .to_string()
}

/// Seeded results over 90 days show as the right states, uptime figures (floored: 2 of 3 is
/// 66.66%, 8 of 11 is 72.72%) and daily bars, in their groups, under the right banner; the page
/// follows the reader's dark setting and fits a phone's width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_seeded_states_uptime_and_fits_dark_mode_and_phones() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    // Central checks that only the seeding agent runs (it never asks for them: the test posts
    // their results), with an interval long enough that the seeded results stay fresh.
    let seeded = |name: &str, group: Option<&str>| {
        let group = group.map_or(String::new(), |g| format!("group = \"{g}\"\n"));
        format!(
            "[[checks]]\nname = \"{name}\"\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
             interval = \"5m\"\ntimeout = \"10s\"\nrun_on = [\"name={SEEDER}\"]\n{group}\n"
        )
    };
    let checks = [
        seeded("api", Some("Web")),
        seeded("db", Some("Web")),
        seeded("search", None),
    ]
    .concat();
    let (collector, base) = start_collector(dir.path(), &config(dir.path(), &checks)).unwrap();

    let minutes = chrono::Duration::minutes;
    let days = chrono::Duration::days;
    let mut seeds = vec![
        // api: up now; 3 of 4 in the last hour, 4 of 4 three days ago, 1 of 3 twenty days ago,
        // 4 of 4 sixty days ago.
        seed("api", minutes(4), false),
        seed("api", minutes(3), true),
        seed("api", minutes(2), true),
        seed("api", minutes(1), true),
        // db: down now, 2 of 3.
        seed("db", minutes(3), true),
        seed("db", minutes(2), true),
        seed("db", minutes(1), false),
        // nightly-backup: defined on the agent alone, last run 10 minutes ago, longer than the
        // 5 minutes after which such a check's state is unknown.
        seed("nightly-backup", minutes(10), true),
    ];
    for (age, oks, failures) in [(days(3), 4, 0), (days(20), 1, 2), (days(60), 4, 0)] {
        for i in 0..oks + failures {
            seeds.push(seed("api", age + minutes(i), i >= failures));
        }
    }
    let now = Utc::now();
    ingest(&base, &seeds, now).await;

    // The rollups lag ingest by a few seconds; the page reads only rollups.
    let counts = [("api", 15), ("db", 3), ("nightly-backup", 1)];
    let rolled_up = eventually("the seeded results in the status API", WAIT, || async {
        let status = get_json(&format!("{base}/api/v1/status")).await?;
        let checks: Vec<&Value> = status["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["checks"].as_array().into_iter().flatten())
            .collect();
        let all_there = counts.iter().all(|(name, n)| {
            checks.iter().any(|c| {
                let days: u64 = c["days"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["count"].as_u64().unwrap_or(0))
                    .sum();
                c["name"] == *name && days == *n && !c["uptime"]["24h"].is_null()
            })
        });
        Ok(all_there.then_some(()))
    })
    .await;
    if let Err(e) = rolled_up {
        fail(e, &collector);
    }

    let now = Utc::now();
    let today = now.timestamp_millis().div_euclid(DAY_MS);
    let expect = json!({
        "overall": "down",
        "groups": [
            { "name": "Web", "checks": ["api", "db"] },
            { "name": "Other", "checks": ["nightly-backup", "search"] },
        ],
        "checks": [
            expected_check("api", "up", &seeds, now),
            expected_check("db", "down", &seeds, now),
            expected_check("search", "pending", &seeds, now),
            expected_check("nightly-backup", "unknown", &seeds, now),
        ],
        "today": date(today),
        "first_day": date(today - 89),
    });
    // What the figures come to, so that a change in the seeds shows here too.
    assert_eq!(expect["checks"][0]["uptime"]["24 h"], "75.00%");
    assert_eq!(expect["checks"][0]["uptime"]["30 d"], "72.72%");
    assert_eq!(expect["checks"][1]["uptime"]["90 d"], "66.66%");

    let env = [("LOOKOUT_EXPECT", expect.to_string())];
    if let Err(e) = run_script("status-page.mjs", &base, &env, |_| {}).await {
        fail(e, &collector);
    }
}

/// A check whose target starts failing shows as down on the open page within 15 s, without a
/// reload, and the banner follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_going_down_shows_on_the_open_page_without_a_reload() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await.unwrap();
    // The collector's built-in agent probes the target every second.
    let extra = format!(
        "[local_agent]\nenabled = true\nname = \"local\"\n\n\
         [[checks]]\nname = \"flip\"\ntype = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\n\
         timeout = \"1s\"\nrun_on = [\"name=local\"]\n",
        target.url
    );
    let (collector, base) = start_collector(dir.path(), &config(dir.path(), &extra)).unwrap();
    let up = eventually("flip up", WAIT, || async {
        Ok(check_status(&base, "flip").await?.filter(|s| s == "up"))
    })
    .await;
    if let Err(e) = up {
        fail(e, &collector);
    }

    let env = [("LOOKOUT_CHECK", "flip".to_string())];
    let mut switched = false;
    let ran = run_script("check-down.mjs", &base, &env, |event| {
        if event == "check-up-on-page" {
            target.set_status(500);
            switched = true;
        }
    })
    .await;
    if let Err(e) = ran {
        fail(e, &collector);
    }
    assert!(switched, "the script never said the page showed flip up");
}

/// The admin pages: the login form without a login, a wrong token refused, the right one
/// showing the Alerts page, the live log tail following ingested lines, and logging out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_need_the_admin_token() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = start_collector(dir.path(), &config(dir.path(), "")).unwrap();
    let env = [
        ("LOOKOUT_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("LOOKOUT_SEEDER", SEEDER.to_string()),
        ("LOOKOUT_SEEDER_TOKEN", SEEDER_TOKEN.to_string()),
    ];
    if let Err(e) = run_script("admin.mjs", &base, &env, |_| {}).await {
        fail(e, &collector);
    }
}

/// A login ends on the server once `[server] session_lifetime` has passed, though the browser
/// still holds the cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_ends_on_the_server_when_its_lifetime_is_over() {
    browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(dir.path(), "session_lifetime = \"3s\"", "");
    let (collector, base) = start_collector(dir.path(), &config).unwrap();
    let env = [
        ("LOOKOUT_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("LOOKOUT_SESSION_SECONDS", "3".to_string()),
    ];
    if let Err(e) = run_script("session.mjs", &base, &env, |_| {}).await {
        fail(e, &collector);
    }
}
