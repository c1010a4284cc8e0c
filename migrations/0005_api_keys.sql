-- API keys: the catalog behind GET /v1/keys, and what a key's rate-limiter Durable Object
-- loads its record from. Only the SHA-256 of a key is kept; the key itself is shown once.
CREATE TABLE api_keys (
  id              TEXT PRIMARY KEY,            -- the key's short public id (also inside the key)
  name            TEXT,                        -- a label for people
  hash            TEXT NOT NULL,               -- hex SHA-256 of the whole key
  scopes          TEXT NOT NULL,               -- JSON array of read | write | admin
  namespaces      TEXT,                        -- JSON array, or NULL for every namespace
  rate_per_minute INTEGER,                     -- per-key override of RATE_LIMIT_PER_MINUTE
  rate_burst      INTEGER,                     -- per-key override of RATE_LIMIT_BURST
  expires_at      TEXT,
  created_at      TEXT NOT NULL,
  revoked_at      TEXT
);

-- Per-namespace quotas count a namespace's passages.
CREATE INDEX chunks_by_namespace ON chunks (namespace);
