//! The `postgresql` integration: a few read-only queries of PostgreSQL's statistics views a
//! read, turned into metrics named as the OpenTelemetry Collector's postgresqlreceiver names
//! them (`postgresql.backends`, `postgresql.commits`, `postgresql.db_size`, ...), plus
//! `postgresql.*` figures it has no name for (the longest transaction, locks waiting, a
//! replica's own lag). docs/integrations.md has the table and the monitoring role.
//!
//! The queries are split from the mapping: [`Source::read`] fills a [`Reading`] (every column
//! cast to `float8` or `text` in SQL, so one type is read), and [`samples`] turns a reading
//! into metrics, tested without a server. Every query works for a role holding only
//! `pg_monitor`, runs in a read-only session (`default_transaction_read_only`) and is bounded
//! by `statement_timeout` (the integration's timeout) on the server as well as by the agent's
//! timeout. Row counts are bounded too: at most [`MAX_ROWS`] databases, states or replicas are
//! kept; the rest are left and counted.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricSample, MetricType};
use sqlx::{ConnectOptions, Row};

use super::ReadError;

/// Most rows kept from one query (databases, connection states, replicas).
pub const MAX_ROWS: usize = 256;

/// One database's line of `pg_stat_database`, with its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    /// `datname`.
    pub name: String,
    /// `xact_commit`.
    pub commits: f64,
    /// `xact_rollback`.
    pub rollbacks: f64,
    /// `blks_hit`: blocks found in shared buffers.
    pub blks_hit: f64,
    /// `blks_read`: blocks read from outside them.
    pub blks_read: f64,
    /// `deadlocks`.
    pub deadlocks: f64,
    /// `temp_files`.
    pub temp_files: f64,
    /// `temp_bytes`.
    pub temp_bytes: f64,
    /// `pg_database_size`, in bytes.
    pub size: f64,
}

/// A replica as its primary sees it in `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// `application_name`, or the client address when it has none.
    pub name: String,
    /// Bytes of WAL the primary has written that the replica has not replayed.
    pub data_delay: f64,
    /// `write_lag`, `flush_lag`, `replay_lag` in seconds; none where PostgreSQL says NULL.
    pub lag: [Option<f64>; 3],
}

/// What a replica says of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Standby {
    /// Bytes received but not replayed yet.
    pub replay_delay: f64,
    /// Seconds since the last replayed transaction's commit, 0 when all received is replayed;
    /// none when nothing was replayed since the replica started (PostgreSQL says NULL).
    pub replay_age: Option<f64>,
}

/// One read's answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// `max_connections`.
    pub max_connections: f64,
    /// Client backends by `state` (`active`, `idle`, `idle in transaction`, ...).
    pub backends: Vec<(String, f64)>,
    /// The age of the oldest open transaction, in seconds; none when none is open.
    pub longest_transaction: Option<f64>,
    /// Lock requests not granted.
    pub locks_waiting: f64,
    /// `pg_is_in_recovery()`: a replica.
    pub in_recovery: bool,
    /// Every database that is not a template.
    pub databases: Vec<Database>,
    /// The replicas streaming from this server.
    pub replicas: Vec<Replica>,
    /// This server's own replay, when it is a replica.
    pub standby: Option<Standby>,
    /// Rows left past [`MAX_ROWS`].
    pub skipped: usize,
}

/// The `operation` label of each of [`Replica::lag`]'s figures.
const LAG_OPERATIONS: [&str; 3] = ["write", "flush", "replay"];

