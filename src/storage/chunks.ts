/** A chunk as stored: its text, where it sits in its document, and which model embedded it. */
export interface ChunkRecord {
  id: string;
  documentId: string;
  namespace: string;
  position: number;
  text: string;
  /** Title and heading path: indexed with the text, shown as the passage's context. */
  context: string;
  page?: number;
  headings?: string[];
  tokens: number;
  embeddingModel: string;
}

/** A chunk of a searchable document, with the document's title: what retrieval returns. */
export interface StoredPassage {
  id: string;
  documentId: string;
  title: string;
  text: string;
  position: number;
  page: number | null;
  headings: string[] | null;
}

export interface PassageRow {
  id: string;
  document_id: string;
  title: string;
  text: string;
  position: number;
  page: number | null;
  headings: string | null;
}

export const PASSAGE_COLUMNS = 'c.id, c.document_id, d.title, c.text, c.position, c.page, c.headings';

export function passageFromRow(row: PassageRow): StoredPassage {
  return {
    id: row.id,
    documentId: row.document_id,
    title: row.title,
    text: row.text,
    position: row.position,
    page: row.page,
    headings: row.headings ? (JSON.parse(row.headings) as string[]) : null,
  };
}

/** D1 statements per batch call, kept well below D1's limits on batch size and duration. */
const WRITE_BATCH = 200;

/** Chunk rows in D1; the FTS5 keyword index follows them through triggers. */
export class ChunkStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /** For each document: chunk id → the embedding model of its stored vector. */
  async embeddedModels(documentIds: string[]): Promise<Map<string, Map<string, string>>> {
    const { results } = await this.#db
      .prepare('SELECT id, document_id, embedding_model FROM chunks WHERE document_id IN (SELECT value FROM json_each(?))')
      .bind(JSON.stringify(documentIds))
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
   * Writes chunk rows (insert, or update position and context of an existing id: the text
   * is fixed per id) and removes stale ones.
   */
  async write(chunks: ChunkRecord[], stale: { id: string; documentId: string }[]): Promise<void> {
    const upsert = this.#db.prepare(
      `INSERT INTO chunks (id, document_id, namespace, position, text, context, page, headings, tokens, embedding_model)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET position = excluded.position, context = excluded.context, page = excluded.page,
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
          c.text,
          c.context,
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

  /** Removes every chunk of a document (their vectors are removed first, by id: see `ids`). */
  async deleteDocumentChunks(documentId: string): Promise<void> {
    await this.#db.prepare('DELETE FROM chunks WHERE document_id = ?').bind(documentId).run();
  }

  async ids(documentId: string): Promise<string[]> {
    const { results } = await this.#db
      .prepare('SELECT id FROM chunks WHERE document_id = ?')
      .bind(documentId)
      .all<{ id: string }>();
    return results.map((row) => row.id);
  }

  /** Chunks per embedding model, for /status (chunks of another model than the current need a re-index). */
  async countByModel(): Promise<{ model: string; n: number }[]> {
    const { results } = await this.#db
      .prepare('SELECT embedding_model AS model, COUNT(*) AS n FROM chunks GROUP BY embedding_model')
      .all<{ model: string; n: number }>();
    return results;
  }

  /** Reads one row of the FTS5 keyword index: throws when it is missing or broken. */
  async probeKeywordIndex(): Promise<void> {
    await this.#db.prepare('SELECT rowid FROM chunks_fts LIMIT 1').first();
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
