//! Storage benchmark: ingest throughput into each backend, rollup throughput, the size of a
//! database holding 90 days of 1,000 checks at a 30 s interval, and the API's query time for a
//! check's 90-day history.
//!
//! ```sh
//! cargo run --release -p lookout-collector --example store_bench -- [--pg postgres://...] [--checks 1000] [--skip-sqlite] [--keep DIR]
//! ```
//!
//! The 90-day database is built in two parts. Day 0 goes through the real path: every result
//! ingested in agent-sized batches, then rolled up by the store's rollup step. The rest of the
//! retained history is then copied from day 0 with shifted times, inside the database: 6 more
//! days of raw results (raw retention 7 d), 29 more days of hourly rollup rows with their
//! per-minute part (30 d), 60 more days of hourly rows without it (the 90-day status page). The size printed is that of the database
//! at retention's steady state; retention keeps it there (older rows are deleted as they age).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lookout_collector::store::{self, Store};
use lookout_protocol::{
    Batch, CheckResult, MetricSample, MetricType, PROTOCOL_VERSION, Record, Timings,
};

const DAY_MS: i64 = 86_400_000;

struct Args {
    pg: Option<String>,
    checks: usize,
    skip_sqlite: bool,
    /// `--keep DIR`: build only the 90-day SQLite database, as DIR/lookout.db, and keep it
    /// (the database `lookout-collector backup` is measured on, docs/deployment.md).
    keep: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        pg: None,
        checks: 1000,
        skip_sqlite: false,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--pg" => a.pg = it.next(),
            "--skip-sqlite" => a.skip_sqlite = true,
            "--keep" => a.keep = it.next().map(Into::into),
            "--checks" => a.checks = it.next().and_then(|v| v.parse().ok()).expect("--checks N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn result(check: usize, time: DateTime<Utc>, i: usize) -> Record {
    // 1 in 500 fails; latencies spread over 5..200 ms.
    let ok = i % 500 != 7;
    Record::CheckResult(CheckResult {
        check: format!("check-{check:04}"),
        check_type: Some(lookout_config::CheckType::Http),
        time,
        ok,
        latency_ms: 5.0 + ((i * 7919) % 195) as f64 + 0.25,
        error: (!ok).then(|| "status 503, expected 2xx".to_string()),
        status_code: Some(if ok { 200 } else { 503 }),
        cert_expiry: None,
        timings: Timings {
            total_ms: Some(42.0),
            ..Timings::default()
        },
    })
}

fn sample(series: usize, time: DateTime<Utc>, v: f64) -> Record {
    Record::Metric(MetricSample {
        name: format!("system.metric.{}", series % 40),
        labels: [("device".to_string(), format!("d{}", series / 40))]
            .into_iter()
            .collect(),
        time,
        value: v,
        metric_type: MetricType::Gauge,
    })
}

async fn ingest_all(s: &dyn Store, agent: &str, batches: Vec<Vec<Record>>) -> (usize, f64) {
    let n: usize = batches.iter().map(Vec::len).sum();
    let start = Instant::now();
    for (i, records) in batches.into_iter().enumerate() {
        let b = Batch {
            version: PROTOCOL_VERSION,
            agent: agent.into(),
            batch_id: format!("b{i}"),
            records,
        };
        s.ingest(agent, &b, Utc::now()).await.expect("ingest");
    }
    (n, start.elapsed().as_secs_f64())
}

async fn throughput(name: &str, s: &dyn Store) {
    let t0 = Utc.timestamp_millis_opt(1_790_000_000_000).unwrap();
    // 200,000 check results in batches of 500 (an agent flushing a backlog).
    let batches: Vec<Vec<Record>> = (0..400)
        .map(|b| {
            (0..500)
                .map(|i| {
                    result(
                        i % 100,
                        t0 + Duration::milliseconds((b * 500 + i) as i64),
                        b * 500 + i,
                    )
                })
                .collect()
        })
        .collect();
    let (n, secs) = ingest_all(s, "bench-results", batches).await;
    println!(
        "{name}: ingest check results: {n} in {secs:.2} s = {:.0}/s",
        n as f64 / secs
    );
    // 500,000 metric samples in batches of 1,000 (100 series a host).
    let batches: Vec<Vec<Record>> = (0..500)
        .map(|b| {
            (0..1000)
                .map(|i| {
                    sample(
                        i % 100,
                        t0 + Duration::seconds(b as i64 * 10) + Duration::milliseconds(i as i64),
                        i as f64,
                    )
                })
                .collect()
        })
        .collect();
    let (n, secs) = ingest_all(s, "bench-metrics", batches).await;
    println!(
        "{name}: ingest metric samples: {n} in {secs:.2} s = {:.0}/s",
        n as f64 / secs
    );
    let start = Instant::now();
    let mut rolled = 0;
    loop {
        let k = s.roll_up(5000).await.expect("roll_up");
        if k == 0 {
            break;
        }
        rolled += k;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name}: roll up: {rolled} raw rows in {secs:.2} s = {:.0}/s",
        rolled as f64 / secs
    );
}

