//! A load generator that speaks the real protocol (JSON batches, zstd, one bearer token per
//! agent) to a release collector it starts itself (SQLite, in a temporary folder), and prints
//! what it measured. Nothing is assumed: a figure is printed only when it was measured.
//!
//! - `flood --kind metrics|results [--records N] [--batch B] [--senders S]`: the fastest rate at
//!   which the collector stores metric samples or check results: N records in pre-encoded
//!   batches of B from 100 agents (150 metric series or 50 checks each), S concurrent senders; records/s from the first send to the
//!   last acknowledgement (an acknowledgement means stored and durable).
//! - `fleet [--agents N] [--seconds T] [--series M] [--checks C]`: N simulated agents, each
//!   sending every 10 s one batch of M host metric samples and C check results, their phases
//!   spread over the 10 s: ingest latency per request (p50, p99, max), records/s stored,
//!   refusals (429/503), and the collector's CPU and peak RSS. Before the timed part every
//!   agent's first batch is stored (retried while the collector is busy), which makes the
//!   fleet's series: its time is printed on its own, and the timed part is the steady state.
//!
//! Both take `--database URL` to run the collector on that database (PostgreSQL) instead of
//! SQLite in the temporary folder.
//!
//! Usage: `cargo run --release -p lookout-tests --example loadgen -- <flood|fleet> [options]`
//! after `cargo build --release -p lookout-collector`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use lookout_protocol::{
    Batch, CheckResult, Encoding, MetricSample, MetricType, PROTOCOL_VERSION, Record, encode_batch,
};
use lookout_tests::{Daemon, bin, free_port, process_figures};

const METRIC_NAMES: &[&str] = &[
    "system.cpu.utilization",
    "system.memory.usage",
    "system.filesystem.usage",
    "system.network.io",
    "system.network.packets",
    "system.disk.io",
    "system.disk.operations",
    "system.paging.usage",
    "system.cpu.load_average.1m",
    "system.processes.count",
];

fn token(agent: usize) -> String {
    format!("load-agent-{agent:05}-token-0123456789abcdef")
}

fn agent_name(agent: usize) -> String {
    format!("load-{agent:05}")
}

/// Starts the release collector knowing `agents` agents; returns it and its base URL.
fn collector(dir: &std::path::Path, agents: usize, database: Option<&str>) -> (Daemon, String) {
    let port = free_port();
    let mut toml = format!(
        // The benchmark reads /metrics without a token.
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npublic_read = true\n\n",
        dir.display()
    );
    if let Some(url) = database {
        toml.push_str(&format!("[storage]\nurl = \"{url}\"\n\n"));
    }
    // Silent agents go down after 10 minutes, not 30 s: the fleet's warm-up takes a minute or
    // more at 10,000 agents, and the agents that finished it first would otherwise all be paged
    // down and back, an alert storm of the benchmark's making, not of a fleet's steady state.
    for a in 0..agents {
        toml.push_str(&format!(
            "[[agents]]\nname = \"{}\"\ntoken = \"{}\"\nagent_timeout = \"10m\"\n\n",
            agent_name(a),
            token(a)
        ));
    }
    let path = dir.join("collector.toml");
    std::fs::write(&path, toml).unwrap();
    let d = Daemon::start(
        &bin("lookout-collector"),
        &["--config", path.to_str().unwrap(), "--log-level", "warn"],
        &[],
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // Ready when /healthz answers (the warn level hides the "listening" line).
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port.get())).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the collector did not start:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (d, url)
}

/// `n` metric samples of one host, as an agent sends them: `series` distinct series.
fn samples(n: usize, series: usize, rng: &mut fastrand::Rng) -> Vec<Record> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let s = i % series.max(1);
            let name = METRIC_NAMES[s % METRIC_NAMES.len()];
            let labels: BTreeMap<String, String> = [(
                "device".to_string(),
                format!("dev{}", s / METRIC_NAMES.len()),
            )]
            .into();
            Record::Metric(MetricSample {
                name: name.to_string(),
                labels,
                time: now,
                value: rng.f64() * 100.0,
                metric_type: if s.is_multiple_of(3) {
                    MetricType::Counter
                } else {
                    MetricType::Gauge
                },
            })
        })
        .collect()
}

/// `n` check results of `checks` distinct checks (a real agent runs tens, not thousands).
fn results(n: usize, checks: usize, rng: &mut fastrand::Rng) -> Vec<Record> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            Record::CheckResult(CheckResult {
                check: format!("check-{}", i % checks.max(1)),
                check_type: None,
                time: now,
                ok: true,
                latency_ms: 5.0 + rng.f64() * 50.0,
                error: None,
                status_code: Some(200),
                cert_expiry: None,
                timings: Default::default(),
            })
        })
        .collect()
}

fn body(agent: usize, id: &str, records: Vec<Record>) -> Vec<u8> {
    encode_batch(
        &Batch {
            version: PROTOCOL_VERSION,
            agent: agent_name(agent),
            batch_id: id.to_string(),
            records,
        },
        Encoding::Zstd,
    )
    .unwrap()
}

