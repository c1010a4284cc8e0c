/**
 * An in-memory Vectorize (v2) index with the binding's shape (`Vectorize` in
 * @cloudflare/workers-types), its limits and its error texts. It is deliberately no kinder than
 * the service: a fake that accepts what Vectorize refuses hides bugs until production.
 *
 * Modelled on the docs (https://developers.cloudflare.com/vectorize/platform/limits/,
 * …/reference/metadata-filtering/, …/reference/client-api/) and on errors seen in the wild:
 * - writes are asynchronous: `upsert`/`insert`/`deleteByIds` return a `mutationId` and change
 *   nothing a query sees until `processPending()` (or `visibleAfterMs` has passed);
 * - ids are unique per index, not per namespace (`deleteByIds`/`getByIds` take no namespace);
 *   a namespace is an attribute of the vector, and a query with one only sees that namespace;
 * - filters only see properties that had a metadata index when the vector was written; a filter
 *   on any other property matches nothing; string indexes hold the first 64 bytes of the value;
 * - topK ≤ 100, or ≤ 50 with `returnValues: true` or `returnMetadata: 'all'`; `returnMetadata`
 *   must be a string (a boolean is a v1 leftover that v2 refuses);
 * - ≤ 1,000 vectors per write from a Worker, ≤ 100 ids per delete, ≤ 20 per `getByIds`.
 * Texts marked "seen" are Vectorize's own; the others follow its pattern but are unconfirmed.
 *
 * State lives in memory. To keep it elsewhere (fakes/worker.ts keeps it in a Durable Object's
 * SQLite), pass a `store`, told of every write when it is accepted and when it is applied, and
 * `restore` what it kept when the fake is created again.
 *
 * Over 300 lines: one service's limits, errors and asynchronous writes, which its tests read together.
 */
import { cosine } from './support';

const MAX_TOP_K = 100;
const MAX_TOP_K_WITH_PAYLOAD = 50;
const MAX_WRITE = 1000;
const MAX_DELETE_IDS = 100;
const MAX_GET_IDS = 20;
const MAX_ID_BYTES = 64;
const MAX_NAMESPACE_BYTES = 64;
const MAX_METADATA_BYTES = 10 * 1024;
const MAX_INDEXED_STRING_BYTES = 64;
const MAX_FILTER_BYTES = 2048;
const MAX_METADATA_INDEXES = 10;

const bytes = (s: string) => new TextEncoder().encode(s).length;
const fail = (op: 'QUERY' | 'UPSERT' | 'INSERT' | 'DELETE' | 'GET', code: number, text: string) =>
  new Error(`VECTOR_${op}_ERROR (code = ${code}): ${text}`);

export type Scalar = string | number | boolean;
type Op = 'describe' | 'query' | 'queryById' | 'insert' | 'upsert' | 'deleteByIds' | 'getByIds';

/** One binding call as the fake received it (`count`: vectors or ids sent). */
export interface FakeVectorizeCall {
  op: Op;
  count?: number;
  options?: VectorizeQueryOptions;
}

/** A vector as the index holds it. */
export interface FakeVectorizeVector {
  id: string;
  values: Float32Array;
  namespace?: string;
  metadata?: Record<string, VectorizeVectorMetadata>;
  /** Values of the properties that had a metadata index when this vector was written. */
  indexed: Map<string, Scalar>;
}

/** An accepted write, as plain data: what a query sees once it is applied. */
export type FakeVectorizeMutation = { id: string; at: number } & (
  | { kind: 'upsert' | 'insert'; vectors: FakeVectorizeVector[] }
  | { kind: 'delete'; ids: string[] }
);

/** Told of every write, synchronously, in order (e.g. to keep the index in durable storage). */
export interface FakeVectorizeStore {
  /** A write was accepted: it is pending until `applied`. */
  accepted(mutation: FakeVectorizeMutation): void;
  /** A write (accepted earlier, in this order) now shows in queries. */
  applied(mutation: FakeVectorizeMutation): void;
  /** A metadata index was created (it is in `metadataIndexes` now): vectors written from now on are indexed on `property`. */
  metadataIndexCreated?(property: string): void;
}

