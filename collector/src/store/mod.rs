//! Storage: one interface ([`Store`]) for everything the collector keeps, two backends.
//!
//! - [`sqlite`]: one file in WAL mode, the zero-setup default;
//! - [`postgres`]: a shared PostgreSQL database with a connection pool;
//! - [`sql`]: the code and SQL both backends run ([`sql::SqlStore`], generic over a
//!   [`sql::Backend`]; placeholders are `$N`, which both read);
//! - [`migrate`]: the schema's versions (store/migrations/) and the runner that applies them;
//! - [`alerting`]: alerts and their history, the notification outbox, silences
//!   ([`alerting::AlertStore`], implemented in store/sql/alerting.rs);
//! - [`enrolled`]: agents that enrolled themselves and their credentials' digests
//!   ([`enrolled::EnrolledStore`], implemented in store/sql/enrolled.rs);
//! - [`histogram`]: the mergeable latency histogram kept in rollups;
//! - [`rollup`]: aggregation of raw rows into per-minute and per-hour rollups.
//!
//! Invariants, both backends:
//! - A batch is stored in one transaction together with its (agent, batch id): stored whole or
//!   not at all, and a batch id seen before stores nothing. The alert transitions decided on
//!   a group of batches can be written in that transaction ([`Store::open_group`]): they commit
//!   with the batches, or neither does.
//! - Raw rows are rolled up by a cursor over their ids, in small steps ([`Store::roll_up`]), so
//!   late data (an agent's backlog) lands in the right old bucket, and no step scans a table.
//! - Retention deletes in bounded chunks ([`Store::enforce_retention`]) and never deletes a raw
//!   row that has not been rolled up.
//! - Schema versions are applied in order at start; a database newer than the binary is refused.

pub mod alerting;
pub mod blocks;
pub mod cluster;
pub mod enrolled;
pub mod histogram;
pub mod migrate;
pub mod postgres;
pub mod rollup;
pub mod sql;
pub mod sqlite;
mod sqlite_write;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lookout_protocol::Batch;
use serde::Serialize;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite said no, to a statement run on its handle directly (store/sqlite_write.rs).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer Lookout.
    #[error(
        "the database schema is version {found}, newer than this build knows ({known}): \
         run the newer lookout-collector, or restore a backup"
    )]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// The storage URL names something this build cannot use.
    #[error("unsupported storage URL {url:?}: {reason}")]
    Unsupported {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A file or folder for the database could not be made.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// A batch to store, with who sent it and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The batch.
    pub batch: &'a Batch,
    /// When it arrived.
    pub received: DateTime<Utc>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Records stored (0 for a duplicate).
    pub stored: usize,
    /// True when this (agent, batch id) had been stored before: nothing was stored again.
    pub duplicate: bool,
}

/// One stored check result; in the API it is listed under its check, so the name is not repeated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    /// The check.
    #[serde(skip)]
    pub check: String,
    /// The agent that ran it.
    pub agent: String,
    /// When the probe started.
    pub time: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Total time, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// HTTP status, where there was one.
    pub status_code: Option<u16>,
    /// When the earliest certificate of the server's chain expires, where there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_expiry: Option<DateTime<Utc>>,
    /// Where the time went (phases the probe measured; the total is `latency_ms`).
    pub timings: lookout_protocol::Timings,
    /// The check's type as the agent reported it.
    #[serde(skip)]
    pub check_type: Option<String>,
}

/// One agent as the store knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// When it last shipped a batch.
    pub last_seen: Option<DateTime<Utc>>,
    /// Its version, from its requests' User-Agent, once it has polled.
    pub version: Option<String>,
    /// The labels it last sent about itself, as it sent them (empty before it polled).
    pub claimed_labels: BTreeMap<String, String>,
    /// Whether it left, and since when: `None` while it ships.
    pub presence: Option<(Presence, DateTime<Utc>)>,
}

/// An agent that left, as the store records it until its next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// It said it was stopping (a clean stop): its silence does not page.
    Stopped,
    /// An ephemeral agent that stopped or was silent past its `retire_after`: its checks no
    /// longer count it, its history stays.
    Retired,
}

impl Presence {
    /// Its name in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Retired => "retired",
        }
    }

    /// The presence named `name` in the store; `None` for any other text.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "stopped" => Some(Self::Stopped),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

