//! `lookout-collector backup` under load, and a restore from it (docs/deployment.md, "Backups
//! and restore"): writers post batches to a real collector as agents do, the backup command
//! runs while they post, and a collector started on the copy holds every batch acknowledged
//! before the backup began, found through its API and its store's own table, in a database
//! that passes SQLite's integrity check.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use lookout_protocol::Encoding;
use lookout_tests::{Daemon, READ_TOKEN, bin, eventually, get_json, start_collector};

const WRITERS: usize = 4;
const WAIT: Duration = Duration::from_secs(30);
/// Metric samples in each batch beside its check result, so that the database has volume.
const SAMPLES: usize = 40;
/// Batches each writer has acknowledged before the backup starts.
const BEFORE: u64 = 150;

fn token(k: usize) -> String {
    format!("backup-writer-{k}-token-0123456789abcdef")
}

fn collector_config(dir: &Path) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n",
        dir.display()
    );
    for k in 0..WRITERS {
        text.push_str(&format!(
            "[[agents]]\nname = \"w{k}\"\ntoken = \"{}\"\n",
            token(k)
        ));
    }
    text
}

/// The time of writer `k`'s batch `seq`'s check result: one millisecond apart, from `t0`.
fn result_time(t0: DateTime<Utc>, seq: u64) -> DateTime<Utc> {
    t0 + chrono::Duration::milliseconds(seq as i64)
}

/// Writer `k`'s batch `seq`: a result of its own check `load-k` and [`SAMPLES`] samples.
fn batch(k: usize, seq: u64, t0: DateTime<Utc>) -> Vec<u8> {
    let t = result_time(t0, seq).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut json = format!(
        r#"{{"version":1,"agent":"w{k}","batch_id":"b-{seq}","records":[{{"kind":"check_result","check":"load-{k}","time":"{t}","ok":true,"latency_ms":{}}}"#,
        seq % 100
    );
    for i in 0..SAMPLES {
        json.push_str(&format!(
            r#",{{"kind":"metric","name":"load.m{i}","labels":{{"writer":"w{k}"}},"time":"{t}","value":{seq}}}"#
        ));
    }
    json.push_str("]}");
    zstd::bulk::compress(json.as_bytes(), 1).unwrap()
}

/// What one writer saw: each batch it got a 200 for, with when its last request was sent and
/// when the answer came, and each request's start and duration.
#[derive(Default)]
struct Log {
    acked: Vec<(u64, Instant, Instant)>,
    requests: Vec<(Instant, Duration)>,
}

/// Posts batch after batch as an agent does (one in flight; a failed one sent again with its
/// id) until `stop`.
async fn writer(
    base: String,
    k: usize,
    t0: DateTime<Utc>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> Log {
    let client = reqwest::Client::new();
    let mut log = Log::default();
    let mut seq = 1;
    while !stop.load(Ordering::SeqCst) {
        let sent = Instant::now();
        let answer = client
            .post(format!("{base}/v1/ingest"))
            .bearer_auth(token(k))
            .header("content-type", "application/json")
            .header("content-encoding", Encoding::Zstd.header_value())
            .body(batch(k, seq, t0))
            .send()
            .await;
        let took = sent.elapsed();
        log.requests.push((sent, took));
        match answer {
            Ok(r) if r.status() == 200 => {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["stored"], 1 + SAMPLES as u64, "{body}");
                log.acked.push((seq, sent, Instant::now()));
                acks.fetch_add(1, Ordering::SeqCst);
                seq += 1;
            }
            // Busy or failed: sent again, as an agent would.
            Ok(r) => eprintln!("w{k} batch {seq}: {}", r.status()),
            Err(e) => eprintln!("w{k} batch {seq}: {e}"),
        }
    }
    log
}

fn backup(config: &Path, to: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin("lookout-collector"))
        .args(["--config", config.to_str().unwrap(), "backup", "--to"])
        .arg(to)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

async fn stop(mut d: Daemon) {
    d.signal("TERM").unwrap();
    tokio::task::spawn_blocking(move || d.wait_exit(WAIT).map(|s| (s, d)))
        .await
        .unwrap()
        .map(|(s, d)| assert!(s.success(), "{}", d.log_text()))
        .unwrap();
}

