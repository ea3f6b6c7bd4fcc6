//! One conformance suite, run against both store backends: SQLite in a temporary folder, and
//! PostgreSQL at `LOOKOUT_TEST_PG_URL` (each test in a database of its own). `scripts/test`
//! starts a PostgreSQL and sets `LOOKOUT_REQUIRE_PG=1`, under which a missing one fails the
//! suite instead of skipping it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lookout_collector::store::alerting::{
    AlertState, DeliveryState, NewNotification, Silence, Transition,
};
use lookout_collector::store::{
    self, LogQuery, ResultQuery, Retention, RollupQuery, Store, StoreError, Tier, TotalsWidth,
};
use lookout_protocol::{
    Batch, CheckResult, LogRecord, MetricSample, MetricType, PROTOCOL_VERSION, Record, Timings,
};

/// A store to test, and what keeps it alive.
struct Backend {
    store: Arc<dyn Store>,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    Backend {
        store: store::open(&url, &Default::default()).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Option<Backend> {
    let Ok(admin) = std::env::var("LOOKOUT_TEST_PG_URL") else {
        assert!(
            std::env::var("LOOKOUT_REQUIRE_PG").is_err(),
            "LOOKOUT_REQUIRE_PG is set but LOOKOUT_TEST_PG_URL is not"
        );
        eprintln!("skipped: no PostgreSQL (set LOOKOUT_TEST_PG_URL, or run scripts/test)");
        return None;
    };
    let name = format!("lookout_t_{}", fastrand_name());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE template0"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let url = match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => panic!("LOOKOUT_TEST_PG_URL has no database part: {admin}"),
    };
    Some(Backend {
        store: store::open(&url, &Default::default()).await.unwrap(),
        url,
        _dir: None,
    })
}

/// TLS to PostgreSQL: the URL's `sslmode` is honoured, with rustls.
#[tokio::test]
async fn postgres_connections_use_tls_when_the_url_asks() {
    let Some(b) = postgres().await else { return };
    let in_use = |url: String| async move {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap();
        ssl
    };
    assert!(
        !in_use(format!("{}?sslmode=disable", b.url)).await,
        "the check can tell"
    );
    let tls = format!("{}?sslmode=require", b.url);
    assert!(in_use(tls.clone()).await, "sslmode=require must encrypt");
    let s = store::open(&tls, &Default::default()).await.unwrap();
    ingest(&*s, "a", "tls", vec![result("api", t(0, 0), true, 1.0)]).await;
    assert_eq!(s.latest_results().await.unwrap().len(), 1);
}

/// The tables every batch rewrites (schema v8) leave room on their pages, so that an upsert of
/// a latest value stays on its page and adds no index entry (a heap-only update).
#[tokio::test]
async fn postgres_latest_values_are_updated_in_place() {
    let Some(b) = postgres().await else { return };
    let pool = sqlx::PgPool::connect(&b.url).await.unwrap();
    for table in ["metric_latest", "check_latest", "agents"] {
        let options: Option<Vec<String>> =
            sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE relname = $1")
                .bind(table)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(options, Some(vec!["fillfactor=50".to_string()]), "{table}");
    }
    // 200 series, then a second value of each: on full pages there is no room for the new
    // versions (nothing is dead yet to be pruned), with the fillfactor there is.
    for round in 0..2 {
        let samples = (0..200)
            .map(|i| sample(&format!("m{i}"), &[], t(round, 0), f64::from(round as i32)))
            .collect();
        ingest(&*b.store, "a", &format!("b{round}"), samples).await;
    }
    // A server process reports its statistics when idle a while or when it ends: end the
    // store's, then wait for the counts (bounded).
    drop(b);
    let mut counts = (0i64, 0i64);
    for _ in 0..100 {
        counts = sqlx::query_as(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'metric_latest'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if counts.0 >= 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (updates, in_place) = counts;
    assert_eq!(updates, 200, "every latest value updated");
    assert!(
        in_place * 10 >= updates * 9,
        "{in_place} of {updates} updates in place"
    );
}

fn fastrand_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{nanos}", std::process::id())
}

/// Runs `case` against SQLite and, when there is one, PostgreSQL.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::sqlite().await).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(b) = super::postgres().await {
                        super::$case(b).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    a_batch_is_stored_once,
    latest_values_follow_time_not_arrival,
    results_filter_and_order,
    check_rollups_count_fail_and_merge_late_data,
    check_totals_merge_agents_per_hour_and_day,
    many_new_series_in_one_batch_get_their_own_ids,
    a_group_of_batches_is_stored_in_one_go_each_once,
    retention_over_thousands_of_series_lets_the_writer_go_and_finishes,
    metric_rollups_keep_min_max_avg_last,
    retention_deletes_in_chunks_and_only_rolled_up_rows,
    logs_are_kept_by_age_and_by_size,
    logs_are_searched_by_words_and_filters_newest_first_in_pages,
    a_common_word_is_searched_newest_first_without_sorting_every_match,
    reopening_keeps_data_and_a_newer_schema_is_refused,
    samples_of_an_older_schema_move_into_blocks_and_are_rolled_up_once,
    rows_after_retention_emptied_the_tables_are_rolled_up,
    a_batch_larger_than_a_block_is_stored_whole,
    agents_are_listed_with_labels_and_last_seen,
    alert_transitions_are_compare_and_set_with_history_and_outbox,
    outbox_claims_lease_retry_and_give_up,
    acknowledgements_and_silences,
    concurrent_senders_never_claim_one_notification_twice,
    a_group_is_claimed_together_when_its_first_row_is_due,
    a_shared_database_queues_each_stored_batch_once_for_the_leader,
    collectors_announce_themselves_and_age_out,
);

fn t(minute: i64, second: i64) -> DateTime<Utc> {
    // 2026-11-01T00:00:00Z plus an offset.
    Utc.timestamp_millis_opt(1_793_491_200_000 + minute * 60_000 + second * 1000)
        .unwrap()
}

fn result(check: &str, time: DateTime<Utc>, ok: bool, latency_ms: f64) -> Record {
    Record::CheckResult(CheckResult {
        check: check.into(),
        check_type: Some(lookout_config::CheckType::Http),
        time,
        ok,
        latency_ms,
        error: (!ok).then(|| "down".to_string()),
        status_code: Some(if ok { 200 } else { 503 }),
        // Failures carry the extras, so a test sees they are stored and read back.
        cert_expiry: (!ok).then(|| time + chrono::Duration::days(2)),
        timings: Timings {
            connect_ms: (!ok).then_some(1.5),
            ..Timings::default()
        },
    })
}

fn sample(name: &str, labels: &[(&str, &str)], time: DateTime<Utc>, value: f64) -> Record {
    Record::Metric(MetricSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        time,
        value,
        metric_type: MetricType::Gauge,
    })
}