impl AgentRow {
    /// What it says of itself that its labels contradict: claims the configuration overrode.
    pub fn overridden_claims(&self) -> BTreeMap<String, String> {
        self.claimed_labels
            .iter()
            .filter(|(k, v)| self.labels.get(*k).is_some_and(|l| l != *v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The latest sample of one metric series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// Metric name.
    pub name: String,
    /// Series labels.
    pub labels: BTreeMap<String, String>,
    /// Sample time.
    pub time: DateTime<Utc>,
    /// Value.
    pub value: f64,
    /// `gauge` or `counter`.
    #[serde(rename = "type")]
    pub metric_type: String,
}

/// Query of raw check results.
#[derive(Debug, Clone)]
pub struct ResultQuery {
    /// The check.
    pub check: String,
    /// Only this agent's, when set.
    pub agent: Option<String>,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (inclusive).
    pub to: DateTime<Utc>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// One stored log record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRow {
    /// Its id: later lines of one time have higher ids (the cursor's tie-break).
    #[serde(skip)]
    pub id: i64,
    /// The agent that shipped it.
    pub agent: String,
    /// When it was written.
    pub time: DateTime<Utc>,
    /// Where it came from.
    pub source: String,
    /// Severity, where known.
    pub level: Option<String>,
    /// The line.
    pub text: String,
}

/// Query of log records.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Words that must all occur in the text (full-text: whole words, any case).
    pub text: Option<String>,
    /// Only this agent's, when set.
    pub agent: Option<String>,
    /// Only from this source (file path), when set.
    pub source: Option<String>,
    /// Only of this level, when set.
    pub level: Option<String>,
    /// Only records before this one (time in ms, id): the next page of a search.
    pub before: Option<(i64, i64)>,
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (inclusive).
    pub to: DateTime<Utc>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// Rollup resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Per-minute rollups.
    Minute,
    /// Per-hour rollups.
    Hour,
}

impl Tier {
    /// The bucket width in milliseconds.
    pub fn width_ms(self) -> i64 {
        match self {
            Tier::Minute => 60_000,
            Tier::Hour => 3_600_000,
        }
    }
}

/// One rollup bucket of a check, for one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRollup {
    /// The agent.
    pub agent: String,
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    /// Results in the bucket.
    pub count: u64,
    /// Failed results in the bucket.
    pub failures: u64,
    /// Sum of latencies, in milliseconds.
    pub latency_sum_ms: f64,
    /// Latency distribution.
    pub latency: histogram::Histogram,
}

/// The width of [`Store::check_totals`]' buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalsWidth {
    /// UTC hours, from the per-hour rollups.
    Hour,
    /// UTC days, from the daily rollups.
    Day,
}

/// One check's totals in one bucket, all agents together.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckTotal {
    /// The check.
    pub check: String,
    /// Start of the bucket, Unix ms.
    pub bucket_ms: i64,
    /// Results.
    pub count: u64,
    /// Failed results.
    pub failures: u64,
    /// Sum of latencies, ms.
    pub latency_sum_ms: f64,
}

/// One rollup bucket of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRollup {
    /// Series labels.
    pub labels: BTreeMap<String, String>,
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    /// Samples in the bucket.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// The latest value.
    pub last: f64,
}

/// Query of rollups.
#[derive(Debug, Clone)]
pub struct RollupQuery {
    /// Check name, or metric name.
    pub name: String,
    /// Only this agent's, when set.
    pub agent: Option<String>,
    /// Which rollups.
    pub tier: Tier,
    /// Buckets starting at or after this.
    pub from: DateTime<Utc>,
    /// Buckets starting at or before this.
    pub to: DateTime<Utc>,
}

/// How long each kind of data is kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Raw check results, metric samples and batch ids.
    pub raw: std::time::Duration,
    /// Per-minute rollups.
    pub minute: std::time::Duration,
    /// Per-hour rollups.
    pub hour: std::time::Duration,
    /// Log records, by age.
    pub logs: std::time::Duration,
    /// Log records, by total text size.
    pub log_max_bytes: u64,
}

impl From<&lookout_config::StorageConfig> for Retention {
    fn from(c: &lookout_config::StorageConfig) -> Self {
        Self {
            raw: c.raw_retention,
            minute: c.minute_rollup_retention,
            hour: c.hour_rollup_retention,
            logs: c.log_retention,
            log_max_bytes: c.log_max_bytes,
        }
    }
}

/// A group of batches written in a transaction not yet committed ([`Store::open_group`]).
/// Transitions written to it are committed with the batches, or rolled back with them.
#[async_trait]
pub trait OpenGroup: alerting::Ledger {
    /// Commits the batches and every transition written to this group, at once. Returns only
    /// after they are durable.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Everything the collector keeps.
#[async_trait]
pub trait Store:
    alerting::AlertStore
    + cluster::ClusterStore
    + enrolled::EnrolledStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Stores a batch from `agent` atomically, once per (agent, batch id), and marks the agent
    /// seen at `received`. Returns only after the data is durable.
    async fn ingest(
        &self,
        agent: &str,
        batch: &Batch,
        received: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let mut out = self
            .ingest_many(&[NewBatch {
                agent,
                batch,
                received,
            }])
            .await?;
        Ok(out.remove(0))
    }

