//! End to end, the HTTP server's limits of docs/security.md ("Limits") with the real collector:
//! clients that send a byte a second, bodies far past a route's limit, too many live-tail
//! readers, too many connections and an answer the store holds up. Each is answered with its
//! status and sentence, or closed, while the collector keeps answering everyone else in normal
//! time.

use std::time::{Duration, Instant};

use anyhow::Result;
use lookout_protocol::{Batch, Encoding, PROTOCOL_VERSION, encode_batch};
use lookout_tests::{Daemon, READ_TOKEN, collector_toml, eventually, free_port, start_collector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AGENT: &str = "edge-1";
const AGENT_TOKEN: &str = "hostile-agent-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "hostile-admin-token-0123456789abcdef";

/// A collector with `[server]` settings `server` (added after the usual ones).
fn collector(dir: &std::path::Path, server: &str) -> (Daemon, String) {
    let port = free_port();
    let text = collector_toml(dir, port.get(), AGENT, AGENT_TOKEN, "").replacen(
        "[[agents]]",
        &format!("admin_token = \"{ADMIN_TOKEN}\"\n{server}\n[[agents]]"),
        1,
    );
    drop(port);
    start_collector(dir, &text).unwrap()
}

/// The collector's resident memory now, in KiB (/proc/PID/status VmRSS).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// This process's open-files limit raised to its hard limit (the tests open thousands).
fn raise_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let soft = getrlimit(Resource::Nofile).current;
    assert!(
        soft.is_none_or(|n| n >= 4500),
        "open-files limit {soft:?} is too low for this test"
    );
}

