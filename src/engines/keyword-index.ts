import { keywordTerms } from '../text/keyword-terms';
import { expandedQuery, type Feedback } from './feedback';
import { TopK } from './top-k';


/**
 * An in-memory BM25F keyword index: the offline engine's keyword search, kept inside the
 * namespace's Durable Object next to the vectors so that a hybrid query is one call. Rows are
 * addressed by a caller-chosen non-negative integer (the SQLite rowid of the chunk).
 *
 * Each row has two fields: its text, and its context (title and headings), which counts
 * `contextWeight` times a word of text. BM25F: the field frequencies, each normalised by its
 * field's length, are summed before saturation, so a term in both title and text is not
 * counted as two independent matches.
 */
export interface KeywordParams {
  k1: number;
  /** Length normalisation of the text and the context. */
  b: number;
  bContext: number;
  contextWeight: number;
}

/**
 * Tuned on SciFact's train split with scripts/tune-keyword.mjs (see the README): k1 and b
 * barely matter there (nDCG@10 0.704–0.706 over k1 0.9–1.5, b 0.4–0.9); titles do.
 */
export const DEFAULT_KEYWORD_PARAMS: KeywordParams = { k1: 1.2, b: 0.75, bContext: 0.75, contextWeight: 3 };



const CONTEXT_UNIT = 2 ** 16;

/**
 * A term's slots and in-field frequencies (each capped at 255: BM25 saturates long before), two
 * 32-bit words an entry in one growable array: most terms occur in a few rows, so the cost of
 * an array object per term outweighs the entries.
 */
class Postings {
  data = new Uint32Array(2);
  size = 0;
  push(slot: number, text: number, context: number): void {
    if (2 * this.size === this.data.length) {
      const grown = new Uint32Array(2 * Math.ceil(this.size * 1.5 + 1));
      grown.set(this.data);
      this.data = grown;
    }
    this.data[2 * this.size] = slot;
    this.data[2 * this.size + 1] = Math.min(text, 255) | (Math.min(context, 255) << 8);
    this.size++;
  }
}

export interface KeywordHit {
  row: number;
  score: number;
}

/** A growable Int32Array of `n` or more elements, new ones set to `fill`. */
function grown(a: Int32Array<ArrayBuffer>, n: number, fill = 0): Int32Array<ArrayBuffer> {
  if (n <= a.length) return a;
  const b = new Int32Array(Math.max(n, Math.ceil(a.length * 1.5))).fill(fill);
  b.set(a);
  return b;
}

/**
 * Rows are stored in internal slots, so that a row re-added with new text takes a fresh slot
 * and its old postings are simply dead until the next compaction (rather than purged at once).
 */
export class KeywordIndex {
  private readonly postings = new Map<string, Postings>();
  /** Per row: its slot, or -1. */
  private slotOf = new Int32Array(1024).fill(-1);
  /** Per slot: its row, field lengths in terms (-1 text length: a dead slot) and distinct terms. */
  private rowOf = new Int32Array(1024);
  private textLength = new Int32Array(1024).fill(-1);
  private contextLength = new Int32Array(1024);
  private distinctTerms = new Int32Array(1024);
  private slots = 0;
  private rows = 0;
  private totalText = 0;
  private totalContext = 0;
  /** Postings entries in all, and those of dead slots (skipped by queries until `compact`). */
  private entries = 0;
  private deadEntries = 0;
  private scores = new Float64Array(0);
  /** Length normalisers: dropped on every change, rebuilt by the next query. */
  private norms: { normText: Float32Array; normContext: Float32Array } | null = null;

  constructor(readonly params: KeywordParams = DEFAULT_KEYWORD_PARAMS) {}

  get size(): number {
    return this.rows;
  }

  has(row: number): boolean {
    return row < this.slotOf.length && this.slotOf[row]! >= 0;
  }

  /** Indexes a row, replacing what it held before. */
  add(row: number, text: string, context: string): void {
    if (this.has(row)) this.remove(row);
    const slot = this.slots++;
    this.slotOf = grown(this.slotOf, row + 1, -1);
    this.rowOf = grown(this.rowOf, slot + 1);
    this.textLength = grown(this.textLength, slot + 1, -1);
    this.contextLength = grown(this.contextLength, slot + 1);
    this.distinctTerms = grown(this.distinctTerms, slot + 1);
    // Per term: occurrences in the text + 2^16 × occurrences in the context.
    const counts = new Map<string, number>();
    const textTerms = keywordTerms(text);
    const contextTerms = keywordTerms(context);
    for (const term of textTerms) counts.set(term, (counts.get(term) ?? 0) + 1);
    for (const term of contextTerms) counts.set(term, (counts.get(term) ?? 0) + CONTEXT_UNIT);
    for (const [term, count] of counts) {
      let list = this.postings.get(term);
      if (!list) this.postings.set(term, (list = new Postings()));
      list.push(slot, count % CONTEXT_UNIT, Math.floor(count / CONTEXT_UNIT));
    }
    this.slotOf[row] = slot;
    this.rowOf[slot] = row;
    this.entries += counts.size;
    this.textLength[slot] = textTerms.length;
    this.contextLength[slot] = contextTerms.length;
    this.distinctTerms[slot] = counts.size;
    this.rows++;
    this.totalText += textTerms.length;
    this.totalContext += contextTerms.length;
    this.norms = null;
  }

