import type { DocumentMetadata, DocumentStatus, DocumentType, VectorWrite } from '../domain';

export interface DocumentRecord {
  id: string;
  namespace: string;
  title: string;
  filename: string | null;
  type: DocumentType;
  size: number;
  r2Key: string;
  metadata: DocumentMetadata;
  status: DocumentStatus;
  error: string | null;
  chunkCount: number;
  embeddingModel: string | null;
  indexedAt: string | null;
  /** The asynchronous vector index write that holds this document's vectors, if any. */
  vectorWrite: VectorWrite | null;
  /** While a document is ingested in slices: how many its claim has, and how many are in. */
  slices: { total: number; done: number } | null;
  createdAt: string;
  updatedAt: string;
}

interface DocumentRow {
  id: string;
  namespace: string;
  title: string;
  filename: string | null;
  type: DocumentType;
  size: number;
  r2_key: string;
  metadata: string;
  status: DocumentStatus;
  error: string | null;
  chunk_count: number;
  embedding_model: string | null;
  indexed_at: string | null;
  vector_mutation_id: string | null;
  vector_mutation_at: number | null;
  slices: number | null;
  slices_done: number;
  created_at: string;
  updated_at: string;
  seq?: number;
}

function fromRow(row: DocumentRow): DocumentRecord {
  return {
    id: row.id,
    namespace: row.namespace,
    title: row.title,
    filename: row.filename,
    type: row.type,
    size: row.size,
    r2Key: row.r2_key,
    metadata: JSON.parse(row.metadata) as DocumentMetadata,
    status: row.status,
    error: row.error,
    chunkCount: row.chunk_count,
    embeddingModel: row.embedding_model,
    indexedAt: row.indexed_at,
    vectorWrite:
      row.vector_mutation_id && row.vector_mutation_at !== null
        ? { mutationId: row.vector_mutation_id, at: row.vector_mutation_at }
        : null,
    slices: row.status === 'processing' && row.slices !== null ? { total: row.slices, done: row.slices_done } : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * Bumps the generation of the namespace of the documents whose ids are bound (a JSON array).
 * Run in the same batch (one transaction) as the change itself. A namespace's first
 * generation is the current time in ms rather than 1, so a recreated database never reuses
 * a generation that answers cached under the old one may still carry.
 */
const BUMP_GENERATIONS = `INSERT INTO namespace_generations (namespace, generation, changed_at)
  SELECT DISTINCT namespace, ?1, ?1 FROM documents WHERE id IN (SELECT value FROM json_each(?2))
  ON CONFLICT (namespace) DO UPDATE SET generation = generation + 1, changed_at = excluded.changed_at`;

export type NewDocument = Pick<DocumentRecord, 'id' | 'namespace' | 'title' | 'filename' | 'type' | 'size' | 'r2Key' | 'metadata'>;

/** The document catalog in D1. */
export class DocumentStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  async get(id: string): Promise<DocumentRecord | null> {
    const row = await this.#db.prepare('SELECT * FROM documents WHERE id = ?').bind(id).first<DocumentRow>();
    return row ? fromRow(row) : null;
  }

  async findByR2Key(key: string): Promise<DocumentRecord | null> {
    const row = await this.#db.prepare('SELECT * FROM documents WHERE r2_key = ?').bind(key).first<DocumentRow>();
    return row ? fromRow(row) : null;
  }

  async getMany(ids: string[]): Promise<Map<string, DocumentRecord>> {
    const found = new Map<string, DocumentRecord>();
    // D1 binds at most 100 parameters per statement.
    for (let i = 0; i < ids.length; i += 100) {
      const slice = ids.slice(i, i + 100);
      const { results } = await this.#db
        .prepare(`SELECT * FROM documents WHERE id IN (${slice.map(() => '?').join(',')})`)
        .bind(...slice)
        .all<DocumentRow>();
      for (const row of results) found.set(row.id, fromRow(row));
    }
    return found;
  }

  /** Inserts new documents as `queued`, or re-queues existing ones (a re-upload of the same bytes). */
  async enqueue(documents: NewDocument[]): Promise<void> {
    if (documents.length === 0) return;
    const now = new Date().toISOString();
    const statement = this.#db.prepare(
      `INSERT INTO documents (id, namespace, title, filename, type, size, r2_key, metadata, status, created_at, updated_at, due_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = 'queued', error = NULL, title = excluded.title,
         filename = excluded.filename, type = excluded.type, size = excluded.size, r2_key = excluded.r2_key,
         metadata = excluded.metadata, updated_at = excluded.updated_at, due_at = excluded.due_at`,
    );
    await this.#db.batch(
      documents.map((d) =>
        statement.bind(d.id, d.namespace, d.title, d.filename, d.type, d.size, d.r2Key, JSON.stringify(d.metadata), now, now, Date.now()),
      ),
    );
  }

  /** Pages newest first; `cursor` is the `nextCursor` of the previous page. */
  async list(options: { namespace?: string; status?: DocumentStatus; limit: number; cursor?: number }) {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (options.namespace) (where.push('namespace = ?'), params.push(options.namespace));
    if (options.status) (where.push('status = ?'), params.push(options.status));
    if (options.cursor !== undefined) (where.push('rowid < ?'), params.push(options.cursor));
    const sql = `SELECT rowid AS seq, * FROM documents ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY rowid DESC LIMIT ?`;
    const { results } = await this.#db
      .prepare(sql)
      .bind(...params, options.limit + 1)
      .all<DocumentRow>();
    const page = results.slice(0, options.limit);
    const last = page.at(-1);
    return {
      documents: page.map(fromRow),
      nextCursor: results.length > options.limit && last ? String(last.seq) : null,
    };
  }

  /**
   * Claims documents for processing, compare-and-set: a document is claimed unless another
   * claim's lease still runs. Returns the claimed ones with their attempt token, and the held
   * ones with when their lease ends (ms); an id in neither no longer exists.
   */
  async claim(ids: string[], leaseMs: number): Promise<{ claimed: Map<string, string>; held: Map<string, number> }> {
    const now = Date.now();
    const statement = this.#db.prepare(
      `UPDATE documents SET status = 'processing', attempt = ?, lease_until = ?, updated_at = ?, slices = NULL, slices_done = 0
       WHERE id = ? AND (status != 'processing' OR lease_until IS NULL OR lease_until <= ?)`,
    );
    const tokens = new Map(ids.map((id) => [id, crypto.randomUUID()]));
    const won = await this.#changed(ids, (id) => statement.bind(tokens.get(id), now + leaseMs, new Date(now).toISOString(), id, now));
    const claimed = new Map([...won].map((id) => [id, tokens.get(id) as string]));
    const held = new Map<string, number>();
    const others = ids.filter((id) => !won.has(id));
    if (others.length) {
      const { results } = await this.#db
        .prepare('SELECT id, lease_until FROM documents WHERE id IN (SELECT value FROM json_each(?))')
        .bind(JSON.stringify(others))
        .all<{ id: string; lease_until: number | null }>();
      for (const row of results) held.set(row.id, row.lease_until ?? now);
    }
    return { claimed, held };
  }

  /** Extends the leases of claims (id → attempt) that still hold their document. */
  async renew(claims: Map<string, string>, leaseMs: number): Promise<void> {
    if (claims.size === 0) return;
    const statement = this.#db.prepare('UPDATE documents SET lease_until = ? WHERE id = ? AND attempt = ?');
    await this.#db.batch([...claims].map(([id, attempt]) => statement.bind(Date.now() + leaseMs, id, attempt)));
  }

  /** The claims (id → attempt) that still hold their document: not deleted, not taken over. */
  async holding(claims: Map<string, string>): Promise<Set<string>> {
    if (claims.size === 0) return new Set();
    const { results } = await this.#db
      .prepare('SELECT id, attempt FROM documents WHERE id IN (SELECT value FROM json_each(?))')
      .bind(JSON.stringify([...claims.keys()]))
      .all<{ id: string; attempt: string | null }>();
    return new Set(results.filter((row) => row.attempt !== null && row.attempt === claims.get(row.id)).map((row) => row.id));
  }

  /** Marks documents searchable; returns those that still exist (not deleted meanwhile). */
  async markReady(
    updates: { id: string; attempt: string; chunkCount: number; embeddingModel: string }[],
    vectorWrite: VectorWrite | null,
  ): Promise<Set<string>> {
    const now = new Date().toISOString();
    // Only the claim that holds the document: a claim taken over after its lease ran out changes nothing.
    const statement = this.#db.prepare(
      `UPDATE documents SET status = 'ready', error = NULL, chunk_count = ?, embedding_model = ?, indexed_at = ?,
         updated_at = ?, vector_mutation_id = ?, vector_mutation_at = ?, attempt = NULL, lease_until = NULL
       WHERE id = ? AND attempt IS ?`,
    );
    const byId = new Map(updates.map((u) => [u.id, u]));
    const ids = [...byId.keys()];
    // Answers cached for these namespaces are stale from the moment the documents are ready.
    return this.#changed(
      ids,
      (id) => {
        const u = byId.get(id) as (typeof updates)[number];
        return statement.bind(u.chunkCount, u.embeddingModel, now, now, vectorWrite?.mutationId ?? null, vectorWrite?.at ?? null, id, u.attempt);
      },
      [this.#bumpGenerations(ids)],
    );
  }

  /** Runs one UPDATE per id in a batch (with `also` after them) and returns the ids whose row changed. */
  async #changed(ids: string[], statementFor: (id: string) => D1PreparedStatement, also: D1PreparedStatement[] = []): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const results = await this.#db.batch([...ids.map(statementFor), ...also]);
    return new Set(ids.filter((_, i) => (results[i]?.meta.changes ?? 0) > 0));
  }

  #bumpGenerations(ids: string[]): D1PreparedStatement {
    return this.#db.prepare(BUMP_GENERATIONS).bind(Date.now(), JSON.stringify(ids));
  }

  /**
   * The namespace's generation, and when it last changed: it changes whenever what the namespace can return changes
   * (one indexed read by primary key; 0 for a namespace never changed since migration 0006).
   */
  async generation(namespace: string): Promise<{ generation: number; changedAt: number }> {
    const row = await this.#db
      .prepare('SELECT generation, changed_at FROM namespace_generations WHERE namespace = ?')
      .bind(namespace)
      .first<{ generation: number; changed_at: number }>();
    return { generation: row?.generation ?? 0, changedAt: row?.changed_at ?? 0 };
  }

  /**
   * Also bumps the namespace's generation, whether or not the document was ever ready: a
   * failed attempt may have published passages (local index) before they were taken back.
   */
  async markFailed(id: string, reason: string, attempt: string | null = null): Promise<void> {
    await this.#db.batch([
      this.#db
        .prepare(
          `UPDATE documents SET status = 'failed', error = ?1, chunk_count = 0, indexed_at = NULL, updated_at = ?2, attempt = NULL, lease_until = NULL
           WHERE id = ?3 AND (?4 IS NULL OR attempt IS ?4)`,
        )
        .bind(reason, new Date().toISOString(), id, attempt),
      this.#bumpGenerations([id]),
    ]);
  }

  /**
   * Back in the queue after a transient failure; `note` says why, for the user. A document
   * that was ready stays `ready`: its previous version is still what search returns.
   */
  async markRetrying(id: string, note: string, delaySeconds: number, attempt: string | null = null): Promise<void> {
    await this.#db
      .prepare(
        `UPDATE documents SET status = CASE WHEN indexed_at IS NULL THEN 'queued' ELSE 'ready' END, error = ?1, updated_at = ?2,
           attempt = NULL, lease_until = NULL, due_at = ?5
         WHERE id = ?3 AND (?4 IS NULL OR attempt IS ?4)`,
      )
      .bind(note, new Date().toISOString(), id, attempt, Date.now() + delaySeconds * 1000)
      .run();
  }

  /**
   * After a final failure of a re-ingestion: a document that was ready stays `ready` on its
   * previous version, with `note` saying what failed. Returns false for a document that never
   * was ready (nothing to keep), which the caller fails instead.
   */
  async keepPreviousVersion(id: string, note: string, attempt: string | null = null): Promise<boolean> {
    const result = await this.#db
      .prepare(
        `UPDATE documents SET status = 'ready', error = ?1, updated_at = ?2, attempt = NULL, lease_until = NULL
         WHERE id = ?3 AND indexed_at IS NOT NULL AND (?4 IS NULL OR attempt IS ?4)`,
      )
      .bind(note, new Date().toISOString(), id, attempt)
      .run();
    return (result.meta.changes ?? 0) > 0;
  }

  async markQueued(ids: string[]): Promise<void> {
    const now = new Date().toISOString();
    const statement = this.#db.prepare(`UPDATE documents SET status = 'queued', updated_at = ?, due_at = ? WHERE id = ?`);
    for (let i = 0; i < ids.length; i += 500) {
      await this.#db.batch(ids.slice(i, i + 500).map((id) => statement.bind(now, Date.now(), id)));
    }
  }

  /**
   * Documents nothing is working on any more: queued with their message overdue by `graceMs`,
   * or processing under a lease that ran out. At most `limit`; their due time moves to now, so
   * one sweep re-sends them once.
   */
  async overdue(graceMs: number, limit: number): Promise<string[]> {
    const now = Date.now();
    const { results } = await this.#db
      .prepare(
        `UPDATE documents SET due_at = ?1 WHERE id IN (
           SELECT id FROM documents
           WHERE (status = 'queued' AND coalesce(due_at, 0) < ?1 - ?2) OR (status = 'processing' AND coalesce(lease_until, 0) < ?1)
           LIMIT ?3)
         RETURNING id`,
      )
      .bind(now, graceMs, limit)
      .all<{ id: string }>();
    return results.map((row) => row.id);
  }

  /** Removes rows that were never ingested (an upload undone); nothing else refers to them yet. */
  async deleteMany(ids: string[]): Promise<void> {
    if (ids.length) await this.#db.prepare('DELETE FROM documents WHERE id IN (SELECT value FROM json_each(?))').bind(JSON.stringify(ids)).run();
  }

  /** Also bumps the namespace's generation (before the row goes, in the same transaction), and forgets its slices. */
  async delete(id: string): Promise<void> {
    await this.#db.batch([
      this.#bumpGenerations([id]),
      this.#db.prepare('DELETE FROM documents WHERE id = ?').bind(id),
      this.#db.prepare('DELETE FROM document_slices WHERE document_id = ?').bind(id),
      this.#db.prepare('DELETE FROM generation_documents WHERE document_id = ?').bind(id),
    ]);
  }

  /**
   * Bumps a namespace's generation by name: for changes to an index outside a catalog write
   * (passages taken back after the document was deleted meanwhile).
   */
  async bumpGeneration(namespace: string): Promise<void> {
    await this.#db
      .prepare(
        `INSERT INTO namespace_generations (namespace, generation, changed_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (namespace) DO UPDATE SET generation = generation + 1, changed_at = excluded.changed_at`,
      )
      .bind(namespace, Date.now())
      .run();
  }

  /** Every namespace with a document. */
  async namespaces(): Promise<string[]> {
    const { results } = await this.#db.prepare('SELECT DISTINCT namespace FROM documents').all<{ namespace: string }>();
    return results.map((row) => row.namespace);
  }

  /** Ids of every document, or of a namespace's, or of those in a status. */
  async allIds(namespace?: string, status?: DocumentStatus): Promise<string[]> {
    const { results } = await this.#db
      .prepare('SELECT id FROM documents WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR status = ?2)')
      .bind(namespace ?? null, status ?? null)
      .all<{ id: string }>();
    return results.map((row) => row.id);
  }

  /** What a namespace holds, for its quotas. */
  async usage(namespace: string): Promise<{ documents: number; bytes: number }> {
    const row = await this.#db
      .prepare('SELECT COUNT(*) AS documents, COALESCE(SUM(size), 0) AS bytes FROM documents WHERE namespace = ?')
      .bind(namespace)
      .first<{ documents: number; bytes: number }>();
    return { documents: row?.documents ?? 0, bytes: row?.bytes ?? 0 };
  }

  /** Documents per namespace and status, for /metrics. */
  async countByNamespaceAndStatus(): Promise<{ namespace: string; status: DocumentStatus; n: number }[]> {
    const { results } = await this.#db
      .prepare('SELECT namespace, status, COUNT(*) AS n FROM documents GROUP BY namespace, status')
      .all<{ namespace: string; status: DocumentStatus; n: number }>();
    return results;
  }

  async countByStatus(): Promise<Record<DocumentStatus, number>> {
    const { results } = await this.#db
      .prepare('SELECT status, COUNT(*) AS n FROM documents GROUP BY status')
      .all<{ status: DocumentStatus; n: number }>();
    const counts: Record<DocumentStatus, number> = { queued: 0, processing: 0, ready: 0, failed: 0 };
    for (const row of results) counts[row.status] = row.n;
    return counts;
  }
}
