//! HTTP probes per CPU-second: runs `--probes N` probes of `--url` (a new connection each, as
//! the agent does) with `--concurrency C` at once, on one thread as the agent runs, and prints
//! the CPU time this process used (user + system, from /proc/self/stat) and the rate.
//!
//! `cargo run --release -p lookout-agent --example probe_bench -- --url http://127.0.0.1:8080/ --probes 20000`
//! (bench/probes.sh runs it beside blackbox_exporter against the same nginx.)

use std::time::Instant;

use lookout_agent::probes::Prober;
use lookout_config::CheckConfig;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() {
    let mut url = String::from("http://127.0.0.1:8080/");
    let mut probes = 20_000usize;
    let mut concurrency = 16usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next().expect("--url URL"),
            "--probes" => {
                probes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--probes N")
            }
            "--concurrency" => {
                concurrency = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--concurrency C")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let check: CheckConfig = serde_json::from_value(serde_json::json!({
        "name": "bench", "type": "http", "url": url, "interval": "10s", "timeout": "5s"
    }))
    .expect("a valid check");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (ok, failed, wall, cpu) = runtime.block_on(async move {
        let prober = Prober::new(concurrency);
        // Warm up: the first probe builds what probes share.
        let first = prober.probe(&check).await;
        assert!(first.ok, "the target must answer 2xx: {:?}", first.error);
        let cpu0 = cpu_seconds();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let per = probes / concurrency;
        for _ in 0..concurrency {
            let (prober, check) = (prober.clone(), check.clone());
            tasks.spawn(async move {
                let mut ok = 0usize;
                for _ in 0..per {
                    if prober.probe(&check).await.ok {
                        ok += 1;
                    }
                }
                ok
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            ok += r.expect("a probe task");
        }
        let wall = started.elapsed().as_secs_f64();
        (ok, per * concurrency - ok, wall, cpu_seconds() - cpu0)
    });
    println!(
        "lookout probes={} failed={failed} wall_s={wall:.2} cpu_s={cpu:.2} probes_per_cpu_s={:.0} probes_per_s={:.0}",
        ok + failed,
        (ok + failed) as f64 / cpu.max(0.01),
        (ok + failed) as f64 / wall
    );
}
