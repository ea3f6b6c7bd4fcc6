//! The SQLite backend: one file in WAL mode, `synchronous = FULL` so that a batch acknowledged
//! to an agent survives a power cut. One connection writes (SQLite has one writer anyway, and a
//! single writer never waits on a lock); a small pool reads. The queries are shared with
//! PostgreSQL ([`super::sql`]); what SQLite does its own way is its [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::alerting::{NewNotification, Transition};
use super::sql::series::{MadeSeries, SeriesCache};
use super::sql::{Backend, SqlStore};
use super::{IngestOutcome, NewBatch, StoreError};

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

/// Matches past which a search's words count as common.
const COMMON_MATCHES: i64 = 20_000;

/// The FTS5 query for what a user typed: every word quoted, so nothing typed is syntax.
fn fts_query(text: &str) -> String {
    text.split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Backend for Sqlite {
    const SIZE_SQL: &'static str =
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
    const MIGRATION_LOCK: Option<&'static str> = None;
    /// One collector per SQLite file: it evaluates what it stores, in process.
    const SHARED: bool = false;
    /// SQLite has one writer at a time: nothing to skip.
    const CLAIM_LOCK: &'static str = "";

    fn ddl(text: &str) -> sqlx::AssertSqlSafe<String> {
        // Schema text from this crate, not input.
        sqlx::AssertSqlSafe(text.to_string())
    }

    /// True when `text` matches at least [`COMMON_MATCHES`] lines (counting stops there).
    async fn text_is_common(pool: &sqlx::Pool<Sqlite>, text: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT rowid FROM logs_fts WHERE logs_fts MATCH $1 LIMIT $2)",
        )
        .bind(fts_query(text))
        .bind(COMMON_MATCHES)
        .fetch_one(pool)
        .await?;
        Ok(n >= COMMON_MATCHES)
    }

    /// Rare words: the set of matching lines, then the newest of them. Common words: the
    /// newest lines in time order, each checked against the index, which finds a page after a
    /// few hundred lines instead of sorting millions of matches.
    fn push_text_match(qb: &mut sqlx::QueryBuilder<Sqlite>, text: &str, common: bool) {
        if common {
            qb.push("EXISTS (SELECT 1 FROM logs_fts WHERE logs_fts MATCH ")
                .push_bind(fts_query(text))
                .push(" AND rowid = l.id)");
        } else {
            qb.push("l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ")
                .push_bind(fts_query(text))
                .push(")");
        }
    }

    /// `IMMEDIATE`: the group takes the write lock at once, as every SQLite writer should.
    const BEGIN_GROUP: &'static str = "BEGIN IMMEDIATE";

    async fn write_group(
        store: &SqliteStore,
        tx: &mut sqlx::Transaction<'static, Sqlite>,
        items: &[NewBatch<'_>],
    ) -> Result<(Vec<IngestOutcome>, Vec<MadeSeries>), StoreError> {
        on_handle(tx, |c| {
            super::sqlite_write::write_group(c, &store.series, items)
        })
        .await
    }

    /// On the handle, in one call: the savepoint and the transition's statements without a
    /// hand-off to sqlx's thread each.
    async fn group_transition(
        tx: &mut sqlx::Transaction<'static, Sqlite>,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError> {
        on_handle(tx, |c| super::sqlite_write::transition(c, t, notify)).await
    }

    async fn roll_up_step(store: &SqliteStore, max_rows: u32) -> Result<u64, StoreError> {
        store
            .with_handle(|c| super::sqlite_write::roll_up(c, max_rows))
            .await
    }
}

impl SqliteStore {
    /// Runs `f` on the write connection's own handle ([`on_handle`]).
    async fn with_handle<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.write.acquire().await?;
        on_handle(&mut conn, f).await
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer keeps 64 MiB of pages (SQLite's default is 2 MiB): with a fleet's million
        // series its inserts land all over the indexes, and each page not kept is read again.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().pragma("cache_size", "-65536"))
            .await?;
        Self::migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self {
            write,
            read,
            series: SeriesCache::default(),
        })
    }
}

