import int8Dot from './int8-dot.wasm';
import type { Sink } from '../top-k';

/**
 * Number crunching for the local vector index (local-vector-index.ts): int8 quantisation with a
 * per-vector error bound, the int8 scan (WebAssembly SIMD, int8-dot.wasm) and an int→int hash map.
 */

/**
 * Quantises an L2-normalised vector into `out[offset ..]` as int8 codes, scaled per vector so its
 * largest component maps to ±127 (a fixed ×127 would leave typical 384-d components, ≈ 0.05, with
 * only ~3 bits). Returns the scale (a float32: `v ≈ scale × codes`) and an upper bound, also a
 * float32, on `‖v − scale × codes‖₂`: by Cauchy–Schwarz, `|q·v − scale × q·codes| ≤ ‖q‖ × err`.
 */
export function quantise(v: Float32Array, out: Int8Array, offset: number): { scale: number; err: number } {
  let max = 0;
  for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]!));
  if (max === 0) {
    out.fill(0, offset, offset + v.length);
    return { scale: 0, err: 0 };
  }
  const scale = Math.fround(max / 127);
  let err2 = 0;
  for (let i = 0; i < v.length; i++) {
    const code = Math.max(-127, Math.min(127, Math.round(v[i]! / scale)));
    out[offset + i] = code;
    const e = v[i]! - scale * code;
    err2 += e * e;
  }
  // Padded so the float32 rounding (relative 2^-24) and summation error can only make it larger.
  return { scale, err: Math.fround(Math.sqrt(err2) * (1 + 1e-5) + 1e-9) };
}

/** Exact `q · v`, summed in float64 in index order (as the index always has). */
export function dot(q: Float32Array, v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < q.length; i++) s += q[i]! * v[i]!;
  return s;
}

/**
 * Map from positive int32 keys to int32 values in two typed arrays (open addressing, linear
 * probing): ≈ 16–32 bytes an entry, where a JS Map of 100,000 numbers costs several times that.
 */
export class IntMap {
  private keys: Int32Array;
  private values: Int32Array;
  size = 0;
  constructor(capacity = 0) {
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.keys = new Int32Array(slots);
    this.values = new Int32Array(slots);
  }
  get bytes(): number {
    return this.keys.byteLength + this.values.byteLength;
  }
  private slot(key: number): number {
    const mask = this.keys.length - 1;
    let s = Math.imul(key, 0x9e3779b1) & mask;
    while (this.keys[s] !== 0 && this.keys[s] !== key) s = (s + 1) & mask;
    return s;
  }
  /** The value, or -1. */
  get(key: number): number {
    const s = this.slot(key);
    return this.keys[s] === key ? this.values[s]! : -1;
  }
  set(key: number, value: number): void {
    if (!(key > 0 && key <= 0x7fffffff && Number.isInteger(key))) throw new Error(`IntMap: key out of range: ${key}`);
    let s = this.slot(key);
    if (this.keys[s] === 0) {
      if ((this.size + 1) * 2 > this.keys.length) {
        this.grow();
        s = this.slot(key);
      }
      this.keys[s] = key;
      this.size++;
    }
    this.values[s] = value;
  }
  delete(key: number): void {
    const mask = this.keys.length - 1;
    let s = this.slot(key);
    if (this.keys[s] !== key) return;
    this.size--;
    // Backward-shift deletion: pull later entries of the probe run into the hole.
    for (let next = (s + 1) & mask; this.keys[next] !== 0; next = (next + 1) & mask) {
      const home = Math.imul(this.keys[next]!, 0x9e3779b1) & mask;
      // Move `next` into `s` unless its home lies cyclically in (s, next].
      if (s <= next ? home <= s || home > next : home <= s && home > next) {
        this.keys[s] = this.keys[next]!;
        this.values[s] = this.values[next]!;
        s = next;
      }
    }
    this.keys[s] = 0;
  }
  private grow(): void {
    const { keys, values } = this;
    this.keys = new Int32Array(keys.length * 2);
    this.values = new Int32Array(keys.length * 2);
    this.size = 0;
    for (let s = 0; s < keys.length; s++) if (keys[s] !== 0) this.set(keys[s]!, values[s]!);
  }
}

const PAGE = 65536;
/** Rows per call into WebAssembly (their i32 scores go to a scratch area of 4 × CHUNK bytes). */
const CHUNK = 4096;

