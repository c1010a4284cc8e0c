import type { ChunkRecord } from '../domain';

/** D1 statements per batch call, kept well below D1's limits on batch size and duration. */
const WRITE_BATCH = 200;

/**
 * The catalog's chunk rows in D1: which chunks each document has, where, and which model
 * embedded them (to re-embed only what changed). Texts live in the search engine.
 */
export class ChunkStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /**
   * For each document: chunk id → the embedding model of its stored vector; only the chunks
   * `among` when given (a slice of a large document).
   */
  async embeddedModels(documentIds: string[], among?: string[]): Promise<Map<string, Map<string, string>>> {
    const { results } = await this.#db
      .prepare(
        `SELECT id, document_id, embedding_model FROM chunks WHERE document_id IN (SELECT value FROM json_each(?1))
           AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))`,
      )
      .bind(JSON.stringify(documentIds), among ? JSON.stringify(among) : null)
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
      `INSERT INTO chunks (id, document_id, namespace, position, page, headings, tokens, embedding_model)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
        ),
      ),
      ...stale.map(({ id, documentId }) => remove.bind(id, documentId)),
    ];
    for (let i = 0; i < statements.length; i += WRITE_BATCH) {
      await this.#db.batch(statements.slice(i, i + WRITE_BATCH));
    }
  }

  /** Removes every chunk row of a document. */
  async deleteDocumentChunks(documentId: string): Promise<void> {
    await this.#db.prepare('DELETE FROM chunks WHERE document_id = ?').bind(documentId).run();
  }

  /** Chunks per embedding model, for /status (chunks of another model than the current need a re-index). */
  async countByModel(): Promise<{ model: string; n: number }[]> {
    const { results } = await this.#db
      .prepare('SELECT embedding_model AS model, COUNT(*) AS n FROM chunks GROUP BY embedding_model')
      .all<{ model: string; n: number }>();
    return results;
  }

  /** Chunks per namespace, for /metrics. */
  async countByNamespace(): Promise<{ namespace: string; n: number }[]> {
    const { results } = await this.#db
      .prepare('SELECT namespace, COUNT(*) AS n FROM chunks GROUP BY namespace')
      .all<{ namespace: string; n: number }>();
    return results;
  }

  /** Chunks in all namespaces, or in one. */
  async count(namespace?: string): Promise<number> {
    const statement = namespace
      ? this.#db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE namespace = ?').bind(namespace)
      : this.#db.prepare('SELECT COUNT(*) AS n FROM chunks');
    const row = await statement.first<{ n: number }>();
    return row?.n ?? 0;
  }
}
