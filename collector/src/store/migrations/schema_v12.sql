-- Version 12: an agent that left. `presence` is 'stopped' (it said it was stopping, with a
-- clean stop) or 'retired' (an ephemeral agent that stopped or was silent past its
-- retire_after); NULL while it ships. Its next batch sets it back to NULL.
ALTER TABLE agents ADD COLUMN presence TEXT;
ALTER TABLE agents ADD COLUMN presence_since_ms INTEGER;
