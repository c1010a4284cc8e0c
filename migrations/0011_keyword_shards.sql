-- The Cloudflare engine's keyword index moves out of D1 into Durable Objects (KeywordShard),
-- sharded per namespace: FTS5 in one database scored every row matching any query word, one
-- query at a time for every tenant. D1 keeps the passages (texts, places, which are live) and
-- which shard each passage's terms live on. Deployments with passages from before this
-- migration: run POST /v1/reindex (their terms are in no shard yet).
DROP TRIGGER IF EXISTS passages_live;
DROP TRIGGER IF EXISTS passages_ad;
DROP TABLE IF EXISTS passages_fts;
ALTER TABLE passages DROP COLUMN terms;
ALTER TABLE passages DROP COLUMN context_terms;
ALTER TABLE passages ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;

-- Each namespace's shards and how many passages (staged or live) each holds: a new passage
-- goes to the first shard with room (KEYWORD_SHARD_SIZE), a query to every shard holding any.
CREATE TABLE keyword_shards (
  namespace TEXT NOT NULL,
  shard     INTEGER NOT NULL,
  passages  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (namespace, shard)
) WITHOUT ROWID;
INSERT INTO keyword_shards (namespace, shard, passages) SELECT namespace, 0, COUNT(*) FROM passages GROUP BY namespace;

CREATE TRIGGER passages_shard_in AFTER INSERT ON passages BEGIN
  INSERT INTO keyword_shards (namespace, shard, passages) VALUES (new.namespace, new.shard, 1)
    ON CONFLICT (namespace, shard) DO UPDATE SET passages = passages + 1;
END;
CREATE TRIGGER passages_shard_out AFTER DELETE ON passages BEGIN
  UPDATE keyword_shards SET passages = passages - 1 WHERE namespace = old.namespace AND shard = old.shard;
END;

-- Bumped after every change of what a namespace's shards hold live: a Worker remembers the
-- namespace's term statistics (summed over its shards) for the version it last read.
CREATE TABLE keyword_versions (
  namespace TEXT PRIMARY KEY,
  version   INTEGER NOT NULL
) WITHOUT ROWID;