/// Direct access to the benchmark's database, for copying history and measuring it.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn connect(url: &str) -> Self {
        if url.starts_with("sqlite") {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.expect("connect"))
        } else {
            Db::Postgres(sqlx::PgPool::connect(url).await.expect("connect"))
        }
    }

    async fn exec(&self, sql: String) -> u64 {
        let q = sqlx::AssertSqlSafe(sql);
        match self {
            Db::Sqlite(p) => sqlx::query(q)
                .execute(p)
                .await
                .expect("exec")
                .rows_affected(),
            Db::Postgres(p) => sqlx::query(q)
                .execute(p)
                .await
                .expect("exec")
                .rows_affected(),
        }
    }

    async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("count"),
        }
    }

    /// Bytes on disk per table and index, largest first.
    async fn sizes(&self) -> Vec<(String, i64)> {
        match self {
            Db::Sqlite(p) => {
                sqlx::query_as("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
                    .fetch_all(p)
                    .await
                    .expect("dbstat")
            }
            Db::Postgres(p) => {
                sqlx::query("VACUUM ANALYZE")
                    .execute(p)
                    .await
                    .expect("vacuum");
                sqlx::query_as(
                    "SELECT c.relname::text, pg_relation_size(c.oid) FROM pg_class c
                     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 't')
                     ORDER BY 2 DESC",
                )
                .fetch_all(p)
                .await
                .expect("sizes")
            }
        }
    }
}

