import type { Filter } from '../../domain';
import { keywordTerms } from '../../text/keyword-terms';
import { DEFAULT_FEEDBACK, expandedQuery, type Feedback } from '../feedback';
import { filterToSql } from './filter-sql';

/**
 * bm25 column weights: text terms, context terms (title and headings), namespace token. Titles
 * say what a passage is about: on SciFact's train queries, keyword nDCG@10 went 0.697 (0.5×),
 * 0.705 (2×), 0.707 (3×), 0.706 (4×), ranking the indexed corpus in SQLite directly.
 */
const BM25_WEIGHTS = 'bm25(passages_fts, 1.0, 3.0, 0.0)';

/**
 * A query term's weight is said to FTS5 by repeating it: bm25 sums over the query's phrases, so
 * a term given r times counts r times. The heaviest term is repeated this many times; a term
 * whose weight rounds to no repeat is left out. SciFact test, keyword nDCG@10 through `npm run
 * start:cloud-local` (p50 at concurrency 1, top 100): no feedback 0.6939 (49.7 ms); feedback
 * with 2 repeats at most 0.6891 (57.2 ms), with 6 0.7047 (79.6 ms).
 */
const MAX_REPEATS = 6;

/** The token that stands for a namespace in the keyword index (see migrations 0004 and 0007). */
export function namespaceToken(namespace: string): string {
  const hex = [...new TextEncoder().encode(namespace)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `n${hex}z`;
}

export interface KeywordHit {
  id: string;
  score: number;
}

/**
 * Keyword search in D1's FTS5 over live passages' analysed terms, with the local engine's
 * analyser and its pseudo-relevance feedback (RM3, as a second FTS5 query): the same terms
 * and the same expansion, ranked by FTS5's bm25 instead of the local engine's BM25F.
 */
export class KeywordSearch {
  constructor(
    private readonly db: D1Database,
    private readonly feedback: Feedback = DEFAULT_FEEDBACK,
  ) {}

  async search(namespace: string, text: string, limit: number, filter: Filter | null): Promise<KeywordHit[]> {
    const original = [...new Set(keywordTerms(text))];
    if (original.length === 0) return [];
    const first = await this.#rank(namespace, new Map(original.map((t) => [t, 1])), this.feedback.rows, filter);
    if (first.length === 0) return [];
    const terms = await this.#terms(first.map((hit) => hit.seq));
    const weights = expandedQuery(original, first, terms, this.feedback);
    const hits = await this.#rank(namespace, weights, limit, filter);
    return hits.map(({ id, score }) => ({ id, score }));
  }

  /**
   * The best live passages for weighted terms, by bm25. Without a filter, FTS5 ranks the
   * namespace's rowids on its own and only the best are joined; with one, every match must be
   * joined to its passage's metadata first.
   */
  async #rank(namespace: string, weights: Map<string, number>, limit: number, filter: Filter | null) {
    const top = Math.max(...weights.values());
    const phrases: string[] = [];
    for (const [term, weight] of weights) {
      const repeats = Math.round((MAX_REPEATS * weight) / top);
      // Terms are letters and digits only (the analyser's output): quoting them is enough.
      for (let i = 0; i < repeats; i++) phrases.push(`"${term}"`);
    }
    const match = `namespace : ${namespaceToken(namespace)} AND {terms context_terms} : (${phrases.join(' OR ')})`;
    const where = filterToSql(filter);
    const statement = where.sql
      ? this.db
          .prepare(
            `SELECT p.seq, p.id, ${BM25_WEIGHTS} AS rank FROM passages_fts JOIN passages p ON p.seq = passages_fts.rowid
             WHERE passages_fts MATCH ?${where.sql} ORDER BY rank LIMIT ?`,
          )
          .bind(match, ...where.params, limit)
      : this.db
          .prepare(
            `SELECT p.seq, p.id, best.rank FROM
               (SELECT rowid, ${BM25_WEIGHTS} AS rank FROM passages_fts WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?) AS best
             JOIN passages p ON p.seq = best.rowid ORDER BY best.rank`,
          )
          .bind(match, limit);
    const { results } = await statement.all<{ seq: number; id: string; rank: number }>();
    // bm25() is lower for better matches.
    return results.map((row) => ({ seq: row.seq, id: row.id, score: -row.rank }));
  }

  /** Context and text terms of the given passages, in order. */
  async #terms(seqs: number[]): Promise<string[][]> {
    const { results } = await this.db
      .prepare(`SELECT seq, context_terms || ' ' || terms AS terms FROM passages WHERE seq IN (SELECT value FROM json_each(?))`)
      .bind(JSON.stringify(seqs))
      .all<{ seq: number; terms: string }>();
    const bySeq = new Map(results.map((row) => [row.seq, row.terms]));
    return seqs.map((seq) => (bySeq.get(seq) ?? '').split(' ').filter(Boolean));
  }
}
