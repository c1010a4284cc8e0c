import type { ChunkRecord } from '../domain';

/** Only the rows of each namespace's serving index generation (0 when none is recorded). */
const SERVING = `LEFT JOIN index_generations g ON g.namespace = c.namespace AND g.state = 'serving'
  WHERE c.generation = COALESCE(g.generation, 0)`;

/** D1 statements per batch call, kept well below D1's limits on batch size and duration. */
const WRITE_BATCH = 200;

/**
 * The catalog's chunk rows in D1: which chunks each document has, where, and which model
 * embedded them (to re-embed only what changed), in one index generation (each has its own
 * rows). Texts live in the search engine.
 */
export class ChunkStore {
  readonly #db: D1Database;
  readonly generation: number;

  constructor(db: D1Database, generation = 0) {
    this.#db = db;
    this.generation = generation;
  }

  /** The same store, for another index generation's rows. */
  at(generation: number): ChunkStore {
    return generation === this.generation ? this : new ChunkStore(this.#db, generation);
  }

  /** For each document: chunk id → the embedding model of its stored vector. */
  async embeddedModels(documentIds: string[]): Promise<Map<string, Map<string, string>>> {
    const { results } = await this.#db
      .prepare('SELECT id, document_id, embedding_model FROM chunks WHERE document_id IN (SELECT value FROM json_each(?)) AND generation = ?')
      .bind(JSON.stringify(documentIds), this.generation)
      .all<{ id: string; document_id: string; embedding_model: string }>();
    const byDocument = new Map<string, Map<string, string>>();
    for (const row of results) {
      const models = byDocument.get(row.document_id) ?? new Map<string, string>();
      models.set(row.id, row.embedding_model);
      byDocument.set(row.document_id, models);
    }
    return byDocument;
  }

  /**
   * Writes chunk rows (insert, or update the place of an existing id: its text is fixed, the id
   * hashes it) and removes stale ones.
   */
  async write(chunks: ChunkRecord[], stale: { id: string; documentId: string }[]): Promise<void> {
    const upsert = this.#db.prepare(
      `INSERT INTO chunks (id, document_id, namespace, position, page, headings, tokens, embedding_model, generation)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET position = excluded.position, page = excluded.page,
         headings = excluded.headings, embedding_model = excluded.embedding_model`,
    );
    const remove = this.#db.prepare('DELETE FROM chunks WHERE id = ? AND document_id = ?');
    const statements = [
      ...chunks.map((c) =>
        upsert.bind(
          c.id,
          c.documentId,
          c.namespace,
          c.position,
          c.page ?? null,
          c.headings?.length ? JSON.stringify(c.headings) : null,
          c.tokens,
          c.embeddingModel,
          this.generation,
        ),
      ),
      ...stale.map(({ id, documentId }) => remove.bind(id, documentId)),
    ];
    for (let i = 0; i < statements.length; i += WRITE_BATCH) {
      await this.#db.batch(statements.slice(i, i + WRITE_BATCH));
    }
  }

  /** Removes every chunk row of a document in this generation. */
  async deleteDocumentChunks(documentId: string): Promise<void> {
    await this.#db.prepare('DELETE FROM chunks WHERE document_id = ? AND generation = ?').bind(documentId, this.generation).run();
  }

  /** Documents of a namespace with chunk rows in this generation, at most `limit` (to remove a retired generation). */
  async documentsIn(namespace: string, limit: number): Promise<string[]> {
    const { results } = await this.#db
      .prepare('SELECT DISTINCT document_id FROM chunks WHERE namespace = ? AND generation = ? LIMIT ?')
      .bind(namespace, this.generation, limit)
      .all<{ document_id: string }>();
    return results.map((row) => row.document_id);
  }

  /** Chunks of the serving generations per embedding model, for /status (chunks of another model than the current need a re-index). */
  async countByModel(): Promise<{ model: string; n: number }[]> {
    const { results } = await this.#db
      .prepare(`SELECT embedding_model AS model, COUNT(*) AS n FROM chunks c ${SERVING} GROUP BY embedding_model`)
      .all<{ model: string; n: number }>();
    return results;
  }

  /** Chunks of each namespace's serving generation, for /metrics. */
  async countByNamespace(): Promise<{ namespace: string; n: number }[]> {
    const { results } = await this.#db
      .prepare(`SELECT c.namespace, COUNT(*) AS n FROM chunks c ${SERVING} GROUP BY c.namespace`)
      .all<{ namespace: string; n: number }>();
    return results;
  }

  /** Chunks of a namespace's serving generation (what its passage quota counts). */
  async countServing(namespace: string): Promise<number> {
    const row = await this.#db
      .prepare(`SELECT COUNT(*) AS n FROM chunks c ${SERVING} AND c.namespace = ?`)
      .bind(namespace)
      .first<{ n: number }>();
    return row?.n ?? 0;
  }

  /** Chunks of this generation in all namespaces, or in one. */
  async count(namespace?: string): Promise<number> {
    const statement = namespace
      ? this.#db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE namespace = ? AND generation = ?').bind(namespace, this.generation)
      : this.#db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE generation = ?').bind(this.generation);
    const row = await statement.first<{ n: number }>();
    return row?.n ?? 0;
  }
}
