import { DurableObject } from 'cloudflare:workers';
import { Above, TopK } from '../top-k';
import { dot } from './vector-math';
import { bad, Cache, compileFilter, wrongDimensions } from './vector-rows';
import { addPassageColumns, buildKeywordIndex, passageTexts, placementOf, readPassages } from './passages';
import { DEFAULT_FEEDBACK } from '../feedback';
import type { KeywordIndex } from '../keyword-index';
import { fuse } from '../fusion';
import type { DocumentVersion, EngineQuery, Filter, IndexedChunk, ScoredPassage } from '../../domain';
import type { VectorMatch, VectorMetadata } from '../vector-types';

// Vectorize's limits, kept so code that works offline also works against Vectorize.
const MAX_ID_BYTES = 64;
const MAX_TOP_K = 100;
const MAX_UPSERT = 1000;
const MAX_METADATA_BYTES = 10 * 1024;

/** L2-normalised Float32 copy, so cosine similarity is a plain dot product; a zero vector stays zero (no NaN). */
function normalise(values: ArrayLike<number>): Float32Array {
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) throw bad('vector values must be finite numbers');
    sum += v * v;
  }
  const out = new Float32Array(values.length);
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  for (let i = 0; i < values.length; i++) out[i] = (values[i] as number) * scale;
  return out;
}

/**
 * How many rows the int8 scan hands to exact rescoring. Any count is exact (see `query`); more
 * means fewer fallback scans but more Float32 vectors read from SQL.
 */
const OVERSAMPLE = 4;
const MIN_CANDIDATES = 32;
/** Rows per `WHERE rowid IN (json_each(?))` read. */
const READ_BATCH = 500;

/**
 * Exact cosine vector index: the offline stand-in for Cloudflare Vectorize. One SQLite-backed
 * Durable Object per namespace. SQL is the source of truth, with each vector as an exact
 * L2-normalised Float32 BLOB. In memory (loaded lazily on the first query after the instance
 * starts) each vector is int8 codes plus a scale, an error bound and its rowid (≈ dim + 40 bytes:
 * 100,000 × 384 take ≈ 40 MiB, where Float32 rows, ids and parsed metadata took ≈ 175 MB), scanned
 * with WebAssembly SIMD (≈ 10 ms at 100,000 × 384) for candidates that are then rescored exactly
 * from SQL. Every method is synchronous, so calls never interleave and the cache cannot go stale.
 *
 * It is the local search engine's store (engine.ts): a chunk's text, place, document and
 * whether it is live share its vector's row (passages.ts), an in-memory BM25F index covers the
 * live rows (built on the first search: ≈ 1 s and 17 MiB for SciFact's 5,688 passages), and
 * `search` answers a hybrid query in one call. `upsert`, `deleteByIds` and `query` are the
 * vector-only interface (rows without passages, never returned by `search`), which the vector
 * benchmarks and scale tests drive directly.
 *
 * Over 300 lines: the index's SQL, cache and search steps share its state; split, they would
 * need that state passed around.
 */
