import { AppError, type DocumentVersion } from '../../domain';
import { KEYWORD_INDEX_ERROR } from '../rpc-errors';
import { DEFAULT_KEYWORD_PARAMS, type KeywordParams } from '../keyword-index';
import { TopK } from '../top-k';
import { filterToSql } from './filter-sql';
import type { CollectionTotals, RankRequest, ShardHit, TermStats } from './shard-ranking';

type StoredRow = { row: number; id: string; live: number; text_length: number; context_length: number; terms: string };

const bad = (message: string) => new AppError('bad_request', KEYWORD_INDEX_ERROR + message);

/** A passage as a shard stores it: analysed terms (the Worker analyses), never its text. */
export interface ShardPassage {
  id: string;
  documentId: string;
  /** The document's metadata as JSON, for filters. */
  metadata: string;
  contextTerms: string[];
  textTerms: string[];
}

/** Postings a block: 512 × (row, frequencies) = 4 KiB of BLOB, so an append rewrites at most that. */
const BLOCK = 512;
/** Decoded postings kept in memory between queries, by term (least recently used go first). */
const CACHE_BYTES = 16 * 1024 * 1024;
/** When removed rows' postings are rewritten away (see `#compactSome`). */
export interface Compaction {
  /** Dead entries needed before a compaction starts, besides a quarter of all entries. */
  minDead: number;
  /** Terms rewritten per activation while a compaction runs. */
  termsPerStep: number;
}
const DEFAULT_COMPACTION: Compaction = { minDead: 10_000, termsPerStep: 2_000 };

/** Hits tied with the last one are returned too (for a merge independent of sharding), up to this many times the limit. */
const MAX_TIES = 4;

/**
 * One keyword shard's index, persisted in its Durable Object's SQLite (the KeywordShard class):
 * BM25F over analysed terms, ranked with the namespace-wide statistics the caller passes.
 *
 * - `passages`: one row each, staged (live = 0) or live, with its analysed terms (for feedback
 *   and for undoing its postings) and metadata (for filters). Row numbers are AUTOINCREMENT,
 *   never reused, because postings of removed rows stay behind until compaction.
 * - `postings`: per term, blocks of (row, frequencies) pairs as Uint32 BLOBs, appended as
 *   passages become live. A query reads only its terms' blocks; decoded lists are cached.
 * - `term_df`: per term, the live passages that contain it (exact, for the statistics).
 *
 * In memory: each row's field lengths (-1: not live), loaded on the first query after the
 * object starts — 8 bytes a row — and the postings cache. Removed rows are skipped by their
 * length until compaction (a few thousand terms per write) rewrites the postings without them.
 */
