-- A counter per namespace, bumped in the same D1 batch as every change to what the namespace
-- can return (a document marked ready, marked failed, deleted). Cached answers are keyed by
-- it (src/cache/responses.ts), so a change makes every earlier answer unreachable at once.
-- A namespace without a row has generation 0.
CREATE TABLE namespace_generations (
  namespace  TEXT PRIMARY KEY,
  generation INTEGER NOT NULL
);