/// `host:port` of a base URL.
fn authority(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// How a slow connection ended: when (after its start) the collector closed it, and what it
/// had been answered.
struct Ended {
    after: Duration,
    answer: String,
}

/// A connection that sends `head` at once, then `slowly` one byte a second, until the
/// collector closes it; `None` if it is still open after 30 s.
async fn trickle(base: String, head: &'static [u8], slowly: &'static [u8]) -> Option<Ended> {
    let started = Instant::now();
    let stream = TcpStream::connect(authority(&base))
        .await
        .expect("the collector takes the connection");
    let (mut rx, mut tx) = stream.into_split();
    let writer = tokio::spawn(async move {
        if tx.write_all(head).await.is_err() {
            return;
        }
        for byte in slowly.iter().cycle() {
            if tx.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .is_ok();
    writer.abort();
    closed.then(|| Ended {
        after: started.elapsed(),
        answer: String::from_utf8_lossy(&answer).into_owned(),
    })
}

/// File descriptors the process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// An empty batch for `AGENT`: stored (nothing) and answered 200.
fn empty_batch(id: &str) -> Vec<u8> {
    let batch = Batch {
        version: PROTOCOL_VERSION,
        agent: AGENT.into(),
        batch_id: id.into(),
        records: Vec::new(),
    };
    encode_batch(&batch, Encoding::Identity).unwrap()
}

/// The time `/healthz` and an ingest request take, each answered 200.
async fn answer_times(base: &str, id: &str) -> (Duration, Duration) {
    // A fresh client: a new connection, as a new agent or browser would open.
    let client = reqwest::Client::new();
    let t = Instant::now();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let health_took = t.elapsed();
    let t = Instant::now();
    let ingest = client
        .post(format!("{base}/v1/ingest"))
        .bearer_auth(AGENT_TOKEN)
        .header("content-type", "application/json")
        .body(empty_batch(id))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 200, "{:?}", ingest.text().await);
    (health_took, t.elapsed())
}

const SLOW_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: lookout\r\n\r\n";
const BODY_HEAD: &[u8] = b"POST /login HTTP/1.1\r\nHost: lookout\r\n\
content-type: application/x-www-form-urlencoded\r\ncontent-length: 1000\r\n\r\n";
const SLOW_BODY: &[u8] = b"token=not-the-admin-token-but-it-never-gets-that-far";

/// Slowloris: 1,000 connections that send their headers a byte a second and 1,000 that send
/// a body a byte a second. While they are open the collector answers `/healthz` and an ingest
/// request in normal time; each is closed after its deadline (3 s here), the slow bodies with
/// a 408 and its sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_cut_off_while_others_are_answered() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = collector(dir.path(), "header_timeout = \"3s\"\nbody_timeout = \"3s\"");
    let pid = collector.pid();
    let (health, ingest) = answer_times(&base, "warm-up").await;
    let fds_before = open_fds(pid);
    // The warm-up's own connection may close meanwhile: 2,000 slow ones, give or take it.
    const HELD: usize = 1990;
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..1000 {
        slow.push(tokio::spawn(trickle(base.clone(), b"", SLOW_HEAD)));
        slow.push(tokio::spawn(trickle(base.clone(), BODY_HEAD, SLOW_BODY)));
    }
    eventually(
        "the collector holds the 2,000 slow connections",
        Duration::from_secs(10),
        || async { Ok((open_fds(pid) >= fds_before + HELD).then_some(())) },
    )
    .await
    .unwrap();
    let all_open = started.elapsed();
    let (health_slow, ingest_slow) = answer_times(&base, "under-slowloris").await;
    let still_open = open_fds(pid);
    let rss_during = rss_kib(pid);
    println!(
        "2,000 slow connections open after {all_open:?}; /healthz {health_slow:?} (idle: {health:?}), \
         ingest {ingest_slow:?} (idle: {ingest:?}); RSS {rss_before} KiB before, {rss_during} KiB with them"
    );
    assert!(
        still_open >= fds_before + HELD,
        "the answers were timed while the slow connections were open ({still_open} fds)"
    );
    assert!(
        health_slow < Duration::from_secs(2),
        "/healthz took {health_slow:?}"
    );
    assert!(
        ingest_slow < Duration::from_secs(2),
        "ingest took {ingest_slow:?}"
    );

    let mut heads = Vec::new();
    let mut bodies = Vec::new();
    for (i, task) in slow.into_iter().enumerate() {
        let ended = task
            .await
            .unwrap()
            .expect("closed by the collector within 30 s");
        if i % 2 == 0 {
            heads.push(ended);
        } else {
            bodies.push(ended);
        }
    }
    for (what, ended) in [("headers", &heads), ("body", &bodies)] {
        let first = ended.iter().map(|e| e.after).min().unwrap();
        let last = ended.iter().map(|e| e.after).max().unwrap();
        println!("slow {what}: closed between {first:?} and {last:?} after their start");
        // Not before their deadline, and soon after it.
        assert!(
            first >= Duration::from_millis(2900),
            "{what}: one closed after {first:?}"
        );
        assert!(
            last < Duration::from_secs(12),
            "{what}: one closed after {last:?}"
        );
    }
    for e in &heads {
        assert!(!e.answer.starts_with("HTTP/1.1 2"), "{}", e.answer);
    }
    for e in &bodies {
        assert!(e.answer.starts_with("HTTP/1.1 408"), "{}", e.answer);
        assert!(
            e.answer
                .contains("did not arrive within 3s ([server] body_timeout)"),
            "{}",
            e.answer
        );
    }
    eventually(
        "their descriptors are closed",
        Duration::from_secs(10),
        || async { Ok((open_fds(pid) < fds_before + 20).then_some(())) },
    )
    .await
    .unwrap();
    answer_times(&base, "after").await;
    println!("RSS after: {} KiB", rss_kib(pid));
    assert!(
        !collector.log_text().contains("panicked"),
        "{}",
        collector.log_text()
    );
}

const FIFTY_MIB: u64 = 50 << 20;

/// Posts 50 MiB to `path` (with a Content-Length, or chunked), and returns the answer and how
/// much of the body had been sent when its first bytes came back.
async fn post_fifty_mib(base: &str, path: &str, chunked: bool) -> (String, u64, Duration) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let stream = TcpStream::connect(authority(base)).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    let framing = if chunked {
        "transfer-encoding: chunked".to_string()
    } else {
        format!("content-length: {FIFTY_MIB}")
    };
    // What each route reads, so that the body is what it refuses.
    let kind = if path == "/login" {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: lookout\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: {kind}\r\n{framing}\r\n\r\n"
    );
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        tx.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 << 10];
        let prefix = format!("{:x}\r\n", chunk.len());
        while counter.load(Ordering::Relaxed) < FIFTY_MIB {
            if chunked {
                tx.write_all(prefix.as_bytes()).await?;
            }
            tx.write_all(&chunk).await?;
            if chunked {
                tx.write_all(b"\r\n").await?;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if chunked {
            tx.write_all(b"0\r\n\r\n").await?;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered_at = None;
    let read = async {
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answered_at.get_or_insert((sent.load(Ordering::Relaxed), started.elapsed()));
                    answer.extend_from_slice(&buf[..n]);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the collector answers and closes");
    writer.abort();
    let (sent, took) = answered_at.expect("an answer");
    (String::from_utf8_lossy(&answer).into_owned(), sent, took)
}

/// 50 MiB posted to `/login`, a silence endpoint and an unknown route: 413 with its sentence
/// while the client is still sending (after a fraction of the body), and the collector's
/// memory stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_bodies_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, base) = collector(dir.path(), "");
    let pid = collector.pid();
    answer_times(&base, "warm-up").await;
    let rss_before = rss_kib(pid);
    let mut peak = rss_before;
    for (path, chunked) in [
        ("/login", false),
        ("/api/v1/silences", false),
        ("/no/such/route", false),
        ("/login", true),
        ("/api/v1/silences", true),
    ] {
        for _ in 0..3 {
            let (answer, sent, took) = post_fifty_mib(&base, path, chunked).await;
            println!(
                "{path} (chunked: {chunked}): answered after {took:?}, {} KiB of 50 MiB sent",
                sent >> 10
            );
            assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
            assert!(
                answer.contains("the request body is larger than this route takes (65536 bytes)"),
                "{path}: {answer}"
            );
            assert!(sent < FIFTY_MIB / 2, "{path}: answered after {sent} bytes");
            assert!(
                took < Duration::from_secs(2),
                "{path}: answered after {took:?}"
            );
            peak = peak.max(rss_kib(pid));
        }
    }
    let rss_after = rss_kib(pid);
    println!("RSS: {rss_before} KiB before, {rss_after} KiB after, {peak} KiB at most between");
    assert!(
        peak < rss_before + 20 * 1024,
        "RSS grew from {rss_before} to {peak} KiB"
    );
    answer_times(&base, "after").await;
}

/// Live-tail readers past `max_tail_subscribers`: 503 with its sentence; a reader that goes
/// frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_readers_past_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_collector, base) = collector(dir.path(), "max_tail_subscribers = 2");
    let client = reqwest::Client::new();
    let tail = || {
        client
            .get(format!("{base}/api/v1/logs/tail"))
            .bearer_auth(READ_TOKEN)
            .send()
    };
    let first = tail().await.unwrap();
    let second = tail().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = tail().await.unwrap();
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    let text = third.text().await.unwrap();
    assert!(
        text.contains("2 live-tail readers, its limit ([server] max_tail_subscribers)"),
        "{text}"
    );
    drop(first);
    let again = eventually("a place is free again", Duration::from_secs(10), || async {
        let r = tail().await?;
        Ok((r.status() == 200).then_some(r))
    })
    .await
    .unwrap();
    drop((second, again));
}

/// Connections past `max_open_connections` are answered 503 and closed at once; once some
/// close, new ones are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_collector, base) = collector(dir.path(), "max_open_connections = 50");
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(TcpStream::connect(authority(&base)).await?);
    }
    // The 51st: answered and closed without waiting for a request.
    let mut extra = TcpStream::connect(authority(&base)).await?;
    let mut answer = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    println!("the 51st connection was answered {answer:?}");
    let refused = reqwest::get(format!("{base}/healthz")).await;
    assert!(
        refused.as_ref().map_or(true, |r| r.status() == 503),
        "{refused:?}"
    );
    drop(held);
    eventually("served again", Duration::from_secs(10), || async {
        Ok((reqwest::get(format!("{base}/healthz")).await?.status() == 200).then_some(()))
    })
    .await?;
    Ok(())
}

