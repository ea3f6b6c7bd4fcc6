//! The code both SQL backends run, written once as [`SqlStore`], generic over the backend's
//! sqlx [`Database`]: each backend runs on its native driver (no `Any` indirection, native
//! types), and the generic code compiles to the same code per backend that a copy written for
//! each would. The SQL is written once, with `$N` placeholders (which SQLite reads as well as
//! PostgreSQL) and only syntax the two share. Queries that join a series table to its rows say
//! `CROSS JOIN`, which makes SQLite loop over the few series first and seek each one's rows by
//! key (PostgreSQL plans it as an inner join, from its statistics).
//!
//! A backend is a [`Backend`]: its database size query, its migration lock, how it searches
//! log text, and its own bulk writes, [`Backend::write_group`] and [`Backend::roll_up_step`],
//! each in the form its database takes fastest (store/sqlite_write.rs: prepared statements on
//! the connection's handle; store/postgres/write.rs: arrays and `UNNEST`), sharing
//! `GroupRows` (store/sql/group.rs) and store/rollup.rs. Where a query's text differs between
//! the two, the backend gives the part that differs (a constant, or a method).
//!
//! The queries, one file per concern under store/sql/: `results` (check results and their
//! rollups), `metrics`, `logs`, `agents`, `retention`, `alerting` (alerts, the outbox,
//! heartbeats, silences), `transitions` (an alert transition's writes, alone or in a group's
//! transaction), `cluster` and `enrolled` (agents that enrolled themselves); beside them the series cache (`series`), a group
//! commit's rows (`group`) and the conversions of values to columns (`values`). The schema and
//! its migrations are store/migrate.rs.
//!
//! Every generic `impl` states the same bounds (Rust does not carry a trait's bounds on other
//! types to its users): that the backend's connections execute queries, and that the column
//! types the queries bind and read (`i64`, `f64`, `bool`, text, bytes, and their `Option`s)
//! are encoded and decoded by the backend. Both backends meet them; the list is the one in
//! this file's `impl Store`.

mod agents;
mod alerting;
mod cluster;
mod enrolled;
pub(crate) mod group;
mod logs;
mod metrics;
mod results;
pub(crate) mod retention;
pub(crate) mod series;
pub(crate) mod transitions;
pub(crate) mod values;

use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool,
    QueryBuilder, Transaction, Type,
};

use self::series::{MadeSeries, SeriesCache};
use super::alerting::{NewNotification, Transition};
use super::{
    AgentRow, CheckRollup, CheckTotal, IngestOutcome, LogQuery, LogRow, MetricRollup, MetricRow,
    NewBatch, OpenGroup, ResultQuery, ResultRow, Retention, RollupQuery, Store, StoreError,
    TotalsWidth,
};

/// The rows a statement changed, which each driver's result type tells in its own method.
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// A store on a SQL database: a pool that writes, one that reads (the same pool where the
/// database has no single writer), and the cache of series ids.
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub(in crate::store) write: Pool<DB>,
    pub(in crate::store) read: Pool<DB>,
    pub(in crate::store) series: SeriesCache,
}

/// What one SQL database does its own way; the rest of [`SqlStore`] is shared.
pub trait Backend: Database<QueryResult: RowsAffected> {
    /// The database's size in bytes, as one row of one column.
    const SIZE_SQL: &'static str;
    /// A statement run first in the migration transaction, so that concurrent starts migrate
    /// once.
    const MIGRATION_LOCK: Option<&'static str>;
    /// True when several collectors may share the database: each stored batch is then also
    /// queued for the leader's evaluation (store/cluster.rs).
    const SHARED: bool;
    /// Appended to the outbox claim's inner `SELECT` (store/sql/alerting.rs).
    const CLAIM_LOCK: &'static str;

    /// The schema text (written for SQLite) as this database runs it.
    fn ddl(text: &str) -> AssertSqlSafe<String>;