/// The metrics of one reading, taken at `time`, each with `labels` and its own.
pub fn samples(
    r: &Reading,
    time: DateTime<Utc>,
    labels: &BTreeMap<String, String>,
) -> Vec<MetricSample> {
    let mut out = Vec::with_capacity(8 + r.backends.len() + 9 * r.databases.len());
    let mut push = |name: &str, value: f64, metric_type, extra: &[(&str, &str)]| {
        if !value.is_finite() {
            return;
        }
        let mut labels = labels.clone();
        for (k, v) in extra {
            labels.insert((*k).to_string(), (*v).to_string());
        }
        out.push(MetricSample {
            name: name.to_string(),
            labels,
            time,
            value,
            metric_type,
        });
    };
    use MetricType::{Counter, Gauge};
    push("postgresql.connection.max", r.max_connections, Gauge, &[]);
    let mut clients = 0.0;
    for (state, n) in &r.backends {
        push("postgresql.backends", *n, Gauge, &[("state", state)]);
        clients += n;
    }
    if r.max_connections > 0.0 {
        push(
            "postgresql.connection.usage",
            clients / r.max_connections,
            Gauge,
            &[],
        );
    }
    if let Some(age) = r.longest_transaction {
        push("postgresql.transaction.max_age", age.max(0.0), Gauge, &[]);
    }
    push("postgresql.locks.waiting", r.locks_waiting, Gauge, &[]);
    push(
        "postgresql.recovery",
        if r.in_recovery { 1.0 } else { 0.0 },
        Gauge,
        &[],
    );
    for d in &r.databases {
        let db = [("db", d.name.as_str())];
        push("postgresql.commits", d.commits, Counter, &db);
        push("postgresql.rollbacks", d.rollbacks, Counter, &db);
        push("postgresql.blks_hit", d.blks_hit, Counter, &db);
        push("postgresql.blks_read", d.blks_read, Counter, &db);
        let blocks = d.blks_hit + d.blks_read;
        if blocks > 0.0 {
            push(
                "postgresql.cache.hit_ratio",
                d.blks_hit / blocks,
                Gauge,
                &db,
            );
        }
        push("postgresql.deadlocks", d.deadlocks, Counter, &db);
        push("postgresql.temp_files", d.temp_files, Counter, &db);
        push("postgresql.temp.io", d.temp_bytes, Counter, &db);
        push("postgresql.db_size", d.size, Gauge, &db);
    }
    for rep in &r.replicas {
        let who = [("replica", rep.name.as_str())];
        push(
            "postgresql.replication.data_delay",
            rep.data_delay.max(0.0),
            Gauge,
            &who,
        );
        for (op, lag) in LAG_OPERATIONS.iter().zip(rep.lag) {
            // NULL once the replica has caught up and no WAL is sent: no lag.
            push(
                "postgresql.wal.lag",
                lag.unwrap_or(0.0).max(0.0),
                Gauge,
                &[("replica", rep.name.as_str()), ("operation", op)],
            );
        }
    }
    if let Some(s) = &r.standby {
        push(
            "postgresql.replica.data_delay",
            s.replay_delay.max(0.0),
            Gauge,
            &[],
        );
        if let Some(age) = s.replay_age {
            push("postgresql.replica.lag", age.max(0.0), Gauge, &[]);
        }
    }
    out
}

/// The server-wide figures, one row.
const SERVER: &str = "SELECT current_setting('max_connections')::float8, \
     pg_is_in_recovery(), \
     (SELECT count(*) FROM pg_locks WHERE NOT granted)::float8, \
     (SELECT extract(epoch FROM now() - min(xact_start)) FROM pg_stat_activity \
      WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid())::float8";

/// Client backends by state (the agent's own connection is one, `active`).
const BACKENDS: &str = "SELECT coalesce(state, 'unknown'), count(*)::float8 \
     FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 1";

/// Every database but the templates, with its size.
const DATABASES: &str = "SELECT d.datname::text, s.xact_commit::float8, \
     s.xact_rollback::float8, s.blks_hit::float8, s.blks_read::float8, s.deadlocks::float8, \
     s.temp_files::float8, s.temp_bytes::float8, pg_database_size(d.oid)::float8 \
     FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid \
     WHERE NOT d.datistemplate AND d.datallowconn ORDER BY 1";

/// The replicas of a primary (empty on a replica: `pg_current_wal_lsn` is not called there).
const REPLICAS: &str = "SELECT coalesce(nullif(application_name, ''), \
     host(client_addr), 'local')::text, \
     coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8, \
     extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8, \
     extract(epoch FROM replay_lag)::float8 \
     FROM pg_stat_replication WHERE NOT pg_is_in_recovery() ORDER BY 1";

/// A replica's own replay: bytes received and not replayed, and the age of the last replayed
/// commit while some is waiting (0 when all received is replayed, so an idle primary is no lag;
/// NULL when nothing was replayed since the replica started).
const STANDBY: &str = "SELECT \
     coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8, \
     CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
     ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8";

/// A PostgreSQL peer: its connect options, and the connection kept from one read to the next
/// (one session, not one a read: `pg_stat_activity` and the server's log stay quiet).
pub struct Source {
    options: sqlx::postgres::PgConnectOptions,
    conn: Option<sqlx::postgres::PgConnection>,
}

