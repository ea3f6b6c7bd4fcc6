//! What decoding a batch costs, per record: `cargo run --release -p lookout-protocol --example
//! decode_bench [-- --records 5000 --rounds 200]`. Batches are shaped as the load generator's
//! (and an agent's host metrics): metric samples with one label, or check results.
use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use lookout_protocol::{
    Batch, CheckResult, Encoding, MetricSample, MetricType, PROTOCOL_VERSION, Record,
    ZstdBatchEncoder, decode_batch, encode_batch,
};

const NAMES: [&str; 5] = [
    "system.cpu.utilization",
    "system.memory.usage",
    "system.filesystem.usage",
    "system.network.io",
    "system.disk.io",
];

/// What decoding a batch costs, per record.
#[derive(clap::Parser)]
struct Args {
    /// Records a batch.
    #[arg(long, default_value_t = 5000)]
    records: usize,
    /// Decodes of each batch; the best is reported.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
}

fn batch(records: Vec<Record>) -> Batch {
    Batch {
        version: PROTOCOL_VERSION,
        agent: "bench-agent".into(),
        batch_id: "b-1".into(),
        records,
    }
}

fn samples(n: usize) -> Vec<Record> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let s = i % 160;
            Record::Metric(MetricSample {
                name: NAMES[s % NAMES.len()].to_string(),
                labels: BTreeMap::from([("device".to_string(), format!("dev{}", s / 5))]),
                time: now,
                value: (i as f64 * 0.37) % 100.0,
                metric_type: if s % 3 == 0 {
                    MetricType::Counter
                } else {
                    MetricType::Gauge
                },
            })
        })
        .collect()
}

fn results(n: usize) -> Vec<Record> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            Record::CheckResult(CheckResult {
                check: format!("check-{}", i % 10),
                check_type: None,
                time: now,
                ok: true,
                latency_ms: 5.0 + (i % 50) as f64,
                error: None,
                status_code: Some(200),
                cert_expiry: None,
                timings: Default::default(),
            })
        })
        .collect()
}

fn main() {
    let Args { records: n, rounds } = clap::Parser::parse();
    for (kind, records) in [
        ("metric samples", samples(n)),
        ("check results", results(n)),
    ] {
        let b = batch(records);
        let json = encode_batch(&b, Encoding::Identity).expect("encodes");
        // As agents compress: one frame that records its size.
        let zstd = ZstdBatchEncoder::new()
            .and_then(|mut e| e.encode(&b))
            .expect("encodes");
        let mut best = [f64::MAX; 2];
        for _ in 0..rounds {
            let t = Instant::now();
            let decoded = decode_batch(&zstd, Encoding::Zstd, 64 << 20).expect("decodes");
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            assert_eq!(decoded.records.len(), n);
            let t = Instant::now();
            let decoded = decode_batch(&json, Encoding::Identity, 64 << 20).expect("decodes");
            best[1] = best[1].min(t.elapsed().as_secs_f64());
            assert_eq!(decoded.records.len(), n);
        }
        let per = |s: f64| s / n as f64 * 1e9;
        println!(
            "{kind}: {n} a batch, {:.0} B JSON each; decode (best of {rounds}): zstd + JSON {:.0} ns, JSON alone {:.0} ns a record",
            json.len() as f64 / n as f64,
            per(best[0]),
            per(best[1]),
        );
    }
}
