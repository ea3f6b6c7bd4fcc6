//! The SQLite backend: one file in WAL mode, `synchronous = FULL` so that a batch acknowledged
//! to an agent survives a power cut. One connection writes (SQLite has one writer anyway, and a
//! single writer never waits on a lock); a small pool reads.
//!
//! Schema versions are kept in `PRAGMA user_version` and applied in order at start; a database
//! newer than this build is refused, not touched. Times are stored as Unix milliseconds.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use lookout_protocol::{Batch, MetricType, Record};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{AgentRow, IngestOutcome, MetricRow, ResultQuery, ResultRow, Store, StoreError};

/// Schema migrations, applied in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL DEFAULT '{}',
    last_seen_ms INTEGER
);
CREATE TABLE ingested_batches (
    agent TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (agent, batch_id)
) WITHOUT ROWID;
CREATE TABLE check_results (
    id INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL,
    agent TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    error TEXT,
    status_code INTEGER,
    check_type TEXT,
    timings TEXT
);
CREATE INDEX check_results_by_check ON check_results (check_name, time_ms);
CREATE TABLE check_latest (
    check_name TEXT NOT NULL,
    agent TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    error TEXT,
    status_code INTEGER,
    check_type TEXT,
    PRIMARY KEY (check_name, agent)
) WITHOUT ROWID;
CREATE TABLE metric_samples (
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    metric_type TEXT NOT NULL
);
CREATE INDEX metric_samples_by_series ON metric_samples (agent, name, time_ms);
CREATE TABLE metric_latest (
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    metric_type TEXT NOT NULL,
    PRIMARY KEY (agent, name, labels)
) WITHOUT ROWID;
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    level TEXT,
    text TEXT NOT NULL
);
CREATE INDEX logs_by_agent_time ON logs (agent, time_ms);
"#];

const INSERT_SAMPLE: &str =
    "INSERT INTO metric_samples (agent, name, labels, time_ms, value, metric_type)
     VALUES (?, ?, ?, ?, ?, ?)";
const UPSERT_LATEST_SAMPLE: &str =
    "INSERT INTO metric_latest (agent, name, labels, time_ms, value, metric_type)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (agent, name, labels) DO UPDATE SET time_ms = excluded.time_ms,
       value = excluded.value, metric_type = excluded.metric_type
     WHERE excluded.time_ms >= metric_latest.time_ms";

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
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
        migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self { write, read })
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(pool)
        .await?;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        // The version is a number from this file, not input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            i + 1
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}

fn ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms is out of range")))
}

fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("labels {s:?}: {e}")))
}

fn metric_type(t: MetricType) -> &'static str {
    match t {
        MetricType::Gauge => "gauge",
        MetricType::Counter => "counter",
    }
}

