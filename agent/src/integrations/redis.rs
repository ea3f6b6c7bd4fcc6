//! The `redis` integration: one `INFO` a read, its fields turned into metrics named as the
//! OpenTelemetry Collector's redisreceiver names them (`redis.memory.used`,
//! `redis.keys.evicted`, ...), plus `redis.*` figures it has no name for (replication link,
//! replica lag, last save status and age). docs/integrations.md has the table.
//!
//! `INFO` is text: `# Section` headers and `field:value` lines ended by CRLF; `dbN` and
//! `slaveN` values are `k=v,k=v` lists. The parser takes at most [`MAX_LINES`] lines of at most
//! [`MAX_LINE_BYTES`] bytes; a longer line, a line without `:` or a list it cannot read is
//! skipped and counted, never a panic, and a value that is not a finite number gives no sample.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lookout_protocol::{MetricSample, MetricType};

use super::ReadError;

/// Longest `INFO` line read; a longer one is skipped.
pub const MAX_LINE_BYTES: usize = 1024;
/// Most `INFO` lines read; the rest are left.
pub const MAX_LINES: usize = 4096;

/// One `dbN` line of `# Keyspace`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbStats {
    /// `keys`.
    pub keys: f64,
    /// `expires`: keys with a time to live.
    pub expires: f64,
    /// `avg_ttl`, in milliseconds.
    pub avg_ttl: f64,
}

/// A replica as its primary lists it (`slaveN:ip=..,port=..,state=..,offset=..,lag=..`).
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// `ip:port`.
    pub address: String,
    /// The replication offset it acknowledged.
    pub offset: f64,
}

/// `INFO`'s answer, read.
#[derive(Debug, Default)]
pub struct Info<'a> {
    fields: HashMap<&'a str, &'a str>,
    /// `db0`, `db3`, ... with their figures, in the order given.
    pub dbs: Vec<(&'a str, DbStats)>,
    /// The replicas a primary lists.
    pub replicas: Vec<Replica>,
    /// Lines skipped: too long, without `:`, or a list that could not be read.
    pub skipped: usize,
}

impl<'a> Info<'a> {
    /// A field's text.
    pub fn text(&self, key: &str) -> Option<&'a str> {
        self.fields.get(key).copied()
    }

    /// A field as a finite number.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.text(key).and_then(number)
    }
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads `INFO` text (see the module doc for its bounds).
pub fn parse(text: &str) -> Info<'_> {
    let mut info = Info::default();
    for line in text.split('\n').take(MAX_LINES) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            info.skipped += 1;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            info.skipped += 1;
            continue;
        };
        let read = if is_numbered(key, "db") {
            db_stats(value).map(|s| info.dbs.push((key, s)))
        } else if is_numbered(key, "slave") {
            replica(value).map(|r| info.replicas.push(r))
        } else {
            info.fields.insert(key, value);
            Some(())
        };
        if read.is_none() {
            info.skipped += 1;
        }
    }
    info
}

