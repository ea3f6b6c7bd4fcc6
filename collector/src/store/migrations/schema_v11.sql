-- Version 11: agents that enrolled themselves (POST /v1/enroll), kept here rather than in a
-- configuration file (store/enrolled.rs). A credential is kept as its SHA-256 only; while a
-- rotation waits for the agent, the new credential is kept too (rotation_pending), so that
-- whichever collector the agent asks next can hand it over; it goes once the agent uses it.
-- `version` grows with every change of a row: collectors sharing the database compare the
-- table's count and sum of versions to learn that they must reload it. Columns for what an
-- agent's lifecycle makes of it (a state, a retirement) are added by later versions.
CREATE TABLE enrolled_agents (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    previous_sha256 TEXT,
    previous_until_ms INTEGER,
    rotation_pending TEXT,
    lifecycle TEXT NOT NULL DEFAULT 'permanent',
    enrolled_ms INTEGER NOT NULL,
    rotated_ms INTEGER,
    revoked_ms INTEGER,
    reenroll_until_ms INTEGER,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX enrolled_agents_by_token ON enrolled_agents (token_sha256);