    /// True when the words of `text` match so many log lines that a search should walk lines
    /// newest first instead of collecting every match ([`Backend::push_text_match`]).
    fn text_is_common(
        pool: &Pool<Self>,
        text: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Appends a condition on `l.text` to a log search: every word of `text` occurs.
    fn push_text_match(qb: &mut QueryBuilder<Self>, text: &str, common: bool);

    /// The statement that opens a group's transaction ([`Store::open_group`]).
    const BEGIN_GROUP: &'static str;

    /// Writes a group of batches in `tx` ([`Store::open_group`]): each batch's outcome, in
    /// order, and the series made, for the cache once `tx` commits.
    fn write_group(
        store: &SqlStore<Self>,
        tx: &mut Transaction<'static, Self>,
        items: &[NewBatch<'_>],
    ) -> impl Future<Output = Result<(Vec<IngestOutcome>, Vec<MadeSeries>), StoreError>> + Send;

    /// Writes a transition in a group's open transaction `tx`, all or nothing, in a savepoint
    /// ([`crate::store::alerting::Ledger::record_transition`]).
    fn group_transition(
        tx: &mut Transaction<'static, Self>,
        t: &Transition,
        notify: &[NewNotification],
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// One roll-up step: up to `max_rows` new raw rows of each kind, in one transaction
    /// ([`Store::roll_up`]).
    fn roll_up_step(
        store: &SqlStore<Self>,
        max_rows: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A group of batches written in an open transaction ([`Store::open_group`]); the transitions
/// written to it (store/sql/alerting.rs) go in the same transaction.
pub struct SqlGroup<'s, DB: Database> {
    pub(in crate::store) store: &'s SqlStore<DB>,
    pub(in crate::store) tx: Transaction<'static, DB>,
    /// Series made by the group, for the cache once it commits.
    made: Vec<MadeSeries>,
}

#[async_trait]
impl<DB> OpenGroup for SqlGroup<'_, DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> i64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> f64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> bool: Type<DB> + Decode<'a, DB>,
    for<'a> String: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Vec<u8>: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
{
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let SqlGroup { store, tx, made } = *self;
        tx.commit().await?;
        // Only now: a rolled-back group leaves no id in the cache that the database forgot.
        store.series.put_all(made);
        Ok(())
    }
}

impl<DB: Database> std::fmt::Debug for SqlGroup<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlGroup")
            .field("made", &self.made.len())
            .finish()
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> i64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> f64: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> bool: Type<DB> + Decode<'a, DB>,
    for<'a> String: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Vec<u8>: Type<DB> + Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<&'a str>: Encode<'a, DB>,
{
    async fn ingest_many(&self, items: &[NewBatch<'_>]) -> Result<Vec<IngestOutcome>, StoreError> {
        let (outcomes, group) = self.open_group(items).await?;
        group.commit().await?;
        Ok(outcomes)
    }

    async fn open_group<'s>(
        &'s self,
        items: &[NewBatch<'_>],
    ) -> Result<(Vec<IngestOutcome>, Box<dyn OpenGroup + 's>), StoreError> {
        let mut tx = self.write.begin_with(DB::BEGIN_GROUP).await?;
        let (outcomes, made) = DB::write_group(self, &mut tx, items).await?;
        Ok((
            outcomes,
            Box::new(SqlGroup {
                store: self,
                tx,
                made,
            }),
        ))
    }

    async fn check_known(&self, name: &str) -> Result<bool, StoreError> {
        self.select_check_known(name).await
    }

    async fn upsert_agent(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
        claimed: Option<&std::collections::BTreeMap<String, String>>,
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_agent(name, labels, claimed, version).await
    }

    async fn set_agent_presence(
        &self,
        agent: &str,
        presence: Option<crate::store::Presence>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.write_agent_presence(agent, presence, at).await
    }

    async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        self.select_agents().await
    }

    async fn latest_metrics(&self, agent: &str) -> Result<Vec<MetricRow>, StoreError> {
        self.select_latest_metrics(agent).await
    }

    async fn latest_results(&self) -> Result<Vec<ResultRow>, StoreError> {
        self.select_latest_results().await
    }

    async fn results(&self, q: &ResultQuery) -> Result<Vec<ResultRow>, StoreError> {
        self.select_results(q).await
    }

    async fn logs(&self, q: &LogQuery) -> Result<Vec<LogRow>, StoreError> {
        self.select_logs(q).await
    }

    async fn roll_up(&self, max_rows: u32) -> Result<u64, StoreError> {
        DB::roll_up_step(self, max_rows).await
    }

    async fn check_totals(
        &self,
        width: TotalsWidth,
        from: DateTime<Utc>,
    ) -> Result<Vec<CheckTotal>, StoreError> {
        self.select_check_totals(width, from).await
    }

    async fn check_rollups(&self, q: &RollupQuery) -> Result<Vec<CheckRollup>, StoreError> {
        self.select_check_rollups(q).await
    }

    async fn metric_rollups(&self, q: &RollupQuery) -> Result<Vec<MetricRollup>, StoreError> {
        self.select_metric_rollups(q).await
    }

    async fn metric_samples(&self, q: &RollupQuery) -> Result<Vec<MetricRollup>, StoreError> {
        self.select_metric_samples(q).await
    }

    async fn enforce_retention(
        &self,
        policy: &Retention,
        now: DateTime<Utc>,
        chunk: u32,
    ) -> Result<u64, StoreError> {
        self.delete_expired(policy, now, chunk).await
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(DB::SIZE_SQL)
            .fetch_one(&self.read)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn close(&self) {
        // The readers first: the last connection checkpoints, and a read-only one cannot.
        self.read.close().await;
        self.write.close().await;
    }
}
