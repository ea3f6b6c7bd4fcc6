//! Log shipping end to end, with the real binaries: a writer aiming at 60,000 lines/s that
//! rotates its file by rename and by copytruncate, turn about, while the agent is killed
//! (`kill -9`) and restarted in the middle. Every line must be stored exactly once, and each
//! file's lines in their order.
//!
//! The rate the writer kept is printed, not asserted: on a slow or busy machine it writes
//! fewer lines, which is no reason for a test of correctness to fail (the agent's throughput
//! is measured by `tests/examples/logs_bench.rs`, see docs/logs.md).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use lookout_tests::logs::{LogsRig, stored_lines};
use lookout_tests::start_agent;

/// Lines per second the writer aims at, and for how long.
const RATE: u64 = 60_000;
const WRITE_FOR: Duration = Duration::from_secs(6);
/// A rotation every this long, by rename and by copytruncate in turn.
const ROTATE_EVERY: Duration = Duration::from_millis(700);

/// What the writer did: lines written per file generation, and its rate.
struct Written {
    per_generation: Vec<u64>,
    rate: f64,
}

/// Writes `g<generation> n<seq>` lines to `dir/app.log` at [`RATE`] for [`WRITE_FOR`], rotating
/// every [`ROTATE_EVERY`]: by rename (a new `app.log` follows) and by copytruncate (copied to
/// `app.log.cN`, then truncated in place), as logrotate does. The writer rotates between two
/// writes, so no line falls between the copy and the truncation (with logrotate, such lines
/// are lost by copytruncate's design, not by the agent).
fn write_and_rotate(dir: &Path) -> Written {
    let path = dir.join("app.log");
    let open = |p: &Path| {
        BufWriter::with_capacity(
            1 << 16,
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap(),
        )
    };
    let mut out = open(&path);
    let mut per_generation = vec![0u64];
    let started = Instant::now();
    let mut last_rotation = started;
    let mut rotations = 0;
    let mut total = 0u64;
    while started.elapsed() < WRITE_FOR {
        // Keep to the rate: write what is due by now, in one go.
        let due = (started.elapsed().as_secs_f64() * RATE as f64) as u64;
        let generation = per_generation.len() - 1;
        while total < due {
            let seq = per_generation[generation];
            writeln!(
                out,
                "g{generation:03} n{seq:08} payment service handled request"
            )
            .unwrap();
            per_generation[generation] += 1;
            total += 1;
        }
        out.flush().unwrap();
        if last_rotation.elapsed() >= ROTATE_EVERY {
            rotations += 1;
            if rotations % 2 == 1 {
                fs::rename(&path, dir.join(format!("app.log.r{rotations}"))).unwrap();
                out = open(&path);
            } else {
                fs::copy(&path, dir.join(format!("app.log.c{rotations}"))).unwrap();
                File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
            per_generation.push(0);
            last_rotation = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Written {
        per_generation,
        rate: total as f64 / started.elapsed().as_secs_f64(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_stored_once_in_order_through_rotations_and_a_kill() {
    let logs = tempfile::tempdir().unwrap();
    let rig = LogsRig::new(
        &[&logs.path().join("app.log*")],
        "max_batch_records = 10000\nmax_batch_bytes = 4194304\nmax_backoff = \"500ms\"",
    )
    .unwrap();
    let config = &rig.config;
    let agent = start_agent(config).unwrap();
    let dir = logs.path().to_path_buf();
    let writer = std::thread::spawn(move || write_and_rotate(&dir));
    // Killed in the middle of the writing, and started again a moment later.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    agent.signal("KILL").unwrap();
    drop(agent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let agent = start_agent(config).unwrap();
    let written = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let total: u64 = written.per_generation.iter().sum();
    let db = &rig.db;
    // Until every line is there (or 90 s): then count what is there, lost and twice alike.
    let deadline = Instant::now() + Duration::from_secs(90);
    let rows = loop {
        let rows = stored_lines(db).await.unwrap();
        if rows.len() as u64 >= total || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Parse, count and order.
    let mut seen: HashMap<(usize, u64), u32> = HashMap::new();
    let mut by_generation: HashMap<usize, Vec<(i64, i64, u64)>> = HashMap::new();
    for (time, id, text) in &rows {
        let mut parts = text.split_whitespace();
        let generation: usize = parts.next().unwrap()[1..].parse().unwrap();
        let seq: u64 = parts.next().unwrap()[1..].parse().unwrap();
        *seen.entry((generation, seq)).or_default() += 1;
        by_generation
            .entry(generation)
            .or_default()
            .push((*time, *id, seq));
    }
    let duplicated: u32 = seen.values().map(|n| n - 1).sum();
    let lost = written
        .per_generation
        .iter()
        .enumerate()
        .flat_map(|(g, n)| (0..*n).map(move |s| (g, s)))
        .filter(|k| !seen.contains_key(k))
        .count();
    eprintln!(
        "logs e2e: writer {:.0} lines/s, {} files, {} lines written, {} stored, {} duplicated, {} lost",
        written.rate,
        written.per_generation.len(),
        total,
        rows.len(),
        duplicated,
        lost
    );
    if lost > 0 {
        for (g, n) in written.per_generation.iter().enumerate() {
            let missing: Vec<u64> = (0..*n).filter(|s| !seen.contains_key(&(g, *s))).collect();
            if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                eprintln!(
                    "generation {g}: {} of {n} lost, from n{first} to n{last}",
                    missing.len()
                );
            }
        }
        eprintln!("agent log:\n{}", agent.log_text());
    }
    if written.rate < 50_000.0 {
        eprintln!(
            "logs e2e: the writer kept {:.0} lines/s, under the 50,000 aimed at (a slow or busy \
             machine); every assertion below holds at any rate",
            written.rate
        );
    }
    assert_eq!(duplicated, 0, "lines stored twice");
    assert_eq!(lost, 0, "lines lost");
    assert_eq!(rows.len() as u64, total);
    // In order within each file, as the API serves them (time, then arrival).
    for (generation, mut lines) in by_generation {
        lines.sort();
        let seqs: Vec<u64> = lines.iter().map(|l| l.2).collect();
        let first_disorder = seqs.windows(2).position(|w| w[0] > w[1]);
        assert_eq!(first_disorder, None, "generation {generation} out of order");
    }
}
