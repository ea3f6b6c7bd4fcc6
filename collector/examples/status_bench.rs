//! Status page benchmark: the server time of `GET /` and `GET /api/v1/status` with 1,000
//! checks (20 groups) and 90 days of history in SQLite.
//!
//! ```sh
//! cargo run --release -p lookout-collector --example status_bench -- [--checks 1000] [--rounds 30]
//! ```
//!
//! One hour of results (30 s interval) goes through the real path, ingest and roll-up; that
//! hour's per-hour rollup rows are then copied back over 90 days inside the database, and the
//! daily rows are rebuilt from them as the v6 migration does: one check-day in ten has a
//! failed probe (`--every-day-fails`: all of them, the worst case for the page's size). 40
//! checks get an incident (one still open). The collector then serves the database and the page is fetched `--rounds`
//! times; the figures are its own `Server-Timing` (handler time: reads and rendering) and the
//! time to the whole gzip answer on loopback (compression included).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use lookout_collector::store;
use lookout_collector::store::alerting::{AlertState, Transition};
use lookout_protocol::{Batch, CheckResult, PROTOCOL_VERSION, Record, Timings};

const HOUR_MS: i64 = 3_600_000;
const DAYS: i64 = 90;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn config_text(dir: &std::path::Path, checks: usize) -> String {
    let mut t = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[status_page]\ntitle = \"Bench status\"\n",
        dir.display()
    );
    for i in 0..checks {
        t.push_str(&format!(
            "\n[[checks]]\nname = \"check-{i:04}\"\ntype = \"http\"\nurl = \"http://127.0.0.1:9/{i}\"\ngroup = \"Group {:02}\"\n",
            i % 20
        ));
    }
    t
}

