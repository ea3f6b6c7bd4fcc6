-- Version 5: several collectors on one database (docs/high-availability.md).
-- Batches waiting for the leader's rule evaluation: every collector on PostgreSQL writes one row
-- per stored batch in the batch's own transaction; the leader evaluates and deletes them, so a
-- batch that reached any collector is evaluated even across a change of leader. Unused (empty)
-- with SQLite, where the one collector evaluates in process.
CREATE TABLE evaluation_queue (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    records TEXT NOT NULL
);
-- The collectors sharing the database, each writing its row every few seconds; the leader's
-- row says since when it leads.
CREATE TABLE collectors (
    instance TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL,
    leader_since_ms INTEGER
);
