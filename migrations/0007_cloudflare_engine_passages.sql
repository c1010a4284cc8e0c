-- The Cloudflare engine keeps its own passages (migration 0001's `chunks` is the catalog:
-- which chunks a document has and which model embedded them). A passage is staged (live = 0)
-- while its document is ingested and becomes live when its document's version is activated,
-- in one transaction with the removal of the version before: a query never sees half of one.
--
-- The keyword index covers only live passages, over their analysed terms: the same analyser
-- as the local engine (Porter stems, stopwords, CJK/Thai as character pairs) runs in the
-- Worker, so FTS5 only splits on spaces (unicode61, which keeps letters and digits of every
-- script together). Deployments with documents from before this migration: run POST /v1/reindex.
DROP TRIGGER IF EXISTS chunks_ai;
DROP TRIGGER IF EXISTS chunks_ad;
DROP TRIGGER IF EXISTS chunks_au;
DROP TABLE IF EXISTS chunks_fts;

CREATE TABLE passages (
  seq           INTEGER PRIMARY KEY,         -- rowid of the keyword index
  id            TEXT NOT NULL UNIQUE,        -- the chunk id (also its Vectorize id)
  namespace     TEXT NOT NULL,
  document_id   TEXT NOT NULL,
  live          INTEGER NOT NULL DEFAULT 0,  -- 1: part of its document's searchable version
  title         TEXT NOT NULL,
  text          TEXT NOT NULL,
  context       TEXT NOT NULL,
  position      INTEGER NOT NULL,
  page          INTEGER,
  headings      TEXT,                        -- JSON array, outermost first
  metadata      TEXT NOT NULL DEFAULT '{}',  -- the document's metadata, for filters
  terms         TEXT NOT NULL,               -- analysed terms of the text, space-separated
  context_terms TEXT NOT NULL                -- analysed terms of the context
);
CREATE INDEX passages_by_document ON passages (document_id);
CREATE INDEX passages_by_namespace ON passages (namespace, live);

CREATE VIRTUAL TABLE passages_fts USING fts5(
  terms, context_terms, namespace,
  content = 'passages', content_rowid = 'seq',
  tokenize = 'unicode61 remove_diacritics 0'
);
-- The namespace as one token, as in migration 0004: 'n' + hex + 'z'.
CREATE TRIGGER passages_live AFTER UPDATE OF live ON passages WHEN old.live = 0 AND new.live = 1 BEGIN
  INSERT INTO passages_fts (rowid, terms, context_terms, namespace)
    VALUES (new.seq, new.terms, new.context_terms, 'n' || lower(hex(new.namespace)) || 'z');
END;
CREATE TRIGGER passages_ad AFTER DELETE ON passages WHEN old.live = 1 BEGIN
  INSERT INTO passages_fts (passages_fts, rowid, terms, context_terms, namespace)
    VALUES ('delete', old.seq, old.terms, old.context_terms, 'n' || lower(hex(old.namespace)) || 'z');
END;

-- The catalog no longer holds texts: each engine keeps its passages.
ALTER TABLE chunks DROP COLUMN text;
ALTER TABLE chunks DROP COLUMN context;
