-- Version 7: retention in time order (docs/performance.md).
-- Retention deletes what is older than a cutoff through these indexes, a bounded number of rows
-- a statement whatever the number of series. Before, it went series by series: with a fleet's
-- 1.6 million series a pass was millions of statements even when nothing was old.
CREATE INDEX check_results_by_time ON check_results (time_ms);
CREATE INDEX metric_samples_by_time ON metric_samples (time_ms);
CREATE INDEX check_rollups_by_hour ON check_rollups (hour_ms);
-- Hours whose per-minute part is still kept: emptied when the per-minute retention passes.
CREATE INDEX check_rollups_minutes_by_hour ON check_rollups (hour_ms) WHERE minutes IS NOT NULL;
CREATE INDEX check_days_by_day ON check_days (day_ms);
CREATE INDEX metric_rollups_by_bucket ON metric_rollups (tier, bucket_ms);