export class LocalVectorIndex extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private dim: number | null;
  private cache: Cache | null = null;
  private keywords: KeywordIndex | null = null;
  /** For tests and benchmarks: how queries went. */
  private readonly stats = { queries: 0, rescored: 0, fallbacks: 0 };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS vectors (id TEXT PRIMARY KEY, metadata TEXT NOT NULL, vector BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`);
    addPassageColumns(this.sql);
    const row = this.sql.exec<{ value: number }>(`SELECT value FROM meta WHERE key = 'dimensions'`).toArray()[0];
    this.dim = row ? row.value : null;
  }

  upsert(records: { id: string; values: number[]; metadata: VectorMetadata }[]): void {
    if (records.length > MAX_UPSERT) throw bad(`at most ${MAX_UPSERT} vectors per upsert, got ${records.length}`);
    if (records.length === 0) return;
    const encoder = new TextEncoder();
    const dim = this.dim ?? records[0]!.values.length;
    if (dim === 0) throw bad('vectors must have at least one dimension');
    // Validate everything first: a bad record must not leave half a batch in SQL or the cache.
    const rows = records.map(({ id, values, metadata }) => {
      const idBytes = typeof id === 'string' ? encoder.encode(id).length : 0;
      if (idBytes === 0 || idBytes > MAX_ID_BYTES) {
        throw bad(`id must be 1 to ${MAX_ID_BYTES} bytes of UTF-8, got ${idBytes}`);
      }
      if (values.length !== dim) throw wrongDimensions(values.length, dim, 'this index');
      const json = JSON.stringify(metadata ?? {});
      if (encoder.encode(json).length > MAX_METADATA_BYTES) throw bad(`metadata of "${id}" exceeds ${MAX_METADATA_BYTES} bytes`);
      return { id, json, vector: normalise(values) };
    });
    const rowids: number[] = [];
    this.ctx.storage.transactionSync(() => {
      if (this.dim === null) this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('dimensions', ?)`, dim);
      for (const r of rows) {
        // An upsert, not INSERT OR REPLACE: a replaced vector keeps its rowid, which the cache keys on.
        const cursor = this.sql.exec<{ r: number }>(
          `INSERT INTO vectors (id, metadata, vector) VALUES (?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, vector = excluded.vector RETURNING rowid AS r`,
          r.id, r.json, r.vector.buffer,
        );
        rowids.push(cursor.one().r);
      }
    });
    this.dim = dim;
    // Patch the cache in place (only once SQL has committed) instead of reloading it.
    if (this.cache) rows.forEach((r, i) => this.cache!.set(rowids[i]!, r.vector, r.json));
  }

  deleteByIds(ids: string[]): void {
    const rowids: number[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const id of ids) {
        for (const { r } of this.sql.exec<{ r: number }>('DELETE FROM vectors WHERE id = ? RETURNING rowid AS r', id)) rowids.push(r);
      }
    });
    for (const r of rowids) {
      this.cache?.delete(r);
      this.keywords?.remove(r);
    }
  }

  /**
   * Stores chunks of new document versions (see SearchEngine.stage): their vectors, passages and
   * documents, not live. A chunk already live (unchanged in the new version) stays live. All or
   * nothing: a bad chunk leaves nothing of the call stored. Returns the ids of chunks without a
   * vector that have none stored (not staged).
   */
  stage(chunks: IndexedChunk[]): string[] {
    const encoder = new TextEncoder();
    const withVectors = chunks.filter((c) => c.vector !== null);
    const dim = this.dim ?? withVectors[0]?.vector?.length ?? null;
    const rows = chunks.map((chunk) => {
      const idBytes = typeof chunk.id === 'string' ? encoder.encode(chunk.id).length : 0;
      if (idBytes === 0 || idBytes > MAX_ID_BYTES) throw bad(`id must be 1 to ${MAX_ID_BYTES} bytes of UTF-8, got ${idBytes}`);
      const metadata = JSON.stringify({ ...chunk.metadata, documentId: chunk.documentId });
      if (encoder.encode(metadata).length > MAX_METADATA_BYTES) throw bad(`metadata of "${chunk.id}" exceeds ${MAX_METADATA_BYTES} bytes`);
      let vector: Float32Array | null = null;
      if (chunk.vector) {
        if (dim === 0) throw bad('vectors must have at least one dimension');
        if (chunk.vector.length !== dim) throw wrongDimensions(chunk.vector.length, dim, 'this index');
        vector = normalise(chunk.vector);
      }
      return { chunk, metadata, vector, placement: placementOf(chunk) };
    });
    const missing: string[] = [];
    const written = this.ctx.storage.transactionSync(() => {
      if (this.dim === null && dim !== null) this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('dimensions', ?)`, dim);
      return rows.map(({ chunk, metadata, vector, placement }) => {
        if (vector) {
          // An upsert, not INSERT OR REPLACE: a replaced vector keeps its rowid, which the cache keys on.
          return this.sql
            .exec<{ r: number; vector: ArrayBuffer }>(
              `INSERT INTO vectors (id, metadata, vector, text, context, passage, document) VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, vector = excluded.vector, text = excluded.text,
                 context = excluded.context, passage = excluded.passage, document = excluded.document
               RETURNING rowid AS r, vector`,
              chunk.id, metadata, vector.buffer, chunk.text, chunk.context, placement, chunk.documentId,
            )
            .one();
        }
        const row = this.sql
          .exec<{ r: number; vector: ArrayBuffer }>(
            `UPDATE vectors SET metadata = ?, text = ?, context = ?, passage = ?, document = ? WHERE id = ? RETURNING rowid AS r, vector`,
            metadata, chunk.text, chunk.context, placement, chunk.documentId, chunk.id,
          )
          .toArray()[0];
        if (!row) missing.push(chunk.id);
        return row ?? null;
      });
    });
    if (this.dim === null) this.dim = dim;
    // Patch the cache in place (only once SQL has committed) instead of reloading it.
    if (this.cache) {
      rows.forEach((r, i) => {
        const row = written[i];
        if (row) this.cache!.set(row.r, r.vector ?? new Float32Array(row.vector), r.metadata);
      });
    }
    return missing;
  }

  /**
   * Makes each document's chunks its live version, each document in one transaction with the
   * removal of its other chunks, so no query sees a mix of two versions.
   */
  activate(versions: DocumentVersion[]): void {
    // One transaction for every version: a bad one changes nothing.
    const { live, removed } = this.ctx.storage.transactionSync(() => {
      const live: { r: number; text: string; context: string }[] = [];
      const removed: { r: number }[] = [];
      for (const { documentId, chunkIds } of versions) {
        const ids = JSON.stringify(chunkIds);
        const wanted = new Set(chunkIds).size;
        const staged = this.sql.exec<{ n: number }>(
          'SELECT COUNT(*) AS n FROM vectors WHERE document = ? AND id IN (SELECT value FROM json_each(?))', documentId, ids,
        ).one().n;
        // Throwing rolls the transaction back.
        if (staged !== wanted) throw bad(`${wanted - staged} of ${wanted} chunks of document ${documentId} are not staged; stage them first`);
        live.push(
          ...this.sql.exec<{ r: number; text: string; context: string }>(
            'UPDATE vectors SET live = 1 WHERE live = 0 AND id IN (SELECT value FROM json_each(?)) RETURNING rowid AS r, text, context', ids,
          ),
        );
        removed.push(
          ...this.sql.exec<{ r: number }>('DELETE FROM vectors WHERE document = ? AND id NOT IN (SELECT value FROM json_each(?)) RETURNING rowid AS r', documentId, ids),
        );
      }
      return { live, removed };
    });
    for (const { r } of removed) {
      this.cache?.delete(r);
      this.keywords?.remove(r);
    }
    for (const { r, text, context } of live) this.keywords?.add(r, text, context);
  }

  /** Removes every chunk of a document, staged or live. */
  remove(documentId: string): void {
    const removed = this.sql.exec<{ r: number }>('DELETE FROM vectors WHERE document = ? RETURNING rowid AS r', documentId).toArray();
    for (const { r } of removed) {
      this.cache?.delete(r);
      this.keywords?.remove(r);
    }
  }

  /**
   * Hybrid retrieval in one call: the nearest vectors and the best keyword matches (BM25F with
   * pseudo-relevance feedback), fused by reciprocal rank, then the live passages among them.
   */
  search(query: Omit<EngineQuery, 'namespace'>): ScoredPassage[] {
    const { mode, limit, candidates, fusion } = query;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TOP_K) throw bad(`limit must be an integer from 1 to ${MAX_TOP_K}, got ${limit}`);
    if (!Number.isInteger(candidates) || candidates < 1 || candidates > MAX_TOP_K) {
      throw bad(`candidates must be an integer from 1 to ${MAX_TOP_K}, got ${candidates}`);
    }
    const conditions = compileFilter(query.filter);
    if (this.dim === null || conditions === null) return []; // nothing stored yet, or a filter nothing meets
    const cache = this.load();
    // The keyword index holds exactly the live rows.
    const keywords = (this.keywords ??= buildKeywordIndex(this.sql));
    const filtered = conditions.length > 0 ? cache.filter(conditions, this.sql) : null;
    let rows = filtered;
    if (keywords.size < cache.size) {
      // Some rows are only staged (a document being ingested): only live rows compete.
      const all = filtered ?? Int32Array.from({ length: cache.size }, (_, r) => r);
      rows = all.filter((row) => keywords.has(cache.rowids[row]!));
    }

    let keywordHits: { row: number; score: number }[] = [];
    if (mode !== 'vector') {
      let allowed: ((rowid: number) => boolean) | undefined;
      if (filtered) {
        const pass = new Uint8Array(cache.size);
        for (const row of filtered) pass[row] = 1;
        allowed = (rowid) => pass[cache.rowOf.get(rowid)] === 1;
      }
      keywordHits = keywords.searchExpanded(query.text, candidates, DEFAULT_FEEDBACK, (r) => passageTexts(this.sql, r), allowed);
    }

    let vectorHits: { row: number; score: number }[] = [];
    // A vector list of weight 0 only fills in below every keyword hit: needed only when those are too few.
    if (mode === 'vector' || (mode === 'hybrid' && (fusion.vectorWeight > 0 || keywordHits.length < limit))) {
      if (!query.vector || query.vector.length !== this.dim) {
        throw wrongDimensions(query.vector?.length ?? 0, this.dim, 'this index');
      }
      vectorHits = this.nearest(cache, normalise(query.vector), candidates, rows).map(({ row, score }) => ({ row: cache.rowids[row]!, score }));
    }

    const ranked = fuse(mode, vectorHits, keywordHits, fusion, (hit) => hit.row).map(({ id, score }) => ({ row: id, score }));
    return readPassages(this.sql, ranked.slice(0, limit), limit);
  }

  /** A document's live passages in document order (see SearchEngine.documentPassages). */
  documentPassages(documentId: string, from: number, limit: number): ScoredPassage[] {
    const rows = this.sql
      .exec<{ r: number }>(
        `SELECT rowid AS r FROM vectors WHERE document = ? AND live = 1 ORDER BY json_extract(passage, '$.position') LIMIT ? OFFSET ?`,
        documentId, limit, from,
      )
      .toArray();
    return readPassages(this.sql, rows.map(({ r }) => ({ row: r, score: 0 })), limit);
  }

  /** The dimension of the stored vectors; null while the index is empty. */
  storedDimensions(): number | null {
    return this.dim;
  }

  count(): { passages: number; vectors: number } {
    return this.sql.exec<{ passages: number; vectors: number }>('SELECT COUNT(*) AS vectors, COALESCE(SUM(live), 0) AS passages FROM vectors').one();
  }

  /**
   * Exact top-k by cosine. The int8 scan gives every row an upper bound on its cosine
   * (approximate score + ‖q‖ × its quantisation error bound); the rows with the best bounds are
   * rescored exactly from their Float32 vectors in SQL. A row left out has a bound no higher than
   * the lowest bound taken, so when that is at most the k-th exact score, nothing left out can
   * beat the top k. Otherwise (rare: near-ties, duplicates) every row whose bound beats the k-th
   * score is rescored too, best bound first, until none can.
   */
  query(vector: number[], topK: number, filter?: Filter | null): VectorMatch[] {
    if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) throw bad(`topK must be an integer from 1 to ${MAX_TOP_K}, got ${topK}`);
    const conditions = compileFilter(filter);
    if (this.dim === null || conditions === null) return []; // nothing upserted yet, or a filter nothing meets
    if (vector.length !== this.dim) throw wrongDimensions(vector.length, this.dim, 'this index');
    const q = normalise(vector);
    const cache = this.load();
    const rows = conditions.length > 0 ? cache.filter(conditions, this.sql) : null;
    const top = this.nearest(cache, q, topK, rows);
    const found = new Map<number, { id: string; metadata: string }>();
    for (const r of this.read<{ r: number; id: string; metadata: string }>('rowid AS r, id, metadata', top.map((t) => cache.rowids[t.row]!))) {
      found.set(r.r, r);
    }
    return top.map(({ row, score }) => {
      const r = found.get(cache.rowids[row]!)!;
      return { id: r.id, score, metadata: JSON.parse(r.metadata) as VectorMetadata };
    });
  }

  /** The `topK` rows (of the cache) nearest to `q`, best first, among `rows` (all when null). */
  private nearest(cache: Cache, q: Float32Array, topK: number, rows: Int32Array | null): { row: number; score: number }[] {
    const n = rows ? rows.length : cache.size;
    this.stats.queries++;
    if (n === 0) return [];
    const best = new TopK(topK);
    const wanted = Math.max(topK * OVERSAMPLE, MIN_CANDIDATES);
    if (n <= wanted) {
      this.rescore(cache, q, rows ?? Int32Array.from({ length: n }, (_, r) => r), best);
    } else {
      const candidates = new TopK(wanted);
      cache.vectors.scan(q, cache.scale, cache.err, rows ?? cache.size, candidates);
      const taken = candidates.rowList();
      this.rescore(cache, q, taken, best);
      if (candidates.min > best.min) {
        this.stats.fallbacks++;
        const above = new Above(best.min, new Set(taken));
        cache.vectors.scan(q, cache.scale, cache.err, rows ?? cache.size, above);
        const more = above.found.sort((a, b) => b.score - a.score);
        for (let i = 0; i < more.length && more[i]!.score > best.min; i += READ_BATCH) {
          const batch = more.slice(i, i + READ_BATCH).filter((m) => m.score > best.min);
          this.rescore(cache, q, batch.map((m) => m.row), best);
        }
      }
    }
    return best.sorted();
  }

  /** Offers the exact scores of `rows` (read from SQL) to `best`. */
  private rescore(cache: Cache, q: Float32Array, rows: ArrayLike<number>, best: TopK): void {
    this.stats.rescored += rows.length;
    for (let i = 0; i < rows.length; i += READ_BATCH) {
      const rowids = Array.from({ length: Math.min(READ_BATCH, rows.length - i) }, (_, j) => cache.rowids[rows[i + j]!]!);
      for (const { r, vector } of this.read<{ r: number; vector: ArrayBuffer }>('rowid AS r, vector', rowids)) {
        best.push(dot(q, new Float32Array(vector)), cache.rowOf.get(r));
      }
    }
  }

  private read<T extends Record<string, SqlStorageValue>>(columns: string, rowids: number[]): SqlStorageCursor<T> {
    return this.sql.exec<T>(`SELECT ${columns} FROM vectors WHERE rowid IN (SELECT value FROM json_each(?))`, JSON.stringify(rowids));
  }

  /** The in-memory rows, read from SQL once per instance (after a restart or eviction). */
  private load(): Cache {
    if (this.cache) return this.cache;
    const n = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM vectors').one().n;
    const cache = new Cache(this.dim ?? 0, n);
    const cursor = this.sql.exec<{ r: number; vector: ArrayBuffer }>('SELECT rowid AS r, vector FROM vectors');
    for (const { r, vector } of cursor) cache.set(r, new Float32Array(vector), '');
    return (this.cache = cache);
  }
}
