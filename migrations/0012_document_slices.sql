-- A document with many chunks is embedded and indexed in slices, one queue message each
-- (src/ingestion/slices.ts). `slices` is how many the current attempt has, `slices_done` how
-- many are in; both are reset when a document is claimed. `document_slices` records each slice
-- done, per attempt, so a slice delivered again repeats nothing and the last one is known.
ALTER TABLE documents ADD COLUMN slices INTEGER;
ALTER TABLE documents ADD COLUMN slices_done INTEGER NOT NULL DEFAULT 0;
CREATE TABLE document_slices (
  document_id TEXT NOT NULL,
  attempt     TEXT NOT NULL,
  slice       INTEGER NOT NULL,
  embedded    INTEGER NOT NULL,  -- chunks this slice embedded anew (the rest reused their vectors)
  PRIMARY KEY (document_id, attempt, slice)
) WITHOUT ROWID;
