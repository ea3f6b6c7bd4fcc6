//! The SQLite backend: one file in WAL mode, `synchronous = FULL` so that a batch acknowledged
//! to an agent survives a power cut. One connection writes (SQLite has one writer anyway, and a
//! single writer never waits on a lock); a small pool reads. The queries are shared with
//! PostgreSQL ([`super::sql`]).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;
use super::sql::{SeriesCache, sql_store};
use super::sql_alerting::sql_alert_store;

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    write: sqlx::Pool<Sqlite>,
    read: sqlx::Pool<Sqlite>,
    series: SeriesCache,
}

impl SqliteStore {
    const SIZE_SQL: &'static str =
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
    const MIGRATION_LOCK: Option<&'static str> = None;

    /// A condition on `l.text`: every word of `text` occurs (FTS5, each word quoted so that
    /// what a user types is never FTS5 syntax).
    fn push_text_match(qb: &mut sqlx::QueryBuilder<Sqlite>, text: &str) {
        let words: Vec<String> = text
            .split_whitespace()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect();
        qb.push("l.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ")
            .push_bind(words.join(" "))
            .push(")");
    }

    fn ddl(text: &str) -> sqlx::AssertSqlSafe<String> {
        // Schema text from this crate, not input.
        sqlx::AssertSqlSafe(text.to_string())
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
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
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

sql_store!(SqliteStore, Sqlite);
sql_alert_store!(SqliteStore, Sqlite);