/// Day 0 through the real path, then the retained history by copying day 0.
async fn ninety_days(name: &str, url: &str, checks: usize) {
    let s: Arc<dyn Store> = store::open(url, &Default::default()).await.expect("open");
    let day0 = Utc.timestamp_millis_opt(1_790_035_200_000).unwrap(); // a midnight UTC
    let per_day = 2880; // one result every 30 s
    // 100 agents, each running its share of the checks, shipping one batch each 10 minutes (a
    // live agent ships every result within 100 ms; fewer, larger batches keep this run short).
    let agents = 100.min(checks);
    let start = Instant::now();
    let mut total = 0usize;
    for window in 0..144 {
        for a in 0..agents {
            let mut records = Vec::new();
            for minute in window * 10..window * 10 + 10 {
                for c in (a..checks).step_by(agents) {
                    for half in 0..2 {
                        let t = day0 + Duration::seconds(minute * 60 + half * 30 + (c % 30) as i64);
                        records.push(result(c, t, (minute as usize) * 2 + half as usize + c));
                    }
                }
            }
            total += records.len();
            let b = Batch {
                version: PROTOCOL_VERSION,
                agent: format!("agent-{a:03}"),
                batch_id: format!("{window}"),
                records,
            };
            s.ingest(&b.agent.clone(), &b, Utc::now())
                .await
                .expect("ingest");
        }
    }
    let ingest_secs = start.elapsed().as_secs_f64();
    assert_eq!(total, checks * per_day);
    let start = Instant::now();
    while s.roll_up(20_000).await.expect("roll_up") > 0 {}
    let rollup_secs = start.elapsed().as_secs_f64();
    println!(
        "{name}: day 0 of {checks} checks at 30 s: {total} results ingested in {ingest_secs:.1} s ({:.0}/s), rolled up in {rollup_secs:.1} s",
        total as f64 / ingest_secs
    );

    // Copy day 0 into the rest of the retained history, inside the database.
    let db = Db::connect(url).await;
    let start = Instant::now();
    let d0 = day0.timestamp_millis();
    let mut copied = 0;
    for d in 1..7 {
        let shift = d * DAY_MS;
        copied += db
            .exec(format!(
                "INSERT INTO check_results (series_id, time_ms, ok, latency_ms, error, status_code, timings)
                 SELECT series_id, time_ms - {shift}, ok, latency_ms, error, status_code, timings
                 FROM check_results WHERE time_ms >= {d0} AND time_ms < {d0} + {DAY_MS}"
            ))
            .await;
    }
    // Hours of the last 30 days keep their per-minute part; older ones only the hour.
    for d in 1..90 {
        let minutes = if d < 30 { "minutes" } else { "NULL" };
        let shift = d * DAY_MS;
        copied += db
            .exec(format!(
                "INSERT INTO check_rollups (series_id, hour_ms, count, failures, latency_sum, hist, minutes)
                 SELECT series_id, hour_ms - {shift}, count, failures, latency_sum, hist, {minutes}
                 FROM check_rollups WHERE hour_ms >= {d0} AND hour_ms < {d0} + {DAY_MS}"
            ))
            .await;
    }
    println!(
        "{name}: copied {copied} rows of history in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    println!(
        "{name}: rows: raw results {}, hourly rollup rows {} ({} with their per-minute part)",
        db.count("SELECT COUNT(*) FROM check_results").await,
        db.count("SELECT COUNT(*) FROM check_rollups").await,
        db.count("SELECT COUNT(*) FROM check_rollups WHERE minutes IS NOT NULL")
            .await,
    );
    let tables = db.sizes().await;
    let total_bytes: i64 = tables.iter().map(|(_, b)| b).sum();
    println!(
        "{name}: 90 days of {checks} checks at 30 s: {:.0} MiB on disk",
        total_bytes as f64 / 1048576.0
    );
    for (table, bytes) in tables.iter().take(6) {
        println!("    {table:<32} {:>8.1} MiB", *bytes as f64 / 1048576.0);
    }

    // The API's query for one check's 90-day history, through the real handler.
    let config = lookout_config::CollectorConfig::parse(
        std::path::Path::new("bench.toml"),
        // The benchmark reads the API without a token.
        "[server]\npublic_read = true\n",
        &|_| None,
    )
    .expect("config");
    let state = lookout_collector::build_state(s, config, None)
        .await
        .expect("state");
    let from = (day0 - Duration::days(89)).format("%Y-%m-%dT%H:%M:%SZ");
    let to = (day0 + Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let mut times = Vec::new();
    for i in 0..50 {
        use tower::ServiceExt;
        let uri = format!(
            "/api/v1/checks/check-{:04}/uptime?step=1d&from={from}&to={to}",
            (i * 37) % checks
        );
        let req = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let start = Instant::now();
        let resp = lookout_collector::router(state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["points"].as_array().map(Vec::len), Some(90), "{j}");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{name}: GET uptime?step=1d over 90 days (one check, one agent): median {:.1} ms, p95 {:.1} ms (50 queries)",
        times[times.len() / 2],
        times[times.len() * 95 / 100]
    );
}

/// Bytes a host metric sample costs in SQLite: 200 series (two hosts' worth) sampled every 10 s
/// for a day and a half (2,592,000 samples), values moving as real gauges and counters do,
/// each collection's 200 samples a batch as an agent ships them, rolled up; then the file's
/// used pages per raw sample (its share of the sample blocks, the series and the rollups).
async fn sample_cost(path: &std::path::Path) {
    let url = format!("sqlite://{}", path.display());
    let s = store::open(&url, &Default::default())
        .await
        .expect("sqlite");
    let t0 = Utc::now() - Duration::days(2);
    let steps = 6 * 60 * 36; // 36 h at 10 s
    let mut value = [0f64; 200];
    let mut batch = Vec::with_capacity(200);
    let mut n = 0usize;
    for step in 0..steps {
        for (series, v) in value.iter_mut().enumerate() {
            // Gauges wander, counters climb.
            *v = if series % 2 == 0 {
                (*v + fastrand::f64() - 0.5).abs()
            } else {
                *v + (fastrand::u32(0..5000) as f64)
            };
            batch.push(sample(series, t0 + Duration::seconds(step as i64 * 10), *v));
            if batch.len() == 200 {
                let b = Batch {
                    version: PROTOCOL_VERSION,
                    agent: "cost".into(),
                    batch_id: format!("c{n}"),
                    records: std::mem::take(&mut batch),
                };
                s.ingest("cost", &b, Utc::now()).await.expect("ingest");
                n += 1;
            }
        }
    }
    while s.roll_up(5000).await.expect("roll_up") > 0 {}
    drop(s);
    let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .expect("checkpoint");
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&pool)
        .await
        .expect("pages");
    let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(&pool)
        .await
        .expect("free");
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&pool)
        .await
        .expect("size");
    let samples = (steps * 200) as f64;
    println!(
        "sqlite: metric sample cost: {} samples in {:.1} MiB = {:.1} bytes per sample",
        samples,
        ((pages - free) * size) as f64 / 1048576.0,
        ((pages - free) * size) as f64 / samples
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    if let Some(keep) = &a.keep {
        std::fs::create_dir_all(keep).expect("the --keep folder");
        let url = format!("sqlite://{}", keep.join("lookout.db").display());
        ninety_days("sqlite", &url, a.checks).await;
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    if !a.skip_sqlite {
        let url = format!("sqlite://{}", dir.path().join("throughput.db").display());
        let s = store::open(&url, &Default::default())
            .await
            .expect("sqlite");
        throughput("sqlite", &*s).await;
        sample_cost(&dir.path().join("samples.db")).await;
        let ninety = format!("sqlite://{}", dir.path().join("ninety.db").display());
        ninety_days("sqlite", &ninety, a.checks).await;
    }
    if let Some(pg) = &a.pg {
        // The same server and options, other databases.
        let (path, query) = pg
            .split_once('?')
            .map_or((pg.as_str(), String::new()), |(p, q)| (p, format!("?{q}")));
        let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
        let url_of = |db: &str| format!("{base}/{db}{query}");
        let admin = sqlx::PgPool::connect(pg).await.expect("postgres");
        for db in ["bench_throughput", "bench_ninety"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&admin)
                .await
                .expect("drop");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&admin)
                .await
                .expect("create");
        }
        let s = store::open(&url_of("bench_throughput"), &Default::default())
            .await
            .expect("postgres");
        throughput("postgres", &*s).await;
        ninety_days("postgres", &url_of("bench_ninety"), a.checks).await;
    }
}
