-- Version 4: log search.
-- Full text: SQLite keeps an FTS5 index over logs.text (external content: the text is stored
-- once, in logs), in step through triggers, so retention's deletes leave no stale entries.
-- PostgreSQL has a GIN index over the words of each line. Lines marked "sqlite only" are left
-- out of PostgreSQL's schema; lines starting with "--pg " are PostgreSQL's alone.
CREATE VIRTUAL TABLE logs_fts USING fts5(text, content='logs', content_rowid='id', tokenize='unicode61'); -- sqlite only
INSERT INTO logs_fts (logs_fts) VALUES ('rebuild'); -- sqlite only
CREATE TRIGGER logs_fts_insert AFTER INSERT ON logs BEGIN INSERT INTO logs_fts (rowid, text) VALUES (new.id, new.text); END; -- sqlite only
CREATE TRIGGER logs_fts_delete AFTER DELETE ON logs BEGIN INSERT INTO logs_fts (logs_fts, rowid, text) VALUES ('delete', old.id, old.text); END; -- sqlite only
--pg CREATE INDEX logs_text_search ON logs USING GIN (to_tsvector('simple', text));
-- Filters by source and level, newest first.
CREATE INDEX logs_by_source ON logs (source, time_ms);
CREATE INDEX logs_by_level ON logs (level, time_ms);
