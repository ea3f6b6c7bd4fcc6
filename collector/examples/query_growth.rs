//! How query time grows with stored data: the same queries against one SQLite database as it
//! grows to 1x, 10x and 100x, the data growing as a database ages (more history for the same
//! 10 checks, 20 metric series and one log source, not more series).
//!
//! ```sh
//! cargo run --release -p lookout-collector --example query_growth
//! ```
//!
//! 1x is 20,000 check results (10 checks every 30 s: 16.7 hours), 20,000 metric samples and
//! 5,000 log lines; each step adds the history before it, through the real ingest and roll-up.
//! Each query runs 20 times; the median is printed, with the rows it returned.

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lookout_collector::store::{
    self, LogQuery, ResultQuery, RollupQuery, Store, Tier, TotalsWidth,
};
use lookout_protocol::{
    Batch, CheckResult, LogRecord, MetricSample, MetricType, PROTOCOL_VERSION, Record, Timings,
};

const CHECKS: usize = 10;
const SERIES: usize = 20;
const RESULTS_1X: usize = 20_000;
const SAMPLES_1X: usize = 20_000;
const LOGS_1X: usize = 5_000;

/// The newest data ends here; older steps go further back.
fn end() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_795_000_000_000).unwrap()
}

fn records(from_unit: usize, to_unit: usize) -> Vec<Record> {
    let mut out = Vec::new();
    // Unit u covers results u*RESULTS_1X.. counted back from the end.
    for u in from_unit..to_unit {
        for i in 0..RESULTS_1X {
            let n = u * RESULTS_1X + i;
            let back = Duration::seconds(30 * (n / CHECKS) as i64);
            out.push(Record::CheckResult(CheckResult {
                check: format!("check-{}", n % CHECKS),
                check_type: Some(lookout_config::CheckType::Http),
                time: end() - back,
                ok: !n.is_multiple_of(97),
                latency_ms: 5.0 + (n % 190) as f64,
                error: n
                    .is_multiple_of(97)
                    .then(|| "status 503, expected 2xx".into()),
                status_code: Some(200),
                cert_expiry: None,
                timings: Timings::default(),
            }));
        }
        for i in 0..SAMPLES_1X {
            let n = u * SAMPLES_1X + i;
            let back = Duration::seconds(60 * (n / SERIES) as i64);
            out.push(Record::Metric(MetricSample {
                name: "system.cpu.utilization".into(),
                labels: [("cpu".to_string(), (n % SERIES).to_string())].into(),
                time: end() - back,
                value: (n % 100) as f64 / 100.0,
                metric_type: MetricType::Gauge,
            }));
        }
        for i in 0..LOGS_1X {
            let n = u * LOGS_1X + i;
            let back = Duration::seconds(12 * n as i64);
            let word = if n.is_multiple_of(1000) {
                "rareword"
            } else {
                "request"
            };
            out.push(Record::Log(LogRecord {
                time: end() - back,
                source: "/var/log/app.log".into(),
                level: Some(
                    if n.is_multiple_of(50) {
                        "error"
                    } else {
                        "info"
                    }
                    .into(),
                ),
                text: format!("GET /api/items/{n} {word} handled in {} ms", n % 300),
                position: None,
            }));
        }
    }
    out
}

async fn grow(s: &dyn Store, from_unit: usize, to_unit: usize) {
    let all = records(from_unit, to_unit);
    for (i, chunk) in all.chunks(5_000).enumerate() {
        let b = Batch {
            version: PROTOCOL_VERSION,
            agent: "host".into(),
            batch_id: format!("u{from_unit}-{i}"),
            records: chunk.to_vec(),
        };
        s.ingest("host", &b, Utc::now()).await.expect("ingest");
    }
    while s.roll_up(100_000).await.expect("roll-up") > 0 {}
}

