//! Retention: chunked deletes that never take a row not yet rolled up.

use std::time::Duration;

use lookout_collector::store::{Retention, RollupQuery, Tier};
use lookout_protocol::Record;

use super::{
    Backend, all_time, count_results, count_samples, default_retention, ingest, result, sample, t,
};

pub(super) async fn retention_over_thousands_of_series_lets_the_writer_go_and_finishes(b: Backend) {
    let s = &*b.store;
    // 2,500 metric series with a sample 10 days old and one from now: the pass takes more
    // statements than one of its transactions holds, and every old sample still goes.
    let now = t(60 * 24 * 10, 0);
    let mut records = Vec::new();
    for i in 0..2_500 {
        let label = i.to_string();
        records.push(sample("m", &[("i", label.as_str())], t(0, 0), 1.0));
        records.push(sample("m", &[("i", label.as_str())], now, 2.0));
    }
    ingest(s, "a", "1", records).await;
    while s.roll_up(100_000).await.unwrap() > 0 {}
    let deleted = s
        .enforce_retention(&default_retention(), now, 10_000)
        .await
        .unwrap();
    assert!(deleted >= 2_500, "{deleted}");
    let left = s
        .metric_samples(&RollupQuery {
            name: "m".into(),
            agent: Some("a".into()),
            tier: Tier::Minute,
            from: t(0, 0),
            to: now,
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 2_500, "only the recent samples are left");
    assert!(left.iter().all(|r| r.last == 2.0));
}

pub(super) async fn retention_deletes_in_chunks_and_only_rolled_up_rows(b: Backend) {
    let s = &*b.store;
    let now = t(60 * 24 * 40, 0); // day 40
    let day = |d: i64| t(60 * 24 * d, 0);
    // 25 results and samples 39 days old, 5 results 1 day old.
    let mut old: Vec<Record> = (0..25)
        .map(|i| result("api", day(1) + chrono::Duration::minutes(i), true, 1.0))
        .collect();
    old.extend((0..25).map(|i| sample("m", &[], day(1) + chrono::Duration::minutes(i), 1.0)));
    ingest(s, "a", "old", old).await;
    ingest(
        s,
        "a",
        "new",
        (0..5)
            .map(|i| result("api", day(39) + chrono::Duration::minutes(i), true, 1.0))
            .collect(),
    )
    .await;
    let policy = Retention {
        raw: Duration::from_secs(7 * 86_400),
        minute: Duration::from_secs(30 * 86_400),
        hour: Duration::from_secs(730 * 86_400),
        logs: Duration::from_secs(14 * 86_400),
        log_max_bytes: 1 << 30,
    };
    let (from, to) = all_time();
    // Nothing is rolled up yet, so no raw row may go (the two batch ids, past retention, do).
    while s.enforce_retention(&policy, now, 10).await.unwrap() > 0 {}
    assert_eq!(count_results(s).await, 30);
    assert_eq!(
        count_samples(s, "m").await,
        25,
        "not rolled up, not deleted"
    );
    while s.roll_up(1000).await.unwrap() > 0 {}
    // Bounded chunks: 10 results a call, the samples' one block, plus rollups as they fall due.
    let first = s.enforce_retention(&policy, now, 10).await.unwrap();
    assert!((20..=80).contains(&first), "{first}");
    let mut calls = 1;
    while s.enforce_retention(&policy, now, 10).await.unwrap() > 0 {
        calls += 1;
        assert!(calls < 100, "retention does not finish");
    }
    assert!(
        calls >= 3,
        "25 old rows at 10 a call take 3 calls, took {calls}"
    );
    assert_eq!(
        count_results(s).await,
        5,
        "only the recent raw results stay"
    );
    assert_eq!(count_samples(s, "m").await, 0);
    // The old per-minute rollups (day 1, older than 30 days) are gone; per-hour ones stay.
    let q = |tier| RollupQuery {
        name: "api".into(),
        agent: None,
        tier,
        from,
        to,
    };
    let minutes = s.check_rollups(&q(Tier::Minute)).await.unwrap();
    assert!(minutes.iter().all(|m| m.bucket >= day(39)), "{minutes:?}");
    let hours = s.check_rollups(&q(Tier::Hour)).await.unwrap();
    assert_eq!(
        hours.iter().map(|h| h.count).sum::<u64>(),
        30,
        "per-hour history survives"
    );
}

/// Retention may empty a raw table; SQLite gives a new row the largest id plus one, which must
/// still be past the roll-up's cursor, or the roll-up passes over the new rows.
pub(super) async fn rows_after_retention_emptied_the_tables_are_rolled_up(b: Backend) {
    let s = &*b.store;
    let day = |d: i64| t(60 * 24 * d, 0);
    let policy = Retention {
        raw: Duration::from_secs(7 * 86_400),
        ..default_retention()
    };
    ingest(
        s,
        "a",
        "old",
        vec![
            result("api", day(1), true, 1.0),
            sample("m", &[], day(1), 1.0),
        ],
    )
    .await;
    while s.roll_up(1000).await.unwrap() > 0 {}
    while s.enforce_retention(&policy, day(40), 100).await.unwrap() > 0 {}
    assert_eq!(count_samples(s, "m").await, 0, "the block went");
    ingest(
        s,
        "a",
        "new",
        vec![
            result("api", day(39), false, 2.0),
            sample("m", &[], day(39), 5.0),
        ],
    )
    .await;
    assert_eq!(
        s.roll_up(1000).await.unwrap(),
        2,
        "both new rows are rolled up"
    );
    let q = |name: &str| RollupQuery {
        name: name.into(),
        agent: Some("a".into()),
        tier: Tier::Minute,
        from: day(39),
        to: day(40),
    };
    let metric = s.metric_rollups(&q("m")).await.unwrap();
    assert_eq!(metric.len(), 1, "{metric:?}");
    assert_eq!((metric[0].count, metric[0].last), (1, 5.0));
    let checks = s.check_rollups(&q("api")).await.unwrap();
    assert_eq!(checks.iter().map(|c| c.count).sum::<u64>(), 1, "{checks:?}");
}
