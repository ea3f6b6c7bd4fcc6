//! Log benchmarks with the release binaries, each figure measured, never assumed:
//!
//! - `agent`: the agent tails one file of `--lines` lines (about 110 bytes each) and ships it to
//!   a receiver that reads each batch, decompresses it and counts its lines (the protocol's
//!   end of a file → TCP measurement): MiB of file per second, the agent's CPU seconds and peak
//!   RSS.
//! - `e2e`: the same file through the real collector (SQLite, full-text index): until every
//!   line is stored.
//! - `ingest`: the collector alone: `--lines` lines in batches of 10,000, zstd-compressed and
//!   encoded beforehand, posted by 4 concurrent senders: lines stored and indexed per second.
//!   Then search latency over what is stored: a rare word, a common word, two words, a level,
//!   a source, a second page, each the median of 5 requests through the HTTP API.
//!
//! `bench/logs.sh` builds the binaries and this example in release mode and runs all three.
//! Usage: `logs_bench <agent|e2e|ingest> [--lines N]`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lookout_protocol::{Batch, Encoding, LogRecord, PROTOCOL_VERSION, Record, encode_batch};
use lookout_tests::{
    bin, collector_toml, free_port, process_figures, start_agent, start_collector,
};

const TOKEN: &str = "bench-agent-token-0123456789abcdef";
const WORDS: &[&str] = &[
    "payment",
    "request",
    "served",
    "user",
    "session",
    "cache",
    "miss",
    "hit",
    "query",
    "slow",
    "order",
    "cart",
    "checkout",
    "timeout",
    "retry",
    "upstream",
    "connection",
    "reset",
    "login",
    "token",
    "refreshed",
    "invoice",
    "queued",
    "worker",
    "job",
    "done",
    "started",
    "disk",
];
const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"];

/// A line of about 110 bytes: time, level, component, a few words, an id; a rare word in one
/// line of 100,000.
fn line(i: u64, rng: &mut fastrand::Rng) -> String {
    let mut s = format!(
        "2026-11-26T12:{:02}:{:02}.{:03}Z {} [svc-{}] ",
        (i / 60_000) % 60,
        (i / 1000) % 60,
        i % 1000,
        LEVELS[rng.usize(..LEVELS.len())],
        rng.u8(..16)
    );
    for _ in 0..6 {
        s.push_str(WORDS[rng.usize(..WORDS.len())]);
        s.push(' ');
    }
    s.push_str(&format!("id={:016x}", rng.u64(..)));
    if i % 100_000 == 7 {
        s.push_str(" zanzibar");
    }
    s
}

fn write_file(path: &Path, lines: u64) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..lines {
        writeln!(out, "{}", line(i, &mut rng)).unwrap();
    }
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn agent_config(dir: &Path, collector: &str, log: &Path) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"bench\"\ncollector = \"{collector}\"\ntoken = \"{TOKEN}\"\ndata_dir = \"{}\"\n\
             [host_metrics]\nenabled = false\n\
             [shipping]\nmax_batch_records = 10000\nmax_batch_bytes = 4194304\nflush_interval = \"200ms\"\n\
             [[logs]]\npaths = [\"{}\"]\nread_from = \"beginning\"\n",
            dir.join("agent").display(),
            log.display()
        ),
    )
    .unwrap();
    path
}

