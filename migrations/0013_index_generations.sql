-- Index generations (src/ingestion/generations.ts). A namespace's index is built with settings
-- (embedding model and dimensions, chunk size and overlap); a change builds a new generation
-- beside the one serving, and queries switch to it once every document is in it. A namespace
-- without a row serves generation 0 with the current settings, until its first ingestion
-- records them.
CREATE TABLE index_generations (
  namespace  TEXT NOT NULL,
  generation INTEGER NOT NULL,
  settings   TEXT NOT NULL,    -- JSON: model, dimensions, chunkSize, chunkOverlap
  state      TEXT NOT NULL,    -- serving | building | retired (its data being removed)
  created_at INTEGER NOT NULL, -- ms since the epoch
  PRIMARY KEY (namespace, generation)
);

-- The documents a building generation still needs, and those it has.
CREATE TABLE generation_documents (
  namespace   TEXT NOT NULL,
  generation  INTEGER NOT NULL,
  document_id TEXT NOT NULL,
  state       TEXT NOT NULL,   -- pending | built | failed
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (namespace, generation, document_id)
) WITHOUT ROWID;
CREATE INDEX generation_documents_pending ON generation_documents (state, updated_at);

-- Each generation has its own chunk rows (and chunk ids: see chunk-records.ts).
ALTER TABLE chunks ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE INDEX chunks_by_generation ON chunks (document_id, generation);