/// The batch ids the store's own table holds for `agent`, read with SQLite directly.
async fn stored_batches(db: &Path, agent: &str) -> Vec<u64> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT batch_id FROM ingested_batches WHERE agent = $1")
            .bind(agent)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    ids.iter()
        .map(|id| id.strip_prefix("b-").unwrap().parse().unwrap())
        .collect()
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_batch_acknowledged_before_it() {
    let (live, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (collector, base) = start_collector(live.path(), &collector_config(live.path())).unwrap();
    let t0 = Utc::now() - chrono::Duration::hours(1);
    let stop_writers = Arc::new(AtomicBool::new(false));
    let acks: Vec<Arc<AtomicU64>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| {
            let w = writer(base.clone(), k, t0, stop_writers.clone(), acks[k].clone());
            tokio::spawn(w)
        })
        .collect();
    // Load first: batches stored by every writer before the copy begins.
    eventually("batches acknowledged before the backup", WAIT, || async {
        Ok(acks
            .iter()
            .all(|a| a.load(Ordering::SeqCst) >= BEFORE)
            .then_some(()))
    })
    .await
    .unwrap();

    let config = live.path().join("collector.toml");
    let copy = elsewhere.path().join("backup.db");
    let began = Instant::now();
    let out = {
        let (config, copy) = (config.clone(), copy.clone());
        tokio::task::spawn_blocking(move || backup(&config, &copy, &[]))
            .await
            .unwrap()
    };
    let ended = Instant::now();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("backed up"), "{said}");
    // The writers go on a while after it, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_writers.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.unwrap());
    }
    stop(collector).await;

    // The copy is private, and is not replaced by a second backup unless asked.
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let again = backup(&config, &copy, &[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");

    // Ingest during the copy: a figure, not an assertion (a benchmark is not a test).
    let during: Vec<Duration> = logs
        .iter()
        .flat_map(|l| &l.requests)
        .filter(|(at, d)| *at + *d >= began && *at <= ended)
        .map(|(_, d)| *d)
        .collect();
    let outside: Vec<Duration> = logs
        .iter()
        .flat_map(|l| &l.requests)
        .filter(|(at, d)| *at + *d < began || *at > ended)
        .map(|(_, d)| *d)
        .collect();
    eprintln!(
        "backup of {} bytes took {:?} while {} writers posted; ingest answers during it: {} \
         (p50 {:?}, max {:?}), outside it: {} (p50 {:?}, max {:?})",
        std::fs::metadata(&copy).unwrap().len(),
        ended - began,
        WRITERS,
        during.len(),
        percentile(during.clone(), 0.5),
        during.iter().max().copied().unwrap_or_default(),
        outside.len(),
        percentile(outside.clone(), 0.5),
        outside.iter().max().copied().unwrap_or_default(),
    );
    assert!(!during.is_empty(), "the writers posted while the copy ran");

    // Restore as docs/deployment.md says, in place: the collector stopped, its -wal and -shm
    // removed (they belong to the file being replaced: left there, SQLite would apply the old
    // WAL to the copy), the copy moved in, the collector started.
    let db = live.path().join("lookout.db");
    for stale in ["lookout.db-wal", "lookout.db-shm"] {
        let path = live.path().join(stale);
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::rename(&copy, &db).unwrap();
    let (collector, base) = start_collector(live.path(), &collector_config(live.path())).unwrap();
    let check = |db: PathBuf| async move {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
        let r: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        r
    };
    assert_eq!(check(db.clone()).await, "ok");
    let mut before_total = 0;
    let mut after_included = 0;
    for (k, log) in logs.iter().enumerate() {
        let before: Vec<u64> = log
            .acked
            .iter()
            .filter(|(_, _, at)| *at < began)
            .map(|(s, _, _)| *s)
            .collect();
        // Sent after the copy was done: not in it, so not in the restored database.
        let later: Vec<u64> = log
            .acked
            .iter()
            .filter(|(_, sent, _)| *sent > ended)
            .map(|(s, _, _)| *s)
            .collect();
        assert!(!later.is_empty(), "w{k} posted after the backup");
        assert!(!before.is_empty(), "w{k} had batches acknowledged before");
        before_total += before.len();
        // The store's table.
        let stored = stored_batches(&db, &format!("w{k}")).await;
        let missing: Vec<_> = before.iter().filter(|s| !stored.contains(s)).collect();
        assert!(
            missing.is_empty(),
            "w{k}: acknowledged, not restored: {missing:?}"
        );
        let resurrected: Vec<_> = later.iter().filter(|s| stored.contains(s)).collect();
        assert!(
            resurrected.is_empty(),
            "w{k}: sent after the backup, yet in the restored database: {resurrected:?}"
        );
        after_included += stored.len() - before.len();
        // The API: each result of an acknowledged batch, at its time.
        let from = result_time(t0, 0).to_rfc3339_opts(SecondsFormat::Millis, true);
        let to = result_time(t0, 100_000).to_rfc3339_opts(SecondsFormat::Millis, true);
        let j = get_json(&format!(
            "{base}/api/v1/checks/load-{k}/results?from={from}&to={to}&limit=10000"
        ))
        .await
        .unwrap();
        let times: std::collections::HashSet<String> = j["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                DateTime::parse_from_rfc3339(r["time"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            })
            .collect();
        let absent: Vec<_> = before
            .iter()
            .filter(|s| {
                !times.contains(&result_time(t0, **s).to_rfc3339_opts(SecondsFormat::Millis, true))
            })
            .collect();
        assert!(
            absent.is_empty(),
            "w{k}: results not in the API: {absent:?}"
        );
        assert_eq!(times.len(), stored.len(), "w{k}: one result a stored batch");
    }
    eprintln!(
        "{before_total} batches acknowledged before the backup began, all restored; {after_included} \
         acknowledged after it began were in the copy too"
    );
    stop(collector).await;
}

/// On PostgreSQL the command makes no copy: it prints the pg_dump line without the URL's
/// password, says whether pg_dump is on PATH, and exits 1.
#[test]
fn on_postgresql_it_says_the_pg_dump_command_and_whether_pg_dump_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[storage]\n\
             url = \"postgres://lookout:pw-0123456789-secret@db.example:5432/lookout?sslmode=require\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let tools = dir.path().join("bin");
    std::fs::create_dir(&tools).unwrap();
    let run = |path: &Path| {
        Command::new(bin("lookout-collector"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "backup",
                "--to",
                "/tmp/x.dump",
            ])
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let out = run(&tools);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "pg_dump --format=custom --no-owner --file='/tmp/x.dump' \
             'postgres://lookout@db.example:5432/lookout?sslmode=require'"
        ),
        "{err}"
    );
    assert!(err.contains("pg_dump is not on PATH"), "{err}");
    assert!(!err.contains("pw-0123456789-secret"), "{err}");
    assert!(out.stdout.is_empty());

    let pg_dump = tools.join("pg_dump");
    std::fs::write(&pg_dump, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&pg_dump, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(&tools);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("pg_dump is {}", pg_dump.display())),
        "{err}"
    );
    assert!(!err.contains("pw-0123456789-secret"), "{err}");
}
