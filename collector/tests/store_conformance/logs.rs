//! Logs: kept by age and size, searched by words and filters, newest first in pages.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_collector::store::{LogQuery, Retention};
use lookout_protocol::{LogRecord, Record};

use super::{Backend, all_time, ingest, log, t};

pub(super) async fn logs_are_kept_by_age_and_by_size(b: Backend) {
    let s = &*b.store;
    let day = |d: i64| t(60 * 24 * d, 0);
    let text = "x".repeat(1000);
    for d in [1, 20, 21, 22] {
        ingest(
            s,
            "a",
            &format!("logs-{d}"),
            (0..3)
                .map(|i| log(day(d) + chrono::Duration::seconds(i), &text))
                .collect(),
        )
        .await;
    }
    let policy = Retention {
        raw: Duration::from_secs(7 * 86_400),
        minute: Duration::from_secs(30 * 86_400),
        hour: Duration::from_secs(730 * 86_400),
        logs: Duration::from_secs(14 * 86_400),
        // Room for two days of 3 KB.
        log_max_bytes: 6_500,
    };
    let now = day(23);
    while s.enforce_retention(&policy, now, 2).await.unwrap() > 0 {}
    let (from, to) = all_time();
    let rows = s
        .logs(&LogQuery {
            agent: Some("a".into()),
            from,
            to,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    // Day 1 is too old; day 20 goes for size; days 21 and 22 fit.
    let mut days: Vec<_> = rows.iter().map(|r| r.time.date_naive()).collect();
    days.dedup();
    assert_eq!(
        days,
        [day(22).date_naive(), day(21).date_naive()],
        "{rows:?}"
    );
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].source, "app.log");
    assert_eq!(rows[0].level.as_deref(), Some("info"));
}

fn log_line(time: DateTime<Utc>, source: &str, level: Option<&str>, text: &str) -> Record {
    Record::Log(LogRecord {
        time,
        source: source.into(),
        level: level.map(str::to_string),
        text: text.into(),
        position: None,
    })
}

pub(super) async fn logs_are_searched_by_words_and_filters_newest_first_in_pages(b: Backend) {
    let s = &*b.store;
    let mut lines = Vec::new();
    for i in 0..25 {
        let (source, level, text) = match i % 5 {
            0 => (
                "/var/log/app.log",
                Some("error"),
                format!("Payment FAILED for user-{i}: card declined"),
            ),
            1 => (
                "/var/log/app.log",
                Some("info"),
                format!("request {i} served in 12ms"),
            ),
            2 => (
                "/var/log/db.log",
                Some("warn"),
                format!("slow query {i}: payment lookup took 2s"),
            ),
            3 => ("/var/log/db.log", None, format!("checkpoint {i} complete")),
            _ => (
                "/var/log/app.log",
                Some("error"),
                format!("panic: index out of range ({i}) \"quoted\""),
            ),
        };
        // Two lines share each second: the id breaks the tie.
        lines.push(log_line(t(1, i / 2), source, level, &text));
    }
    ingest(s, "web-1", "logs-1", lines).await;
    ingest(
        s,
        "web-2",
        "logs-2",
        vec![log_line(
            t(1, 30),
            "/var/log/app.log",
            Some("error"),
            "payment failed on web-2",
        )],
    )
    .await;
    let (from, to) = all_time();
    let query = |text: Option<&str>| LogQuery {
        text: text.map(str::to_string),
        from,
        to,
        limit: 100,
        ..Default::default()
    };
    let texts = |rows: &[lookout_collector::store::LogRow]| {
        rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>()
    };
    // Words, in any case and order, all of them.
    let rows = s.logs(&query(Some("failed PAYMENT"))).await.unwrap();
    assert_eq!(rows.len(), 6, "{:?}", texts(&rows));
    assert_eq!(rows[0].text, "payment failed on web-2");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.text.starts_with("Payment FAILED"))
    );
    // Newest first: user-20 before user-15 ...
    assert_eq!(rows[1].text, "Payment FAILED for user-20: card declined");
    assert_eq!(rows[5].text, "Payment FAILED for user-0: card declined");
    // What users type is never query syntax: quotes, colons, parentheses, a lone dash.
    for odd in ["\"quoted\"", "panic: (", "-", "AND OR NOT", "user-20"] {
        let r = s.logs(&query(Some(odd))).await;
        assert!(r.is_ok(), "{odd}: {r:?}");
    }
    assert_eq!(s.logs(&query(Some("user-20"))).await.unwrap().len(), 1);
    assert_eq!(s.logs(&query(Some("quoted"))).await.unwrap().len(), 5);
    assert!(s.logs(&query(Some("nowhere"))).await.unwrap().is_empty());
    // Filters.
    let mut q = query(Some("payment"));
    q.source = Some("/var/log/db.log".into());
    let rows = s.logs(&q).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.level.as_deref() == Some("warn")));
    let mut q = query(None);
    q.level = Some("error".into());
    q.agent = Some("web-1".into());
    assert_eq!(s.logs(&q).await.unwrap().len(), 10);
    // Pages: three of 10, 10 and 6, no line twice, none left out, across equal times.
    let mut seen = Vec::new();
    let mut q = query(None);
    q.limit = 10;
    loop {
        let page = s.logs(&q).await.unwrap();
        seen.extend(texts(&page));
        match page.last() {
            Some(last) if page.len() == 10 => {
                q.before = Some((last.time.timestamp_millis(), last.id))
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 26);
    let all = texts(&s.logs(&query(None)).await.unwrap());
    assert_eq!(seen, all);
}

pub(super) async fn a_common_word_is_searched_newest_first_without_sorting_every_match(b: Backend) {
    // More matches than the SQLite store's threshold for common words (20,000): the search
    // walks lines newest first and checks each against the index.
    let s = &*b.store;
    for part in 0..3 {
        let lines = (0..7_000)
            .map(|i| {
                let n = part * 7_000 + i;
                let parity = if n % 2 == 0 { "even" } else { "odd" };
                log_line(
                    t(0, 0) + chrono::Duration::milliseconds(n),
                    "/a.log",
                    None,
                    &format!("common {parity} line {n}"),
                )
            })
            .collect();
        ingest(s, "web-1", &format!("common-{part}"), lines).await;
    }
    let (from, to) = all_time();
    let mut q = LogQuery {
        text: Some("COMMON".into()),
        from,
        to,
        limit: 3,
        ..Default::default()
    };
    let texts = |rows: Vec<lookout_collector::store::LogRow>| {
        rows.into_iter().map(|r| r.text).collect::<Vec<_>>()
    };
    let page = s.logs(&q).await.unwrap();
    let last = page
        .last()
        .map(|r| (r.time.timestamp_millis(), r.id))
        .unwrap();
    assert_eq!(
        texts(page),
        [
            "common odd line 20999",
            "common even line 20998",
            "common odd line 20997"
        ]
    );
    q.before = Some(last);
    assert_eq!(
        texts(s.logs(&q).await.unwrap()),
        [
            "common even line 20996",
            "common odd line 20995",
            "common even line 20994"
        ]
    );
    // A time window inside the matches, and a second word (10,500 matches).
    q.before = None;
    q.to = t(0, 0) + chrono::Duration::milliseconds(101);
    assert_eq!(
        texts(s.logs(&q).await.unwrap()),
        [
            "common odd line 101",
            "common even line 100",
            "common odd line 99"
        ]
    );
    q.text = Some("common even".into());
    assert_eq!(
        texts(s.logs(&q).await.unwrap()),
        [
            "common even line 100",
            "common even line 98",
            "common even line 96"
        ]
    );
}
