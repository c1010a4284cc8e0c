/** Keeping the best-scoring rows of a scan: shared by the vector scan and keyword search. */

/** Receives (score, row) pairs from a scan. */
export interface Sink {
  push(score: number, row: number): void;
}

/** The k best (score, row) pairs seen, as a bounded min-heap: O(n log k), no sort of all n scores. */
export class TopK implements Sink {
  private readonly scores: Float64Array;
  private readonly rows: Int32Array;
  size = 0;
  constructor(readonly k: number) {
    this.scores = new Float64Array(k);
    this.rows = new Int32Array(k);
  }
  /** The worst score kept (the k-th best once full). */
  get min(): number {
    return this.size > 0 ? this.scores[0]! : -Infinity;
  }
  push(score: number, row: number): void {
    const { scores, rows } = this;
    let c: number;
    if (this.size < this.k) {
      // Sift up from the new leaf.
      for (c = this.size++; c > 0; ) {
        const p = (c - 1) >> 1;
        if (scores[p]! <= score) break;
        scores[c] = scores[p]!;
        rows[c] = rows[p]!;
        c = p;
      }
    } else {
      if (score <= scores[0]!) return;
      // Replace the worst (the root) and sift down.
      for (c = 0; ; ) {
        let m = 2 * c + 1;
        if (m >= this.size) break;
        if (m + 1 < this.size && scores[m + 1]! < scores[m]!) m++;
        if (scores[m]! >= score) break;
        scores[c] = scores[m]!;
        rows[c] = rows[m]!;
        c = m;
      }
    }
    scores[c] = score;
    rows[c] = row;
  }
  rowList(): Int32Array {
    return this.rows.slice(0, this.size);
  }
  sorted(): { row: number; score: number }[] {
    const out = Array.from({ length: this.size }, (_, j) => ({ row: this.rows[j]!, score: this.scores[j]! }));
    return out.sort((a, b) => b.score - a.score);
  }
}

/** Collects the rows scoring above a threshold. */
export class Above implements Sink {
  readonly found: { row: number; score: number }[] = [];
  constructor(private readonly threshold: number, private readonly skip: Set<number>) {}
  push(score: number, row: number): void {
    if (score > this.threshold && !this.skip.has(row)) this.found.push({ row, score });
  }
}