/** What a store kept, to create the fake again as it was. */
export interface FakeVectorizeState {
  /** The vectors queries see. */
  vectors: Iterable<FakeVectorizeVector>;
  /** Writes accepted but not applied, oldest first. */
  pending: FakeVectorizeMutation[];
  /** The last write applied. */
  processed: { id: string; at: number } | null;
}

export interface FakeVectorizeOptions {
  /** The index's dimensions, fixed at creation as in Vectorize. */
  dimensions: number;
  /** Properties with a metadata index from the start (at most 10). */
  metadataIndexes?: string[];
  /** Writes become visible this long after the call (by `now`); unset: only `processPending()`. */
  visibleAfterMs?: number;
  now?: () => number;
  /** Told of every write (see `FakeVectorizeStore`). */
  store?: FakeVectorizeStore;
  /** Starts from this state instead of empty (as a `store` kept it). */
  restore?: FakeVectorizeState;
}

type Stored = FakeVectorizeVector;
type Mutation = FakeVectorizeMutation;

export class FakeVectorize implements Vectorize {
  /** Every call, in order, failed ones included. */
  readonly calls: FakeVectorizeCall[] = [];
  readonly #dimensions: number;
  readonly #indexes: Set<string>;
  readonly #now: () => number;
  readonly #visibleAfterMs?: number;
  readonly #vectors = new Map<string, Stored>();
  readonly #pending: Mutation[] = [];
  #processed: { id: string; at: number } | null = null;
  readonly #failures: { op: Op; outcome: Error | 'stall' }[] = [];
  readonly #store?: FakeVectorizeStore;