fn log(time: DateTime<Utc>, text: &str) -> Record {
    Record::Log(LogRecord {
        time,
        source: "app.log".into(),
        level: Some("info".into()),
        text: text.into(),
        position: None,
    })
}

fn batch(agent: &str, id: &str, records: Vec<Record>) -> Batch {
    Batch {
        version: PROTOCOL_VERSION,
        agent: agent.into(),
        batch_id: id.into(),
        records,
    }
}

async fn ingest(s: &dyn Store, agent: &str, id: &str, records: Vec<Record>) {
    let out = s
        .ingest(agent, &batch(agent, id, records), Utc::now())
        .await
        .unwrap();
    assert!(!out.duplicate, "batch {id} unexpectedly a duplicate");
}

fn all_time() -> (DateTime<Utc>, DateTime<Utc>) {
    (
        Utc.timestamp_millis_opt(0).unwrap(),
        Utc::now() + chrono::Duration::days(3650),
    )
}

async fn a_batch_is_stored_once(b: Backend) {
    let s = &*b.store;
    let b1 = batch(
        "a",
        "id-1",
        vec![
            result("api", t(0, 0), true, 5.0),
            sample("m", &[], t(0, 0), 1.0),
        ],
    );
    let first = s.ingest("a", &b1, Utc::now()).await.unwrap();
    assert_eq!((first.stored, first.duplicate), (2, false));
    let again = s.ingest("a", &b1, Utc::now()).await.unwrap();
    assert_eq!((again.stored, again.duplicate), (0, true));
    // The same id from another agent is another batch.
    let other = s
        .ingest(
            "b",
            &batch("b", "id-1", vec![result("api", t(0, 1), false, 9.0)]),
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(!other.duplicate);
    let (from, to) = all_time();
    let rows = s
        .results(&ResultQuery {
            check: "api".into(),
            agent: None,
            from,
            to,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
}

async fn latest_values_follow_time_not_arrival(b: Backend) {
    let s = &*b.store;
    ingest(
        s,
        "a",
        "1",
        vec![
            result("api", t(5, 0), false, 7.0),
            sample("m", &[("k", "v")], t(5, 0), 2.0),
        ],
    )
    .await;
    // A late, older result (an agent's backlog) must not replace the newer one.
    ingest(
        s,
        "a",
        "2",
        vec![
            result("api", t(1, 0), true, 3.0),
            sample("m", &[("k", "v")], t(1, 0), 1.0),
        ],
    )
    .await;
    let latest = s.latest_results().await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].time, t(5, 0));
    assert!(!latest[0].ok);
    assert_eq!(latest[0].status_code, Some(503));
    assert_eq!(
        latest[0].cert_expiry,
        Some(t(5, 0) + chrono::Duration::days(2))
    );
    assert_eq!(latest[0].timings.connect_ms, Some(1.5));
    assert_eq!(latest[0].check_type.as_deref(), Some("http"));
    let metrics = s.latest_metrics("a").await.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].value, 2.0);
    assert_eq!(metrics[0].labels.get("k").map(String::as_str), Some("v"));
    assert_eq!(metrics[0].metric_type, "gauge");
}