export class ShardIndex {
  private readonly sql: SqlStorage;
  private textLength = new Int32Array(0);
  private contextLength = new Int32Array(0);
  private totals: CollectionTotals | null = null;
  private scores = new Float64Array(0);
  private readonly cache = new Map<string, Uint32Array>();
  private cacheBytes = 0;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly params: KeywordParams = DEFAULT_KEYWORD_PARAMS,
    private readonly compaction: Compaction = DEFAULT_COMPACTION,
  ) {
    this.sql = storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS passages (
        row INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL,
        metadata TEXT NOT NULL, live INTEGER NOT NULL DEFAULT 0,
        text_length INTEGER NOT NULL, context_length INTEGER NOT NULL, terms TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS passages_by_document ON passages (document_id);
      CREATE TABLE IF NOT EXISTS postings (term TEXT NOT NULL, block INTEGER NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (term, block)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS compaction (id INTEGER PRIMARY KEY CHECK (id = 1), after TEXT NOT NULL);`);
  }

  /** Stores passages, not yet searchable; a stored id gets its new metadata (its text is fixed: the id hashes it). */
  stage(passages: ShardPassage[]): void {
    this.storage.transactionSync(() => {
      for (const p of passages) {
        this.sql.exec(
          `INSERT INTO passages (id, document_id, metadata, text_length, context_length, terms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
           ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata WHERE passages.document_id = excluded.document_id`,
          p.id, p.documentId, p.metadata, p.textTerms.length, p.contextTerms.length, [...p.contextTerms, ...p.textTerms].join(' '),
        );
      }
    });
  }

  /**
   * Makes each version's ids (those this shard holds) live and removes the document's other
   * passages here, all in one transaction; throws, changing nothing, when an id is not staged.
   * Repeating it changes nothing more.
   */
  activate(versions: DocumentVersion[]): void {
    const plans = versions.map(({ documentId, chunkIds }) => {
      const rows = this.sql.exec<StoredRow>('SELECT row, id, live, text_length, context_length, terms FROM passages WHERE document_id = ?', documentId).toArray();
      const have = new Set(rows.map((r) => r.id));
      const missing = chunkIds.filter((id) => !have.has(id));
      if (missing.length) throw bad(`${missing.length} of ${chunkIds.length} passages of document ${documentId} are not staged here; stage them first`);
      const wanted = new Set(chunkIds);
      return { add: rows.filter((r) => wanted.has(r.id) && !r.live), drop: rows.filter((r) => !wanted.has(r.id)) };
    });
    try {
      this.storage.transactionSync(() => this.#apply(plans));
    } catch (err) {
      // SQL rolled back: what memory holds of it is rebuilt from SQL on the next call.
      this.totals = null;
      this.cache.clear();
      this.cacheBytes = 0;
      throw err;
    }
  }

  /**
   * All of a call's postings go in one append per term (the SQL statements per term and the
   * block rewrites, not the passages, make activation slow), and all its frequency drops in one
   * update per term.
   */
  #apply(plans: { add: StoredRow[]; drop: StoredRow[] }[]): void {
    const add = plans.flatMap((p) => p.add);
    const drop = plans.flatMap((p) => p.drop);
    this.#addPostings(add);
    this.sql.exec('UPDATE passages SET live = 1 WHERE row IN (SELECT value FROM json_each(?))', JSON.stringify(add.map((r) => r.row)));
    this.#dropPostings(drop.filter((r) => r.live));
    this.sql.exec('DELETE FROM passages WHERE row IN (SELECT value FROM json_each(?))', JSON.stringify(drop.map((r) => r.row)));
    this.#compactSome();
  }

  /** Removes documents' passages, staged or live. */
  remove(documentIds: string[]): void {
    this.activate(documentIds.map((documentId) => ({ documentId, chunkIds: [] })));
  }

  /** This shard's totals and the document frequencies of `terms`. */
  stats(terms: string[]): TermStats {
    const documentFrequency: Record<string, number> = {};
    for (const { term, df } of this.sql.exec<{ term: string; df: number }>(
      'SELECT term, df FROM term_df WHERE term IN (SELECT value FROM json_each(?)) AND df > 0',
      JSON.stringify(terms),
    )) {
      documentFrequency[term] = df;
    }
    return { ...this.#load(), documentFrequency };
  }

  /**
   * BM25F with the namespace's statistics: per term, its weight × idf × the saturated sum of
   * its field frequencies, each normalised by its field's length (as engines/keyword-index.ts).
   * Returns the best `limit` live rows allowed by the filter, and every row tied with the last.
   */
  rank({ totals, terms, limit, filter, withTerms }: RankRequest): ShardHit[] {
    this.#load();
    if (limit <= 0 || totals.passages === 0 || filter?.matchesNothing) return [];
    const allowed = filter ? this.#allowed(filter) : null;
    const { k1, b, bContext, contextWeight } = this.params;
    const avgText = Math.max(totals.textLength / totals.passages, 1);
    const avgContext = Math.max(totals.contextLength / totals.passages, 1);
    if (this.scores.length < this.textLength.length) this.scores = new Float64Array(this.textLength.length);
    const { scores, textLength, contextLength } = this;
    const touched: number[] = [];
    for (const { term, weight, documentFrequency: n } of terms) {
      const idf = weight * Math.log(1 + (totals.passages - n + 0.5) / (n + 0.5));
      const list = this.#postings(term);
      for (let i = 0; i < list.length; i += 2) {
        const row = list[i]!;
        const text = textLength[row]!;
        if (text < 0 || (allowed && !allowed.has(row))) continue;
        const frequencies = list[i + 1]!;
        const tf =
          (frequencies & 255) / (1 - b + (b * text) / avgText) +
          (contextWeight * (frequencies >>> 8)) / (1 - bContext + (bContext * contextLength[row]!) / avgContext);
        if (scores[row] === 0) touched.push(row);
        scores[row]! += (idf * tf) / (k1 + tf);
      }
    }
    const best = new TopK(limit);
    for (const row of touched) best.push(scores[row]!, row);
    const threshold = best.size < limit ? -Infinity : best.min;
    const kept: { row: number; score: number }[] = [];
    for (const row of touched) {
      if (scores[row]! >= threshold && kept.length < MAX_TIES * limit) kept.push({ row, score: scores[row]! });
      scores[row] = 0;
    }
    return this.#hits(kept, withTerms);
  }

  /** Live passages. */
  count(): number {
    return this.#load().passages;
  }

  /** Bytes this shard holds in memory (its row lengths, scores and postings cache): for benchmarks. */
  memory(): { rows: number; bytes: number } {
    this.#load();
    return { rows: this.totals!.passages, bytes: this.textLength.byteLength * 2 + this.scores.byteLength + this.cacheBytes };
  }

  /** Field lengths of the live rows (loaded once per object start) and the totals. */
  #load(): CollectionTotals {
    if (this.totals) return this.totals;
    const top = this.sql.exec<{ r: number | null }>('SELECT MAX(row) AS r FROM passages').one().r ?? 0;
    this.textLength = new Int32Array(top + 1024).fill(-1);
    this.contextLength = new Int32Array(top + 1024);
    const totals = { passages: 0, textLength: 0, contextLength: 0 };
    for (const [row, text, context] of this.sql
      .exec('SELECT row, text_length, context_length FROM passages WHERE live = 1')
      .raw() as IterableIterator<[number, number, number]>) {
      this.textLength[row] = text;
      this.contextLength[row] = context;
      totals.passages++;
      totals.textLength += text;
      totals.contextLength += context;
    }
    return (this.totals = totals);
  }

  /** Appends the postings of rows becoming live (in row order: each list stays sorted). */
  #addPostings(rows: StoredRow[]): void {
    if (rows.length === 0) return;
    const totals = this.#load();
    const byTerm = new Map<string, number[]>();
    for (const r of [...rows].sort((x, y) => x.row - y.row)) {
      for (const [term, frequencies] of termFrequencies(r.terms, r.context_length)) {
        let list = byTerm.get(term);
        if (!list) byTerm.set(term, (list = []));
        list.push(r.row, frequencies);
      }
      this.#grow(r.row);
      this.textLength[r.row] = r.text_length;
      this.contextLength[r.row] = r.context_length;
      totals.passages++;
      totals.textLength += r.text_length;
      totals.contextLength += r.context_length;
    }
    let entries = 0;
    for (const [term, list] of byTerm) {
      this.#append(term, Uint32Array.from(list));
      this.sql.exec('INSERT INTO term_df (term, df) VALUES (?1, ?2) ON CONFLICT (term) DO UPDATE SET df = df + ?2', term, list.length / 2);
      entries += list.length / 2;
    }
    this.#count('entries', entries);
  }

  /** Live rows leave: their postings stay (skipped by their lengths) until compaction; their terms' frequencies drop now. */
  #dropPostings(rows: StoredRow[]): void {
    if (rows.length === 0) return;
    const totals = this.#load();
    const drops = new Map<string, number>();
    let dead = 0;
    for (const r of rows) {
      const terms = termFrequencies(r.terms, r.context_length);
      for (const term of terms.keys()) drops.set(term, (drops.get(term) ?? 0) + 1);
      dead += terms.size;
      this.textLength[r.row] = -1;
      totals.passages--;
      totals.textLength -= r.text_length;
      totals.contextLength -= r.context_length;
    }
    for (const [term, n] of drops) this.sql.exec('UPDATE term_df SET df = df - ? WHERE term = ?', n, term);
    this.sql.exec('DELETE FROM term_df WHERE df <= 0 AND term IN (SELECT value FROM json_each(?))', JSON.stringify([...drops.keys()]));
    this.#count('dead', dead);
  }

  /** Adds entries (row, frequencies pairs) to a term's last block and new ones after it. */
  #append(term: string, entries: Uint32Array): void {
    this.#forget(term);
    const last = this.sql
      .exec<{ block: number; size: number; data: ArrayBuffer }>('SELECT block, size, data FROM postings WHERE term = ? ORDER BY block DESC LIMIT 1', term)
      .toArray()[0];
    let at = 0;
    let block = 0;
    if (last) {
      block = last.block + 1;
      const room = Math.min(BLOCK - last.size, entries.length / 2);
      if (room > 0) {
        const data = new Uint32Array(2 * (last.size + room));
        data.set(new Uint32Array(last.data, 0, 2 * last.size));
        data.set(entries.subarray(0, 2 * room), 2 * last.size);
        this.sql.exec('UPDATE postings SET size = ?, data = ? WHERE term = ? AND block = ?', last.size + room, data.buffer, term, last.block);
        at = 2 * room;
      }
    }
    for (; at < entries.length; at += 2 * BLOCK, block++) {
      const data = entries.slice(at, at + 2 * BLOCK);
      this.sql.exec('INSERT INTO postings (term, block, size, data) VALUES (?, ?, ?, ?)', term, block, data.length / 2, data.buffer);
    }
  }

  /** A term's postings (row, frequencies pairs), from the cache or its blocks. */
  #postings(term: string): Uint32Array {
    const cached = this.cache.get(term);
    if (cached) {
      // Most recently used last: a Map iterates in insertion order.
      this.cache.delete(term);
      this.cache.set(term, cached);
      return cached;
    }
    const blocks = this.sql.exec<{ size: number; data: ArrayBuffer }>('SELECT size, data FROM postings WHERE term = ? ORDER BY block', term).toArray();
    const list = new Uint32Array(2 * blocks.reduce((n, b) => n + b.size, 0));
    let at = 0;
    for (const { size, data } of blocks) {
      list.set(new Uint32Array(data, 0, 2 * size), at);
      at += 2 * size;
    }
    this.cache.set(term, list);
    this.cacheBytes += list.byteLength;
    for (const [old, oldList] of this.cache) {
      if (this.cacheBytes <= CACHE_BYTES) break;
      this.#forget(old, oldList);
    }
    return list;
  }

  #forget(term: string, list = this.cache.get(term)): void {
    if (!list) return;
    this.cache.delete(term);
    this.cacheBytes -= list.byteLength;
  }

  /** Rows whose passage the filter allows (SQL over this shard's metadata, as in D1). */
  #allowed(filter: NonNullable<RankRequest['filter']>): Set<number> {
    const where = filterToSql(filter);
    const rows = this.sql.exec(`SELECT row FROM passages AS p WHERE live = 1${where.sql}`, ...where.params).raw() as IterableIterator<[number]>;
    return new Set(Array.from(rows, ([row]) => row));
  }

  #hits(kept: { row: number; score: number }[], withTerms: boolean): ShardHit[] {
    if (kept.length === 0) return [];
    const byRow = new Map<number, { id: string; terms: string }>();
    for (const r of this.sql.exec<{ row: number; id: string; terms: string }>(
      `SELECT row, id, ${withTerms ? 'terms' : "'' AS terms"} FROM passages WHERE row IN (SELECT value FROM json_each(?))`,
      JSON.stringify(kept.map((k) => k.row)),
    )) {
      byRow.set(r.row, r);
    }
    return kept.flatMap(({ row, score }) => {
      const found = byRow.get(row);
      if (!found) return [];
      return [withTerms ? { id: found.id, score, terms: found.terms.split(' ').filter(Boolean) } : { id: found.id, score }];
    });
  }

  #grow(row: number): void {
    if (row < this.textLength.length) return;
    const size = Math.max(row + 1, Math.ceil(this.textLength.length * 1.5));
    const text = new Int32Array(size).fill(-1);
    text.set(this.textLength);
    const context = new Int32Array(size);
    context.set(this.contextLength);
    this.textLength = text;
    this.contextLength = context;
  }

  #counter(key: string): number {
    return this.sql.exec<{ value: number }>('SELECT value FROM counters WHERE key = ?', key).toArray()[0]?.value ?? 0;
  }

  #count(key: string, delta: number): void {
    this.sql.exec('INSERT INTO counters (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = value + ?2', key, delta);
  }

  /**
   * Compaction, a step per write: once the postings of removed rows are more than a quarter of
   * all, each activation rewrites the next `termsPerStep` terms (in term order, from where the
   * last step stopped) without them, until every term has been through. Rewriting them all at
   * once would take seconds at 50,000 passages, within one call and its CPU limit.
   */
  #compactSome(): void {
    const { minDead, termsPerStep } = this.compaction;
    let after = this.sql.exec<{ after: string }>('SELECT after FROM compaction').toArray()[0]?.after;
    if (after === undefined) {
      if (this.#counter('dead') <= Math.max(minDead, this.#counter('entries') / 4)) return;
      after = '';
    }
    this.#load();
    const terms = Array.from(this.sql.exec<{ term: string }>('SELECT DISTINCT term FROM postings WHERE term > ? ORDER BY term LIMIT ?', after, termsPerStep), (r) => r.term);
    let dropped = 0;
    for (const term of terms) {
      const list = this.#postings(term);
      this.#forget(term);
      const kept: number[] = [];
      for (let i = 0; i < list.length; i += 2) if (this.textLength[list[i]!]! >= 0) kept.push(list[i]!, list[i + 1]!);
      if (kept.length === list.length) continue;
      dropped += (list.length - kept.length) / 2;
      this.sql.exec('DELETE FROM postings WHERE term = ?', term);
      if (kept.length) this.#append(term, Uint32Array.from(kept));
    }
    this.#count('dead', -dropped);
    this.#count('entries', -dropped);
    if (terms.length < termsPerStep) this.sql.exec('DELETE FROM compaction');
    else this.sql.exec('INSERT INTO compaction (id, after) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET after = ?1', terms.at(-1)!);
  }
}

/**
 * Per distinct term of a passage (context terms first, then text terms): its frequencies as one
 * word, text count | context count << 8, each capped at 255 (BM25 saturates long before).
 */
function termFrequencies(terms: string, contextLength: number): Map<string, number> {
  const counts = new Map<string, [number, number]>();
  terms.split(' ').forEach((term, i) => {
    if (!term) return;
    const c = counts.get(term) ?? [0, 0];
    c[i < contextLength ? 1 : 0]++;
    counts.set(term, c);
  });
  return new Map([...counts].map(([term, [text, context]]) => [term, Math.min(text, 255) | (Math.min(context, 255) << 8)]));
}