    /// Stores several batches in one transaction (group commit), each once per (agent, batch
    /// id) as [`Store::ingest`] does; the outcomes in the same order. All or nothing: after an
    /// error none of them is stored.
    async fn ingest_many(&self, items: &[NewBatch<'_>]) -> Result<Vec<IngestOutcome>, StoreError>;

    /// Writes several batches as [`Store::ingest_many`] does, in a transaction left open:
    /// transitions decided on the new ones are written in it ([`alerting::Ledger`]) and
    /// committed with them ([`OpenGroup::commit`]). Dropped uncommitted, it stores nothing.
    /// The transaction holds the store's write connection: on SQLite, the one writer.
    async fn open_group<'s>(
        &'s self,
        items: &[NewBatch<'_>],
    ) -> Result<(Vec<IngestOutcome>, Box<dyn OpenGroup + 's>), StoreError>;

    /// Records that `agent` left (`Some`) at `at`, or is back (`None`). An agent not yet
    /// recorded is added.
    async fn set_agent_presence(
        &self,
        agent: &str,
        presence: Option<Presence>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// True when some agent has reported a check of this name.
    async fn check_known(&self, name: &str) -> Result<bool, StoreError>;

    /// Records an agent's labels (from configuration, over its own report) and, when known,
    /// the labels it sent about itself and its version (`None` keeps the ones recorded).
    async fn upsert_agent(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        claimed: Option<&BTreeMap<String, String>>,
        version: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Every known agent.
    async fn agents(&self) -> Result<Vec<AgentRow>, StoreError>;

    /// The latest sample of each metric series of an agent.
    async fn latest_metrics(&self, agent: &str) -> Result<Vec<MetricRow>, StoreError>;

    /// The latest result of each (check, agent).
    async fn latest_results(&self) -> Result<Vec<ResultRow>, StoreError>;

    /// Raw results of one check, newest first.
    async fn results(&self, q: &ResultQuery) -> Result<Vec<ResultRow>, StoreError>;

    /// Log records, newest first.
    async fn logs(&self, q: &LogQuery) -> Result<Vec<LogRow>, StoreError>;

    /// Rolls up at most `max_rows` raw rows of each kind not rolled up yet; returns how many it
    /// took (fewer than asked means it has caught up).
    async fn roll_up(&self, max_rows: u32) -> Result<u64, StoreError>;

    /// Every check's totals per hour or per day from `from` (bucket start at or after it), all
    /// agents merged: what the status page shows, from rollups only.
    async fn check_totals(
        &self,
        width: TotalsWidth,
        from: DateTime<Utc>,
    ) -> Result<Vec<CheckTotal>, StoreError>;

    /// Rollups of one check (per agent), oldest first.
    async fn check_rollups(&self, q: &RollupQuery) -> Result<Vec<CheckRollup>, StoreError>;

    /// Rollups of one metric of one agent (per series), oldest first. `q.agent` is required.
    async fn metric_rollups(&self, q: &RollupQuery) -> Result<Vec<MetricRollup>, StoreError>;

    /// Raw samples of one metric of one agent, oldest first, each as a bucket of one sample
    /// (`bucket` is the sample's time). `q.agent` is required; `q.tier` is not used.
    async fn metric_samples(&self, q: &RollupQuery) -> Result<Vec<MetricRollup>, StoreError>;

    /// Deletes at most `chunk` expired rows of each kind as of `now` (metric samples: `chunk`
    /// blocks, and a few blocks that straddle the cutoff written again without their old
    /// samples); returns how many rows or samples it deleted (0 means nothing is left).
    async fn enforce_retention(
        &self,
        policy: &Retention,
        now: DateTime<Utc>,
        chunk: u32,
    ) -> Result<u64, StoreError>;

    /// Size of the database on disk, in bytes.
    async fn size_bytes(&self) -> Result<u64, StoreError>;

    /// Closes the connections, at a clean stop after the last request. On SQLite the last
    /// connection to close checkpoints the WAL into the file and removes `-wal` and `-shm`, so
    /// a stopped collector's database is its one file (docs/deployment.md, "Backups and
    /// restore"). Waits for connections in use to come back; calls after it fail.
    async fn close(&self);
}

/// Opens the store that `url` names, creating and migrating it as needed.
pub async fn open(
    url: &str,
    config: &lookout_config::StorageConfig,
) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = sqlite_path(url) {
        Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
    } else if is_postgres(url) {
        Ok(Arc::new(
            postgres::PgStore::open(url, config.max_connections, config.statement_timeout).await?,
        ))
    } else {
        Err(StoreError::Unsupported {
            url: redact(url),
            reason: "expected sqlite://PATH or postgres://...".into(),
        })
    }
}

/// The database file a `sqlite:` URL names (`sqlite://PATH` or `sqlite:PATH`), or `None`
/// for another URL.
pub fn sqlite_path(url: &str) -> Option<&Path> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(Path::new)
}

/// True for a PostgreSQL URL (`postgres://` or `postgresql://`).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    lookout_config::redact::url(url)
}