async fn results_filter_and_order(b: Backend) {
    let s = &*b.store;
    ingest(
        s,
        "a",
        "1",
        (0..10)
            .map(|i| result("api", t(i, 0), i % 2 == 0, i as f64))
            .collect(),
    )
    .await;
    ingest(
        s,
        "b",
        "1",
        vec![
            result("api", t(3, 30), true, 1.0),
            result("other", t(3, 30), true, 1.0),
        ],
    )
    .await;
    let q = |agent: Option<&str>, from: DateTime<Utc>, to: DateTime<Utc>, limit: u32| ResultQuery {
        check: "api".into(),
        agent: agent.map(String::from),
        from,
        to,
        limit,
    };
    let rows = s.results(&q(None, t(2, 0), t(4, 0), 100)).await.unwrap();
    let times: Vec<_> = rows.iter().map(|r| (r.agent.as_str(), r.time)).collect();
    assert_eq!(
        times,
        [
            ("a", t(4, 0)),
            ("b", t(3, 30)),
            ("a", t(3, 0)),
            ("a", t(2, 0))
        ]
    );
    // The failed one at minute 3 kept its certificate expiry and phase timings.
    assert_eq!(
        rows[2].cert_expiry,
        Some(t(3, 0) + chrono::Duration::days(2))
    );
    assert_eq!(rows[2].timings.connect_ms, Some(1.5));
    assert_eq!(rows[0].cert_expiry, None);
    let rows = s
        .results(&q(Some("a"), t(0, 0), t(100, 0), 3))
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>(),
        [9.0, 8.0, 7.0]
    );
    assert!(rows.iter().all(|r| r.agent == "a"));
}

