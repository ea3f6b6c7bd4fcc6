-- Version 9: metric samples in blocks (store/blocks.rs), one row per agent and stored batch
-- instead of one per sample with two index entries. The rows of metric_samples are moved into
-- blocks by the migration (store/sql.rs, `samples_into_blocks`), which then drops the table.
-- AUTOINCREMENT: SQLite never reuses an id, not even after retention emptied the table, so
-- a new block's id is always past the roll-up's cursor.
CREATE TABLE metric_sample_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, -- sqlite only
--pg id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    min_time_ms INTEGER NOT NULL,
    max_time_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    data BLOB NOT NULL
);
-- A metric's samples over a window: its agent's blocks that end inside or after it, and, from
-- the index alone, begin before its end.
CREATE INDEX metric_sample_blocks_by_agent
    ON metric_sample_blocks (agent, max_time_ms, min_time_ms);
-- Retention: blocks that begin before the cutoff.
CREATE INDEX metric_sample_blocks_by_time ON metric_sample_blocks (min_time_ms);
