import { DurableObject } from 'cloudflare:workers';
import { AppError } from '../errors';
import { Above, dot, Int8Rows, IntMap, quantise, TopK } from './vector-math';
import type { MetadataFilter, MetadataValue, VectorIndex, VectorMatch, VectorMetadata, VectorQuery, VectorRecord } from './types';

/** Every caller error starts with this, so the client can recognise it after RPC strips the class. */
const BAD_REQUEST = 'Vector index: ';
const bad = (message: string) => new AppError('bad_request', BAD_REQUEST + message);

// Vectorize's limits, kept so code that works offline also works against Vectorize.
const MAX_ID_BYTES = 64;
const MAX_TOP_K = 100;
const MAX_UPSERT = 1000;
const MAX_METADATA_BYTES = 10 * 1024;

type Scalar = MetadataValue;
/** One compiled filter condition; `in`/`nin` also cover `$eq`/`$ne` as one-element sets. */
type Condition = { field: string; negate: boolean; values: Scalar[] };

/** Compiles a Vectorize-style filter into ANDed conditions, rejecting anything Vectorize would. */
function compileFilter(filter: MetadataFilter | undefined): Condition[] {
  const conditions: Condition[] = [];
  const scalar = (v: unknown, where: string): Scalar => {
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v;
    throw bad(`filter ${where} must be a string, number or boolean`);
  };
  for (const [field, cond] of Object.entries(filter ?? {})) {
    if (typeof cond !== 'object' || cond === null) {
      conditions.push({ field, negate: false, values: [scalar(cond, `value for "${field}"`)] });
      continue;
    }
    for (const [op, arg] of Object.entries(cond)) {
      const where = `${op} on "${field}"`;
      if (op === '$eq' || op === '$ne') conditions.push({ field, negate: op === '$ne', values: [scalar(arg, where)] });
      else if (op === '$in' || op === '$nin') {
        if (!Array.isArray(arg)) throw bad(`filter ${where} needs an array`);
        conditions.push({ field, negate: op === '$nin', values: arg.map((v) => scalar(v, where)) });
      } else throw bad(`unsupported filter operator ${op} on "${field}" (use $eq, $ne, $in, $nin)`);
    }
  }
  return conditions;
}

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
class Cache {
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
      const meta = JSON.parse(json) as VectorMetadata;
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
      if (row >= 0) column.codes[row] = column.code((JSON.parse(metadata) as VectorMetadata)[field]);
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

/**
 * Exact cosine vector index: the offline stand-in for Cloudflare Vectorize. One SQLite-backed
 * Durable Object per namespace. SQL is the source of truth, with each vector as an exact
 * L2-normalised Float32 BLOB. In memory (loaded lazily on the first query after the instance
 * starts) each vector is int8 codes plus a scale, an error bound and its rowid (≈ dim + 40 bytes:
 * 100,000 × 384 take ≈ 40 MiB, where Float32 rows, ids and parsed metadata took ≈ 175 MB), scanned
 * with WebAssembly SIMD (≈ 10 ms at 100,000 × 384) for candidates that are then rescored exactly
 * from SQL. Every method is synchronous, so calls never interleave and the cache cannot go stale.
 */
export class LocalVectorIndex extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private dim: number | null;
  private cache: Cache | null = null;
  /** For tests and benchmarks: how queries went. */
  private readonly stats = { queries: 0, rescored: 0, fallbacks: 0 };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS vectors (id TEXT PRIMARY KEY, metadata TEXT NOT NULL, vector BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`);
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
      if (values.length !== dim) throw bad(`vector has ${values.length} dimensions but this index has ${dim}`);
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
    for (const r of rowids) this.cache?.delete(r);
  }

  /** The dimension of the stored vectors; null while the index is empty. */
  storedDimensions(): number | null {
    return this.dim;
  }

  count(): number {
    return this.cache?.size ?? this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM vectors').one().n;
  }

  /**
   * Exact top-k by cosine. The int8 scan gives every row an upper bound on its cosine
   * (approximate score + ‖q‖ × its quantisation error bound); the rows with the best bounds are
   * rescored exactly from their Float32 vectors in SQL. A row left out has a bound no higher than
   * the lowest bound taken, so when that is at most the k-th exact score, nothing left out can
   * beat the top k. Otherwise (rare: near-ties, duplicates) every row whose bound beats the k-th
   * score is rescored too, best bound first, until none can.
   */
  query(vector: number[], topK: number, filter?: MetadataFilter): VectorMatch[] {
    if (!Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) throw bad(`topK must be an integer from 1 to ${MAX_TOP_K}, got ${topK}`);
    const conditions = compileFilter(filter);
    if (this.dim === null) return []; // nothing upserted yet
    if (vector.length !== this.dim) throw bad(`vector has ${vector.length} dimensions but this index has ${this.dim}`);
    const q = normalise(vector);
    const cache = this.load();
    const rows = conditions.length > 0 ? cache.filter(conditions, this.sql) : null;
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
    const top = best.sorted();
    const found = new Map<number, { id: string; metadata: string }>();
    for (const r of this.read<{ r: number; id: string; metadata: string }>('rowid AS r, id, metadata', top.map((t) => cache.rowids[t.row]!))) {
      found.set(r.r, r);
    }
    return top.map(({ row, score }) => {
      const r = found.get(cache.rowids[row]!)!;
      return { id: r.id, score, metadata: JSON.parse(r.metadata) as VectorMetadata };
    });
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

/** `VectorIndex` backed by `LocalVectorIndex`: one Durable Object per namespace, called over RPC. */
export class LocalVectorIndexClient implements VectorIndex {
  constructor(
    private readonly ns: DurableObjectNamespace<LocalVectorIndex>,
    readonly dimensions: number,
  ) {}

  private stub(namespace: string): DurableObjectStub<LocalVectorIndex> {
    return this.ns.get(this.ns.idFromName(namespace));
  }

  /** RPC delivers an AppError as a plain Error with the same message: restore it by prefix. */
  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof Error && !(err instanceof AppError) && err.message.startsWith(BAD_REQUEST)) {
        throw new AppError('bad_request', err.message, { cause: err });
      }
      throw err;
    }
  }

  private toArray(values: Float32Array | number[]): number[] {
    if (values.length !== this.dimensions) throw bad(`vector has ${values.length} dimensions but ${this.dimensions} are configured`);
    return Array.from(values);
  }

  async upsert(namespace: string, records: VectorRecord[]): Promise<void> {
    if (records.length === 0) return;
    const plain = records.map((r) => ({ id: r.id, values: this.toArray(r.values), metadata: r.metadata }));
    await this.call(() => this.stub(namespace).upsert(plain));
  }

  async deleteByIds(namespace: string, ids: string[]): Promise<void> {
    if (ids.length > 0) await this.call(() => this.stub(namespace).deleteByIds(ids));
  }

  async query(vector: Float32Array | number[], query: VectorQuery): Promise<VectorMatch[]> {
    const values = this.toArray(vector);
    return this.call(() => this.stub(query.namespace).query(values, query.topK, query.filter));
  }

  async count(namespace: string): Promise<number> {
    return this.call(() => this.stub(namespace).count());
  }

  async dimensionMismatch(namespace: string): Promise<string | null> {
    const stored = await this.call(() => this.stub(namespace).storedDimensions());
    if (stored === null || stored === this.dimensions) return null;
    return (
      `The local vector index of namespace "${namespace}" holds ${stored}-dimensional vectors but the embedder makes ` +
      `${this.dimensions}: set EMBEDDING_DIMENSIONS back to ${stored}, or use a new namespace and re-upload.`
    );
  }
}
