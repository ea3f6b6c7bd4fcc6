//! One conformance suite, run against both store backends: SQLite in a temporary folder, and
//! PostgreSQL at `LOOKOUT_TEST_PG_URL` (each test in a database of its own). `scripts/test`
//! starts a PostgreSQL and sets `LOOKOUT_REQUIRE_PG=1`, under which a missing one fails the
//! suite instead of skipping it.

#[path = "store_conformance/alerting.rs"]
mod alerting;
#[path = "store_conformance/cluster.rs"]
mod cluster;
#[path = "store_conformance/enrolled.rs"]
mod enrolled;
#[path = "store_conformance/escalation.rs"]
mod escalation;
#[path = "store_conformance/ingest.rs"]
mod ingest;
#[path = "store_conformance/logs.rs"]
mod logs;
#[path = "store_conformance/retention.rs"]
mod retention;
#[path = "store_conformance/rollups.rs"]
mod rollups;
#[path = "store_conformance/schema.rs"]
mod schema;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lookout_collector::store::{self, ResultQuery, Retention, RollupQuery, Store, Tier};
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
    let url = lookout_tests::pg_database("t").await?;
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

/// Runs `case` against SQLite and, when there is one, PostgreSQL.
macro_rules! conformance {
    ($($module:ident::$case:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$module::$case(super::sqlite().await).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(b) = super::postgres().await {
                        super::$module::$case(b).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    enrolled::a_name_enrols_once_unless_allowed_and_revoking_and_rotating_are_stored,
    ingest::a_batch_is_stored_once,
    ingest::latest_values_follow_time_not_arrival,
    ingest::results_filter_and_order,
    rollups::check_rollups_count_fail_and_merge_late_data,
    rollups::check_totals_merge_agents_per_hour_and_day,
    ingest::many_new_series_in_one_batch_get_their_own_ids,
    ingest::a_group_of_batches_is_stored_in_one_go_each_once,
    retention::retention_over_thousands_of_series_lets_the_writer_go_and_finishes,
    rollups::metric_rollups_keep_min_max_avg_last,
    retention::retention_deletes_in_chunks_and_only_rolled_up_rows,
    logs::logs_are_kept_by_age_and_by_size,
    logs::logs_are_searched_by_words_and_filters_newest_first_in_pages,
    logs::a_common_word_is_searched_newest_first_without_sorting_every_match,
    schema::reopening_keeps_data_and_a_newer_schema_is_refused,
    schema::samples_of_an_older_schema_move_into_blocks_and_are_rolled_up_once,
    schema::a_new_database_has_the_schema_earlier_builds_made,
    retention::rows_after_retention_emptied_the_tables_are_rolled_up,
    ingest::a_batch_larger_than_a_block_is_stored_whole,
    ingest::agents_are_listed_with_labels_and_last_seen,
    ingest::an_agent_that_left_is_recorded_until_its_next_batch,
    alerting::alert_transitions_are_compare_and_set_with_history_and_outbox,
    alerting::outbox_claims_lease_retry_and_give_up,
    alerting::acknowledgements_and_silences,
    alerting::an_acknowledgement_queues_notes_to_the_channels_its_firing_reached_once,
    alerting::a_shared_key_is_made_once_and_read_by_every_collector,
    alerting::concurrent_senders_never_claim_one_notification_twice,
    alerting::a_group_is_claimed_together_when_its_first_row_is_due,
    alerting::a_group_commits_its_transitions_with_its_batches_or_neither,
    escalation::escalation_steps_are_due_in_turn_and_stop_when_acknowledged_or_resolved,
    cluster::a_shared_database_queues_each_stored_batch_once_for_the_leader,
    cluster::collectors_announce_themselves_and_age_out,
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

fn default_retention() -> Retention {
    Retention {
        raw: Duration::from_secs(7 * 86_400),
        minute: Duration::from_secs(30 * 86_400),
        hour: Duration::from_secs(730 * 86_400),
        logs: Duration::from_secs(14 * 86_400),
        log_max_bytes: 1 << 30,
    }
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