/// `db0`, `slave12`: the prefix and digits only.
fn is_numbered(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn pairs(value: &str) -> HashMap<&str, &str> {
    value.split(',').filter_map(|p| p.split_once('=')).collect()
}

fn db_stats(value: &str) -> Option<DbStats> {
    let p = pairs(value);
    Some(DbStats {
        keys: number(p.get("keys")?)?,
        expires: number(p.get("expires")?)?,
        avg_ttl: number(p.get("avg_ttl")?)?,
    })
}

fn replica(value: &str) -> Option<Replica> {
    let p = pairs(value);
    Some(Replica {
        address: format!("{}:{}", p.get("ip")?, p.get("port")?),
        offset: number(p.get("offset")?)?,
    })
}

/// Fields read as they are: (metric, `INFO` field, type).
const DIRECT: &[(&str, &str, MetricType)] = &[
    ("redis.uptime", "uptime_in_seconds", MetricType::Counter),
    (
        "redis.clients.connected",
        "connected_clients",
        MetricType::Gauge,
    ),
    (
        "redis.clients.blocked",
        "blocked_clients",
        MetricType::Gauge,
    ),
    ("redis.memory.used", "used_memory", MetricType::Gauge),
    ("redis.memory.peak", "used_memory_peak", MetricType::Gauge),
    ("redis.memory.rss", "used_memory_rss", MetricType::Gauge),
    (
        "redis.memory.fragmentation_ratio",
        "mem_fragmentation_ratio",
        MetricType::Gauge,
    ),
    ("redis.maxmemory", "maxmemory", MetricType::Gauge),
    (
        "redis.rdb.changes_since_last_save",
        "rdb_changes_since_last_save",
        MetricType::Gauge,
    ),
    (
        "redis.commands",
        "instantaneous_ops_per_sec",
        MetricType::Gauge,
    ),
    (
        "redis.commands.processed",
        "total_commands_processed",
        MetricType::Counter,
    ),
    (
        "redis.connections.received",
        "total_connections_received",
        MetricType::Counter,
    ),
    (
        "redis.connections.rejected",
        "rejected_connections",
        MetricType::Counter,
    ),
    (
        "redis.net.input",
        "total_net_input_bytes",
        MetricType::Counter,
    ),
    (
        "redis.net.output",
        "total_net_output_bytes",
        MetricType::Counter,
    ),
    ("redis.keyspace.hits", "keyspace_hits", MetricType::Counter),
    (
        "redis.keyspace.misses",
        "keyspace_misses",
        MetricType::Counter,
    ),
    ("redis.keys.evicted", "evicted_keys", MetricType::Counter),
    ("redis.keys.expired", "expired_keys", MetricType::Counter),
    (
        "redis.slaves.connected",
        "connected_slaves",
        MetricType::Gauge,
    ),
    (
        "redis.replication.offset",
        "master_repl_offset",
        MetricType::Gauge,
    ),
    (
        "redis.replication.backlog_first_byte_offset",
        "repl_backlog_first_byte_offset",
        MetricType::Gauge,
    ),
];

/// The metrics of one `INFO` answer, taken at `time`, each with `labels` and its own.
pub fn samples(
    info: &Info<'_>,
    time: DateTime<Utc>,
    labels: &BTreeMap<String, String>,
) -> Vec<MetricSample> {
    let mut out = Vec::with_capacity(DIRECT.len() + 8 + 3 * info.dbs.len());
    let mut push = |name: &str, value: f64, metric_type, extra: Option<(&str, &str)>| {
        let mut labels = labels.clone();
        if let Some((k, v)) = extra {
            labels.insert(k.to_string(), v.to_string());
        }
        out.push(MetricSample {
            name: name.to_string(),
            labels,
            time,
            value,
            metric_type,
        });
    };
    for (name, field, kind) in DIRECT {
        if let Some(v) = info.num(field) {
            push(name, v, *kind, None);
        }
    }
    for (db, s) in &info.dbs {
        push("redis.db.keys", s.keys, MetricType::Gauge, Some(("db", db)));
        push(
            "redis.db.expires",
            s.expires,
            MetricType::Gauge,
            Some(("db", db)),
        );
        push(
            "redis.db.avg_ttl",
            s.avg_ttl,
            MetricType::Gauge,
            Some(("db", db)),
        );
    }
    if info.text("role") == Some("slave") {
        let up = info.text("master_link_status") == Some("up");
        push(
            "redis.replication.link_status",
            if up { 1.0 } else { 0.0 },
            MetricType::Gauge,
            None,
        );
        if let Some(v) = info.num("slave_repl_offset") {
            push(
                "redis.replication.replica_offset",
                v,
                MetricType::Gauge,
                None,
            );
        }
    }
    if let Some(primary) = info.num("master_repl_offset") {
        for r in &info.replicas {
            push(
                "redis.replication.replica_lag",
                (primary - r.offset).max(0.0),
                MetricType::Gauge,
                Some(("replica", &r.address)),
            );
        }
    }
    if let Some(status) = info.text("rdb_last_bgsave_status") {
        let ok = if status == "ok" { 1.0 } else { 0.0 };
        push("redis.rdb.last_save.status", ok, MetricType::Gauge, None);
    }
    if let Some(saved) = info.num("rdb_last_save_time") {
        // Redis's own clock where it says it (Redis 5 and later), so a skewed agent clock does
        // not age the save.
        let now = info
            .num("server_time_usec")
            .map(|us| us / 1e6)
            .unwrap_or(time.timestamp() as f64);
        push(
            "redis.rdb.last_save.age",
            (now - saved).max(0.0),
            MetricType::Gauge,
            None,
        );
    }
    out
}

/// A Redis peer: its client, and the connection kept from one read to the next (one
/// connection, not one a read: the peer's `total_connections_received` is left alone).
pub struct Source {
    client: redis::Client,
    conn: Option<redis::aio::MultiplexedConnection>,
    timeout: Duration,
}

impl Source {
    /// The peer at `url`; an unreadable URL is the config's problem and is refused there.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ReadError> {
        // redis' errors name the problem, not the URL (which may hold a password).
        let client = redis::Client::open(url).map_err(|e| ReadError::Config(e.to_string()))?;
        Ok(Self {
            client,
            conn: None,
            timeout,
        })
    }

    /// `INFO`'s text, on the kept connection or a new one; a failed connection is dropped so
    /// the next read opens another.
    pub async fn info(&mut self) -> Result<String, ReadError> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                self.client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map_err(|e| ReadError::Connect(e.to_string()))?
            }
        };
        let text: String = redis::cmd("INFO")
            .query_async(&mut conn)
            .await
            .map_err(|e| ReadError::Command(format!("INFO: {e}")))?;
        self.conn = Some(conn);
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
