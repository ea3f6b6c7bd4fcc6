//! The logs API over a running collector: search with words and filters, newest first, in
//! pages with a cursor; clear errors for bad parameters; the admin token when one is set; and
//! the live tail (Server-Sent Events) that follows matching lines as they are ingested.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use lookout_protocol::{Batch, Encoding, LogRecord, PROTOCOL_VERSION, Record, encode_batch};
use serde_json::Value;

const TOKEN: &str = "web-1-token-0123456789abcdef";
/// Reads the logs in these tests.
const READ: &str = "logs-read-token-0123456789";

/// A collector with `extra` in its `[server]`. The lines these tests ship are dated 2026-11-01:
/// logs are kept for ten years here, so the retention pass (which runs a few seconds after the
/// start) cannot delete them while a test reads them, whatever today's date.
async fn start(extra: &str) -> (lookout_collector::Running, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nmax_record_age = \"3650d\"\n{extra}\n[storage]\nlog_retention = \"3650d\"\n[[agents]]\nname = \"web-1\"\ntoken = \"{TOKEN}\"\n",
        dir.path().display()
    );
    let config =
        lookout_config::CollectorConfig::parse(std::path::Path::new("c.toml"), &text, &|_| None)
            .unwrap();
    let running = lookout_collector::start(config).await.unwrap();
    let base = format!("http://{}", running.addr);
    (running, base, dir)
}

fn line(second: i64, source: &str, level: Option<&str>, text: &str) -> Record {
    Record::Log(LogRecord {
        time: Utc.timestamp_opt(1_793_491_200 + second, 0).unwrap(),
        source: source.into(),
        level: level.map(str::to_string),
        text: text.into(),
        position: None,
    })
}

async fn ship(base: &str, id: &str, records: Vec<Record>) {
    let body = encode_batch(
        &Batch {
            version: PROTOCOL_VERSION,
            agent: "web-1".into(),
            batch_id: id.into(),
            records,
        },
        Encoding::Identity,
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/ingest"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn texts(v: &Value) -> Vec<String> {
    v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_pages_filters_and_says_what_is_wrong() {
    let (running, base, _dir) = start(&format!("read_tokens = [\"{READ}\"]")).await;
    let mut records = Vec::new();
    for i in 0..12 {
        records.push(line(
            i,
            "/var/log/app.log",
            Some("error"),
            &format!("payment failed #{i}"),
        ));
        records.push(line(
            i,
            "/var/log/app.log",
            Some("info"),
            &format!("request #{i} ok"),
        ));
    }
    records.push(line(
        20,
        "/var/log/db.log",
        Some("warn"),
        "slow payment query",
    ));
    ship(&base, "b1", records).await;

    let (status, v) = get(
        &format!("{base}/api/v1/logs?q=payment%20FAILED&limit=5"),
        Some(READ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        texts(&v),
        (7..12)
            .rev()
            .map(|i| format!("payment failed #{i}"))
            .collect::<Vec<_>>()
    );
    let first = &v["lines"][0];
    assert_eq!(first["agent"], "web-1");
    assert_eq!(first["source"], "/var/log/app.log");
    assert_eq!(first["level"], "error");
    assert_eq!(first["time"], "2026-11-01T00:00:11Z");
    // Follow the cursor to the end: every match once, and no cursor on the last page.
    let mut all = texts(&v);
    let mut cursor = v["next_cursor"].as_str().unwrap().to_string();
    loop {
        let (_, page) = get(
            &format!("{base}/api/v1/logs?q=payment%20failed&limit=5&cursor={cursor}"),
            Some(READ),
        )
        .await;
        all.extend(texts(&page));
        match page.get("next_cursor") {
            Some(c) => cursor = c.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(all.len(), 12);
    assert_eq!(all.last().unwrap(), "payment failed #0");

    let (_, v) = get(
        &format!("{base}/api/v1/logs?q=payment&level=WARN"),
        Some(READ),
    )
    .await;
    assert_eq!(texts(&v), ["slow payment query"]);
    let (_, v) = get(
        &format!("{base}/api/v1/logs?source=/var/log/db.log"),
        Some(READ),
    )
    .await;
    assert_eq!(texts(&v), ["slow payment query"]);
    assert!(v.get("next_cursor").is_none());
    let (_, v) = get(
        &format!("{base}/api/v1/logs?from=2026-11-01T00:00:10Z&to=2026-11-01T00:00:10Z"),
        Some(READ),
    )
    .await;
    assert_eq!(texts(&v), ["request #10 ok", "payment failed #10"]);

    for (query, want) in [
        ("cursor=12", "is not one this API gave"),
        ("limit=0", "limit must be 1 to 1000"),
        (
            "from=yesterday",
            "from=\"yesterday\" is not an RFC 3339 time",
        ),
        ("colour=red", "unknown field `colour`"),
        (
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "is after to",
        ),
        // SQLite's full-text query ended the string at the NUL: a storage error, 503, before.
        ("q=payment%00failed", "NUL character"),
        ("source=%00", "NUL character"),
    ] {
        let (status, v) = get(&format!("{base}/api/v1/logs?{query}"), Some(READ)).await;
        assert_eq!(status, 400, "{query}: {v}");
        let message = v["error"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{query}: {v}");
    }
    running.shutdown.cancel();
}

#[tokio::test]
async fn with_an_admin_token_set_logs_need_it() {
    let (running, base, _dir) = start("admin_token = \"admin-secret-0123456789abcdef\"").await;
    ship(&base, "b1", vec![line(0, "/a.log", None, "secret stuff")]).await;
    let url = format!("{base}/api/v1/logs");
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("wrong-token-0123456789abcdef")).await.0, 401);
    let (status, v) = get(&url, Some("admin-secret-0123456789abcdef")).await;
    assert_eq!(status, 200);
    assert_eq!(texts(&v), ["secret stuff"]);
    let tail = reqwest::get(format!("{base}/api/v1/logs/tail"))
        .await
        .unwrap();
    assert_eq!(tail.status(), 401);
    running.shutdown.cancel();
}

#[tokio::test]
async fn the_live_tail_follows_matching_lines_as_they_arrive() {
    let (running, base, _dir) = start(&format!("read_tokens = [\"{READ}\"]")).await;
    ship(
        &base,
        "old",
        vec![line(0, "/a.log", Some("error"), "panic before the tail")],
    )
    .await;
    let mut resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/logs/tail?q=panic&level=error"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    ship(
        &base,
        "new",
        vec![
            line(1, "/a.log", Some("info"), "panic in an info line"),
            line(2, "/a.log", Some("error"), "all fine"),
            line(
                3,
                "/a.log",
                Some("error"),
                "thread main panicked: PANIC at the disco",
            ),
            line(4, "/b.log", Some("error"), "second panic"),
        ],
    )
    .await;
    let mut got = String::new();
    let read = async {
        while got.matches("event: line").count() < 2 {
            let chunk = resp.chunk().await.unwrap().expect("stream open");
            got.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("two lines within 10 s");
    let events: Vec<Value> = got
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let texts: Vec<_> = events.iter().map(|e| e["text"].as_str().unwrap()).collect();
    // "panicked" is another word than "panic": whole words, as the search has it.
    assert_eq!(
        texts,
        ["thread main panicked: PANIC at the disco", "second panic"]
    );
    assert_eq!(events[1]["source"], "/b.log");
    assert_eq!(events[1]["agent"], "web-1");
    running.shutdown.cancel();
}