  constructor(options: FakeVectorizeOptions) {
    this.#dimensions = options.dimensions;
    this.#indexes = new Set(options.metadataIndexes ?? []);
    if (this.#indexes.size > MAX_METADATA_INDEXES) throw new Error(`at most ${MAX_METADATA_INDEXES} metadata indexes`);
    this.#now = options.now ?? Date.now;
    this.#visibleAfterMs = options.visibleAfterMs;
    if (options.restore) {
      for (const v of options.restore.vectors) this.#vectors.set(v.id, v);
      this.#pending.push(...options.restore.pending);
      this.#processed = options.restore.processed;
    }
    this.#store = options.store;
  }

  /** Properties with a metadata index. */
  get metadataIndexes(): string[] {
    return [...this.#indexes];
  }

  /** Like `wrangler vectorize create-metadata-index`: only vectors written afterwards are indexed. */
  createMetadataIndex(property: string): void {
    if (this.#indexes.size >= MAX_METADATA_INDEXES) throw new Error(`at most ${MAX_METADATA_INDEXES} metadata indexes`);
    this.#indexes.add(property);
    this.#store?.metadataIndexCreated?.(property);
  }

  /** The next `times` calls of `op` throw `error` (or never settle, with 'stall'), before any effect. */
  failNext(op: Op, error: Error | 'stall', times = 1): void {
    for (let i = 0; i < times; i++) this.#failures.push({ op, outcome: error });
  }

  /** Applies every accepted write, in order, as Vectorize's asynchronous processing would. */
  processPending(): void {
    for (let m = this.#pending.shift(); m; m = this.#pending.shift()) this.#apply(m);
  }

  /** Writes accepted but not yet visible. */
  get pendingMutations(): number {
    return this.#pending.length;
  }

  async describe(): Promise<VectorizeIndexInfo> {
    await this.#enter({ op: 'describe' });
    // The types say number; the service returns a UUID and an ISO 8601 time (null before any write).
    return {
      vectorCount: this.#vectors.size,
      dimensions: this.#dimensions,
      processedUpToMutation: (this.#processed?.id ?? null) as unknown as number,
      processedUpToDatetime: (this.#processed ? new Date(this.#processed.at).toISOString() : null) as unknown as number,
    };
  }

  async query(vector: VectorFloatArray | number[], options: VectorizeQueryOptions = {}): Promise<VectorizeMatches> {
    await this.#enter({ op: 'query', options });
    if (vector.length !== this.#dimensions) {
      // seen
      throw fail('QUERY', 40006, `invalid query vector, expected ${this.#dimensions} dimensions, and got ${vector.length} dimensions`);
    }
    return this.#search(Float32Array.from(vector), options);
  }

  async queryById(vectorId: string, options: VectorizeQueryOptions = {}): Promise<VectorizeMatches> {
    await this.#enter({ op: 'queryById', options });
    const stored = this.#vectors.get(vectorId);
    return stored ? this.#search(stored.values, options) : { matches: [], count: 0 };
  }

  async upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    await this.#enter({ op: 'upsert', count: vectors.length });
    return this.#write('UPSERT', vectors, true);
  }

  async insert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    await this.#enter({ op: 'insert', count: vectors.length });
    return this.#write('INSERT', vectors, false);
  }

  async deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation> {
    await this.#enter({ op: 'deleteByIds', count: ids.length });
    if (ids.length > MAX_DELETE_IDS) {
      // seen
      throw fail('DELETE', 40007, `too many ids in payload; max id count is ${MAX_DELETE_IDS}, got ${ids.length}`);
    }
    return this.#accept({ kind: 'delete', ids: [...ids] });
  }

  async getByIds(ids: string[]): Promise<VectorizeVector[]> {
    await this.#enter({ op: 'getByIds', count: ids.length });
    // seen
    if (ids.length > MAX_GET_IDS) throw fail('GET', 40007, `too many ids in payload; max id count is ${MAX_GET_IDS}, got ${ids.length}`);
    return ids.flatMap((id) => {
      const v = this.#vectors.get(id);
      return v ? [{ id, values: Array.from(v.values), namespace: v.namespace, metadata: v.metadata }] : [];
    });
  }

  /** Logs the call, makes due writes visible, then plays a scripted failure if one is queued. */
  async #enter(call: FakeVectorizeCall): Promise<void> {
    this.calls.push(call);
    if (this.#visibleAfterMs !== undefined) {
      const due = this.#now() - this.#visibleAfterMs;
      while (this.#pending[0] && this.#pending[0].at <= due) this.#apply(this.#pending.shift() as Mutation);
    }
    const i = this.#failures.findIndex((f) => f.op === call.op);
    if (i < 0) return;
    const outcome = this.#failures.splice(i, 1)[0]!.outcome;
    if (outcome === 'stall') await new Promise<never>(() => {});
    throw outcome;
  }

  #accept(write: { kind: 'upsert' | 'insert'; vectors: Stored[] } | { kind: 'delete'; ids: string[] }): VectorizeAsyncMutation {
    const mutation: Mutation = { id: crypto.randomUUID(), at: this.#now(), ...write };
    this.#store?.accepted(mutation);
    this.#pending.push(mutation);
    return { mutationId: mutation.id };
  }

  #apply(m: Mutation): void {
    if (m.kind === 'delete') for (const id of m.ids) this.#vectors.delete(id);
    else for (const row of m.vectors) if (m.kind === 'upsert' || !this.#vectors.has(row.id)) this.#vectors.set(row.id, row);
    this.#processed = { id: m.id, at: m.at };
    this.#store?.applied(m);
  }

  #write(kind: 'UPSERT' | 'INSERT', vectors: VectorizeVector[], replace: boolean): VectorizeAsyncMutation {
    // Texts below are unconfirmed unless marked seen.
    if (vectors.length > MAX_WRITE) throw fail(kind, 40005, `too many vectors in payload; max count is ${MAX_WRITE}, got ${vectors.length}`);
    const rows = vectors.map((v): Stored => {
      const idBytes = bytes(String(v.id ?? ''));
      if (idBytes === 0) throw fail(kind, 40008, 'id is empty');
      // seen
      if (idBytes > MAX_ID_BYTES) throw fail(kind, 40008, `id too long; max is ${MAX_ID_BYTES} bytes, got ${idBytes} bytes`);
      if (v.namespace !== undefined && bytes(v.namespace) > MAX_NAMESPACE_BYTES) {
        throw fail(kind, 40009, `namespace too long; max is ${MAX_NAMESPACE_BYTES} bytes, got ${bytes(v.namespace)} bytes`);
      }
      if (v.values.length !== this.#dimensions) {
        throw fail(kind, 40010, `invalid vector for id="${v.id}", expected ${this.#dimensions} dimensions, and got ${v.values.length} dimensions`);
      }
      // NaN and ±Infinity become null in the JSON the binding sends. seen
      if (!Array.from(v.values).every(Number.isFinite)) throw fail(kind, 40023, 'failed to parse upsert vectors request in json format');
      const metadata = v.metadata ? structuredClone(v.metadata) : undefined;
      if (metadata) {
        for (const key of Object.keys(metadata)) {
          if (key === '' || key.includes('.') || key.includes('"') || key.startsWith('$')) {
            throw fail(kind, 40011, `invalid metadata key "${key}"`);
          }
        }
        const size = bytes(JSON.stringify(metadata));
        if (size > MAX_METADATA_BYTES) throw fail(kind, 40012, `metadata too large; max is ${MAX_METADATA_BYTES} bytes, got ${size} bytes`);
      }
      return { id: v.id, values: Float32Array.from(v.values), namespace: v.namespace, metadata, indexed: this.#indexedValues(metadata) };
    });
    return this.#accept({ kind: replace ? 'upsert' : 'insert', vectors: rows });
  }

  #indexedValues(metadata: Stored['metadata']): Map<string, Scalar> {
    const out = new Map<string, Scalar>();
    for (const property of this.#indexes) {
      const value = metadata?.[property];
      if (typeof value === 'string') out.set(property, truncate(value));
      else if (typeof value === 'number' || typeof value === 'boolean') out.set(property, value);
    }
    return out;
  }

  #search(query: Float32Array, options: VectorizeQueryOptions): VectorizeMatches {
    const { topK = 5, returnValues = false, returnMetadata = 'none', namespace, filter } = options;
    if (typeof returnMetadata !== 'string' || !['none', 'indexed', 'all'].includes(returnMetadata)) {
      // seen
      throw fail('QUERY', 40026, 'Failed to parse the request body as JSON: returnMetadata: expected value');
    }
    if (returnValues || returnMetadata === 'all') {
      if (topK > MAX_TOP_K_WITH_PAYLOAD) {
        // seen
        throw fail('QUERY', 40025, `with returnValues=true or returnMetadata=all, max top K is ${MAX_TOP_K_WITH_PAYLOAD}, but got ${topK}; for a top K up to ${MAX_TOP_K}, retry with returnValues=false and returnMetadata=indexed`);
      }
    } else if (topK > MAX_TOP_K) {
      throw fail('QUERY', 40025, `max top K is ${MAX_TOP_K}, but got ${topK}`);
    }
    if (!Number.isInteger(topK) || topK < 1) throw fail('QUERY', 40025, `top K must be a positive integer, got ${topK}`);
    const keep = compileFilter(filter, this.#indexes);
    const scored: { v: Stored; score: number }[] = [];
    for (const v of this.#vectors.values()) {
      if (namespace !== undefined && v.namespace !== namespace) continue;
      if (keep(v.indexed)) scored.push({ v, score: cosine(query, v.values) });
    }
    scored.sort((a, b) => b.score - a.score);
    const matches = scored.slice(0, topK).map(({ v, score }): VectorizeMatch => {
      const match: VectorizeMatch = { id: v.id, score };
      if (returnValues) match.values = Array.from(v.values);
      if (returnMetadata === 'all' && v.metadata) match.metadata = structuredClone(v.metadata);
      if (returnMetadata === 'indexed' && v.indexed.size) match.metadata = Object.fromEntries(v.indexed);
      return match;
    });
    return { matches, count: matches.length };
  }
}

/** The longest well-formed UTF-8 prefix of at most 64 bytes: what a string metadata index holds. */
function truncate(value: string): string {
  if (bytes(value) <= MAX_INDEXED_STRING_BYTES) return value;
  let out = '';
  for (const ch of value) {
    if (bytes(out + ch) > MAX_INDEXED_STRING_BYTES) break;
    out += ch;
  }
  return out;
}

/**
 * Vectorize's filter language ($eq $ne $in $nin $lt $lte $gt $gte, fields ANDed). One field takes
 * one operator, or a lower and an upper bound. A property without a metadata index matches
 * nothing; a vector without an indexed value for a property fails $eq/$in and ranges, and passes
 * $ne/$nin (the engine's documented semantics, shared with the local index).
 */
function compileFilter(filter: VectorizeVectorMetadataFilter | undefined, indexes: Set<string>): (indexed: Map<string, Scalar>) => boolean {
  if (filter === undefined) return () => true;
  const invalid = (text: string) => fail('QUERY', 40003, `invalid filter: ${text}`);
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter) || Object.keys(filter).length === 0) {
    throw invalid('filter must be a non-empty object');
  }
  if (bytes(JSON.stringify(filter)) > MAX_FILTER_BYTES) throw invalid(`filter exceeds ${MAX_FILTER_BYTES} bytes`);
  const scalar = (v: unknown): Scalar => {
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return typeof v === 'string' ? truncate(v) : v;
    throw invalid(`unsupported value ${JSON.stringify(v)}`);
  };
  const tests: ((indexed: Map<string, Scalar>) => boolean)[] = [];
  for (const [field, cond] of Object.entries(filter)) {
    if (field === '' || field.startsWith('$') || field.includes('"') || field.length > 512) throw invalid(`invalid key "${field}"`);
    const known = indexes.has(field);
    const ops = typeof cond === 'object' && cond !== null && !Array.isArray(cond) ? Object.entries(cond) : [['$eq', cond] as const];
    const names = ops.map(([op]) => op).sort().join(',');
    const ranges = ops.every(([op]) => ['$lt', '$lte', '$gt', '$gte'].includes(op));
    const oneLowerOneUpper = ranges && ops.length === 2 && names.includes('$g') && names.includes('$l');
    if (ops.length === 0 || (ops.length > 1 && !oneLowerOneUpper)) throw invalid(`unsupported operator combination on "${field}": ${names}`);
    for (const [op, arg] of ops) {
      const get = (m: Map<string, Scalar>) => (known ? m.get(field) : undefined);
      if (op === '$eq' || op === '$ne') {
        const want = scalar(arg);
        tests.push((m) => known && (get(m) === want) !== (op === '$ne'));
      } else if (op === '$in' || op === '$nin') {
        if (!Array.isArray(arg)) throw invalid(`${op} needs an array`);
        const set = arg.map(scalar);
        tests.push((m) => {
          const v = get(m);
          return known && (v !== undefined && set.includes(v)) !== (op === '$nin');
        });
      } else if (ranges) {
        const bound = scalar(arg);
        if (typeof bound === 'boolean') throw invalid(`${op} needs a string or a number`);
        tests.push((m) => {
          const v = get(m);
          if (v === undefined || typeof v !== typeof bound) return false;
          return op === '$lt' ? v < bound : op === '$lte' ? v <= bound : op === '$gt' ? v > bound : v >= bound;
        });
      } else throw invalid(`unknown operator ${op}`);
    }
  }
  return (indexed) => tests.every((t) => t(indexed));
}