  remove(row: number): void {
    if (!this.has(row)) return;
    const slot = this.slotOf[row]!;
    this.slotOf[row] = -1;
    this.rows--;
    this.totalText -= this.textLength[slot]!;
    this.totalContext -= this.contextLength[slot]!;
    this.textLength[slot] = -1;
    this.norms = null;
    this.deadEntries += this.distinctTerms[slot]!;
    if (this.deadEntries > this.entries / 4 && this.deadEntries > 10_000) this.compact();
  }

  /**
   * The best `limit` rows for a free-text query, by BM25F; `allowed` (by row) restricts them.
   * Query terms are deduplicated: a repeated word does not outweigh the others.
   */
  search(query: string, limit: number, allowed?: (row: number) => boolean): KeywordHit[] {
    return this.rank(new Map([...new Set(keywordTerms(query))].map((t) => [t, 1])), limit, allowed);
  }

  /**
   * Search with pseudo-relevance feedback (RM3): the best `feedbackRows` rows of a first pass
   * are taken as relevant, their most characteristic terms are added to the query, and the
   * expanded query is ranked again. `textOf(row)` gives back a row's text and context.
   */
  searchExpanded(
    query: string,
    limit: number,
    feedback: Feedback,
    textOf: (rows: number[]) => string[],
    allowed?: (row: number) => boolean,
  ): KeywordHit[] {
    const original = [...new Set(keywordTerms(query))];
    const first = this.rank(new Map(original.map((t) => [t, 1])), feedback.rows, allowed);
    if (first.length === 0) return first;
    const texts = textOf(first.map((hit) => hit.row)).map(keywordTerms);
    const weights = expandedQuery(original, first, texts, feedback);
    return this.rank(weights, limit, allowed);
  }

  /** BM25F over weighted query terms. */
  private rank(query: Map<string, number>, limit: number, allowed?: (row: number) => boolean): KeywordHit[] {
    if (this.rows === 0 || limit <= 0) return [];
    const { k1, contextWeight } = this.params;
    const { normText, normContext } = this.normalisers();
    // Scores accumulate in an array over rows, reused across queries; `touched` lists the rows to reset.
    if (this.scores.length < this.slots) this.scores = new Float64Array(this.textLength.length);
    const scores = this.scores;
    const touched: number[] = [];
    const clean = this.deadEntries === 0;
    for (const [term, weight] of query) {
      const list = this.postings.get(term);
      if (!list) continue;
      let n = list.size;
      const { data } = list;
      if (!clean) for (let i = 0; i < list.size; i++) if (this.textLength[data[2 * i]!]! < 0) n--;
      if (n === 0) continue;
      const idf = weight * Math.log(1 + (this.rows - n + 0.5) / (n + 0.5));
      for (let i = 0; i < list.size; i++) {
        const slot = data[2 * i]!;
        if (!clean && this.textLength[slot]! < 0) continue;
        const frequencies = data[2 * i + 1]!;
        const tf = (frequencies & 255) * normText[slot]! + contextWeight * (frequencies >>> 8) * normContext[slot]!;
        if (scores[slot] === 0) touched.push(slot);
        scores[slot]! += (idf * tf) / (k1 + tf);
      }
    }
    const best = new TopK(limit);
    for (const slot of touched) {
      const row = this.rowOf[slot]!;
      if (!allowed || allowed(row)) best.push(scores[slot]!, row);
      scores[slot] = 0;
    }
    return best.sorted();
  }

  /** Per slot, 1 / BM25 length normalisation of each field; recomputed after the index changes. */
  private normalisers(): { normText: Float32Array; normContext: Float32Array } {
    if (this.norms) return this.norms;
    const { b, bContext } = this.params;
    const avgText = Math.max(this.totalText / this.rows, 1);
    const avgContext = Math.max(this.totalContext / this.rows, 1);
    const n = this.textLength.length;
    const normText = new Float32Array(n);
    const normContext = new Float32Array(n);
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.textLength[slot]! < 0) continue;
      normText[slot] = 1 / (1 - b + (b * this.textLength[slot]!) / avgText);
      normContext[slot] = 1 / (1 - bContext + (bContext * this.contextLength[slot]!) / avgContext);
    }
    return (this.norms = { normText, normContext });
  }

  /** Drops the postings of dead slots and renumbers the live ones densely, in order. */
  private compact(): void {
    const renumber = new Int32Array(this.slots).fill(-1);
    let live = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.textLength[slot]! < 0) continue;
      renumber[slot] = live;
      this.rowOf[live] = this.rowOf[slot]!;
      this.textLength[live] = this.textLength[slot]!;
      this.contextLength[live] = this.contextLength[slot]!;
      this.distinctTerms[live] = this.distinctTerms[slot]!;
      this.slotOf[this.rowOf[live]!] = live;
      live++;
    }
    this.textLength.fill(-1, live);
    this.slots = live;
    for (const [term, list] of this.postings) {
      const kept = new Postings();
      for (let i = 0; i < list.size; i++) {
        const slot = renumber[list.data[2 * i]!]!;
        if (slot >= 0) kept.push(slot, list.data[2 * i + 1]! & 255, list.data[2 * i + 1]! >>> 8);
      }
      if (kept.size) this.postings.set(term, kept);
      else this.postings.delete(term);
    }
    this.entries -= this.deadEntries;
    this.deadEntries = 0;
    this.norms = null;
  }

  /** Bytes held by the postings and row arrays (estimate: workerd reports no heap statistics). */
  memory(): number {
    let bytes = this.slotOf.byteLength + this.rowOf.byteLength * 4;
    for (const [term, list] of this.postings) bytes += list.data.byteLength + 200 + term.length * 2;
    return bytes;
  }
}