/// Posts one batch; returns the status code.
async fn post(client: &reqwest::Client, base: &str, agent: usize, body: Vec<u8>) -> u16 {
    match client
        .post(format!("{base}/v1/ingest"))
        .bearer_auth(token(agent))
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// `--database URL`: the collector's `[storage] url` (an empty PostgreSQL database, say);
/// SQLite in the temporary folder without it.
fn database(args: &[String]) -> Option<String> {
    args.iter()
        .position(|a| a == "--database")
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: expected a number, got {v:?}"))
        })
        .unwrap_or(default)
}

async fn flood(args: &[String]) {
    let kind = args
        .iter()
        .position(|a| a == "--kind")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .unwrap_or("metrics");
    let records = arg(args, "--records", 2_000_000);
    let per_batch = arg(args, "--batch", 5_000);
    let senders = arg(args, "--senders", 4);
    const AGENTS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = collector(dir.path(), AGENTS, database(args).as_deref());
    let mut rng = fastrand::Rng::with_seed(7);
    let batches = records.div_ceil(per_batch);
    let bodies: Vec<(usize, Vec<u8>)> = (0..batches)
        .map(|b| {
            let n = per_batch.min(records - b * per_batch);
            let recs = match kind {
                "metrics" => samples(n, 150, &mut rng),
                "results" => results(n, 50, &mut rng),
                other => panic!("--kind {other:?}: expected metrics or results"),
            };
            let agent = b % AGENTS;
            (agent, body(agent, &format!("flood-{b}"), recs))
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let (cpu0, _) = process_figures(collector.pid());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (bodies, next, refused, client, base) = (
            bodies.clone(),
            next.clone(),
            refused.clone(),
            client.clone(),
            base.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((agent, b)) = bodies.get(i) else {
                    return;
                };
                loop {
                    match post(&client, &base, *agent, b.clone()).await {
                        200 => break,
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, hwm) = process_figures(collector.pid());
    // The roll-up runs behind ingest, on the same writer: how long it takes to catch up says
    // whether the rate is one the collector can keep up, rollups included.
    let caught_up = match database(args) {
        None => Some(roll_up_lag(&dir.path().join("lookout.db"), kind).await),
        Some(_) => None,
    };
    let db_bytes = std::fs::metadata(dir.path().join("lookout.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.path().join("lookout.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "flood {kind}: {records} records in {batches} batches of {per_batch}, {senders} senders: \
         {secs:.1} s, {:.0} records/s stored; {} refusals retried; collector {:.1} CPU s \
         ({:.0} % of the 2 cores), peak RSS {:.0} MiB",
        records as f64 / secs,
        refused.load(Ordering::Relaxed),
        cpu1 - cpu0,
        100.0 * (cpu1 - cpu0) / secs / 2.0,
        hwm as f64 / 1024.0,
    );
    // For bench/run.
    println!("@@ flood_{kind}_per_s {:.0}", records as f64 / secs);
    println!("@@ flood_{kind}_rss_mb {:.0}", hwm as f64 / 1024.0);
    // The roll-up's lag and the SQLite file's size; another database's are not measured here.
    if let Some(lag) = caught_up {
        // A roll-up that keeps up is done within a pass interval (2 s) of the last batch; one
        // that does not lags by a share of the flood's time.
        println!(
            "flood {kind}: rolled up {lag:.1} s after the last batch was stored (passes start \
             every 2 s)"
        );
        println!("@@ flood_{kind}_rollup_lag_s {lag:.1}");
        println!(
            "flood {kind}: SQLite database {:.1} bytes per record",
            db_bytes as f64 / records as f64
        );
        println!(
            "@@ flood_{kind}_bytes_per_record {:.1}",
            db_bytes as f64 / records as f64
        );
    }
    drop(collector);
}

/// Seconds until the collector's roll-up has passed every stored row of `kind` in the SQLite
/// database at `path` (its cursor at the table's last id).
async fn roll_up_lag(path: &std::path::Path, kind: &str) -> f64 {
    // Each raw table's roll-up cursor bears its name.
    let table = match kind {
        "metrics" => "metric_sample_blocks",
        _ => "check_results",
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let sql = format!(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM {table}) -
                COALESCE((SELECT last_id FROM rollup_cursors WHERE name = '{table}'), 0)"
    );
    let started = Instant::now();
    loop {
        let behind: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&pool)
            .await
            .unwrap();
        if behind <= 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the roll-up did not catch up in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
    started.elapsed().as_secs_f64()
}

async fn fleet(args: &[String]) {
    let agents = arg(args, "--agents", 10_000);
    let seconds = arg(args, "--seconds", 60);
    let series = arg(args, "--series", 150);
    let checks = arg(args, "--checks", 10);
    const EVERY: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = collector(dir.path(), agents, database(args).as_deref());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let refused: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let stored = Arc::new(AtomicU64::new(0));
    let run = Utc::now().timestamp();
    // Warm-up, not timed with the rest: every agent's first batch, which makes its series. A
    // fleet does this once (series are kept across restarts); what follows is the steady state.
    let warm = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    let mut firsts = tokio::task::JoinSet::new();
    for a in 0..agents {
        let (client, base, slots) = (client.clone(), base.clone(), slots.clone());
        firsts.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            let mut rng = fastrand::Rng::with_seed(a as u64);
            let mut recs = samples(series, series, &mut rng);
            recs.extend(results(checks, checks, &mut rng));
            let b = body(a, &format!("{run}-warm-up"), recs);
            // Retried like an agent does when the collector is busy.
            loop {
                match post(&client, &base, a, b.clone()).await {
                    200 => return,
                    429 | 503 => tokio::time::sleep(Duration::from_millis(200)).await,
                    other => panic!("agent {a}'s first batch got {other}"),
                }
            }
        });
    }
    while let Some(r) = firsts.join_next().await {
        r.unwrap();
    }
    let warm = warm.elapsed().as_secs_f64();
    println!(
        "warm-up: {agents} agents' first batches ({} series each) stored in {warm:.1} s ({:.0} new series/s)",
        series + checks,
        (agents * (series + checks)) as f64 / warm
    );
    println!("@@ fleet_{agents}_warm_up_s {warm:.1}");
    let (cpu0, _) = process_figures(collector.pid());
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(seconds as u64);
    let mut tasks = Vec::with_capacity(agents);
    for a in 0..agents {
        let (client, base, latencies, refused, stored) = (
            client.clone(),
            base.clone(),
            latencies.clone(),
            refused.clone(),
            stored.clone(),
        );
        // Phases spread over the interval, as real agents' are.
        let phase = EVERY.mul_f64(a as f64 / agents as f64);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(a as u64);
            let mut next = started + phase;
            let mut seq = 0u64;
            while next < deadline {
                tokio::time::sleep_until(next).await;
                let mut recs = samples(series, series, &mut rng);
                recs.extend(results(checks, checks, &mut rng));
                let n = recs.len() as u64;
                let b = body(a, &format!("{run}-{seq}-{seq}"), recs);
                let t = Instant::now();
                let status = post(&client, &base, a, b).await;
                let took = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                latencies.lock().unwrap().push(took);
                if status == 200 {
                    stored.fetch_add(n, Ordering::Relaxed);
                } else {
                    *refused.lock().unwrap().entry(status).or_default() += 1;
                }
                seq += 1;
                next += EVERY;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, hwm) = process_figures(collector.pid());
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)] as f64 / 1000.0;
    println!(
        "fleet: {agents} agents × ({series} samples + {checks} results) every 10 s for {seconds} s: \
         {} requests, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} records/s stored; \
         refused by status (0: no answer) {:?}; collector {:.1} CPU s ({:.0} % of the 2 cores), \
         peak RSS {:.0} MiB",
        l.len(),
        pct(0.5),
        pct(0.99),
        *l.last().unwrap_or(&0) as f64 / 1000.0,
        stored.load(Ordering::Relaxed) as f64 / secs,
        refused.lock().unwrap(),
        cpu1 - cpu0,
        100.0 * (cpu1 - cpu0) / secs / 2.0,
        hwm as f64 / 1024.0,
    );
    // For bench/run: latency of every request, and the share refused.
    let refusals: u64 = refused.lock().unwrap().values().sum();
    println!("@@ fleet_{agents}_p99_ms {:.1}", pct(0.99));
    println!("@@ fleet_{agents}_p50_ms {:.1}", pct(0.5));
    println!(
        "@@ fleet_{agents}_refused_pct {:.1}",
        100.0 * refusals as f64 / l.len().max(1) as f64
    );
    println!("@@ fleet_{agents}_rss_mb {:.0}", hwm as f64 / 1024.0);
    println!(
        "@@ fleet_{agents}_stored_per_s {:.0}",
        stored.load(Ordering::Relaxed) as f64 / secs
    );
    println!(
        "@@ fleet_{agents}_offered_per_s {:.0}",
        (agents * (series + checks)) as f64 / EVERY.as_secs_f64()
    );
    // Where the time went, from the collector's own figures.
    if let Ok(text) = client.get(format!("{base}/metrics")).send().await {
        let text = text.text().await.unwrap_or_default();
        for l in text.lines().filter(|l| {
            [
                "lookout_ingest_duration_seconds_sum",
                "lookout_ingest_duration_seconds_count",
                "lookout_store_write_duration_seconds_sum",
                "lookout_store_write_duration_seconds_count",
                "lookout_ingest_groups_total",
                "lookout_alerts{",
                "lookout_rule_evaluations_total",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        }) {
            println!("collector: {l}");
        }
    }
    // Its warnings and errors (it logs at warn), the first few.
    for l in collector.log_text().lines().take(10) {
        println!("collector log: {l}");
    }
    drop(collector);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("flood") => flood(&args).await,
        Some("fleet") => fleet(&args).await,
        other => {
            eprintln!("unknown mode {other:?}: expected flood or fleet");
            std::process::exit(2);
        }
    }
}
