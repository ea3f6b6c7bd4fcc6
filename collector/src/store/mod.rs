//! Storage: one interface ([`Store`]) for everything the collector keeps.
//!
//! Backends: [`sqlite`] (WAL mode, the default). A batch is stored in one transaction together
//! with its (agent, batch id), so a batch is either stored whole or not at all, and a batch id
//! seen before stores nothing.

pub mod sqlite;

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

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Records stored (0 for a duplicate).
    pub stored: usize,
    /// True when this (agent, batch id) had been stored before: nothing was stored again.
    pub duplicate: bool,
}

/// One stored check result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    /// The check.
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

/// Everything the collector keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores a batch from `agent` atomically, once per (agent, batch id), and marks the agent
    /// seen at `received`. Returns only after the data is durable.
    async fn ingest(
        &self,
        agent: &str,
        batch: &Batch,
        received: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError>;

    /// Records an agent's labels (from configuration or its own report).
    async fn upsert_agent(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError>;

    /// Every known agent.
    async fn agents(&self) -> Result<Vec<AgentRow>, StoreError>;

    /// The latest sample of each metric series of an agent.
    async fn latest_metrics(&self, agent: &str) -> Result<Vec<MetricRow>, StoreError>;

    /// The latest result of each (check, agent).
    async fn latest_results(&self) -> Result<Vec<ResultRow>, StoreError>;

    /// Raw results of one check, newest first.
    async fn results(&self, q: &ResultQuery) -> Result<Vec<ResultRow>, StoreError>;
}

/// Opens the store that `url` names, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = Path::new(path);
        Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Err(StoreError::Unsupported {
            url: redact(url),
            reason: "this build stores in SQLite only; use sqlite://PATH".into(),
        })
    } else {
        Err(StoreError::Unsupported {
            url: redact(url),
            reason: "expected sqlite://PATH".into(),
        })
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
