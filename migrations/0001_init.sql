-- Catalog of documents, their chunks and the keyword index over them.

CREATE TABLE documents (
  id            TEXT PRIMARY KEY,            -- hash of namespace + original bytes: an identical re-upload is the same document
  namespace     TEXT NOT NULL,
  title         TEXT NOT NULL,
  filename      TEXT,
  type          TEXT NOT NULL,               -- txt | md | pdf | docx
  size          INTEGER NOT NULL,
  r2_key        TEXT NOT NULL,
  metadata      TEXT NOT NULL DEFAULT '{}',  -- JSON object of string/number/boolean, filterable
  status        TEXT NOT NULL,               -- queued | processing | ready | failed
  error         TEXT,                        -- why it failed, for a person to act on
  chunk_count   INTEGER NOT NULL DEFAULT 0,
  embedding_model TEXT,
  -- Set when an ingestion completed; search only returns documents that have one,
  -- so a half-ingested document is never visible. Cleared when a document fails.
  indexed_at    TEXT,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE INDEX documents_by_namespace ON documents (namespace, status);

CREATE TABLE chunks (
  seq           INTEGER PRIMARY KEY,         -- rowid of the keyword index
  id            TEXT NOT NULL UNIQUE,        -- document id + hash of the chunk's content (≤ 64 bytes, Vectorize's limit)
  document_id   TEXT NOT NULL,
  namespace     TEXT NOT NULL,
  position      INTEGER NOT NULL,            -- 0-based order within the document
  text          TEXT NOT NULL,
  context       TEXT NOT NULL,               -- title and heading path, indexed with the text
  page          INTEGER,
  headings      TEXT,                        -- JSON array, outermost first
  tokens        INTEGER NOT NULL,
  embedding_model TEXT NOT NULL              -- the model whose vector the index holds for this chunk
);
CREATE INDEX chunks_by_document ON chunks (document_id, position);

-- Keyword index (bm25). External content: the text lives once, in `chunks`.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
  text, context,
  content = 'chunks', content_rowid = 'seq',
  tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts (rowid, text, context) VALUES (new.seq, new.text, new.context);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
  INSERT INTO chunks_fts (chunks_fts, rowid, text, context) VALUES ('delete', old.seq, old.text, old.context);
END;
CREATE TRIGGER chunks_au AFTER UPDATE OF text, context ON chunks BEGIN
  INSERT INTO chunks_fts (chunks_fts, rowid, text, context) VALUES ('delete', old.seq, old.text, old.context);
  INSERT INTO chunks_fts (rowid, text, context) VALUES (new.seq, new.text, new.context);
END;
