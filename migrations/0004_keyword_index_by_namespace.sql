-- The keyword index also holds each chunk's namespace, as one token: 'n' + hex of the
-- namespace + 'z' (hex keeps "docs" from matching "docs-2"; the letters around it keep the
-- porter stemmer from touching it). A query then selects its namespace inside FTS5 and
-- ranks rowids before any join, instead of joining every chunk that matches a word.
DROP TRIGGER chunks_ai;
DROP TRIGGER chunks_ad;
DROP TRIGGER chunks_au;
DROP TABLE chunks_fts;

CREATE VIRTUAL TABLE chunks_fts USING fts5(
  text, context, namespace,
  content = 'chunks', content_rowid = 'seq',
  tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO chunks_fts (rowid, text, context, namespace)
  SELECT seq, text, context, 'n' || lower(hex(namespace)) || 'z' FROM chunks;

CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts (rowid, text, context, namespace)
    VALUES (new.seq, new.text, new.context, 'n' || lower(hex(new.namespace)) || 'z');
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
  INSERT INTO chunks_fts (chunks_fts, rowid, text, context, namespace)
    VALUES ('delete', old.seq, old.text, old.context, 'n' || lower(hex(old.namespace)) || 'z');
END;
CREATE TRIGGER chunks_au AFTER UPDATE OF text, context ON chunks BEGIN
  INSERT INTO chunks_fts (chunks_fts, rowid, text, context, namespace)
    VALUES ('delete', old.seq, old.text, old.context, 'n' || lower(hex(old.namespace)) || 'z');
  INSERT INTO chunks_fts (rowid, text, context, namespace)
    VALUES (new.seq, new.text, new.context, 'n' || lower(hex(new.namespace)) || 'z');
END;
