-- Lookout's schema, version 1, written for SQLite. PostgreSQL runs the same text after
-- `sql::postgres_ddl` maps the types (INTEGER -> BIGINT, REAL -> DOUBLE PRECISION,
-- BLOB -> BYTEA, `id INTEGER PRIMARY KEY` -> an identity column, no WITHOUT ROWID).
-- Times are Unix milliseconds (UTC). Labels are JSON objects as text.
-- Series tables have no index on time alone: retention deletes series by series through the
-- (series_id, time) keys, which saves an index as large as a fifth of the database.

-- Agents that are configured or have shipped.
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL DEFAULT '{}',
    last_seen_ms INTEGER
);

-- (agent, batch id) of every stored batch: a batch id seen before stores nothing.
CREATE TABLE ingested_batches (
    agent TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (agent, batch_id)
) WITHOUT ROWID;
CREATE INDEX ingested_batches_by_time ON ingested_batches (received_ms);

-- One row per (check, agent): raw results and rollups refer to it by id.
CREATE TABLE check_series (
    id INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL,
    agent TEXT NOT NULL,
    check_type TEXT,
    UNIQUE (check_name, agent)
);

CREATE TABLE check_results (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    ok BOOLEAN NOT NULL,
    latency_ms REAL NOT NULL,
    error TEXT,
    status_code INTEGER,
    timings TEXT
);
CREATE INDEX check_results_by_series ON check_results (series_id, time_ms);

-- The latest result of each series.
CREATE TABLE check_latest (
    series_id INTEGER NOT NULL PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    ok BOOLEAN NOT NULL,
    latency_ms REAL NOT NULL,
    error TEXT,
    status_code INTEGER
);

-- One row per (check series, UTC hour): the hour's totals and latency histogram (hist, see
-- store/histogram.rs), and in `minutes` the same per minute, packed (see store/rollup.rs). The
-- per-minute rollups of 30 days are thus 720 rows a series, not 43,200: at a 30 s interval a
-- minute holds two results, and a row per minute cost more than the raw results. `minutes` is
-- emptied after the per-minute retention, the row deleted after the per-hour retention.
CREATE TABLE check_rollups (
    series_id INTEGER NOT NULL,
    hour_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    latency_sum REAL NOT NULL,
    hist BLOB NOT NULL,
    minutes BLOB,
    PRIMARY KEY (series_id, hour_ms)
);

-- One row per (agent, metric name, labels).
CREATE TABLE metric_series (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    metric_type TEXT NOT NULL,
    UNIQUE (agent, name, labels)
);

CREATE TABLE metric_samples (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX metric_samples_by_series ON metric_samples (series_id, time_ms);

CREATE TABLE metric_latest (
    series_id INTEGER NOT NULL PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    value REAL NOT NULL
);

-- tier 1: per minute, tier 2: per hour.
CREATE TABLE metric_rollups (
    tier INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last REAL NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (tier, series_id, bucket_ms)
) WITHOUT ROWID;

CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    level TEXT,
    text TEXT NOT NULL
);
CREATE INDEX logs_by_agent ON logs (agent, time_ms);
CREATE INDEX logs_by_time ON logs (time_ms);

-- Bytes of log text per UTC day, for retention by size without scanning the logs.
CREATE TABLE log_volume (
    day_ms INTEGER NOT NULL PRIMARY KEY,
    bytes INTEGER NOT NULL
);

-- The last raw row id rolled up, per raw table.
CREATE TABLE rollup_cursors (
    name TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);

-- Alerts, one row per fingerprint (rule + labels), in their current state.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    acked_by TEXT,
    acked_ms INTEGER
);
CREATE INDEX alerts_by_state ON alerts (state, since_ms);

-- Every transition of every alert.
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, id);

-- Notifications to send: state pending, delivered or failed; a claimed row has a lease.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until_ms INTEGER,
    done_ms INTEGER,
    UNIQUE (channel, dedup_key)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms);

CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_ms INTEGER NOT NULL,
    ends_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL
);
