-- Version 13: escalation policies (docs/alerting.md, "Escalation"). `step` is an outbox row's
-- step in its policy (NULL: not a step); `earliest_ms` is when a step may go out at the
-- soonest, even with its group; `repeat_ms` makes a delivered last step queue itself again.
-- A step no sender holds when its alert is acknowledged or resolved becomes 'cancelled'.
ALTER TABLE outbox ADD COLUMN step INTEGER;
ALTER TABLE outbox ADD COLUMN earliest_ms INTEGER;
ALTER TABLE outbox ADD COLUMN repeat_ms INTEGER;
