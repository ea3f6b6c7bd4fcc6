//! The schema: reopening, refusing a newer one, and migrating an older database.

use lookout_collector::store::{self, RollupQuery, StoreError, Tier};

use super::{Backend, ingest, result, sample, t};

pub(super) async fn reopening_keeps_data_and_a_newer_schema_is_refused(b: Backend) {
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
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(store::migrate::postgres_ddl(
            sqlite_text,
        )))
        .execute(&pool)
        .await;
        pool.close().await;
        done.map(drop)
    }
}

/// A database of schema v8 kept a row per sample in `metric_samples`, some rolled up, some
/// not; v9 moves them into blocks, and the roll-up goes on where it stood.
pub(super) async fn samples_of_an_older_schema_move_into_blocks_and_are_rolled_up_once(b: Backend) {
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
    // Back to v8 (every later version undone): the three samples as rows 1-3, rolled up
    // (their rollups are stored), and row 4 not yet.
    let series = |i: &str| {
        format!("(SELECT id FROM metric_series WHERE name = 'm' AND labels LIKE '%\"{i}\"%')")
    };
    let time = |second| t(0, second).timestamp_millis();
    run_sql(
        &b.url,
        &format!(
            "DROP TABLE metric_sample_blocks;
             DELETE FROM rollup_cursors WHERE name = 'metric_sample_blocks';
             ALTER TABLE agents DROP COLUMN claimed_labels;
             DROP TABLE enrolled_agents;
             ALTER TABLE agents DROP COLUMN presence;
             ALTER TABLE agents DROP COLUMN presence_since_ms;
             ALTER TABLE outbox DROP COLUMN step;
             ALTER TABLE outbox DROP COLUMN earliest_ms;
             ALTER TABLE outbox DROP COLUMN repeat_ms;
             DROP TABLE shared_keys;
             DELETE FROM schema_migrations WHERE version >= 9;
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

/// A column of PostgreSQL's: table, name, type, nullable, default, identity.
type Column = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// The schema a new database gets, as text: every table, index and trigger with its
/// definition, and the versions recorded as applied.
async fn schema_text(url: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'
             ORDER BY type, name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for (kind, name, sql) in rows {
            lines.push(format!("{kind} {name}: {}", sql.unwrap_or_default()));
        }
        lines.push(versions(&pool).await);
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let columns: Vec<Column> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text,
                   column_default::text, is_identity::text
                 FROM information_schema.columns WHERE table_schema = 'public'
                 ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for (table, column, kind, nullable, default, identity) in columns {
            lines.push(format!(
                "column {table}.{column}: {kind} nullable={nullable} default={default:?} \
                 identity={identity:?}"
            ));
        }
        let defs: Vec<(String, String)> = sqlx::query_as(
            "SELECT 'index ' || indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public'
             UNION ALL
             SELECT 'constraint ' || c.conrelid::regclass::text || '.' || c.conname::text,
                    pg_get_constraintdef(c.oid)
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = 'public'
             UNION ALL
             SELECT 'options ' || relname::text, array_to_string(reloptions, ',') FROM pg_class
             WHERE reloptions IS NOT NULL AND relnamespace = 'public'::regnamespace
             ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for (name, def) in defs {
            lines.push(format!("{name}: {def}"));
        }
        lines.push(versions(&pool).await);
        pool.close().await;
    }
    lines.join("\n") + "\n"
}

/// The schema versions recorded as applied, in order.
async fn versions<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> String
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let v: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap();
    format!("versions: {v:?}")
}

/// A new database has exactly the schema the released migrations made (the text in
/// `schema.sqlite.txt` and `schema.postgres.txt` beside this file, taken from the build before
/// the store's code was reorganised): a database made by an earlier build is one this build
/// opens without migrating anything. `LOOKOUT_BLESS_SCHEMA=1` writes the files anew, for a
/// change that adds a schema version on purpose.
pub(super) async fn a_new_database_has_the_schema_earlier_builds_made(b: Backend) {
    let backend = if b.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let path = format!(
        "{}/tests/store_conformance/schema.{backend}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let found = schema_text(&b.url).await;
    if std::env::var("LOOKOUT_BLESS_SCHEMA").is_ok() {
        std::fs::write(&path, &found).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert!(
        found == expected,
        "the schema differs from {path}:\n{}",
        diff(&expected, &found)
    );
}

/// The lines only one of the two texts has.
fn diff(expected: &str, found: &str) -> String {
    let (e, f): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), found.lines().collect());
    let gone = e
        .iter()
        .filter(|l| !f.contains(l))
        .map(|l| format!("- {l}"));
    let new = f
        .iter()
        .filter(|l| !e.contains(l))
        .map(|l| format!("+ {l}"));
    gone.chain(new).collect::<Vec<_>>().join("\n")
}
