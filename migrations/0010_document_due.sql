-- When a queued document's message is due (ms since the epoch): now for an upload or a
-- re-index, later for a retry with a delay. The sweeper re-sends messages overdue by a minute
-- (a send that failed, a queue that lost them in a restart); a duplicate is harmless.
ALTER TABLE documents ADD COLUMN due_at INTEGER;