async fn check_rollups_count_fail_and_merge_late_data(b: Backend) {
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

async fn check_totals_merge_agents_per_hour_and_day(b: Backend) {
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

async fn many_new_series_in_one_batch_get_their_own_ids(b: Backend) {
    let s = &*b.store;
    // 700 metric series (more than one multi-row insert holds) each sampled twice, and 3
    // checks, new for two agents with the same names: every value lands on its own series.
    for agent in ["a", "b"] {
        let mut records = Vec::new();
        for round in 0..2 {
            for i in 0..700 {
                let value = if agent == "a" { i as f64 } else { -(i as f64) } + round as f64 * 0.5;
                let label = i.to_string();
                records.push(sample("m", &[("i", label.as_str())], t(round, 0), value));
            }
        }
        for check in ["c1", "c2", "c3"] {
            records.push(result(check, t(0, 0), agent == "a", 1.0));
        }
        ingest(s, agent, "1", records).await;
    }
    for (agent, sign) in [("a", 1.0), ("b", -1.0)] {
        let latest = s.latest_metrics(agent).await.unwrap();
        assert_eq!(latest.len(), 700, "{agent}");
        for m in &latest {
            let i: f64 = m.labels["i"].parse().unwrap();
            assert_eq!(m.value, sign * i + 0.5, "{agent} {m:?}");
        }
    }
    let latest = s.latest_results().await.unwrap();
    assert_eq!(latest.len(), 6);
    assert!(
        latest.iter().all(|r| r.ok == (r.agent == "a")),
        "{latest:?}"
    );
}

async fn a_group_of_batches_is_stored_in_one_go_each_once(b: Backend) {
    use lookout_collector::store::NewBatch;
    let s = &*b.store;
    // One batch stored before; then a group with it again, two new ones from two agents, and
    // one of those twice (a retry while the first was still queued).
    ingest(s, "a", "old", vec![result("api", t(0, 0), true, 1.0)]).await;
    let old = batch("a", "old", vec![result("api", t(0, 1), false, 1.0)]);
    let a1 = batch(
        "a",
        "1",
        vec![result("api", t(1, 0), false, 2.0), log(t(1, 0), "from a")],
    );
    let b1 = batch(
        "b",
        "1",
        vec![
            result("api", t(2, 0), true, 3.0),
            sample("load", &[], t(2, 0), 0.5),
            log(t(2, 0), "from b"),
        ],
    );
    let item = |agent, batch| NewBatch {
        agent,
        batch,
        received: t(3, 0),
    };
    let out = s
        .ingest_many(&[
            item("a", &old),
            item("a", &a1),
            item("b", &b1),
            item("a", &a1),
        ])
        .await
        .unwrap();
    let shape: Vec<_> = out.iter().map(|o| (o.stored, o.duplicate)).collect();
    assert_eq!(shape, [(0, true), (2, false), (3, false), (0, true)]);
    // Each stored once, under its own agent.
    let (from, to) = all_time();
    let api = |agent: &str| ResultQuery {
        check: "api".into(),
        agent: Some(agent.into()),
        from,
        to,
        limit: 100,
    };
    assert_eq!(s.results(&api("a")).await.unwrap().len(), 2);
    assert_eq!(s.results(&api("b")).await.unwrap().len(), 1);
    let lines = s
        .logs(&LogQuery {
            text: None,
            agent: None,
            source: None,
            level: None,
            before: None,
            from,
            to,
            limit: 10,
        })
        .await
        .unwrap();
    let mut who: Vec<_> = lines
        .iter()
        .map(|l| (l.agent.as_str(), l.text.as_str()))
        .collect();
    who.sort();
    assert_eq!(who, [("a", "from a"), ("b", "from b")]);
    assert_eq!(s.latest_metrics("b").await.unwrap()[0].value, 0.5);
    // b is seen at the group's arrival; a was seen later before (by the first batch), and
    // last_seen never goes back.
    let agents = s.agents().await.unwrap();
    assert_eq!(agents[1].last_seen, Some(t(3, 0)), "{agents:?}");
    assert!(agents[0].last_seen > Some(t(3, 0)), "{agents:?}");
}

async fn retention_over_thousands_of_series_lets_the_writer_go_and_finishes(b: Backend) {
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

async fn metric_rollups_keep_min_max_avg_last(b: Backend) {
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

async fn retention_deletes_in_chunks_and_only_rolled_up_rows(b: Backend) {
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

async fn count_samples(s: &dyn Store, name: &str) -> usize {
    let (from, to) = all_time();
    let q = RollupQuery {
        name: name.into(),
        agent: Some("a".into()),
        tier: Tier::Minute,
        from,
        to,
    };
    s.metric_samples(&q).await.unwrap().len()
}

/// Retention may empty a raw table; SQLite gives a new row the largest id plus one, which must
/// still be past the roll-up's cursor, or the roll-up passes over the new rows.
async fn rows_after_retention_emptied_the_tables_are_rolled_up(b: Backend) {
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

/// A batch of more samples than a block holds is stored as several, all read and rolled up.
async fn a_batch_larger_than_a_block_is_stored_whole(b: Backend) {
    let s = &*b.store;
    let n = lookout_collector::store::blocks::MAX_SAMPLES + 3;
    let records = (0..n)
        .map(|i| {
            sample(
                "m",
                &[],
                t(0, 0) + chrono::Duration::milliseconds(i as i64),
                1.0,
            )
        })
        .collect();
    ingest(s, "a", "big", records).await;
    assert_eq!(count_samples(s, "m").await, n);
    let mut rolled = 0;
    loop {
        let k = s.roll_up(5_000).await.unwrap();
        if k == 0 {
            break;
        }
        rolled += k;
    }
    assert_eq!(rolled as usize, n);
}

async fn count_results(s: &dyn Store) -> usize {
    let (from, to) = all_time();
    let q = ResultQuery {
        check: "api".into(),
        agent: None,
        from,
        to,
        limit: 10_000,
    };
    s.results(&q).await.unwrap().len()
}

async fn logs_are_kept_by_age_and_by_size(b: Backend) {
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

async fn logs_are_searched_by_words_and_filters_newest_first_in_pages(b: Backend) {
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

async fn a_common_word_is_searched_newest_first_without_sorting_every_match(b: Backend) {
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

async fn reopening_keeps_data_and_a_newer_schema_is_refused(b: Backend) {
    ingest(&*b.store, "a", "1", vec![result("api", t(0, 0), true, 1.0)]).await;
    assert!(b.store.size_bytes().await.unwrap() > 0);
    let again = store::open(&b.url, &Default::default()).await.unwrap();
    assert_eq!(again.latest_results().await.unwrap().len(), 1);
    drop(again);
    // A database written by a newer Lookout is refused, not touched.
    if b.url.starts_with("sqlite") {
        let path = b.url.trim_start_matches("sqlite://");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES (99, 0)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&b.url).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES (99, 0)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    match store::open(&b.url, &Default::default()).await {
        Err(StoreError::SchemaTooNew { found: 99, known }) => assert!(known >= 1),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

/// Runs SQLite schema text on the backend's database, as PostgreSQL's DDL there.
async fn run_sql(url: &str, sqlite_text: &str) -> Result<(), sqlx::Error> {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite_text.to_string()))
            .execute(&pool)
            .await;
        pool.close().await;
        done.map(drop)
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(store::sql::postgres_ddl(sqlite_text)))
            .execute(&pool)
            .await;
        pool.close().await;
        done.map(drop)
    }
}

/// A database of schema v8 kept a row per sample in `metric_samples`, some rolled up, some
/// not; v9 moves them into blocks, and the roll-up goes on where it stood.
async fn samples_of_an_older_schema_move_into_blocks_and_are_rolled_up_once(b: Backend) {
    let s = &*b.store;
    let m = |i: &str, second, v| sample("m", &[("i", i)], t(0, second), v);
    ingest(
        s,
        "a",
        "1",
        vec![m("1", 0, 1.0), m("1", 10, 2.0), m("2", 20, 3.0)],
    )
    .await;
    while s.roll_up(1000).await.unwrap() > 0 {}
    // Back to v8: the three samples as rows 1-3, rolled up (their rollups are stored), and
    // row 4 not yet.
    let series = |i: &str| {
        format!("(SELECT id FROM metric_series WHERE name = 'm' AND labels LIKE '%\"{i}\"%')")
    };
    let time = |second| t(0, second).timestamp_millis();
    run_sql(
        &b.url,
        &format!(
            "DROP TABLE metric_sample_blocks;
             DELETE FROM rollup_cursors WHERE name = 'metric_sample_blocks';
             DELETE FROM schema_migrations WHERE version = 9;
             CREATE TABLE metric_samples (id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,
               time_ms INTEGER NOT NULL, value REAL NOT NULL);
             INSERT INTO metric_samples (id, series_id, time_ms, value) VALUES
               (1, {s1}, {t0}, 1.0), (2, {s1}, {t10}, 2.0), (3, {s2}, {t20}, 3.0),
               (4, {s1}, {t30}, 4.0);
             INSERT INTO rollup_cursors (name, last_id) VALUES ('metric_samples', 3);",
            s1 = series("1"),
            s2 = series("2"),
            t0 = time(0),
            t10 = time(10),
            t20 = time(20),
            t30 = time(30),
        ),
    )
    .await
    .unwrap();

    let s = store::open(&b.url, &Default::default()).await.unwrap();
    let q = RollupQuery {
        name: "m".into(),
        agent: Some("a".into()),
        tier: Tier::Minute,
        from: t(0, 0),
        to: t(1, 0),
    };
    let raw = s.metric_samples(&q).await.unwrap();
    let values: Vec<(f64, &str)> = raw
        .iter()
        .map(|r| (r.last, r.labels["i"].as_str()))
        .collect();
    assert_eq!(values, [(1.0, "1"), (2.0, "1"), (3.0, "2"), (4.0, "1")]);
    assert_eq!(s.roll_up(1000).await.unwrap(), 1, "only row 4 was left");
    assert_eq!(s.roll_up(1000).await.unwrap(), 0);
    let rollups = s.metric_rollups(&q).await.unwrap();
    let one = rollups.iter().find(|r| r.labels["i"] == "1").unwrap();
    assert_eq!((one.count, one.sum, one.last), (3, 7.0, 4.0), "{rollups:?}");
    // The old table is gone, and new samples are stored and read beside the moved ones.
    ingest(&*s, "a", "2", vec![m("2", 40, 5.0)]).await;
    assert_eq!(s.metric_samples(&q).await.unwrap().len(), 5);
    let err = run_sql(&b.url, "SELECT count(*) FROM metric_samples").await;
    assert!(err.unwrap_err().to_string().contains("metric_samples"));
}

async fn agents_are_listed_with_labels_and_last_seen(b: Backend) {
    let s = &*b.store;
    let labels: BTreeMap<String, String> = [("role".to_string(), "web".to_string())]
        .into_iter()
        .collect();
    s.upsert_agent("web-1", &labels, Some("0.1.0"))
        .await
        .unwrap();
    s.upsert_agent("db-1", &BTreeMap::new(), None)
        .await
        .unwrap();
    let received = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
    s.ingest("web-1", &batch("web-1", "1", vec![]), received)
        .await
        .unwrap();
    // An earlier arrival time never moves last_seen back.
    s.ingest(
        "web-1",
        &batch("web-1", "2", vec![]),
        received - chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    let agents = s.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["db-1", "web-1"]
    );
    assert_eq!(agents[1].labels, labels);
    assert_eq!(agents[1].last_seen, Some(received));
    assert_eq!(agents[0].last_seen, None);
    assert_eq!(
        (agents[0].version.as_deref(), agents[1].version.as_deref()),
        (None, Some("0.1.0"))
    );
    // A later upsert without a version keeps the one recorded.
    s.upsert_agent("web-1", &labels, None).await.unwrap();
    assert_eq!(
        s.agents().await.unwrap()[1].version.as_deref(),
        Some("0.1.0")
    );
}

fn transition(from: Option<AlertState>, to: AlertState, at: DateTime<Utc>) -> Transition {
    Transition {
        fingerprint: "uptime:api".into(),
        rule: "uptime".into(),
        labels: [
            ("check".to_string(), "api".to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]
        .into_iter()
        .collect(),
        from,
        to,
        at,
        summary: format!("api is {}", to.as_str()),
        fired_at: (to == AlertState::Firing).then_some(at),
        notified_at: None,
    }
}

fn note(channel: &str, key: &str, at: DateTime<Utc>) -> NewNotification {
    NewNotification {
        channel: channel.into(),
        dedup_key: key.into(),
        // Its own group: claimed only when itself due.
        group_key: key.into(),
        payload: serde_json::json!({ "key": key }),
        not_before: at,
    }
}

async fn a_group_is_claimed_together_when_its_first_row_is_due(b: Backend) {
    let s = &*b.store;
    let grouped = |channel: &str, key: &str, due: DateTime<Utc>| NewNotification {
        group_key: "route0:".into(),
        ..note(channel, key, due)
    };
    let mut fire = transition(None, AlertState::Firing, t(0, 0));
    fire.notified_at = Some(t(0, 0));
    let id = s
        .record_transition(
            &fire,
            &[grouped("hook", "a", t(0, 2)), grouped("mail", "a", t(0, 2))],
        )
        .await
        .unwrap()
        .unwrap();
    let firing = s.alerts(&[AlertState::Firing]).await.unwrap();
    assert_eq!(
        (firing[0].fired_at, firing[0].notified_at),
        (Some(t(0, 0)), Some(t(0, 0)))
    );
    // A second alert's note for the same group, due later: not due on its own...
    let mut other = transition(None, AlertState::Firing, t(0, 1));
    other.fingerprint = "uptime:web".into();
    let other_id = s
        .record_transition(&other, &[grouped("hook", "b", t(0, 3))])
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.claim_notifications("w", t(0, 1), t(1, 0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(0, 2)));
    // ...but it goes with the group's first row, in the same channel only.
    let claimed = s
        .claim_notifications("w", t(0, 2), t(1, 0), 10)
        .await
        .unwrap();
    let keys: Vec<_> = claimed
        .iter()
        .map(|n| {
            (
                n.channel.as_str(),
                n.dedup_key.as_str(),
                n.group_key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("hook", "a", "route0:"),
            ("mail", "a", "route0:"),
            ("hook", "b", "route0:")
        ]
    );
    assert_eq!(claimed[0].created, t(0, 0));
    assert!(s.mark_delivered(claimed[0].id, "w", t(0, 3)).await.unwrap());
    assert!(s.mark_delivered(claimed[2].id, "w", t(0, 3)).await.unwrap());
    assert!(
        s.mark_failed(claimed[1].id, "w", "535 auth", None, t(0, 3))
            .await
            .unwrap()
    );
    let deliveries = s.deliveries(id).await.unwrap();
    let seen: Vec<_> = deliveries
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.state,
                d.attempts,
                d.last_error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("hook", DeliveryState::Delivered, 1, None),
            ("mail", DeliveryState::Failed, 1, Some("535 auth"))
        ]
    );
    assert_eq!(s.deliveries(other_id).await.unwrap().len(), 1);

    // Reminders and released notes: queued only while the alert is still in the state seen.
    assert!(
        s.queue_notifications(
            "uptime:api",
            AlertState::Firing,
            t(5, 0),
            &[note("hook", "r1", t(5, 0))]
        )
        .await
        .unwrap()
    );
    let firing = s.alerts(&[AlertState::Firing]).await.unwrap();
    let api = firing.iter().find(|a| a.id == id).unwrap();
    assert_eq!(api.notified_at, Some(t(5, 0)));
    assert!(
        !s.queue_notifications(
            "uptime:api",
            AlertState::Resolved,
            t(6, 0),
            &[note("hook", "r2", t(6, 0))]
        )
        .await
        .unwrap()
    );
    assert!(
        !s.queue_notifications(
            "uptime:nope",
            AlertState::Firing,
            t(6, 0),
            &[note("hook", "r3", t(6, 0))]
        )
        .await
        .unwrap()
    );
    let keys: Vec<String> = s
        .claim_notifications("w", t(9, 0), t(10, 0), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.dedup_key)
        .collect();
    assert_eq!(keys, ["r1"]);
    let r1 = s
        .claim_notifications("w", t(10, 1), t(11, 0), 10)
        .await
        .unwrap();
    assert_eq!(r1.len(), 1, "r1 again, its lease over");
    assert!(s.mark_delivered(r1[0].id, "w", t(10, 2)).await.unwrap());

    // A row waiting to be retried keeps its backoff when another row of its group comes due,
    // and a leased row is due when its lease ends.
    let mut again = transition(None, AlertState::Firing, t(20, 0));
    again.fingerprint = "uptime:db".into();
    s.record_transition(&again, &[grouped("hook", "c", t(20, 0))])
        .await
        .unwrap()
        .unwrap();
    let c = s
        .claim_notifications("w", t(20, 0), t(20, 30), 10)
        .await
        .unwrap();
    let keys: Vec<&str> = c.iter().map(|n| n.dedup_key.as_str()).collect();
    assert_eq!(keys, ["c"]);
    assert!(
        s.mark_failed(c[0].id, "w", "503", Some(t(25, 0)), t(20, 1))
            .await
            .unwrap()
    );
    let mut later = transition(None, AlertState::Firing, t(21, 0));
    later.fingerprint = "uptime:cache".into();
    s.record_transition(&later, &[grouped("hook", "d", t(21, 0))])
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<String> = s
        .claim_notifications("w", t(21, 0), t(30, 0), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.dedup_key)
        .collect();
    assert_eq!(keys, ["d"], "c waits for its retry at 25:00");
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(25, 0)));
    let leased = s
        .claim_notifications("v", t(25, 0), t(27, 0), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    // d (leased until 30:00) and c (leased until 27:00): the earliest lease end.
    assert_eq!(s.next_notification_due().await.unwrap(), Some(t(27, 0)));
}

fn default_retention() -> Retention {
    Retention {
        raw: Duration::from_secs(7 * 86_400),
        minute: Duration::from_secs(30 * 86_400),
        hour: Duration::from_secs(730 * 86_400),
        logs: Duration::from_secs(14 * 86_400),
        log_max_bytes: 1 << 30,
    }
}

async fn alert_transitions_are_compare_and_set_with_history_and_outbox(b: Backend) {
    let s = &*b.store;
    use AlertState::*;
    let fire = [
        note("mail", "1:firing", t(0, 0)),
        note("slack", "1:firing", t(0, 0)),
    ];
    let id = s
        .record_transition(&transition(None, Firing, t(0, 0)), &fire)
        .await
        .unwrap()
        .unwrap();
    // The same transition again (a restarted evaluator that did not see the first): refused,
    // and nothing more is queued.
    assert_eq!(
        s.record_transition(&transition(None, Firing, t(0, 1)), &fire)
            .await
            .unwrap(),
        None
    );
    let firing = s.alerts(&[Firing]).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(
        (firing[0].id, firing[0].since, firing[0].summary.as_str()),
        (id, t(0, 0), "api is firing")
    );
    assert_eq!(
        firing[0].labels.get("severity").map(String::as_str),
        Some("critical")
    );
    // From a state the alert is not in: refused.
    assert_eq!(
        s.record_transition(&transition(Some(Pending), Resolved, t(1, 0)), &[])
            .await
            .unwrap(),
        None
    );
    let resolve = [note("mail", "1:resolved", t(2, 0))];
    assert_eq!(
        s.record_transition(&transition(Some(Firing), Resolved, t(2, 0)), &resolve)
            .await
            .unwrap(),
        Some(id)
    );
    // A second resolve by a stale caller: refused.
    assert_eq!(
        s.record_transition(&transition(Some(Firing), Resolved, t(2, 5)), &resolve)
            .await
            .unwrap(),
        None
    );
    // A notification key already queued is not queued again, even with a new transition.
    let again = [
        note("mail", "1:resolved", t(3, 0)),
        note("mail", "2:firing", t(3, 0)),
    ];
    assert_eq!(
        s.record_transition(&transition(Some(Resolved), Firing, t(3, 0)), &again)
            .await
            .unwrap(),
        Some(id)
    );
    let history = s.alert_history(id).await.unwrap();
    let steps: Vec<_> = history.iter().map(|e| (e.from, e.to, e.time)).collect();
    assert_eq!(
        steps,
        [
            (None, Firing, t(0, 0)),
            (Some(Firing), Resolved, t(2, 0)),
            (Some(Resolved), Firing, t(3, 0))
        ]
    );
    let queued = s
        .claim_notifications("w", t(10, 0), t(11, 0), 100)
        .await
        .unwrap();
    let keys: Vec<_> = queued
        .iter()
        .map(|n| (n.channel.as_str(), n.dedup_key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("mail", "1:firing"),
            ("slack", "1:firing"),
            ("mail", "1:resolved"),
            ("mail", "2:firing")
        ]
    );
    assert_eq!(queued[0].payload["key"], "1:firing");
    assert!(s.alerts(&[Resolved]).await.unwrap().is_empty());
    // The status page's incidents: each firing with its end, newest first; a window that
    // starts after the first firing began leaves it out.
    let incidents = s.incidents("uptime", t(0, 0)).await.unwrap();
    let shape: Vec<_> = incidents.iter().map(|i| (i.started, i.ended)).collect();
    assert_eq!(shape, [(t(3, 0), None), (t(0, 0), Some(t(2, 0)))]);
    assert_eq!(incidents[1].summary, "api is firing");
    assert_eq!(incidents[1].labels["check"], "api");
    let later = s.incidents("uptime", t(2, 30)).await.unwrap();
    assert_eq!(later.len(), 1);
    assert!(s.incidents("heartbeat", t(0, 0)).await.unwrap().is_empty());
}

async fn outbox_claims_lease_retry_and_give_up(b: Backend) {
    let s = &*b.store;
    let notes = [
        note("mail", "a", t(0, 0)),
        note("mail", "b", t(0, 0)),
        note("mail", "later", t(5, 0)),
    ];
    s.record_transition(&transition(None, AlertState::Firing, t(0, 0)), &notes)
        .await
        .unwrap()
        .unwrap();
    // Due now: a and b, not "later". A second sender gets nothing while the lease holds.
    let a = s
        .claim_notifications("one", t(1, 0), t(2, 0), 10)
        .await
        .unwrap();
    assert_eq!(
        a.iter().map(|n| n.dedup_key.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(
        s.claim_notifications("two", t(1, 30), t(2, 30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.mark_delivered(a[0].id, "one", t(1, 40)).await.unwrap());
    assert_eq!(
        s.delivery(a[0].id).await.unwrap(),
        Some((DeliveryState::Delivered, None))
    );
    // The lease on b runs out: another sender takes it, and the first can no longer finish it.
    let b2 = s
        .claim_notifications("two", t(2, 1), t(3, 0), 10)
        .await
        .unwrap();
    assert_eq!(
        b2.iter().map(|n| n.dedup_key.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert!(!s.mark_delivered(a[1].id, "one", t(2, 2)).await.unwrap());
    // A failed attempt with a retry time: not due before it, due after, attempts counted.
    assert!(
        s.mark_failed(b2[0].id, "two", "SMTP 451", Some(t(4, 0)), t(2, 3))
            .await
            .unwrap()
    );
    assert!(
        s.claim_notifications("two", t(3, 59), t(9, 0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = s
        .claim_notifications("two", t(4, 0), t(4, 30), 1)
        .await
        .unwrap();
    assert_eq!((retry[0].dedup_key.as_str(), retry[0].attempts), ("b", 1));
    // Giving up: failed, with the reason; never claimed again.
    assert!(
        s.mark_failed(retry[0].id, "two", "gave up after 1 h", None, t(4, 10))
            .await
            .unwrap()
    );
    assert_eq!(
        s.delivery(retry[0].id).await.unwrap(),
        Some((DeliveryState::Failed, Some("gave up after 1 h".into())))
    );
    let rest = s
        .claim_notifications("two", t(9, 0), t(10, 0), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|n| n.dedup_key.as_str())
            .collect::<Vec<_>>(),
        ["later"]
    );
    // Finished rows go with retention; a pending one stays.
    let later = t(60 * 24 * 30, 0);
    while s
        .enforce_retention(&default_retention(), later, 100)
        .await
        .unwrap()
        > 0
    {}
    assert_eq!(s.delivery(a[0].id).await.unwrap(), None);
    assert_eq!(s.delivery(retry[0].id).await.unwrap(), None);
    assert!(s.delivery(rest[0].id).await.unwrap().is_some());
}

async fn acknowledgements_and_silences(b: Backend) {
    let s = &*b.store;
    let id = s
        .record_transition(&transition(None, AlertState::Firing, t(0, 0)), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(s.ack_alert(id, "ops@example.com", t(1, 0)).await.unwrap());
    assert_eq!(
        s.alerts(&[AlertState::Firing]).await.unwrap()[0]
            .acked_by
            .as_deref(),
        Some("ops@example.com")
    );
    s.record_transition(
        &transition(Some(AlertState::Firing), AlertState::Resolved, t(2, 0)),
        &[],
    )
    .await
    .unwrap()
    .unwrap();
    // Only a firing alert can be acknowledged; resolving clears the acknowledgement.
    assert!(!s.ack_alert(id, "ops@example.com", t(3, 0)).await.unwrap());
    assert_eq!(
        s.alerts(&[AlertState::Resolved]).await.unwrap()[0].acked_by,
        None
    );

    let silence = Silence {
        id: 0,
        matchers: [("check".to_string(), "api".to_string())]
            .into_iter()
            .collect(),
        starts: t(0, 0),
        ends: t(60, 0),
        created_by: "ops@example.com".into(),
        comment: "deploy".into(),
    };
    let sid = s.create_silence(&silence).await.unwrap();
    let active = s.silences(t(10, 0)).await.unwrap();
    assert_eq!(
        active,
        [Silence {
            id: sid,
            ..silence.clone()
        }]
    );
    let labels = transition(None, AlertState::Firing, t(0, 0)).labels;
    assert!(active[0].silences(&labels, t(10, 0)));
    assert!(!active[0].silences(&labels, t(61, 0)));
    assert!(s.expire_silence(sid, t(20, 0)).await.unwrap());
    assert!(!s.expire_silence(sid, t(21, 0)).await.unwrap());
    assert!(s.silences(t(21, 0)).await.unwrap().is_empty());
}

async fn concurrent_senders_never_claim_one_notification_twice(b: Backend) {
    let notes: Vec<NewNotification> = (0..60)
        .map(|i| note("mail", &format!("n{i}"), t(0, 0)))
        .collect();
    b.store
        .record_transition(&transition(None, AlertState::Firing, t(0, 0)), &notes)
        .await
        .unwrap()
        .unwrap();
    let mut senders = Vec::new();
    for k in 0..4 {
        let store = b.store.clone();
        senders.push(tokio::spawn(async move {
            let owner = format!("sender-{k}");
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_notifications(&owner, t(1, 0), t(30, 0), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                for n in batch {
                    assert!(
                        store.mark_delivered(n.id, &owner, t(1, 1)).await.unwrap(),
                        "lost the lease on {}",
                        n.id
                    );
                    got.push(n.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for s in senders {
        all.extend(s.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(
        (n, all.len()),
        (60, 60),
        "every notification claimed exactly once"
    );
}

async fn a_shared_database_queues_each_stored_batch_once_for_the_leader(b: Backend) {
    let s = &*b.store;
    let first = batch("web-1", "1", vec![result("api", t(0, 0), false, 5.0)]);
    s.ingest("web-1", &first, t(0, 0)).await.unwrap();
    let resend = s.ingest("web-1", &first, t(0, 1)).await.unwrap();
    assert!(resend.duplicate);
    ingest(s, "web-2", "1", vec![sample("load", &[], t(0, 1), 1.5)]).await;
    let queued = s.queued_batches(10).await.unwrap();
    if !s.shared() {
        // SQLite: one collector, which evaluates in process; nothing is queued.
        assert!(queued.is_empty());
        return;
    }
    let seen: Vec<(&str, usize)> = queued
        .iter()
        .map(|q| {
            (
                q.agent.as_str(),
                q.records.as_ref().map(Vec::len).unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("web-1", 1), ("web-2", 1)],
        "the resend is not queued again"
    );
    match &queued[0].records.as_ref().unwrap()[0] {
        Record::CheckResult(c) => assert!(c.check == "api" && !c.ok),
        other => panic!("{other:?}"),
    }
    s.dequeue_batches(&[queued[0].id]).await.unwrap();
    let left = s.queued_batches(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].agent, "web-2");
}

async fn collectors_announce_themselves_and_age_out(b: Backend) {
    use lookout_collector::store::cluster::CollectorRow;
    let s = &*b.store;
    let row = |instance: &str, seen: DateTime<Utc>, leader: Option<DateTime<Utc>>| CollectorRow {
        instance: instance.into(),
        address: format!("http://{instance}:7700"),
        version: "0.1.0".into(),
        started: t(0, 0),
        seen,
        leader_since: leader,
    };
    s.announce(&row("a", t(0, 10), Some(t(0, 1))))
        .await
        .unwrap();
    s.announce(&row("b", t(0, 10), None)).await.unwrap();
    s.announce(&row("old", t(0, 0), None)).await.unwrap();
    // A later announcement replaces the row: b leads now, a is gone quiet.
    s.announce(&row("b", t(0, 20), Some(t(0, 15))))
        .await
        .unwrap();
    let listed = s.collectors(t(0, 5)).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c.instance.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"a") && names.contains(&"b"));
    let b_row = listed.iter().find(|c| c.instance == "b").unwrap();
    assert_eq!(b_row.leader_since, Some(t(0, 15)));
    assert_eq!(b_row.seen, t(0, 20));
}
