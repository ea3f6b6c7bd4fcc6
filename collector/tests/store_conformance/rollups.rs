//! Check and metric rollups: counts, failures, late data, totals per hour and day.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_collector::store::{Retention, RollupQuery, Store, Tier, TotalsWidth};

use super::{Backend, default_retention, ingest, result, sample, t};

pub(super) async fn check_rollups_count_fail_and_merge_late_data(b: Backend) {
    let s = &*b.store;
    // Minute 0: 4 results, 1 failing; minute 1: 2 results; minute 61 (next hour): 1.
    ingest(
        s,
        "a",
        "1",
        vec![
            result("api", t(0, 0), true, 10.0),
            result("api", t(0, 15), true, 20.0),
            result("api", t(0, 30), false, 30.0),
            result("api", t(0, 45), true, 1000.0),
            result("api", t(1, 0), true, 10.0),
            result("api", t(1, 30), true, 10.0),
            result("api", t(61, 0), true, 10.0),
        ],
    )
    .await;
    // Small steps: three calls of at most 3 rows each roll up all 7, and then nothing is left.
    assert_eq!(s.roll_up(3).await.unwrap(), 3);
    assert_eq!(s.roll_up(3).await.unwrap(), 3);
    assert_eq!(s.roll_up(3).await.unwrap(), 1);
    assert_eq!(s.roll_up(3).await.unwrap(), 0);
    let q = |tier| RollupQuery {
        name: "api".into(),
        agent: Some("a".into()),
        tier,
        from: t(0, 0),
        to: t(120, 0),
    };
    let minutes = s.check_rollups(&q(Tier::Minute)).await.unwrap();
    let shape: Vec<_> = minutes
        .iter()
        .map(|m| (m.bucket, m.count, m.failures))
        .collect();
    assert_eq!(shape, [(t(0, 0), 4, 1), (t(1, 0), 2, 0), (t(61, 0), 1, 0)]);
    assert_eq!(minutes[0].latency_sum_ms, 1060.0);
    let p50 = minutes[0].latency.quantile(0.5).unwrap();
    assert!((p50 - 20.0).abs() <= 20.0 * 0.05, "p50 {p50}");
    let p99 = minutes[0].latency.quantile(0.99).unwrap();
    assert!((p99 - 1000.0).abs() <= 1000.0 * 0.05, "p99 {p99}");
    let hours = s.check_rollups(&q(Tier::Hour)).await.unwrap();
    let shape: Vec<_> = hours
        .iter()
        .map(|h| (h.bucket, h.count, h.failures))
        .collect();
    assert_eq!(shape, [(t(0, 0), 6, 1), (t(60, 0), 1, 0)]);

    // Late data for minute 0 (an agent's backlog) merges into the existing buckets.
    ingest(s, "a", "2", vec![result("api", t(0, 50), false, 40.0)]).await;
    assert_eq!(s.roll_up(100).await.unwrap(), 1);
    let minutes = s.check_rollups(&q(Tier::Minute)).await.unwrap();
    assert_eq!((minutes[0].count, minutes[0].failures), (5, 2));
    assert_eq!(minutes[0].latency.count(), 5);
    let hours = s.check_rollups(&q(Tier::Hour)).await.unwrap();
    assert_eq!((hours[0].count, hours[0].failures), (7, 2));
    // Another agent's results are its own series.
    ingest(s, "b", "1", vec![result("api", t(0, 5), true, 1.0)]).await;
    s.roll_up(100).await.unwrap();
    let all = s
        .check_rollups(&RollupQuery {
            agent: None,
            ..q(Tier::Minute)
        })
        .await
        .unwrap();
    assert_eq!(all.iter().filter(|r| r.bucket == t(0, 0)).count(), 2);
}

