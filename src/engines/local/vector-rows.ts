import { AppError } from '../../domain/errors';
import { MISCONFIGURED, VECTOR_INDEX_ERROR } from '../rpc-errors';
import { Int8Rows, IntMap, quantise } from './vector-math';
import type { Filter, MetadataValue } from '../../domain';

/**
 * The local vector index's rows in memory and its metadata filters (the Durable Object in
 * vector-index.ts keeps the exact vectors, ids and metadata in SQLite).
 */

/** Every caller error starts with this, so the client can recognise it after RPC strips the class. */
export const bad = (message: string) => new AppError('bad_request', VECTOR_INDEX_ERROR + message);

export const wrongDimensions = (got: number, want: number | null, of: string) =>
  new AppError('misconfigured', `${MISCONFIGURED}a vector has ${got} dimensions but ${of} has ${want} (EMBEDDING_DIMENSIONS, or the model, changed: see /status)`);

type Scalar = MetadataValue;
/** One compiled filter condition; `in`/`nin` also cover `$eq`/`$ne` as one-element sets. */
export type Condition = { field: string; negate: boolean; values: Scalar[] };

/**
 * The conditions of a parsed filter as the index evaluates them: ANDed, each a set of values a
 * field must (or must not) hold. Null when the filter matches nothing.
 */
export function compileFilter(filter: Filter | null | undefined): Condition[] | null {
  if (!filter) return [];
  if (filter.matchesNothing) return null;
  const conditions: Condition[] = [];
  for (const { field, allowed, excluded } of filter.conditions) {
    if (allowed) conditions.push({ field, negate: false, values: allowed });
    if (excluded.length) conditions.push({ field, negate: true, values: excluded });
  }
  return conditions;
}

/**
 * One metadata field's values, one int32 code a row: 0 when the row has no scalar value there
 * (missing fields fail $eq/$in and pass $ne/$nin), else the value's index in `dict` plus 1
 * (Map keys compare like `includes`: strictly by type). Built on the first filter on the field.
 */
class Column {
  readonly dict = new Map<Scalar, number>();
  constructor(public codes: Int32Array) {}
  code(value: unknown): number {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return 0;
    let code = this.dict.get(value);
    if (code === undefined) this.dict.set(value, (code = this.dict.size + 1));
    return code;
  }
}

/**
 * The rows of the index in memory, compactly: row r's vector as int8 codes in `vectors`
 * (WebAssembly memory), its scale and quantisation error bound, and its SQLite rowid
 * (ids and metadata stay in SQL; `columns` hold the fields filters have asked about).
 */
export class Cache {
  size = 0;
  private capacity: number;
  readonly vectors: Int8Rows;
  scale: Float32Array;
  err: Float32Array;
  rowids: Int32Array;
  readonly rowOf: IntMap;
  readonly columns = new Map<string, Column>();
  constructor(readonly dim: number, capacity: number) {
    this.capacity = Math.max(capacity, 16);
    this.scale = new Float32Array(this.capacity);
    this.err = new Float32Array(this.capacity);
    this.rowids = new Int32Array(this.capacity);
    this.rowOf = new IntMap(capacity);
    this.vectors = new Int8Rows(dim, capacity);
  }

  /** Makes row `row` (= size, rows are appended) addressable. */
  private reserve(row: number): void {
    if (row >= this.capacity) {
      // Grow by 1.25× rather than 2×: these are small (4 bytes a row); the int8 rows grow in place.
      this.capacity = Math.ceil(row * 1.25 + 256);
      const grow = <T extends Float32Array | Int32Array>(a: T, make: (n: number) => T): T => {
        const b = make(this.capacity);
        b.set(a);
        return b;
      };
      this.scale = grow(this.scale, (n) => new Float32Array(n));
      this.err = grow(this.err, (n) => new Float32Array(n));
      this.rowids = grow(this.rowids, (n) => new Int32Array(n));
      for (const c of this.columns.values()) c.codes = grow(c.codes, (n) => new Int32Array(n));
    }
  }

