//! The status page and the admin pages, through the router: what they show from stored data,
//! and who may see and press what.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use lookout_collector::state::AppState;
use lookout_collector::store::alerting::{AlertState, Transition};
use lookout_config::CollectorConfig;
use lookout_protocol::{
    Batch, CheckResult, LogRecord, MetricSample, MetricType, PROTOCOL_VERSION, Record, Timings,
};
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn config(extra: &str) -> String {
    format!(
        r#"
[server]
admin_token = "{ADMIN}"

[[agents]]
name = "web-1"
token = "web-1-token-0123456789abcdef"
labels = {{ role = "web" }}

[[checks]]
name = "api"
type = "http"
url = "http://127.0.0.1:1/"
group = "API"

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:1"

[[checks]]
name = "login"
type = "http"
url = "http://127.0.0.1:1/login"
group = "API"

[[maintenance]]
name = "Database upgrade"
match = {{ check = "db" }}
starts = "2020-01-01T00:00:00Z"
ends = "2099-01-01T00:00:00Z"
{extra}
"#
    )
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Page {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
}

impl Harness {
    async fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config =
            CollectorConfig::parse(Path::new("test.toml"), &config(extra), &|_| None).unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = lookout_collector::store::open(&url, &Default::default())
            .await
            .unwrap();
        let state = lookout_collector::build_state(store, config, None)
            .await
            .unwrap();
        Self { _dir: dir, state }
    }

    async fn send(&self, req: Request<Body>) -> Page {
        let resp = lookout_collector::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Page {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Page {
        let mut req = Request::get(uri);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, body: &str, cookie: Option<&str>, origin: &str) -> Page {
        let mut req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "127.0.0.1:7700")
            .header(header::ORIGIN, origin);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn store_results(&self, id: &str, results: &[(&str, DateTime<Utc>, bool, f64)]) {
        let batch = Batch {
            version: PROTOCOL_VERSION,
            agent: "web-1".into(),
            batch_id: id.into(),
            records: results
                .iter()
                .map(|(check, time, ok, latency)| {
                    Record::CheckResult(CheckResult {
                        check: check.to_string(),
                        check_type: None,
                        time: *time,
                        ok: *ok,
                        latency_ms: *latency,
                        error: (!ok).then(|| "status 503, expected 2xx".to_string()),
                        status_code: Some(if *ok { 200 } else { 503 }),
                        cert_expiry: None,
                        timings: Timings {
                            dns_ms: Some(1.5),
                            connect_ms: Some(2.5),
                            ..Timings::default()
                        },
                    })
                })
                .collect(),
        };
        self.state
            .store
            .ingest("web-1", &batch, Utc::now())
            .await
            .unwrap();
        while self.state.store.roll_up(10_000).await.unwrap() > 0 {}
    }

    async fn fire(&self, check: &str, at: DateTime<Utc>, resolved: Option<DateTime<Utc>>) {
        let t = |from, to, at| Transition {
            fingerprint: format!("uptime:{check}"),
            rule: "uptime".into(),
            labels: [("check".to_string(), check.to_string())].into(),
            from,
            to,
            at,
            summary: format!("{check} is down: status 503"),
            fired_at: Some(at),
            notified_at: None,
            recorded_at: at,
        };
        self.state
            .store
            .record_transition(&t(None, AlertState::Firing, at), &[])
            .await
            .unwrap();
        if let Some(end) = resolved {
            self.state
                .store
                .record_transition(&t(Some(AlertState::Firing), AlertState::Resolved, end), &[])
                .await
                .unwrap();
        }
    }

    async fn login(&self) -> String {
        let page = self
            .post_form(
                "/login",
                &format!("token={ADMIN}&next=%2Fadmin%2Fchecks"),
                None,
                "http://127.0.0.1:7700",
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
        assert_eq!(page.headers[header::LOCATION], "/admin/checks");
        let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(
            !cookie.contains(ADMIN),
            "the cookie must not carry the token"
        );
        cookie.split(';').next().unwrap().to_string()
    }
}

fn day_start(days_ago: i64) -> DateTime<Utc> {
    let now = Utc::now();
    let today = now.timestamp().div_euclid(86_400) * 86_400;
    DateTime::from_timestamp(today, 0).unwrap() - Duration::days(days_ago)
}

#[tokio::test]
async fn the_status_page_shows_groups_daily_bars_uptime_windows_and_incidents() {
    let h = Harness::new("").await;
    let now = Utc::now();
    // api: now (ok, ok); yesterday 1 of 2 failing; 20 days ago 4 fine; 50 days ago 2 failing;
    // 100 days ago a failure outside the 90 days. Each window's figure differs from the others.
    h.store_results(
        "1",
        &[
            // Both at the same instant: in the same hour of the chart, whatever the clock says.
            ("api", now - Duration::seconds(1), true, 100.0),
            ("api", now - Duration::seconds(1), true, 300.0),
            ("api", day_start(1) + Duration::hours(3), true, 50.0),
            ("api", day_start(1) + Duration::hours(4), false, 50.0),
            ("api", day_start(20) + Duration::hours(1), true, 10.0),
            ("api", day_start(20) + Duration::hours(2), true, 10.0),
            ("api", day_start(20) + Duration::hours(3), true, 10.0),
            ("api", day_start(20) + Duration::hours(4), true, 10.0),
            ("api", day_start(50), false, 10.0),
            ("api", day_start(50) + Duration::hours(1), false, 10.0),
            ("api", day_start(100), false, 10.0),
            ("login", now - Duration::seconds(2), false, 20.0),
        ],
    )
    .await;
    h.fire(
        "api",
        day_start(1) + Duration::hours(4),
        Some(day_start(1) + Duration::hours(5)),
    )
    .await;
    h.fire("login", now - Duration::seconds(2), None).await;

    let page = h.get("/api/v1/status", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.headers.contains_key("server-timing"));
    let m = page.json();
    assert_eq!(m["overall"], "down", "{m}");
    // Configured groups in order of their first check; ungrouped ones last, as "Other".
    let groups: Vec<(&str, Vec<&str>)> = m["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap(),
                g["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["name"].as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [("API", vec!["api", "login"]), ("Other", vec!["db"])]
    );
    let api = &m["groups"][0]["checks"][0];
    assert_eq!(api["status"], "up");
    let days = api["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    assert_eq!(
        days[89]["date"],
        day_start(0).format("%Y-%m-%d").to_string()
    );
    assert_eq!(
        (days[89]["count"].as_u64(), days[89]["failures"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(days[88]["uptime"], 0.5);
    assert_eq!(days[88]["incidents"], 1);
    assert_eq!(days[69]["uptime"], 1.0);
    assert_eq!(days[69]["incidents"], 0);
    assert_eq!(days[39]["uptime"], 0.0);
    assert!(days[0]["uptime"].is_null());
    // 24 h: today's 2 and, when yesterday's 03:00 and 04:00 are within 24 h, those too.
    let expect_24h = {
        let mut c = 2.0;
        let mut ok = 2.0;
        for (h_, good) in [(3, true), (4, false)] {
            let t = day_start(1) + Duration::hours(h_);
            if t.timestamp() / 3600 >= now.timestamp() / 3600 - 23 {
                c += 1.0;
                ok += f64::from(u8::from(good));
            }
        }
        ok / c
    };
    assert_eq!(api["uptime"]["24h"], expect_24h, "{}", api["uptime"]);
    assert_eq!(api["uptime"]["7d"], 3.0 / 4.0);
    assert_eq!(api["uptime"]["30d"], 7.0 / 8.0);
    assert_eq!(api["uptime"]["90d"], 7.0 / 10.0);
    // This hour's mean response time is in the chart.
    let points = api["response_ms"].as_array().unwrap();
    assert!(!points.is_empty());
    assert!(points.iter().any(|p| p["avg_ms"] == 200.0), "{points:?}");
    let db = &m["groups"][1]["checks"][0];
    assert_eq!(db["status"], "pending");
    assert!(db["uptime"]["90d"].is_null());
    // Incidents: login's is open, api's is over.
    assert_eq!(m["open_incidents"][0]["check"], "login");
    assert_eq!(m["recent_incidents"][0]["check"], "api");
    assert!(m["recent_incidents"][0]["ended"].is_string());
    // Public: the kind of failure, not the probe's error or the alert's summary.
    assert_eq!(m["open_incidents"][0]["summary"], "down");
    let raw = m.to_string();
    assert!(
        !raw.contains("expected 2xx") && !raw.contains("is down: status 503"),
        "{raw}"
    );
    assert_eq!(m["maintenance"][0]["name"], "Database upgrade");
    assert_eq!(m["maintenance"][0]["active"], true);

    // The same on the HTML page, in words as well as colours.
    let html = h.get("/", None).await;
    assert_eq!(html.status, StatusCode::OK);
    let t = &html.text;
    assert!(!t.contains("expected 2xx") && !t.contains("is down: status 503"));
    assert!(t.contains("Some systems are down"), "{t}");
    assert!(t.contains("<h2 id=\"g0\">API</h2>") && t.contains("<h2 id=\"g1\">Other</h2>"));
    assert!(t.contains("data-check=\"login\"") && t.contains("✕ Down"));
    assert!(t.contains("data-check=\"api\"") && t.contains("✓ Up"));
    let yesterday = day_start(1).format("%Y-%m-%d");
    assert!(
        t.contains(&format!(
            "<title>{yesterday}: 50.00% up, 1 of 2 failed, 1 incident</title>"
        )),
        "{t}"
    );
    // Days with nothing to say share one bar: the 19 days without data before day 20's
    // perfect one, and that day alone (its neighbours have no data).
    let (from, to) = (day_start(19), day_start(2));
    assert!(
        t.contains(&format!(
            "<title>{}: 100% up, 0 of 4 failed</title>",
            day_start(20).format("%Y-%m-%d")
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "<title>{} to {}: no data</title>",
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        )),
        "{t}"
    );
    assert!(t.contains("<dt>30 d</dt><dd>87.50%</dd>"), "{t}");
    assert!(t.contains("<dt>90 d</dt><dd>70.00%</dd>"));
    assert!(t.contains("In progress:</strong> Database upgrade"));
    assert!(t.contains("Current incidents") && t.contains("<strong>login</strong>: down"));
    assert!(t.contains("<svg class=\"chart\"") && t.contains("Response time, last 24 h: mean"));
    assert!(
        t.contains("prefers-color-scheme")
            || h.get("/assets/lookout.css", None)
                .await
                .text
                .contains("prefers-color-scheme")
    );
}

#[tokio::test]
async fn admin_pages_need_the_login_and_show_hosts_checks_logs_and_alerts() {
    let h = Harness::new("").await;
    // Without a login: to the login page, with the way back.
    for path in [
        "/admin/hosts",
        "/admin/checks",
        "/admin/logs",
        "/admin/alerts",
    ] {
        let page = h.get(path, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        let to = page.headers[header::LOCATION].to_str().unwrap();
        assert!(to.starts_with("/login?next=%2Fadmin%2F"), "{to}");
    }
    let wrong = h
        .post_form("/login", "token=nope", None, "http://127.0.0.1:7700")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("Wrong admin token"));
    let foreign = h
        .post_form(
            "/login",
            &format!("token={ADMIN}"),
            None,
            "https://evil.example",
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let cookie = h.login().await;

    // Data to show: a version from the agent's User-Agent, results, a log line, an alert.
    let poll = h
        .send(
            Request::get("/v1/assignments")
                .header(header::AUTHORIZATION, "Bearer web-1-token-0123456789abcdef")
                .header(header::USER_AGENT, "lookout-agent/9.8.7")
                .header("lookout-agent-labels", r#"{"role":"db"}"#)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.text);
    h.store_results("1", &[("api", Utc::now(), false, 42.0)])
        .await;
    let logs = Batch {
        version: PROTOCOL_VERSION,
        agent: "web-1".into(),
        batch_id: "logs".into(),
        records: vec![Record::Log(LogRecord {
            time: Utc::now(),
            source: "/var/log/app.log".into(),
            level: Some("error".into()),
            text: "database timeout after 5000 ms".into(),
            position: None,
        })],
    };
    h.state
        .store
        .ingest("web-1", &logs, Utc::now())
        .await
        .unwrap();
    h.fire("api", Utc::now(), None).await;

    let hosts = h.get("/admin/hosts", Some(&cookie)).await;
    assert_eq!(hosts.status, StatusCode::OK);
    assert!(hosts.text.contains("data-host=\"web-1\"") && hosts.text.contains("9.8.7"));
    // The label it claimed is shown beside the one its configuration gives it.
    assert!(
        hosts.text.contains("role=web") && hosts.text.contains(">(claims role=db)</span>"),
        "{}",
        hosts.text
    );
    let host = h.get("/admin/hosts/web-1", Some(&cookie)).await;
    assert!(host.text.contains("(claims role=db)"), "{}", host.text);
    let checks = h.get("/admin/checks", Some(&cookie)).await;
    assert!(
        checks.text.contains("status 503, expected 2xx"),
        "{}",
        checks.text
    );
    assert!(checks.text.contains("<td>1.5 ms</td><td>2.5 ms</td>"));
    let found = h
        .get("/admin/logs?q=timeout&level=error", Some(&cookie))
        .await;
    assert!(
        found.text.contains("database timeout after 5000 ms"),
        "{}",
        found.text
    );
    let none = h.get("/admin/logs?q=nothing", Some(&cookie)).await;
    assert!(none.text.contains("No matching lines"));
    // A cursor this page never gave is refused, saying so; an unknown alert is a 404.
    let bad = h.get("/admin/logs?cursor=yesterday", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("cursor"), "{}", bad.text);
    let missing = h
        .post_form(
            "/admin/alerts/999999/ack",
            "",
            Some(&cookie),
            "http://127.0.0.1:7700",
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text.contains("999999"), "{}", missing.text);
    let tail = h.get("/admin/logs/tail?q=timeout", Some(&cookie)).await;
    assert!(
        tail.text
            .contains("data-source=\"/api/v1/logs/tail?q=timeout\"")
    );
    // The logs API takes the login too (the live tail's EventSource sends only cookies).
    assert_eq!(
        h.get("/api/v1/logs?q=timeout", Some(&cookie)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.get("/api/v1/logs?q=timeout", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let alerts = h.get("/admin/alerts", Some(&cookie)).await;
    assert!(
        alerts.text.contains("<h2>Firing (1)</h2>"),
        "{}",
        alerts.text
    );
    let id = h.state.store.alerts(&[AlertState::Firing]).await.unwrap()[0].id;
    assert!(
        alerts
            .text
            .contains(&format!("action=\"/admin/alerts/{id}/ack\""))
    );
    // A button pressed from another site's page does nothing.
    let forged = h
        .post_form(
            &format!("/admin/alerts/{id}/ack"),
            "",
            Some(&cookie),
            "https://evil.example",
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        h.state.store.alerts(&[AlertState::Firing]).await.unwrap()[0]
            .acked_by
            .is_none()
    );
    let acked = h
        .post_form(
            &format!("/admin/alerts/{id}/ack"),
            "",
            Some(&cookie),
            "http://127.0.0.1:7700",
        )
        .await;
    assert_eq!(acked.status, StatusCode::SEE_OTHER);
    assert!(
        h.state.store.alerts(&[AlertState::Firing]).await.unwrap()[0]
            .acked_by
            .is_some()
    );
    let silenced = h
        .post_form(
            "/admin/silences",
            &format!("alert={id}&hours=4"),
            Some(&cookie),
            "http://127.0.0.1:7700",
        )
        .await;
    assert_eq!(silenced.status, StatusCode::SEE_OTHER, "{}", silenced.text);
    let silences = h.state.store.silences(Utc::now()).await.unwrap();
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0].matchers["check"], "api");
    let hours = (silences[0].ends - silences[0].starts).num_minutes();
    assert_eq!(hours, 240);
    let ended = h
        .post_form(
            &format!("/admin/silences/{}/expire", silences[0].id),
            "",
            Some(&cookie),
            "http://127.0.0.1:7700",
        )
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert!(h.state.store.silences(Utc::now()).await.unwrap().is_empty());
    let bad = h
        .post_form(
            "/admin/silences",
            &format!("alert={id}&hours=0"),
            Some(&cookie),
            "http://127.0.0.1:7700",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Logging out ends it.
    let out = h
        .post_form("/logout", "", Some(&cookie), "http://127.0.0.1:7700")
        .await;
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn public_admin_pages_are_read_only_without_the_login() {
    let h = Harness::new("[status_page]\ntitle = \"Acme status\"\npublic_admin = true\n").await;
    h.store_results("1", &[("api", Utc::now(), false, 42.0)])
        .await;
    h.fire("api", Utc::now(), None).await;
    let id = h.state.store.alerts(&[AlertState::Firing]).await.unwrap()[0].id;
    for path in [
        "/admin/hosts",
        "/admin/checks",
        "/admin/logs",
        "/admin/alerts",
    ] {
        let page = h.get(path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.text.contains("Log in</a>"), "{path}");
    }
    let alerts = h.get("/admin/alerts", None).await;
    assert!(alerts.text.contains("<h2>Firing (1)</h2>"));
    assert!(
        !alerts.text.contains("/ack\""),
        "no buttons without the login"
    );
    let pressed = h
        .post_form(
            &format!("/admin/alerts/{id}/ack"),
            "",
            None,
            "http://127.0.0.1:7700",
        )
        .await;
    assert_eq!(pressed.status, StatusCode::UNAUTHORIZED);
    assert!(
        h.state.store.alerts(&[AlertState::Firing]).await.unwrap()[0]
            .acked_by
            .is_none()
    );
    assert!(h.get("/", None).await.text.contains("<h1>Acme status</h1>"));
}

#[tokio::test]
async fn pages_are_compressed_for_clients_that_accept_gzip() {
    let h = Harness::new("").await;
    h.store_results("1", &[("api", Utc::now(), true, 10.0)])
        .await;
    let gz = h
        .send(
            Request::get("/")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.headers[header::CONTENT_ENCODING], "gzip");
    // Without the header: plain HTML.
    let plain = h.get("/", None).await;
    assert!(!plain.headers.contains_key(header::CONTENT_ENCODING));
    assert!(plain.text.contains("data-check=\"api\""));
}

/// A gauge sample of `web-1`'s, `minutes_ago`.
fn sample(name: &str, labels: &[(&str, &str)], minutes_ago: i64, value: f64) -> Record {
    Record::Metric(MetricSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        time: Utc::now() - Duration::minutes(minutes_ago),
        value,
        metric_type: MetricType::Gauge,
    })
}

/// Stores `records` as `web-1`'s and rolls them up, as the collector's tasks would.
async fn store_and_roll_up(h: &Harness, records: Vec<Record>) {
    let batch = Batch {
        version: PROTOCOL_VERSION,
        agent: "web-1".into(),
        batch_id: format!("b{}", records.len()),
        records,
    };
    h.state
        .store
        .ingest("web-1", &batch, Utc::now())
        .await
        .unwrap();
    while h.state.store.roll_up(10_000).await.unwrap() > 0 {}
}

#[tokio::test]
async fn a_hosts_page_charts_cpu_memory_disk_and_network_from_its_rollups() {
    let h = Harness::new("").await;
    let cookie = h.login().await;
    let idle = [("cpu", "all"), ("state", "idle")];
    let eth = [("device", "eth0"), ("direction", "receive")];
    let records = vec![
        sample("system.cpu.utilization", &idle, 3, 0.9),
        sample("system.cpu.utilization", &idle, 2, 0.75),
        sample("system.memory.utilization", &[], 2, 0.5),
        sample(
            "system.filesystem.utilization",
            &[("mountpoint", "/")],
            2,
            0.25,
        ),
        // 6 MB more received over one minute: 100 kB/s.
        sample("system.network.io", &eth, 3, 1_000_000.0),
        sample("system.network.io", &eth, 2, 7_000_000.0),
    ];
    store_and_roll_up(&h, records).await;
    let page = h.get("/admin/hosts/web-1", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let t = &page.text;
    // The latest value of each, in words under its chart.
    assert!(
        t.contains("<strong>CPU busy</strong> (top of chart 100.0%): all 25.0%"),
        "{t}"
    );
    assert!(
        t.contains("<strong>Memory used</strong> (top of chart 100.0%): 50.0%"),
        "{t}"
    );
    assert!(
        t.contains("<strong>Disk used</strong> (top of chart 100.0%): / 25.0%"),
        "{t}"
    );
    assert!(t.contains("receive 100.0 kB/s"), "{t}");
    assert_eq!(t.matches("<polyline").count(), 4, "{t}");
    let list = h.get("/admin/hosts", Some(&cookie)).await;
    assert!(
        list.text.contains("<td>25.0%</td><td>50.0%</td>"),
        "{}",
        list.text
    );
    assert_eq!(
        h.get("/admin/hosts/nobody", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_hosts_page_charts_each_integration_its_agent_reads() {
    let h = Harness::new("").await;
    let cookie = h.login().await;
    let cache = [("integration", "cache")];
    let other = [("integration", "sessions")];
    let edge = [("integration", "edge")];
    let records = vec![
        sample(
            "lookout.integration.up",
            &[("integration", "cache"), ("type", "redis")],
            2,
            1.0,
        ),
        sample(
            "lookout.integration.up",
            &[("integration", "sessions"), ("type", "redis")],
            2,
            1.0,
        ),
        sample(
            "lookout.integration.up",
            &[("integration", "edge"), ("type", "nginx")],
            2,
            0.0,
        ),
        sample("redis.memory.used", &cache, 3, 1_500_000.0),
        sample("redis.memory.used", &cache, 2, 2_500_000.0),
        // 6,000 more commands over a minute: 100 a second.
        sample("redis.commands.processed", &cache, 3, 1_000.0),
        sample("redis.commands.processed", &cache, 2, 7_000.0),
        // The other Redis: its figures must not reach the first's charts.
        sample("redis.memory.used", &other, 2, 9_000_000_000.0),
        sample("redis.commands.processed", &other, 3, 0.0),
        sample("redis.commands.processed", &other, 2, 60.0),
        // stub_status's total (no status_class) and the access log's classes: 10 requests a
        // second in all, of which 0.5 a second 5xx.
        sample("nginx.requests", &edge, 3, 0.0),
        sample("nginx.requests", &edge, 2, 600.0),
        sample(
            "nginx.requests",
            &[("integration", "edge"), ("status_class", "2xx")],
            3,
            0.0,
        ),
        sample(
            "nginx.requests",
            &[("integration", "edge"), ("status_class", "2xx")],
            2,
            570.0,
        ),
        sample(
            "nginx.requests",
            &[("integration", "edge"), ("status_class", "5xx")],
            3,
            0.0,
        ),
        sample(
            "nginx.requests",
            &[("integration", "edge"), ("status_class", "5xx")],
            2,
            30.0,
        ),
        sample("nginx.requests.server_error_ratio", &edge, 2, 0.05),
        sample(
            "lookout.integration.up",
            &[("integration", "apps"), ("type", "containers")],
            2,
            1.0,
        ),
        sample(
            "container.memory.usage",
            &[("integration", "apps"), ("container", "web")],
            2,
            52_000_000.0,
        ),
        sample(
            "container.memory.usage",
            &[("integration", "apps"), ("container", "worker")],
            2,
            3_000.0,
        ),
        sample(
            "container.running",
            &[("integration", "apps"), ("container", "web")],
            2,
            1.0,
        ),
        sample(
            "container.running",
            &[("integration", "apps"), ("container", "worker")],
            2,
            0.0,
        ),
    ];
    store_and_roll_up(&h, records).await;
    let page = h.get("/admin/hosts/web-1", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let t = &page.text;
    let section = |name: &str| -> &str {
        let start = t
            .find(&format!("data-integration=\"{name}\""))
            .unwrap_or_else(|| panic!("no section for {name}: {t}"));
        let end = t[start..].find("</section>").unwrap() + start;
        &t[start..end]
    };
    let cache = section("cache");
    assert!(cache.contains("(redis, read at the last try)"), "{cache}");
    assert!(cache.contains("<strong>Memory used</strong>"), "{cache}");
    assert!(cache.contains(": 2.5 MB</figcaption>"), "{cache}");
    assert!(cache.contains(": 100 cmd/s</figcaption>"), "{cache}");
    // No eviction was ever sampled: that chart is left out rather than drawn empty.
    assert!(!cache.contains("Evicted keys"), "{cache}");
    let sessions = section("sessions");
    assert!(sessions.contains(": 9.0 GB</figcaption>"), "{sessions}");
    assert!(sessions.contains(": 1 cmd/s</figcaption>"), "{sessions}");
    let edge = section("edge");
    assert!(edge.contains("(nginx, not read at the last try)"), "{edge}");
    // The total comes from stub_status's series alone, not added to the logged classes.
    assert!(
        edge.contains("<strong>Requests</strong> (top of chart 10 req/s): 10 req/s"),
        "{edge}"
    );
    assert!(edge.contains("2xx 9.50 req/s, 5xx 0.50 req/s"), "{edge}");
    assert!(edge.contains(": 5.0%</figcaption>"), "{edge}");
    // Containers: a series per container.
    let apps = section("apps");
    assert!(
        apps.contains(": web 52.0 MB, worker 3.0 kB</figcaption>"),
        "{apps}"
    );
    assert!(apps.contains(": web 1, worker 0</figcaption>"), "{apps}");
    // Sections in name order, after the host's own four charts.
    let at = |s: &str| t.find(&format!("data-integration=\"{s}\"")).unwrap();
    assert!(at("apps") < at("cache") && at("cache") < at("edge") && at("edge") < at("sessions"));
    assert!(t.find("<strong>Network</strong>").unwrap() < at("apps"));
}
