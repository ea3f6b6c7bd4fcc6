//! What the spool's fsync policy costs: records written per second under each policy, with a
//! syncer running as the agent runs it (every interval, on another thread).
//!
//! ```sh
//! cargo run --release -p lookout-agent --example spool_bench
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_agent::spool::{FsyncPolicy, Spool, SpoolConfig};
use lookout_protocol::{CheckResult, Record, Timings};

fn main() {
    let record = Record::CheckResult(CheckResult {
        check: "api-health".into(),
        check_type: Some(lookout_config::CheckType::Http),
        time: chrono::Utc::now(),
        ok: true,
        latency_ms: 12.5,
        error: None,
        status_code: Some(200),
        cert_expiry: None,
        timings: Timings {
            total_ms: Some(12.5),
            ttfb_ms: Some(11.0),
            ..Timings::default()
        },
    });
    for (name, policy, n) in [
        ("never", FsyncPolicy::Never, 200_000),
        (
            "every 100ms (default)",
            FsyncPolicy::Every(Duration::from_millis(100)),
            200_000,
        ),
        ("always", FsyncPolicy::Always, 2_000),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Arc::new(
            Spool::open(SpoolConfig {
                dir: dir.path().to_path_buf(),
                max_bytes: 1 << 30,
                segment_bytes: 8 << 20,
                fsync: policy,
                batch_bytes: 1 << 20,
                flush_interval: std::time::Duration::from_secs(1),
                steady_wait: std::time::Duration::from_secs(10),
            })
            .expect("open"),
        );
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let syncer = {
            let (spool, done) = (spool.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    spool.flush();
                }
            })
        };
        let start = Instant::now();
        for _ in 0..n {
            spool.push(&record);
        }
        let secs = start.elapsed().as_secs_f64();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        syncer.join().expect("syncer");
        println!(
            "fsync {name:<22} {:>9.0} records/s ({n} records, {:.2} s)",
            n as f64 / secs,
            secs
        );
    }
}
