-- Objects put straight into the bucket are tracked by key (R2 event notifications).
CREATE INDEX documents_by_r2_key ON documents (r2_key);