fn result(check: usize, time: DateTime<Utc>, i: usize, failing: bool) -> Record {
    let ok = !(failing && (i + check).is_multiple_of(97));
    Record::CheckResult(CheckResult {
        check: format!("check-{check:04}"),
        check_type: Some(lookout_config::CheckType::Http),
        time,
        ok,
        latency_ms: 5.0 + ((i * 7919 + check) % 195) as f64,
        error: (!ok).then(|| "status 503, expected 2xx".to_string()),
        status_code: Some(if ok { 200 } else { 503 }),
        cert_expiry: None,
        timings: Timings::default(),
    })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let checks = arg("--checks", 1000);
    let rounds = arg("--rounds", 30);
    // Realistic: a day with a failed probe now and then (1 in 10 check-days), the rest at 100%.
    // Worst case (`--every-day-fails`): every day of every check has a failure, so no two days
    // share a bar.
    let every_day_fails = std::env::args().any(|a| a == "--every-day-fails");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let text = config_text(dir.path(), checks);
    let config =
        lookout_config::CollectorConfig::parse(std::path::Path::new("bench.toml"), &text, &|_| {
            None
        })
        .expect("the bench configuration is valid");
    let url = config.storage.resolved_url(&config.server.data_dir);

    // One hour through the real path, ending now.
    let started = Instant::now();
    let s = store::open(&url, &config.storage).await.expect("store");
    let now = Utc::now();
    let hour_start = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let mut n = 0;
    for slot in 0..120usize {
        let time = Utc
            .timestamp_millis_opt(hour_start - HOUR_MS + slot as i64 * 30_000)
            .unwrap();
        let records: Vec<Record> = (0..checks)
            .map(|c| result(c, time, slot, every_day_fails))
            .collect();
        n += records.len();
        let batch = Batch {
            version: PROTOCOL_VERSION,
            agent: "bench".into(),
            batch_id: format!("b{slot}"),
            records,
        };
        s.ingest("bench", &batch, now).await.expect("ingest");
    }
    while s.roll_up(50_000).await.expect("roll-up") > 0 {}
    println!(
        "ingested and rolled up {n} results in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Copy that hour back over 90 days, then the daily rows from the hours.
    let started = Instant::now();
    let path = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
        .await
        .expect("the bench database");
    let base = hour_start - HOUR_MS;
    let copied = sqlx::query(
        "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < $1)
         INSERT INTO check_rollups (series_id, hour_ms, count, failures, latency_sum, hist, minutes)
         SELECT r.series_id, r.hour_ms - k.n * 3600000,
           r.count, CASE WHEN (r.series_id * 7 + k.n / 24) % 10 = 0 AND k.n % 24 = 5 THEN 1 ELSE r.failures END,
           r.latency_sum, r.hist, NULL
         FROM check_rollups r CROSS JOIN k WHERE r.hour_ms = $2",
    )
    .bind(DAYS * 24)
    .bind(base)
    .execute(&pool)
    .await
    .expect("copy hours")
    .rows_affected();
    sqlx::query("DELETE FROM check_days")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO check_days (series_id, day_ms, count, failures, latency_sum)
         SELECT series_id, (hour_ms / 86400000) * 86400000, SUM(count), SUM(failures), SUM(latency_sum)
         FROM check_rollups GROUP BY series_id, (hour_ms / 86400000) * 86400000",
    )
    .execute(&pool)
    .await
    .unwrap();
    let days: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM check_days")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    println!(
        "copied {copied} hourly rows and built {days} daily rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Incidents: 40 checks, each down for an hour some day; the last one still down.
    for i in 0..40usize {
        let check = format!("check-{:04}", i * 25 % checks);
        let fired = now - chrono::Duration::hours(2 + (i as i64 * 53) % (24 * 80));
        let t = |from, to, at, summary: &str| Transition {
            fingerprint: format!("uptime:{check}:{i}"),
            rule: "uptime".into(),
            labels: [("check".to_string(), check.clone())].into(),
            from,
            to,
            at,
            summary: summary.into(),
            fired_at: Some(fired),
            notified_at: None,
            recorded_at: at,
        };
        s.record_transition(&t(None, AlertState::Firing, fired, "status 503"), &[])
            .await
            .unwrap();
        if i != 39 {
            let ended = fired + chrono::Duration::hours(1);
            s.record_transition(
                &t(
                    Some(AlertState::Firing),
                    AlertState::Resolved,
                    ended,
                    "recovered",
                ),
                &[],
            )
            .await
            .unwrap();
        }
    }
    drop(s);

    let running = lookout_collector::start(config).await.expect("collector");
    // Where the time goes: each part of the model alone, best of 5.
    let st = &running.state;
    let day0 = Utc
        .timestamp_millis_opt((hour_start / 86_400_000 - 89) * 86_400_000)
        .unwrap();
    let hour0 = Utc.timestamp_millis_opt(hour_start - 23 * HOUR_MS).unwrap();
    let best = |v: Vec<f64>| v.into_iter().fold(f64::MAX, f64::min);
    let mut parts: Vec<(&str, Vec<f64>)> = [
        "daily totals",
        "hourly totals",
        "latest results",
        "incidents",
        "the model (cached totals)",
    ]
    .iter()
    .map(|n| (*n, Vec::new()))
    .collect();
    for _ in 0..5 {
        let t0 = Instant::now();
        st.store
            .check_totals(store::TotalsWidth::Day, day0)
            .await
            .unwrap();
        parts[0].1.push(t0.elapsed().as_secs_f64() * 1000.0);
        let t0 = Instant::now();
        st.store
            .check_totals(store::TotalsWidth::Hour, hour0)
            .await
            .unwrap();
        parts[1].1.push(t0.elapsed().as_secs_f64() * 1000.0);
        let t0 = Instant::now();
        st.store.latest_results().await.unwrap();
        parts[2].1.push(t0.elapsed().as_secs_f64() * 1000.0);
        let t0 = Instant::now();
        st.store.incidents("uptime", day0).await.unwrap();
        parts[3].1.push(t0.elapsed().as_secs_f64() * 1000.0);
        let t0 = Instant::now();
        lookout_collector::views::status::model(&st.store, &st.config(), &st.status_history)
            .await
            .unwrap();
        parts[4].1.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    for (name, times) in parts {
        println!("  {name}: {:.1} ms", best(times));
    }
    let client = reqwest::Client::new();
    for path in ["/", "/api/v1/status"] {
        let url = format!("http://{}{path}", running.addr);
        let (mut server, mut total) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for round in 0..rounds + 2 {
            let t0 = Instant::now();
            let resp = client
                .get(&url)
                .header("accept-encoding", "gzip")
                .send()
                .await
                .expect("request");
            assert_eq!(
                resp.headers()
                    .get("content-encoding")
                    .and_then(|v| v.to_str().ok()),
                Some("gzip"),
                "{path} answers gzip"
            );
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            let timing = resp
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("app;dur="))
                .and_then(|v| v.parse::<f64>().ok())
                .expect("Server-Timing");
            bytes = resp.bytes().await.expect("body").len();
            // The first two warm the page cache and the connection pool.
            if round >= 2 {
                server.push(timing);
                total.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.sort_by(f64::total_cmp);
        total.sort_by(f64::total_cmp);
        println!(
            "GET {path}: {checks} checks, {bytes} bytes gzip; server time p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; \
             whole answer p50 {:.1} ms, p95 {:.1} ms ({rounds} rounds)",
            quantile(&server, 0.5),
            quantile(&server, 0.95),
            server[server.len() - 1],
            quantile(&total, 0.5),
            quantile(&total, 0.95),
        );
    }
    running.shutdown.cancel();
    let _ = running.task.await;
}