/// Runs `f` on `conn`'s own handle, synchronously on the calling thread (the store's writer
/// thread): the store's bulk writes, each statement prepared once and run per row, with no
/// hand-off to sqlx's thread per statement (store/sqlite_write.rs). A transaction open on
/// `conn` (a group's, [`crate::store::Store::open_group`]) is open on the handle: SQLite's
/// transactions are the connection's.
async fn on_handle<T>(
    conn: &mut sqlx::SqliteConnection,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is locked out from sqlx's worker thread until `handle` drops, and
    // `direct` (which neither closes the handle nor outlives it) drops first, finalizing
    // any statement it prepared.
    #[allow(unsafe_code)]
    let mut direct = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
    f(&mut direct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::retention::{
        RETENTION_CHECK_ROLLUPS, RETENTION_METRIC_ROLLUPS, RETENTION_RAW, RETENTION_SAMPLE_BLOCKS,
        STRADDLING_SAMPLE_BLOCKS,
    };

    /// Retention reads through the time indexes: a full scan of a table would make each pass
    /// cost the whole table (or, as before, a statement per series).
    #[tokio::test]
    async fn retention_statements_search_by_time_never_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("l.db")).await.unwrap();
        let statements = [
            &RETENTION_RAW,
            &RETENTION_SAMPLE_BLOCKS,
            &STRADDLING_SAMPLE_BLOCKS,
        ]
        .into_iter()
        .chain(&RETENTION_CHECK_ROLLUPS)
        .chain([&RETENTION_METRIC_ROLLUPS]);
        for sql in statements {
            let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {sql}"
            )));
            for _ in 0..if sql.contains("$3") { 3 } else { 2 } {
                q = q.bind(1_i64);
            }
            let plan: Vec<String> = q
                .fetch_all(&store.read)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.3)
                .collect();
            assert!(
                plan.iter().all(|l| !l.starts_with("SCAN")),
                "{sql}\n{plan:#?}"
            );
            assert!(
                plan.iter().any(|l| l.contains("_by_time")
                    || l.contains("_by_hour")
                    || l.contains("_by_day")
                    || l.contains("_by_bucket")),
                "{sql}\n{plan:#?}"
            );
        }
    }

    /// A group that fails is rolled back whole, and the series it made leave no id in the
    /// cache that the database forgot: stored again, the good batch makes its series anew.
    #[tokio::test]
    async fn a_failed_group_stores_nothing_and_caches_no_series() {
        use crate::store::{NewBatch, Store};
        use lookout_protocol::{Batch, MetricSample, MetricType, PROTOCOL_VERSION, Record};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("l.db")).await.unwrap();
        let now = crate::clock::now();
        let sample = |name: &str, value: f64| {
            Record::Metric(MetricSample {
                name: name.into(),
                labels: [("i".to_string(), "1".to_string())].into(),
                time: now,
                value,
                metric_type: MetricType::Gauge,
            })
        };
        let batch = |id: &str, records| Batch {
            version: PROTOCOL_VERSION,
            agent: "a".into(),
            batch_id: id.into(),
            records,
        };
        let good = batch("1", vec![sample("m", 1.0), sample("m", 2.0)]);
        // SQLite stores NaN as NULL, which the samples' NOT NULL refuses (ingest's
        // validation refuses it before the store; this only makes the group fail).
        let bad = batch("2", vec![sample("n", f64::NAN)]);
        let item = |b| NewBatch {
            agent: "a",
            batch: b,
            received: now,
        };
        let err = store
            .ingest_many(&[item(&good), item(&bad)])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("NOT NULL"), "{err}");
        let count = |table: &str| {
            let sql = format!("SELECT count(*) FROM {table}");
            let pool = store.read.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        for table in [
            "metric_series",
            "metric_sample_blocks",
            "ingested_batches",
            "agents",
        ] {
            assert_eq!(count(table).await, 0, "{table}");
        }
        let mut ids = [0; 2];
        assert_eq!(store.series.resolve("a", &good.records, &mut ids), [0, 1]);

        let out = store.ingest_many(&[item(&good)]).await.unwrap();
        assert_eq!((out[0].stored, out[0].duplicate), (2, false));
        assert_eq!(count("metric_series").await, 1);
        assert_eq!(count("metric_sample_blocks").await, 1, "one block a batch");
        let latest = store.latest_metrics("a").await.unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(
            latest[0].value, 2.0,
            "the later of two at one time is the latest"
        );
        assert!(
            store
                .series
                .resolve("a", &good.records, &mut ids)
                .is_empty()
        );
    }
}