/**
 * Int8 rows in WebAssembly memory, scanned by int8-dot.wasm (SIMD: 16 codes an instruction,
 * ≈ 8× faster than the best plain-JS loop). Row r's codes sit at `base + r × stride` (stride: the
 * dimension rounded up to 16, zero-padded). The memory grows in place: no copy, no 2× peak.
 * Layout: the query's int16 codes at 0, the scores at `out`, the rows from `base`.
 */
export class Int8Rows {
  readonly stride: number;
  private readonly out: number;
  private readonly base: number;
  private readonly memory: WebAssembly.Memory;
  private readonly scanRows: (q: number, m: number, rows: number, stride: number, out: number) => void;
  /** Views of the memory, remade when it grows (growing detaches the old buffer). */
  codes!: Int8Array;
  private query!: Int16Array;
  private scores!: Int32Array;

  constructor(readonly dim: number, capacity: number) {
    this.stride = Math.max(16, Math.ceil(dim / 16) * 16);
    this.out = this.stride * 2;
    this.base = this.out + 4 * CHUNK;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((this.base + capacity * this.stride) / PAGE) || 1 });
    const instance = new WebAssembly.Instance(int8Dot, { env: { memory: this.memory } });
    this.scanRows = instance.exports.scan as Int8Rows['scanRows'];
    this.views();
  }

  private views(): void {
    const buffer = this.memory.buffer;
    this.codes = new Int8Array(buffer);
    this.query = new Int16Array(buffer, 0, this.stride);
    this.scores = new Int32Array(buffer, this.out, CHUNK);
  }

  get bytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Where row `row` starts in `codes`, growing the memory (by ≥ 1.25×) to hold it. */
  offset(row: number): number {
    const end = this.base + (row + 1) * this.stride;
    if (end > this.memory.buffer.byteLength) {
      const want = Math.max(end, this.base + Math.ceil(row * 1.25 + 256) * this.stride);
      this.memory.grow(Math.ceil((want - this.memory.buffer.byteLength) / PAGE));
      this.views();
    }
    return this.base + row * this.stride;
  }

  /** Copies row `from` over row `to`. */
  move(from: number, to: number): void {
    const src = this.base + from * this.stride;
    this.codes.copyWithin(this.base + to * this.stride, src, src + this.stride);
  }

  /**
   * Offers every row's upper bound on its cosine with the normalised `q` to `sink`: all `size`
   * rows, or just the listed ones. The query is quantised to int16 (error f, ‖f‖ ≤ √dim / 2Q);
   * with row r ≈ scale × codes and ‖r − scale × codes‖ ≤ err (see `quantise`),
   * |q·r − scale × (q16 · codes) / Q| ≤ ‖q‖ err + ‖f‖ (1 + err).
   */
  scan(q: Float32Array, scale: Float32Array, err: Float32Array, rows: Int32Array | number, sink: Sink): void {
    let max = 0, norm = 0;
    for (let i = 0; i < q.length; i++) {
      max = Math.max(max, Math.abs(q[i]!));
      norm += q[i]! * q[i]!;
    }
    const Q = max > 0 ? 32767 / max : 0, invQ = max > 0 ? max / 32767 : 0;
    const q16 = this.query;
    q16.fill(0);
    let f2 = 0;
    for (let i = 0; i < q.length; i++) {
      q16[i] = Math.round(q[i]! * Q);
      const f = q[i]! - q16[i]! * invQ;
      f2 += f * f;
    }
    const fn = max > 0 ? Math.sqrt(f2) * (1 + 1e-6) + 1e-12 : 0;
    const a = Math.sqrt(norm) * (1 + 1e-6) + fn, c = fn * (1 + 1e-6);
    const scores = this.scores;
    if (typeof rows === 'number') {
      for (let first = 0; first < rows; first += CHUNK) {
        const n = Math.min(CHUNK, rows - first);
        this.scanRows(0, this.base + first * this.stride, n, this.stride, this.out);
        for (let j = 0; j < n; j++) {
          const r = first + j;
          sink.push(scores[j]! * scale[r]! * invQ + a * err[r]! + c, r);
        }
      }
      return;
    }
    for (let j = 0; j < rows.length; j++) {
      const r = rows[j]!;
      this.scanRows(0, this.base + r * this.stride, 1, this.stride, this.out);
      sink.push(scores[0]! * scale[r]! * invQ + a * err[r]! + c, r);
    }
  }
}
