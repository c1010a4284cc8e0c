/** Where a sliced document's ingestion stands: its slices, how many are in, and what they embedded. */
export interface SliceProgress {
  total: number;
  done: number;
  /** Chunks the slices done so far embedded anew. */
  embedded: number;
}

/**
 * The catalog's record of documents ingested in slices (migration 0012): each slice done, per
 * claim (attempt), and the count on the document row that its status shows. Every write is
 * compare-and-set on the attempt, so a claim that was taken over changes nothing.
 */
export class SliceStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /**
   * Records that a claim splits its document into `total` slices (forgetting those of earlier
   * claims) and extends its lease; false when the claim no longer holds the document.
   */
  async start(documentId: string, attempt: string, total: number, leaseMs: number): Promise<boolean> {
    const [, updated] = await this.#db.batch([
      this.#db.prepare('DELETE FROM document_slices WHERE document_id = ?').bind(documentId),
      this.#db
        .prepare('UPDATE documents SET slices = ?1, slices_done = 0, lease_until = ?2 WHERE id = ?3 AND attempt = ?4')
        .bind(total, Date.now() + leaseMs, documentId, attempt),
    ]);
    return (updated?.meta.changes ?? 0) > 0;
  }

  /** Whether the claim still holds the document, and whether `slice` is in already; null for a deleted document. */
  async state(documentId: string, attempt: string, slice: number): Promise<{ holding: boolean; done: boolean } | null> {
    const row = await this.#db
      .prepare(
        `SELECT attempt IS ?2 AS holding,
           EXISTS (SELECT 1 FROM document_slices WHERE document_id = ?1 AND attempt = ?2 AND slice = ?3) AS done
         FROM documents WHERE id = ?1`,
      )
      .bind(documentId, attempt, slice)
      .first<{ holding: number; done: number }>();
    return row ? { holding: row.holding === 1, done: row.done === 1 } : null;
  }

  /**
   * Records a slice as done (again is harmless), updates the document's count and extends the
   * claim's lease, in one transaction. Returns the progress after it, or null when the claim
   * no longer holds the document.
   */
  async complete(documentId: string, attempt: string, slice: number, embedded: number, leaseMs: number): Promise<SliceProgress | null> {
    const [, , progress] = await this.#db.batch([
      this.#db
        .prepare(
          `INSERT INTO document_slices (document_id, attempt, slice, embedded)
           SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM documents WHERE id = ?1 AND attempt = ?2)
           ON CONFLICT DO NOTHING`,
        )
        .bind(documentId, attempt, slice, embedded),
      this.#db
        .prepare(
          `UPDATE documents SET lease_until = ?3,
             slices_done = (SELECT COUNT(*) FROM document_slices WHERE document_id = ?1 AND attempt = ?2)
           WHERE id = ?1 AND attempt = ?2`,
        )
        .bind(documentId, attempt, Date.now() + leaseMs),
      this.#db
        .prepare(
          `SELECT d.slices AS total, d.slices_done AS done,
             (SELECT COALESCE(SUM(embedded), 0) FROM document_slices WHERE document_id = ?1 AND attempt = ?2) AS embedded
           FROM documents d WHERE d.id = ?1 AND d.attempt = ?2`,
        )
        .bind(documentId, attempt),
    ]);
    const row = (progress?.results as SliceProgress[] | undefined)?.[0];
    return row ?? null;
  }

  /**
   * A slice failed and is retried in `delaySeconds`: the claim keeps the document (the other
   * slices' work stays), with `note` for the user and a lease that outlasts the wait.
   */
  async retrying(documentId: string, attempt: string, note: string, delaySeconds: number, leaseMs: number): Promise<void> {
    await this.#db
      .prepare('UPDATE documents SET error = ?1, lease_until = ?2, updated_at = ?3 WHERE id = ?4 AND attempt = ?5')
      .bind(note, Date.now() + delaySeconds * 1000 + leaseMs, new Date().toISOString(), documentId, attempt)
      .run();
  }

  /** Forgets a document's slices, once it is ready, failed or deleted. */
  async forget(documentId: string): Promise<void> {
    await this.#db.prepare('DELETE FROM document_slices WHERE document_id = ?').bind(documentId).run();
  }
}
