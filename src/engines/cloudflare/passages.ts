import { AppError, type DocumentVersion, type IndexedChunk, type StoredPassage } from '../../domain';

/** D1 statements per batch call, kept well below D1's limits on batch size and duration. */
const WRITE_BATCH = 200;
/** Ids per json_each read. */
const READ_BATCH = 1000;

interface PassageRow {
  id: string;
  document_id: string;
  title: string;
  text: string;
  position: number;
  page: number | null;
  headings: string | null;
}

/** What D1 holds of a passage that decides how it is staged again. */
export interface StoredPlace {
  metadata: string;
  shard: number;
}

const notStaged = (missing: number, of: number, documentId: string) =>
  new AppError('bad_request', `Search engine: ${missing} of ${of} chunks of document ${documentId} are not staged; stage them first`);

function fromRow(row: PassageRow): StoredPassage {
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

/**
 * The Cloudflare engine's passages in D1 (migrations 0007 and 0011): staged, then live by
 * document version, each with the keyword shard that holds its terms (keyword-search.ts).
 */
export class PassageTable {
  constructor(private readonly db: D1Database) {}

  /**
   * Inserts staged passages, or updates the place, title and metadata of existing ids (an id's
   * text is fixed: it hashes it). A live passage stays live. Returns each id's keyword shard: an
   * id already stored keeps its own; new ones fill the namespace's first shards with room
   * (`shardSize` passages each, counted by migration 0011's triggers), then open new ones.
   * Two stagings at once may both fill the last room: a shard exceeds its size by at most a batch.
   * `stored` is what `stored()` read of these ids.
   */
  async stage(namespace: string, chunks: IndexedChunk[], shardSize: number, stored: Map<string, StoredPlace>): Promise<Map<string, number>> {
    const shardOf = new Map(chunks.flatMap((c) => (stored.has(c.id) ? [[c.id, stored.get(c.id)!.shard] as const] : [])));
    const fresh = chunks.filter((c) => !shardOf.has(c.id));
    if (fresh.length) {
      const { results } = await this.db
        .prepare('SELECT shard, passages FROM keyword_shards WHERE namespace = ? ORDER BY shard')
        .bind(namespace)
        .all<{ shard: number; passages: number }>();
      const used = new Map(results.map((r) => [r.shard, r.passages]));
      let shard = 0;
      for (const chunk of fresh) {
        while ((used.get(shard) ?? 0) >= shardSize) shard++;
        shardOf.set(chunk.id, shard);
        used.set(shard, (used.get(shard) ?? 0) + 1);
      }
    }
    const upsert = this.db.prepare(
      `INSERT INTO passages (id, namespace, document_id, title, text, context, position, page, headings, metadata, shard)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
       ON CONFLICT (id) DO UPDATE SET title = excluded.title, position = excluded.position, page = excluded.page,
         headings = excluded.headings, metadata = excluded.metadata
       WHERE passages.namespace = excluded.namespace AND passages.document_id = excluded.document_id`,
    );
    const statements = chunks.map((c) =>
      upsert.bind(
        c.id,
        namespace,
        c.documentId,
        c.title,
        c.text,
        c.context,
        c.position,
        c.page,
        c.headings?.length ? JSON.stringify(c.headings) : null,
        JSON.stringify(c.metadata),
        shardOf.get(c.id)!,
      ),
    );
    for (let i = 0; i < statements.length; i += WRITE_BATCH) await this.db.batch(statements.slice(i, i + WRITE_BATCH));
    return shardOf;
  }

  /**
   * The keyword shard of every id of the versions; throws, as `activate` would, when an id was
   * not staged (so that nothing is activated anywhere).
   */
  async shardsOf(namespace: string, versions: DocumentVersion[]): Promise<Map<string, number>> {
    const { results } = await this.db
      .prepare('SELECT id, document_id, shard FROM passages WHERE namespace = ? AND document_id IN (SELECT value FROM json_each(?))')
      .bind(namespace, JSON.stringify(versions.map((v) => v.documentId)))
      .all<{ id: string; document_id: string; shard: number }>();
    const stored = new Map(results.map((row) => [row.id, row]));
    const shardOf = new Map<string, number>();
    for (const { documentId, chunkIds } of versions) {
      const missing = chunkIds.filter((id) => stored.get(id)?.document_id !== documentId);
      if (missing.length) throw notStaged(missing.length, chunkIds.length, documentId);
      for (const id of chunkIds) shardOf.set(id, stored.get(id)!.shard);
    }
    return shardOf;
  }

  /**
   * Makes each version live and deletes the document's other passages, all in one D1 batch (one
   * transaction). Returns the ids deleted, whose vectors the caller removes. Throws, changing
   * nothing, when an id was not staged.
   */
  async activate(namespace: string, versions: DocumentVersion[]): Promise<string[]> {
    if (versions.length === 0) return [];
    const documents = JSON.stringify(versions.map((v) => v.documentId));
    const { results } = await this.db
      .prepare('SELECT id, document_id FROM passages WHERE namespace = ? AND document_id IN (SELECT value FROM json_each(?))')
      .bind(namespace, documents)
      .all<{ id: string; document_id: string }>();
    const stored = new Map<string, Set<string>>();
    for (const row of results) stored.set(row.document_id, (stored.get(row.document_id) ?? new Set()).add(row.id));
    const stale: string[] = [];
    const statements: D1PreparedStatement[] = [];
    for (const { documentId, chunkIds } of versions) {
      const have = stored.get(documentId) ?? new Set<string>();
      const missing = chunkIds.filter((id) => !have.has(id));
      if (missing.length) {
        throw notStaged(missing.length, chunkIds.length, documentId);
      }
      const wanted = new Set(chunkIds);
      stale.push(...[...have].filter((id) => !wanted.has(id)));
      const ids = JSON.stringify(chunkIds);
      statements.push(
        this.db
          .prepare('UPDATE passages SET live = 1 WHERE live = 0 AND namespace = ? AND document_id = ? AND id IN (SELECT value FROM json_each(?))')
          .bind(namespace, documentId, ids),
        this.db
          .prepare('DELETE FROM passages WHERE namespace = ? AND document_id = ? AND id NOT IN (SELECT value FROM json_each(?))')
          .bind(namespace, documentId, ids),
      );
    }
    // One batch is one transaction: every version switches at once.
    await this.db.batch(statements);
    return stale;
  }

  /** Deletes a document's passages; returns their ids (for their vectors). */
  async remove(namespace: string, documentId: string): Promise<string[]> {
    const { results } = await this.db
      .prepare('DELETE FROM passages WHERE namespace = ? AND document_id = ? RETURNING id')
      .bind(namespace, documentId)
      .all<{ id: string }>();
    return results.map((row) => row.id);
  }

  /** The stored metadata (JSON) and keyword shard of the given ids in the namespace, by id. */
  async stored(namespace: string, ids: string[]): Promise<Map<string, StoredPlace>> {
    const found = new Map<string, StoredPlace>();
    for (let i = 0; i < ids.length; i += READ_BATCH) {
      const { results } = await this.db
        .prepare('SELECT id, metadata, shard FROM passages WHERE namespace = ? AND id IN (SELECT value FROM json_each(?))')
        .bind(namespace, JSON.stringify(ids.slice(i, i + READ_BATCH)))
        .all<{ id: string; metadata: string; shard: number }>();
      for (const row of results) found.set(row.id, { metadata: row.metadata, shard: row.shard });
    }
    return found;
  }

  /** Which of the given ids are live passages. */
  async live(ids: string[]): Promise<Set<string>> {
    const { results } = await this.db
      .prepare('SELECT id FROM passages WHERE live = 1 AND id IN (SELECT value FROM json_each(?))')
      .bind(JSON.stringify(ids))
      .all<{ id: string }>();
    return new Set(results.map((row) => row.id));
  }

  /** A document's live passages in document order. */
  async ofDocument(namespace: string, documentId: string, from: number, limit: number): Promise<StoredPassage[]> {
    const { results } = await this.db
      .prepare(
        `SELECT id, document_id, title, text, position, page, headings FROM passages
         WHERE namespace = ? AND document_id = ? AND live = 1 ORDER BY position LIMIT ? OFFSET ?`,
      )
      .bind(namespace, documentId, limit, from)
      .all<PassageRow>();
    return results.map(fromRow);
  }

  /** Live passages of the given ids, by id. */
  async read(ids: string[]): Promise<Map<string, StoredPassage>> {
    if (ids.length === 0) return new Map();
    const { results } = await this.db
      .prepare(
        `SELECT id, document_id, title, text, position, page, headings FROM passages
         WHERE id IN (SELECT value FROM json_each(?)) AND live = 1`,
      )
      .bind(JSON.stringify(ids))
      .all<PassageRow>();
    return new Map(results.map((row) => [row.id, fromRow(row)]));
  }

  async count(namespace: string): Promise<number> {
    const row = await this.db.prepare('SELECT COUNT(*) AS n FROM passages WHERE namespace = ? AND live = 1').bind(namespace).first<{ n: number }>();
    return row?.n ?? 0;
  }
}
