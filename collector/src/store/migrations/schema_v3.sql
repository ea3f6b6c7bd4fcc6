-- Version 3: notification routing.
-- An alert remembers when its current firing began (for "lasted 4m" on resolve) and when a
-- firing or reminder notification was last queued for it (NULL: none this episode, so its
-- resolve is not sent either: a silenced alert resolves quietly).
ALTER TABLE alerts ADD COLUMN fired_ms INTEGER;
ALTER TABLE alerts ADD COLUMN notified_ms INTEGER;
-- Outbox rows of one channel and group key are sent together, as one message; each row names
-- the alert it is about, so the alerts API shows how its notifications stand.
ALTER TABLE outbox ADD COLUMN group_key TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN alert_id INTEGER;
CREATE INDEX outbox_by_group ON outbox (channel, group_key, state);
CREATE INDEX outbox_by_alert ON outbox (alert_id);

-- Push monitors ([[heartbeats]]): the latest ping of each kind, kept as long as the heartbeat
-- (its state after a restart comes from here), and every ping, kept as long as raw data.
CREATE TABLE heartbeats (
    name TEXT PRIMARY KEY,
    last_success_ms INTEGER,
    last_start_ms INTEGER,
    last_fail_ms INTEGER,
    last_exit_code INTEGER
);
CREATE TABLE heartbeat_pings (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    exit_code INTEGER,
    time_ms INTEGER NOT NULL,
    remote TEXT,
    body TEXT
);
CREATE INDEX heartbeat_pings_by_name ON heartbeat_pings (name, id);
CREATE INDEX heartbeat_pings_by_time ON heartbeat_pings (time_ms);