/// A receiver that speaks just enough of the protocol: it reads each batch, decompresses it,
/// counts its log lines and answers 200.
async fn sink(lines: Arc<AtomicU64>) -> u16 {
    use axum::body::Bytes;
    let app = axum::Router::new().route(
        "/v1/ingest",
        axum::routing::post(move |body: Bytes| {
            let lines = lines.clone();
            async move {
                let raw = zstd::decode_all(&body[..]).unwrap_or_default();
                let n = memchr_count(&raw, b"\"source\":");
                lines.fetch_add(n, Ordering::Relaxed);
                "{\"stored\":0,\"duplicate\":false}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn memchr_count(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

async fn agent_bench(lines: u64, through_collector: bool) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let bytes = write_file(&log, lines);
    let received = Arc::new(AtomicU64::new(0));
    let mut collector = None;
    let url = if through_collector {
        let port = free_port();
        let data = dir.path().join("collector");
        let (d, base) = start_collector(
            dir.path(),
            &collector_toml(&data, port.get(), "bench", TOKEN, ""),
        )
        .unwrap();
        collector = Some(d);
        base
    } else {
        format!("http://127.0.0.1:{}", sink(received.clone()).await)
    };
    let config = agent_config(dir.path(), &url, &log);
    let agent_bin = bin("lookout-agent");
    let started = Instant::now();
    let agent = start_agent(&config).unwrap();
    let db = dir.path().join("collector/lookout.db");
    let deadline = started + Duration::from_secs(600);
    loop {
        let done = if through_collector {
            stored(&db).await >= lines
        } else {
            received.load(Ordering::Relaxed) >= lines
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu, rss_kib) = process_figures(agent.pid());
    let got = if through_collector {
        stored(&db).await
    } else {
        received.load(Ordering::Relaxed)
    };
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "{}: {got} of {lines} lines ({mib:.0} MiB, {:.0} bytes/line) in {secs:.2} s: {:.1} MiB/s, {:.0} lines/s; agent {agent_bin:?}: {cpu:.2} CPU s ({:.0} MiB/s per CPU second), peak RSS {:.1} MB",
        if through_collector {
            "file -> collector (stored, indexed)"
        } else {
            "file -> receiver"
        },
        bytes as f64 / lines as f64,
        mib / secs,
        got as f64 / secs,
        mib / cpu.max(0.001),
        rss_kib as f64 / 1024.0,
    );
    if got < lines {
        eprintln!("not every line arrived within 600 s");
        std::process::exit(1);
    }
    drop(agent);
    drop(collector);
}

async fn stored(db: &Path) -> u64 {
    if !db.exists() {
        return 0;
    }
    let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display())).await
    else {
        return 0;
    };
    let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM logs")
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    pool.close().await;
    n as u64
}

async fn ingest_bench(lines: u64) {
    const PER_BATCH: u64 = 10_000;
    const SENDERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Room for every line: no retention by size while measuring.
    let extra = "[storage]\nlog_max_bytes = 107374182400\n";
    let (collector, base) = start_collector(
        dir.path(),
        &collector_toml(dir.path(), port.get(), "bench", TOKEN, extra),
    )
    .unwrap();
    // Encoded beforehand: what is timed is the collector's work.
    let t0 = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut bodies = Vec::new();
    let mut raw_bytes = 0u64;
    for b in 0..lines.div_ceil(PER_BATCH) {
        let records: Vec<Record> = (b * PER_BATCH..((b + 1) * PER_BATCH).min(lines))
            .map(|i| {
                let text = line(i, &mut rng);
                raw_bytes += text.len() as u64 + 1;
                Record::Log(LogRecord {
                    time: t0 + chrono::Duration::microseconds(i as i64 * 300),
                    source: format!("/var/log/app-{}.log", i % 8),
                    level: Some(["info", "info", "warn", "error"][(i % 4) as usize].into()),
                    text,
                    position: None,
                })
            })
            .collect();
        let batch = Batch {
            version: PROTOCOL_VERSION,
            agent: "bench".into(),
            batch_id: format!("b{b}"),
            records,
        };
        bodies.push(encode_batch(&batch, Encoding::Zstd).unwrap());
    }
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let (bodies, next, client, base) =
            (bodies.clone(), next.clone(), client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = bodies.get(i) else { return };
                loop {
                    let resp = client
                        .post(format!("{base}/v1/ingest"))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .header("content-encoding", "zstd")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    if resp.status().is_success() {
                        break;
                    }
                    // 503 (busy): wait as told and send again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu, rss) = process_figures(collector.pid());
    println!(
        "collector ingest + index: {lines} lines ({:.0} MiB of text) in {secs:.1} s: {:.0} lines/s, {:.1} MiB/s; collector {cpu:.1} CPU s, peak RSS {:.0} MB",
        raw_bytes as f64 / (1 << 20) as f64,
        lines as f64 / secs,
        raw_bytes as f64 / (1 << 20) as f64 / secs,
        rss as f64 / 1024.0
    );
    let db = dir.path().join("lookout.db");
    println!(
        "database: {:.0} MiB for {lines} lines ({:.0} bytes per line, index included)",
        dir_bytes(dir.path()) as f64 / (1 << 20) as f64,
        dir_bytes(dir.path()) as f64 / lines as f64
    );
    let _ = db;
    // Search latency through the API.
    let first = search(&client, &base, "q=payment&limit=100").await;
    let cursor = first.1.unwrap_or_default();
    for (what, query) in [
        (
            "rare word (1 line in 100,000)",
            "q=zanzibar&limit=100".to_string(),
        ),
        ("common word, newest 100", "q=payment&limit=100".to_string()),
        (
            "two words, newest 100",
            "q=checkout%20timeout&limit=100".to_string(),
        ),
        (
            "level=error, newest 100",
            "level=error&limit=100".to_string(),
        ),
        (
            "source, newest 100",
            "source=/var/log/app-3.log&limit=100".to_string(),
        ),
        (
            "word + level + source",
            "q=retry&level=warn&source=/var/log/app-2.log&limit=100".to_string(),
        ),
        (
            "common word, second page",
            format!("q=payment&limit=100&cursor={cursor}"),
        ),
        ("no filter, newest 100", "limit=100".to_string()),
    ] {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..5 {
            let t = Instant::now();
            n = search(&client, &base, &query).await.0;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "search over {lines} lines, {what}: median {:.1} ms (max {:.1} ms), {n} lines",
            times[2].as_secs_f64() * 1000.0,
            times[4].as_secs_f64() * 1000.0
        );
    }
    drop(collector);
}

async fn search(client: &reqwest::Client, base: &str, query: &str) -> (usize, Option<String>) {
    let v: serde_json::Value = client
        .get(format!("{base}/api/v1/logs?{query}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = v["lines"].as_array().map_or(0, Vec::len);
    (n, v["next_cursor"].as_str().map(str::to_string))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("agent");
    let lines = args
        .iter()
        .position(|a| a == "--lines")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    match mode {
        "agent" => agent_bench(lines, false).await,
        "e2e" => agent_bench(lines, true).await,
        "ingest" => ingest_bench(lines).await,
        other => {
            eprintln!("unknown mode {other:?}: expected agent, e2e or ingest");
            std::process::exit(2);
        }
    }
}
