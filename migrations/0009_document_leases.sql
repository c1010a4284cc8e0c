-- A document being ingested is claimed with a lease: `attempt` names the claim, `lease_until`
-- (ms since the epoch) is when another delivery may take it over. A duplicate delivery while
-- the lease runs waits; the outcome of a claim that was taken over is dropped.
ALTER TABLE documents ADD COLUMN attempt TEXT;
ALTER TABLE documents ADD COLUMN lease_until INTEGER;