fn result_row(r: &sqlx::sqlite::SqliteRow) -> Result<ResultRow, StoreError> {
    Ok(ResultRow {
        check: r.try_get("check_name")?,
        agent: r.try_get("agent")?,
        time: time(r.try_get("time_ms")?)?,
        ok: r.try_get::<i64, _>("ok")? != 0,
        latency_ms: r.try_get("latency_ms")?,
        error: r.try_get("error")?,
        status_code: r
            .try_get::<Option<i64>, _>("status_code")?
            .and_then(|s| u16::try_from(s).ok()),
        check_type: r.try_get("check_type")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(
        &self,
        agent: &str,
        batch: &Batch,
        received: DateTime<Utc>,
    ) -> Result<IngestOutcome, StoreError> {
        let mut tx = self.write.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO ingested_batches (agent, batch_id, received_ms, records) VALUES (?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(agent)
        .bind(&batch.batch_id)
        .bind(ms(&received))
        .bind(batch.records.len() as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tx.rollback().await?;
            return Ok(IngestOutcome {
                stored: 0,
                duplicate: true,
            });
        }
        for record in &batch.records {
            match record {
                Record::CheckResult(c) => {
                    let check_type = c.check_type.map(|t| t.to_string());
                    let timings = serde_json::to_string(&c.timings).ok();
                    sqlx::query(
                        "INSERT INTO check_results
                         (check_name, agent, time_ms, ok, latency_ms, error, status_code, check_type, timings)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&c.check)
                    .bind(agent)
                    .bind(ms(&c.time))
                    .bind(c.ok)
                    .bind(c.latency_ms)
                    .bind(&c.error)
                    .bind(c.status_code.map(i64::from))
                    .bind(&check_type)
                    .bind(timings)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO check_latest
                         (check_name, agent, time_ms, ok, latency_ms, error, status_code, check_type)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (check_name, agent) DO UPDATE SET
                           time_ms = excluded.time_ms, ok = excluded.ok, latency_ms = excluded.latency_ms,
                           error = excluded.error, status_code = excluded.status_code,
                           check_type = excluded.check_type
                         WHERE excluded.time_ms >= check_latest.time_ms",
                    )
                    .bind(&c.check)
                    .bind(agent)
                    .bind(ms(&c.time))
                    .bind(c.ok)
                    .bind(c.latency_ms)
                    .bind(&c.error)
                    .bind(c.status_code.map(i64::from))
                    .bind(&check_type)
                    .execute(&mut *tx)
                    .await?;
                }
                Record::Metric(m) => {
                    let labels = labels_json(&m.labels);
                    for sql in [INSERT_SAMPLE, UPSERT_LATEST_SAMPLE] {
                        sqlx::query(sql)
                            .bind(agent)
                            .bind(&m.name)
                            .bind(&labels)
                            .bind(ms(&m.time))
                            .bind(m.value)
                            .bind(metric_type(m.metric_type))
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                Record::Log(l) => {
                    sqlx::query("INSERT INTO logs (agent, time_ms, source, level, text) VALUES (?, ?, ?, ?, ?)")
                        .bind(agent)
                        .bind(ms(&l.time))
                        .bind(&l.source)
                        .bind(&l.level)
                        .bind(&l.text)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        sqlx::query(
            "INSERT INTO agents (name, last_seen_ms) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET last_seen_ms = max(coalesce(last_seen_ms, 0), excluded.last_seen_ms)",
        )
        .bind(agent)
        .bind(ms(&received))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IngestOutcome {
            stored: batch.records.len(),
            duplicate: false,
        })
    }

    async fn upsert_agent(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (name, labels) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET labels = excluded.labels",
        )
        .bind(name)
        .bind(labels_json(labels))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query("SELECT name, labels, last_seen_ms FROM agents ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentRow {
                    name: r.try_get("name")?,
                    labels: parse_labels(r.try_get("labels")?)?,
                    last_seen: r
                        .try_get::<Option<i64>, _>("last_seen_ms")?
                        .map(time)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn latest_metrics(&self, agent: &str) -> Result<Vec<MetricRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, labels, time_ms, value, metric_type FROM metric_latest
             WHERE agent = ? ORDER BY name, labels",
        )
        .bind(agent)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MetricRow {
                    name: r.try_get("name")?,
                    labels: parse_labels(r.try_get("labels")?)?,
                    time: time(r.try_get("time_ms")?)?,
                    value: r.try_get("value")?,
                    metric_type: r.try_get("metric_type")?,
                })
            })
            .collect()
    }

    async fn latest_results(&self) -> Result<Vec<ResultRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT check_name, agent, time_ms, ok, latency_ms, error, status_code, check_type
             FROM check_latest ORDER BY check_name, agent",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(result_row).collect()
    }

    async fn results(&self, q: &ResultQuery) -> Result<Vec<ResultRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT check_name, agent, time_ms, ok, latency_ms, error, status_code, check_type
             FROM check_results
             WHERE check_name = ? AND time_ms BETWEEN ? AND ? AND (? IS NULL OR agent = ?)
             ORDER BY time_ms DESC, id DESC LIMIT ?",
        )
        .bind(&q.check)
        .bind(ms(&q.from))
        .bind(ms(&q.to))
        .bind(&q.agent)
        .bind(&q.agent)
        .bind(i64::from(q.limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(result_row).collect()
    }
}