/// A kept-alive connection waits idle past `header_timeout` (an agent that sends every 10 s
/// reuses its connection without racing the collector's close) and is closed after
/// `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_waits_for_idle_timeout_not_header_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_collector, base) =
        collector(dir.path(), "header_timeout = \"1s\"\nidle_timeout = \"4s\"");
    let mut stream = TcpStream::connect(authority(&base)).await?;
    let request = b"GET /healthz HTTP/1.1\r\nHost: lookout\r\n\r\n";
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        stream.write_all(request).await?;
        let n = stream.read(&mut buf).await?;
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        // Idle for twice header_timeout: what is waited for is the collector's deadline.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stream.write_all(request).await?;
    let n = stream.read(&mut buf).await?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await??;
    let idle = idle_from.elapsed();
    assert_eq!(n, 0, "closed without another answer");
    println!("an idle kept-alive connection was closed after {idle:?}");
    assert!(
        idle >= Duration::from_millis(3900) && idle < Duration::from_secs(6),
        "closed after {idle:?}"
    );
    Ok(())
}

/// `[server] request_timeout` against a real slow peer: PostgreSQL, with the table the
/// silences are read from locked by another connection. The API's answer is 503 with its
/// sentence once `request_timeout` has passed (not before, and long before the store's own
/// `statement_timeout`), `/healthz` answers meanwhile, and once the lock goes the same route
/// answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_held_up_by_the_store_is_503_after_request_timeout() -> Result<()> {
    use sqlx::Connection as _;
    let Some(db) = lookout_tests::pg_database("request_timeout").await else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let text = collector_toml(
        dir.path(),
        port.get(),
        AGENT,
        AGENT_TOKEN,
        &format!("[storage]\nurl = \"{db}\"\nstatement_timeout = \"30s\"\n"),
    )
    .replacen("[[agents]]", "request_timeout = \"2s\"\n[[agents]]", 1);
    drop(port);
    let (_collector, base) = start_collector(dir.path(), &text)?;
    let silences = format!("{base}/api/v1/silences");
    let answer = lookout_tests::read(&silences).await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);

    let mut holder = sqlx::PgConnection::connect(&db).await?;
    sqlx::query("BEGIN").execute(&mut holder).await?;
    sqlx::query("LOCK TABLE silences IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await?;
    let started = Instant::now();
    let held = tokio::spawn(async move {
        let answer = lookout_tests::read(&silences).await?;
        let status = answer.status();
        anyhow::Ok((status, answer.text().await?, started.elapsed()))
    });
    // Meanwhile the collector answers what does not wait for that table.
    let asked = Instant::now();
    let health = reqwest::get(format!("{base}/healthz")).await?;
    assert_eq!(health.status(), 200);
    let health_took = asked.elapsed();
    assert!(health_took < Duration::from_secs(1), "{health_took:?}");
    let (status, body, took) = held.await??;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("the answer took longer than 2s ([server] request_timeout)"),
        "{body}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "answered after {took:?}; request_timeout 2 s, statement_timeout 30 s"
    );

    sqlx::query("ROLLBACK").execute(&mut holder).await?;
    let answer = lookout_tests::read(format!("{base}/api/v1/silences")).await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    eprintln!("503 after {took:?}, /healthz meanwhile in {health_took:?}");
    Ok(())
}
