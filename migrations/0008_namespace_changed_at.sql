-- When each namespace last changed (ms since the epoch), bumped with its generation: answers
-- computed shortly after a change, while an asynchronous vector index (Vectorize) may not show
-- it yet, are not cached (src/http/response-cache.ts).
ALTER TABLE namespace_generations ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;