impl Source {
    /// The peer at `url`; every statement bounded by `timeout` on the server.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ReadError> {
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            // sqlx's errors name the problem, not the URL (which may hold a password).
            .map_err(|e: sqlx::Error| ReadError::Config(format!("invalid PostgreSQL url: {e}")))?;
        let timeout_ms = timeout.as_millis().max(1).to_string();
        let options = options
            .application_name("lookout-agent")
            .options([
                ("statement_timeout", timeout_ms.as_str()),
                ("lock_timeout", timeout_ms.as_str()),
                ("default_transaction_read_only", "on"),
            ])
            .disable_statement_logging();
        Ok(Self {
            options,
            conn: None,
        })
    }

    /// One reading, on the kept connection or a new one; a connection that failed a query is
    /// dropped so the next read opens another.
    pub async fn read(&mut self) -> Result<Reading, ReadError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self
                .options
                .connect()
                .await
                .map_err(|e| ReadError::Connect(e.to_string()))?,
        };
        let reading = query_all(&mut conn).await?;
        self.conn = Some(conn);
        Ok(reading)
    }
}

fn command(what: &str) -> impl Fn(sqlx::Error) -> ReadError + '_ {
    move |e| ReadError::Command(format!("{what}: {e}"))
}

async fn query_all(conn: &mut sqlx::postgres::PgConnection) -> Result<Reading, ReadError> {
    let mut r = Reading::default();
    let row = sqlx::query(SERVER)
        .fetch_one(&mut *conn)
        .await
        .map_err(command("server figures"))?;
    r.max_connections = row.try_get(0).map_err(command("max_connections"))?;
    r.in_recovery = row.try_get(1).map_err(command("pg_is_in_recovery"))?;
    r.locks_waiting = row.try_get(2).map_err(command("pg_locks"))?;
    r.longest_transaction = row.try_get(3).map_err(command("xact_start"))?;

    let rows = sqlx::query(BACKENDS)
        .fetch_all(&mut *conn)
        .await
        .map_err(command("pg_stat_activity"))?;
    r.skipped += rows.len().saturating_sub(MAX_ROWS);
    for row in rows.iter().take(MAX_ROWS) {
        r.backends.push((
            row.try_get(0).map_err(command("state"))?,
            row.try_get(1).map_err(command("count"))?,
        ));
    }

    let rows = sqlx::query(DATABASES)
        .fetch_all(&mut *conn)
        .await
        .map_err(command("pg_stat_database"))?;
    r.skipped += rows.len().saturating_sub(MAX_ROWS);
    for row in rows.iter().take(MAX_ROWS) {
        let f = |i: usize| -> Result<f64, ReadError> {
            row.try_get::<Option<f64>, _>(i)
                .map(|v| v.unwrap_or(0.0))
                .map_err(command("pg_stat_database"))
        };
        r.databases.push(Database {
            name: row.try_get(0).map_err(command("datname"))?,
            commits: f(1)?,
            rollbacks: f(2)?,
            blks_hit: f(3)?,
            blks_read: f(4)?,
            deadlocks: f(5)?,
            temp_files: f(6)?,
            temp_bytes: f(7)?,
            size: f(8)?,
        });
    }

    if r.in_recovery {
        let row = sqlx::query(STANDBY)
            .fetch_one(&mut *conn)
            .await
            .map_err(command("replay"))?;
        r.standby = Some(Standby {
            replay_delay: row.try_get(0).map_err(command("replay lsn"))?,
            replay_age: row.try_get(1).map_err(command("replay timestamp"))?,
        });
    } else {
        let rows = sqlx::query(REPLICAS)
            .fetch_all(&mut *conn)
            .await
            .map_err(command("pg_stat_replication"))?;
        r.skipped += rows.len().saturating_sub(MAX_ROWS);
        for row in rows.iter().take(MAX_ROWS) {
            let lag = |i: usize| row.try_get::<Option<f64>, _>(i).map_err(command("lag"));
            r.replicas.push(Replica {
                name: row.try_get(0).map_err(command("application_name"))?,
                data_delay: row.try_get(1).map_err(command("replay_lsn"))?,
                lag: [lag(2)?, lag(3)?, lag(4)?],
            });
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests;
