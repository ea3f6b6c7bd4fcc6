-- Version 10: the labels an agent last sent about itself, kept beside the labels it is given
-- (configured over sent), so a claim the configuration overrides is still shown (security.md,
-- "Agents cannot lie about themselves"). NULL until the agent has asked for its assignments.
ALTER TABLE agents ADD COLUMN claimed_labels TEXT;