pub(super) async fn check_totals_merge_agents_per_hour_and_day(b: Backend) {
    let s = &*b.store;
    const DAY: i64 = 24 * 60;
    // Day 0: agent a has 3 results (1 failing) at 00:00 and 01:00; agent b 1 failing at 00:30.
    // Day 1: agent a has 2 results.
    ingest(
        s,
        "a",
        "1",
        vec![
            result("api", t(0, 0), true, 10.0),
            result("api", t(0, 10), false, 30.0),
            result("api", t(60, 0), true, 20.0),
            result("api", t(DAY + 5, 0), true, 40.0),
            result("api", t(DAY + 6, 0), true, 60.0),
        ],
    )
    .await;
    ingest(s, "b", "1", vec![result("api", t(30, 0), false, 100.0)]).await;
    ingest(s, "b", "2", vec![result("db", t(30, 0), true, 1.0)]).await;
    // Rolled up in small steps, so one day's rows arrive in several calls and add up.
    while s.roll_up(2).await.unwrap() > 0 {}
    let shape = |totals: Vec<lookout_collector::store::CheckTotal>| {
        let mut v: Vec<_> = totals
            .into_iter()
            .map(|t| (t.check, t.bucket_ms, t.count, t.failures, t.latency_sum_ms))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    };
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    let days = shape(s.check_totals(TotalsWidth::Day, t(0, 0)).await.unwrap());
    assert_eq!(
        days,
        [
            ("api".to_string(), ms(t(0, 0)), 4, 2, 160.0),
            ("api".to_string(), ms(t(DAY, 0)), 2, 0, 100.0),
            ("db".to_string(), ms(t(0, 0)), 1, 0, 1.0),
        ]
    );
    let hours = shape(s.check_totals(TotalsWidth::Hour, t(60, 0)).await.unwrap());
    assert_eq!(
        hours,
        [
            ("api".to_string(), ms(t(60, 0)), 1, 0, 20.0),
            ("api".to_string(), ms(t(DAY, 0)), 2, 0, 100.0),
        ]
    );
    // Late data merges into its day.
    ingest(s, "b", "3", vec![result("api", t(DAY + 7, 0), false, 0.0)]).await;
    s.roll_up(100).await.unwrap();
    let days = shape(s.check_totals(TotalsWidth::Day, t(DAY, 0)).await.unwrap());
    assert_eq!(days, [("api".to_string(), ms(t(DAY, 0)), 3, 1, 100.0)]);
    // Days go with the per-hour rollups' retention.
    let policy = Retention {
        hour: Duration::from_secs(86_400),
        ..default_retention()
    };
    s.enforce_retention(&policy, t(2 * DAY, 0), 1000)
        .await
        .unwrap();
    let days = shape(s.check_totals(TotalsWidth::Day, t(0, 0)).await.unwrap());
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0].1, ms(t(DAY, 0)));
}

pub(super) async fn metric_rollups_keep_min_max_avg_last(b: Backend) {
    let s = &*b.store;
    let cpu = |i: i64, v: f64| sample("system.cpu.utilization", &[("cpu", "0")], t(0, i), v);
    ingest(
        s,
        "a",
        "1",
        vec![cpu(0, 0.5), cpu(40, 0.9), cpu(10, 0.1), cpu(70, 0.3)],
    )
    .await;
    s.roll_up(1000).await.unwrap();
    let q = RollupQuery {
        name: "system.cpu.utilization".into(),
        agent: Some("a".into()),
        tier: Tier::Minute,
        from: t(0, 0),
        to: t(10, 0),
    };
    let rows = s.metric_rollups(&q).await.unwrap();
    assert_eq!(rows.len(), 2);
    let m = &rows[0];
    assert_eq!((m.count, m.min, m.max, m.last), (3, 0.1, 0.9, 0.9));
    assert!((m.sum - 1.5).abs() < 1e-9);
    assert_eq!(rows[0].labels.get("cpu").map(String::as_str), Some("0"));
    assert_eq!((rows[1].count, rows[1].last), (1, 0.3));
    assert_eq!(first_hour(s, &q).await, (4, 0.1, 0.9, 0.3));
    // Late samples merge into the stored buckets: an earlier one changes the max but not the
    // last value, a later one the min and the last.
    ingest(s, "a", "2", vec![cpu(5, 2.0), cpu(50, 0.05)]).await;
    s.roll_up(1000).await.unwrap();
    let rows = s.metric_rollups(&q).await.unwrap();
    let m = &rows[0];
    assert_eq!((m.count, m.min, m.max, m.last), (5, 0.05, 2.0, 0.05));
    assert!((m.sum - 3.55).abs() < 1e-9, "{}", m.sum);
    assert_eq!(first_hour(s, &q).await, (6, 0.05, 2.0, 0.3));
}

/// Count, min, max and last of the first per-hour rollup that `q` finds.
async fn first_hour(s: &dyn Store, q: &RollupQuery) -> (u64, f64, f64, f64) {
    let hour = s
        .metric_rollups(&RollupQuery {
            tier: Tier::Hour,
            ..q.clone()
        })
        .await
        .unwrap();
    (hour[0].count, hour[0].min, hour[0].max, hour[0].last)
}
