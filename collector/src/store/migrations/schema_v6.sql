-- Version 6: the status page (docs/status-page.md).
-- One row per (check series, UTC day): the day's totals, kept as long as the per-hour rollups.
-- The status page's 90-day bars and 7/30/90-day uptimes read 90 rows a series from here
-- instead of 2,160 per-hour rows. Filled by the roll-up with the per-hour rollups; the rows
-- below are the days already rolled up when this version is applied.
CREATE TABLE check_days (
    series_id INTEGER NOT NULL,
    day_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    latency_sum REAL NOT NULL,
    PRIMARY KEY (series_id, day_ms)
);
INSERT INTO check_days (series_id, day_ms, count, failures, latency_sum)
    SELECT series_id, (hour_ms / 86400000) * 86400000, SUM(count), SUM(failures), SUM(latency_sum)
    FROM check_rollups WHERE hour_ms >= 0 GROUP BY series_id, (hour_ms / 86400000) * 86400000;
-- The agent's version, from the User-Agent of its requests (lookout-agent/0.1.0).
ALTER TABLE agents ADD COLUMN version TEXT;
-- A new agent's check series are read back by agent (ingest makes them in bulk).
CREATE INDEX check_series_by_agent ON check_series (agent);