async fn median<F, Fut>(mut f: F) -> (f64, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..20 {
        let t = Instant::now();
        rows = f().await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], rows)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let s = store::open(&url, &Default::default()).await.expect("store");
    let s = &*s;
    let mut units = 0;
    println!("| query | 1x | 10x | 100x |");
    println!("|---|---|---|---|");
    let mut table: Vec<(String, Vec<String>)> = Vec::new();
    for scale in [1usize, 10, 100] {
        let t = Instant::now();
        grow(s, units, scale).await;
        units = scale;
        let size = std::fs::metadata(dir.path().join("q.db"))
            .map(|m| m.len())
            .unwrap_or(0)
            + std::fs::metadata(dir.path().join("q.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        eprintln!(
            "{scale}x: {} results, {} samples, {} log lines; grown in {:.1} s; database {:.0} MB",
            scale * RESULTS_1X,
            scale * SAMPLES_1X,
            scale * LOGS_1X,
            t.elapsed().as_secs_f64(),
            size as f64 / 1e6
        );
        let hour_ago = end() - Duration::hours(1);
        let queries: Vec<(&str, (f64, usize))> = vec![
            (
                "a check's raw results, last hour (limit 1000)",
                median(|| async {
                    s.results(&ResultQuery {
                        check: "check-3".into(),
                        agent: None,
                        from: hour_ago,
                        to: end(),
                        limit: 1000,
                    })
                    .await
                    .unwrap()
                    .len()
                })
                .await,
            ),
            (
                "a check's hourly rollups, 90 days (uptime step=1d)",
                median(|| async {
                    s.check_rollups(&RollupQuery {
                        name: "check-3".into(),
                        agent: None,
                        tier: Tier::Hour,
                        from: end() - Duration::days(90),
                        to: end(),
                    })
                    .await
                    .unwrap()
                    .len()
                })
                .await,
            ),
            (
                "every check's daily totals, 90 days (status page)",
                median(|| async {
                    s.check_totals(TotalsWidth::Day, end() - Duration::days(90))
                        .await
                        .unwrap()
                        .len()
                })
                .await,
            ),
            (
                "latest result of every check",
                median(|| async { s.latest_results().await.unwrap().len() }).await,
            ),
            (
                "a metric's raw samples, last hour",
                median(|| async {
                    s.metric_samples(&RollupQuery {
                        name: "system.cpu.utilization".into(),
                        agent: Some("host".into()),
                        tier: Tier::Minute,
                        from: hour_ago,
                        to: end(),
                    })
                    .await
                    .unwrap()
                    .len()
                })
                .await,
            ),
            (
                "a metric's per-minute rollups, 6 hours",
                median(|| async {
                    s.metric_rollups(&RollupQuery {
                        name: "system.cpu.utilization".into(),
                        agent: Some("host".into()),
                        tier: Tier::Minute,
                        from: end() - Duration::hours(6),
                        to: end(),
                    })
                    .await
                    .unwrap()
                    .len()
                })
                .await,
            ),
            (
                "log search, common word, newest 100",
                median(|| async { logs(s, "request").await }).await,
            ),
            (
                "log search, rare word, newest 100",
                median(|| async { logs(s, "rareword").await }).await,
            ),
        ];
        for (i, (name, (ms, rows))) in queries.into_iter().enumerate() {
            if table.len() <= i {
                table.push((name.to_string(), Vec::new()));
            }
            table[i].1.push(format!("{ms:.2} ms ({rows} rows)"));
        }
    }
    for (name, cells) in table {
        println!("| {name} | {} |", cells.join(" | "));
    }
    agent_shaped_raw_reads(s).await;
}

/// Raw samples are stored in blocks of an agent's batch (store/blocks.rs), so a query of one
/// metric decodes every series of its agent over the window. Here an agent as the bench's:
/// 160 series (8 of them the queried metric's) every 10 s, for the longest raw window, 6 hours.
async fn agent_shaped_raw_reads(s: &dyn Store) {
    const SERIES: usize = 160;
    let batches = 6 * 360;
    for b in 0..batches {
        let time = end() - Duration::seconds(10 * (batches - 1 - b) as i64);
        let records = (0..SERIES)
            .map(|i| {
                let (name, label) = match i {
                    0..8 => ("system.cpu.utilization", "cpu"),
                    _ => ("system.network.io", "device"),
                };
                Record::Metric(MetricSample {
                    name: name.into(),
                    labels: [(label.to_string(), i.to_string())].into(),
                    time,
                    value: (b * i % 100) as f64,
                    metric_type: MetricType::Gauge,
                })
            })
            .collect();
        let batch = Batch {
            version: PROTOCOL_VERSION,
            agent: "busy-host".into(),
            batch_id: format!("busy-{b}"),
            records,
        };
        s.ingest("busy-host", &batch, Utc::now())
            .await
            .expect("ingest");
    }
    for hours in [1, 6] {
        let (ms, rows) = median(|| async {
            s.metric_samples(&RollupQuery {
                name: "system.cpu.utilization".into(),
                agent: Some("busy-host".into()),
                tier: Tier::Minute,
                from: end() - Duration::hours(hours),
                to: end(),
            })
            .await
            .unwrap()
            .len()
        })
        .await;
        println!(
            "\nAn agent sending {SERIES} series every 10 s: raw samples of its 8-series metric, \
             {hours} h: {ms:.2} ms ({rows} rows, {} blocks of {SERIES} samples read)",
            hours * 360 + 1
        );
    }
}

async fn logs(s: &dyn Store, word: &str) -> usize {
    s.logs(&LogQuery {
        text: Some(word.into()),
        agent: None,
        source: None,
        level: None,
        before: None,
        from: DateTime::<Utc>::UNIX_EPOCH,
        to: end(),
        limit: 100,
    })
    .await
    .unwrap()
    .len()
}