  /** Adds or replaces the row of `rowid`; `json` (its metadata) is parsed only if a column needs it. */
  set(rowid: number, vector: Float32Array, json: string): void {
    let row = this.rowOf.get(rowid);
    if (row < 0) {
      row = this.size;
      this.reserve(row);
      this.rowOf.set(rowid, row);
      this.rowids[row] = rowid;
      this.size++;
    }
    const { scale, err } = quantise(vector, this.vectors.codes, this.vectors.offset(row));
    this.scale[row] = scale;
    this.err[row] = err;
    if (this.columns.size > 0) {
      const meta = JSON.parse(json) as Record<string, unknown>;
      for (const [field, column] of this.columns) column.codes[row] = column.code(meta[field]);
    }
  }

  /** Swap-remove: the last row moves into the hole, so rows stay contiguous. */
  delete(rowid: number): void {
    const row = this.rowOf.get(rowid);
    if (row < 0) return;
    const last = this.size - 1;
    this.rowOf.delete(rowid);
    if (row !== last) {
      this.vectors.move(last, row);
      this.scale[row] = this.scale[last]!;
      this.err[row] = this.err[last]!;
      this.rowids[row] = this.rowids[last]!;
      for (const c of this.columns.values()) c.codes[row] = c.codes[last]!;
      this.rowOf.set(this.rowids[row]!, row);
    }
    this.size--;
  }

  /** The codes of `field`, built from SQL on first use (parsing only rows whose JSON has the key). */
  column(field: string, sql: SqlStorage): Column {
    let column = this.columns.get(field);
    if (column) return column;
    column = new Column(new Int32Array(this.capacity));
    // JSON.stringify wrote the metadata, so a row with the field contains exactly `"field":`.
    const needle = JSON.stringify(field) + ':';
    const cursor = sql.exec<{ r: number; metadata: string }>('SELECT rowid AS r, metadata FROM vectors WHERE instr(metadata, ?) > 0', needle);
    for (const { r, metadata } of cursor) {
      const row = this.rowOf.get(r);
      if (row >= 0) column.codes[row] = column.code((JSON.parse(metadata) as Record<string, unknown>)[field]);
    }
    this.columns.set(field, column);
    return column;
  }

  /** Rows passing all conditions. */
  filter(conditions: Condition[], sql: SqlStorage): Int32Array {
    const tests = conditions.map((c) => {
      const column = this.column(c.field, sql);
      // pass[code]: does a row with this code pass? Code 0 (no value) is in no set.
      const pass = new Uint8Array(column.dict.size + 1).fill(c.negate ? 1 : 0);
      for (const v of c.values) {
        const code = column.dict.get(v);
        if (code !== undefined) pass[code] = c.negate ? 0 : 1;
      }
      return { codes: column.codes, pass };
    });
    const rows = new Int32Array(this.size);
    let kept = 0;
    next: for (let r = 0; r < this.size; r++) {
      for (const t of tests) if (t.pass[t.codes[r]!] === 0) continue next;
      rows[kept++] = r;
    }
    return rows.slice(0, kept);
  }

  /** Bytes held, from the data structures (workerd reports no heap statistics). */
  memory(): { bytes: number; perVector: number; parts: Record<string, number> } {
    let columns = 0;
    for (const c of this.columns.values()) {
      columns += c.codes.byteLength + c.dict.size * 40; // a Map entry ≈ 3 slots + bucket; strings extra
      for (const k of c.dict.keys()) if (typeof k === 'string') columns += 16 + k.length;
    }
    const parts = {
      int8Vectors: this.vectors.bytes,
      scaleErrRowid: this.scale.byteLength + this.err.byteLength + this.rowids.byteLength,
      rowidMap: this.rowOf.bytes,
      columns,
    };
    const bytes = Object.values(parts).reduce((a, b) => a + b, 0);
    return { bytes, perVector: this.size ? bytes / this.size : 0, parts };
  }
}
