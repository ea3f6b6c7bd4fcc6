//! The PostgreSQL backend: a connection pool (TLS when the URL asks for it, e.g.
//! `?sslmode=require`), the schema of [`super::migrate::MIGRATIONS`] with PostgreSQL's types, and the
//! same queries as SQLite. Migrations take an advisory lock, so collectors starting together
//! migrate once.
//!
//! Several collectors may share one database (docs/high-availability.md): each stored batch is
//! also queued for the leader's rule evaluation. The rollup step follows raw row ids and runs on
//! the leader only; with concurrent writers an id can commit after a larger one that a rollup
//! already passed, and such a row is then missing from the rollups (the raw row is kept).

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::alerting::{NewNotification, Transition};
use super::migrate::postgres_ddl;
use super::sql::series::{MadeSeries, SeriesCache};
use super::sql::{Backend, SqlStore};
use super::{IngestOutcome, NewBatch, StoreError};

mod write;

/// The PostgreSQL store.
pub type PgStore = SqlStore<Postgres>;

impl Backend for Postgres {
    const SIZE_SQL: &'static str = "SELECT pg_database_size(current_database())";
    /// Any fixed key; held until the migration transaction ends.
    const MIGRATION_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7700100)");
    /// Several collectors may share the database: batches are queued for the leader.
    const SHARED: bool = true;
    /// Claimers pass over outbox rows another sender is claiming.
    const CLAIM_LOCK: &'static str = " FOR UPDATE OF o SKIP LOCKED";

    fn ddl(text: &str) -> sqlx::AssertSqlSafe<String> {
        // Schema text from this crate, not input.
        sqlx::AssertSqlSafe(postgres_ddl(text))
    }

    /// PostgreSQL's planner weighs the GIN index against the time index itself.
    async fn text_is_common(_: &sqlx::Pool<Postgres>, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// The GIN index of schema v4.
    fn push_text_match(qb: &mut sqlx::QueryBuilder<Postgres>, text: &str, _common: bool) {
        qb.push("to_tsvector('simple', l.text) @@ plainto_tsquery('simple', ")
            .push_bind(text.to_string())
            .push(")");
    }

    const BEGIN_GROUP: &'static str = "BEGIN";

    async fn write_group(
        store: &PgStore,
        tx: &mut sqlx::Transaction<'static, Postgres>,
        items: &[NewBatch<'_>],
    ) -> Result<(Vec<IngestOutcome>, Vec<MadeSeries>), StoreError> {
        store.write_group(tx, items).await
    }

    async fn group_transition(
        tx: &mut sqlx::Transaction<'static, Postgres>,
        t: &Transition,
        notify: &[NewNotification],
    ) -> Result<Option<i64>, StoreError> {
        PgStore::transition_on(tx, t, notify).await
    }

    async fn roll_up_step(store: &PgStore, max_rows: u32) -> Result<u64, StoreError> {
        store.roll_up_step(max_rows).await
    }
}

impl PgStore {
    /// Connects, and brings the schema up to date. Every connection of the pool gets
    /// `statement_timeout` (`[storage] statement_timeout`): a query the server runs longer is
    /// cancelled there, and its request fails, instead of holding a connection and the
    /// database's CPU for as long as the query would take.
    pub async fn open(
        url: &str,
        max_connections: u32,
        statement_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        // Migrations may move every row once: they run on their own connection, untimed.
        let setup = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await?;
        Self::migrate(&setup).await?;
        setup.close().await;
        let timeout_ms = format!("{}", statement_timeout.as_millis());
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.options([("statement_timeout", timeout_ms.as_str())]))
            .await?;
        Ok(Self {
            write: pool.clone(),
            read: pool,
            series: SeriesCache::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PgStore;

    /// Every pooled connection carries the timeout, and the server enforces it.
    #[tokio::test]
    async fn statements_past_the_timeout_are_cancelled_by_the_server() {
        let Some(url) = lookout_tests::pg_database("timeout").await else {
            return;
        };
        let store = PgStore::open(&url, 3, Duration::from_secs(1))
            .await
            .unwrap();
        for _ in 0..3 {
            let shown: String = sqlx::query_scalar("SHOW statement_timeout")
                .fetch_one(&store.read)
                .await
                .unwrap();
            assert_eq!(shown, "1s");
        }
        let slow = sqlx::query("SELECT pg_sleep(3)")
            .execute(&store.read)
            .await
            .unwrap_err()
            .to_string();
        assert!(slow.contains("statement timeout"), "{slow}");
    }
}
