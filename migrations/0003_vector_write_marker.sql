-- The vector index write (Vectorize mutation) that made a document's vectors; Vectorize
-- applies writes asynchronously, so a document is searchable once this one is processed.
ALTER TABLE documents ADD COLUMN vector_mutation_id TEXT;
ALTER TABLE documents ADD COLUMN vector_mutation_at INTEGER;
