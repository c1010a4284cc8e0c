import { AppError } from '../../domain/errors';
import { BAD, mapVectorizeError } from './vectorize-errors';
import { type ResilienceOptions, resilientCall } from '../../providers/resilience';
import type { Filter, MetadataValue, VectorWrite } from '../../domain';
import type { VectorIndex, VectorMatch, VectorMetadata, VectorQuery, VectorRecord } from '../vector-types';

/** Vectorize (v2) limits, from https://developers.cloudflare.com/vectorize/platform/limits/ */
export const VECTORIZE_LIMITS = {
  maxIdBytes: 64,
  maxNamespaceBytes: 64,
  maxMetadataBytes: 10 * 1024,
  /** Vectors per upsert from a Worker (the HTTP API takes 5,000). */
  maxUpsertBatch: 1000,
  /**
   * Ids per `deleteByIds`: not on the limits page, but the service refuses more with
   * "VECTOR_DELETE_ERROR (code = 40007): too many ids in payload; max id count is 100".
   */
  maxDeleteBatch: 100,
  /** Ids per `getByIds` (https://developers.cloudflare.com/vectorize/platform/limits/). */
  maxGetBatch: 20,
  /** topK without values or full metadata (`returnMetadata` 'none' or 'indexed'). */
  maxTopK: 100,
  /** topK with `returnValues: true` or `returnMetadata: 'all'` (older docs said 20; v2 answers 50). */
  maxTopKWithPayload: 50,
  /**
   * How long a write may take to be visible to queries: ~30 s median, ~2 min p99 (see the class
   * comment), with margin.
   */
  writeDelayMs: 180_000,
  /** Compact JSON of a filter (https://developers.cloudflare.com/vectorize/reference/metadata-filtering/). */
  maxFilterBytes: 2048,
} as const;

const bad = (message: string) => new AppError('bad_request', BAD + message);
const bytes = (s: string) => new TextEncoder().encode(s).length;

export interface VectorizeIndexOptions {
  /** The embedder's dimensions; `checkDimensions` compares the index's. */
  dimensions: number;
  resilience: ResilienceOptions;
  /**
   * What queries ask Vectorize to return. Default 'none': retrieval needs ids and scores only
   * (texts come from D1), 'none' costs nothing extra and keeps topK up to 100. 'indexed' returns
   * the indexed fields (strings cut to 64 bytes); 'all' returns everything but caps topK at 50.
   */
  returnMetadata?: 'none' | 'indexed' | 'all';
  /**
   * The index's metadata indexes, when known. Vectorize silently matches nothing on a field
   * without one; with this list such a filter is refused as a bad request instead.
   */
  metadataIndexes?: readonly string[];
  /** Clock for `lastMutationAt` (injectable for tests). */
  now?: () => number;
}

/**
 * `VectorIndex` over a Vectorize (v2) index binding. Validates against Vectorize's limits before
 * calling (so a bad request fails at once, naming the problem), splits writes into batches the
 * binding accepts, wraps every call in `resilientCall`, and maps the binding's errors to `AppError`.
 *
 * Differences from the local index, by nature of Vectorize:
 * - Writes are asynchronous: a query sees them after ~30 s (median; ~2 min p99). `lastMutationId`
 *   and `isProcessed` tell when a write became searchable.
 * - Ids are unique per index, not per namespace: upserting an id in another namespace moves it,
 *   and `deleteByIds` ignores the namespace. The engine's chunk ids embed the document id, which
 *   hashes the namespace, so they never collide.
 * - `count` is the whole index (Vectorize cannot count one namespace).
 * - Matches carry no metadata unless `returnMetadata` says otherwise.
 */
export class VectorizeIndex implements VectorIndex {
  readonly dimensions: number;
  readonly #binding: Vectorize;
  readonly #resilience: ResilienceOptions;
  readonly #returnMetadata: 'none' | 'indexed' | 'all';
  readonly #metadataIndexes?: ReadonlySet<string>;
  readonly #now: () => number;
  /** Mutations this instance issued, oldest first, with when: Vectorize applies them in order. */
  readonly #issued: { id: string; at: number }[] = [];

  constructor(binding: Vectorize, options: VectorizeIndexOptions) {
    this.#binding = binding;
    this.dimensions = options.dimensions;
    this.#resilience = options.resilience;
    this.#returnMetadata = options.returnMetadata ?? 'none';
    this.#metadataIndexes = options.metadataIndexes && new Set(options.metadataIndexes);
    this.#now = options.now ?? Date.now;
  }

  lastWrite(): VectorWrite | null {
    const last = this.#issued.at(-1);
    return last ? { mutationId: last.id, at: last.at } : null;
  }

  isApplied(write: VectorWrite): Promise<boolean> {
    return this.isProcessed(write.mutationId, write.at);
  }

  /** The id of the last write this instance made (to store with a document, for `isProcessed`). */
  get lastMutationId(): string | null {
    return this.#issued.at(-1)?.id ?? null;
  }

  /** When this instance received `lastMutationId` (ms since the epoch), or null. */
  get lastMutationAt(): number | null {
    return this.#issued.at(-1)?.at ?? null;
  }

  /** Throws what `upsert` would refuse, calling nothing: for callers that write elsewhere first. */
  check(namespace: string, records: VectorRecord[]): void {
    checkNamespace(namespace);
    for (const record of records) this.#toVector(namespace, record);
  }

  async upsert(namespace: string, records: VectorRecord[]): Promise<void> {
    checkNamespace(namespace);
    // Validate everything first: a bad record must not leave earlier batches written.
    const vectors = records.map((r) => this.#toVector(namespace, r));
    // A failure part-way leaves earlier batches written; upserts are idempotent, so a retry repairs it.
    for (let i = 0; i < vectors.length; i += VECTORIZE_LIMITS.maxUpsertBatch) {
      const batch = vectors.slice(i, i + VECTORIZE_LIMITS.maxUpsertBatch);
      this.#record(await this.#call('upsert', () => this.#binding.upsert(batch)));
    }
  }

  /** Ids over 64 bytes cannot exist in Vectorize, so they are skipped rather than refused. */
  async deleteByIds(namespace: string, ids: string[]): Promise<void> {
    checkNamespace(namespace);
    const wanted = ids.filter((id) => typeof id === 'string' && id !== '' && bytes(id) <= VECTORIZE_LIMITS.maxIdBytes);
    for (let i = 0; i < wanted.length; i += VECTORIZE_LIMITS.maxDeleteBatch) {
      const batch = wanted.slice(i, i + VECTORIZE_LIMITS.maxDeleteBatch);
      this.#record(await this.#call('deleteByIds', () => this.#binding.deleteByIds(batch)));
    }
  }

  /** The stored values of the given ids (those Vectorize has applied), by id. */
  async values(ids: string[]): Promise<Map<string, number[]>> {
    const found = new Map<string, number[]>();
    for (let i = 0; i < ids.length; i += VECTORIZE_LIMITS.maxGetBatch) {
      const batch = ids.slice(i, i + VECTORIZE_LIMITS.maxGetBatch);
      for (const vector of await this.#call('getByIds', () => this.#binding.getByIds(batch))) found.set(vector.id, Array.from(vector.values));
    }
    return found;
  }

  /**
   * Refuses topK outside 1–100 like the local index. Within that, a topK above what the
   * configured `returnMetadata` allows (50 for 'all') is clamped: fewer matches, not an error.
   */
  async query(vector: Float32Array | number[], query: VectorQuery): Promise<VectorMatch[]> {
    const { topK, namespace } = query;
    if (!Number.isInteger(topK) || topK < 1 || topK > VECTORIZE_LIMITS.maxTopK) {
      throw bad(`topK must be an integer from 1 to ${VECTORIZE_LIMITS.maxTopK}, got ${topK}`);
    }
    checkNamespace(namespace);
    this.#checkVector(vector);
    const filter = compileFilter(query.filter, this.#metadataIndexes);
    if (filter === null) return []; // a condition no value can meet, e.g. `$in: []`
    const limit = this.#returnMetadata === 'all' ? VECTORIZE_LIMITS.maxTopKWithPayload : VECTORIZE_LIMITS.maxTopK;
    const options: VectorizeQueryOptions = { topK: Math.min(topK, limit), namespace, returnMetadata: this.#returnMetadata, returnValues: false };
    if (filter) options.filter = filter;
    const result = await this.#call('query', () => this.#binding.query(vector, options));
    return result.matches.map((m) => ({ id: m.id, score: m.score, metadata: scalars(m.metadata) }));
  }

  /** The whole index's vector count: Vectorize has no per-namespace count. */
  async count(_namespace: string): Promise<number> {
    return (await this.#describe()).vectorCount;
  }

  /**
   * Whether a write is visible to queries. True when Vectorize reports it (or a later write of
   * this instance) as processed, or — for a mutation issued elsewhere — when the last processed
   * mutation is dated at or after `issuedAt` (ms; store `lastMutationAt` with the id), since
   * mutations apply in order. Clocks are assumed synchronised to well under a round trip.
   */
  async isProcessed(mutationId: string, issuedAt?: number): Promise<boolean> {
    const info = await this.#describe();
    const processed = info.processedUpToMutation == null ? null : String(info.processedUpToMutation);
    if (processed === null) return false;
    if (processed === mutationId) return true;
    const mine = this.#issued.findIndex((m) => m.id === mutationId);
    if (mine >= 0 && this.#issued.findIndex((m) => m.id === processed) > mine) return true;
    const at = issuedAt ?? this.#issued[mine]?.at;
    const processedAt = toMillis(info.processedUpToDatetime);
    return at !== undefined && processedAt !== undefined && processedAt >= at;
  }

  /** A message when the index's dimensions differ from `expected` (the embedder's), else null. */
  /** Vectorize's dimensions are per index, so the namespace does not matter. */
  dimensionMismatch(_namespace: string): Promise<string | null> {
    return this.checkDimensions(this.dimensions);
  }

  async checkDimensions(expected: number): Promise<string | null> {
    const actual = (await this.#describe()).dimensions;
    if (actual === expected) return null;
    return (
      `The Vectorize index has ${actual} dimensions but the embedding model makes ${expected}: ` +
      `set EMBEDDING_DIMENSIONS/EMBEDDING_MODEL to match the index, or create an index with ${expected} dimensions and reindex.`
    );
  }

  #describe(): Promise<VectorizeIndexInfo> {
    return this.#call('describe', () => this.#binding.describe());
  }

  #record(mutation: VectorizeAsyncMutation): void {
    this.#issued.push({ id: mutation.mutationId, at: this.#now() });
    if (this.#issued.length > 1000) this.#issued.shift();
  }

  #call<T>(op: string, call: () => Promise<T>): Promise<T> {
    return resilientCall(`Vectorize ${op}`, () => call().catch((error: unknown) => { throw mapVectorizeError(error, op); }), this.#resilience);
  }

  #checkVector(values: ArrayLike<number>): void {
    if (values.length !== this.dimensions) {
      throw new AppError('misconfigured', `Search engine misconfigured: a vector has ${values.length} dimensions but the configuration has ${this.dimensions}`);
    }
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) throw bad('vector values must be finite numbers');
  }

  #toVector(namespace: string, { id, values, metadata }: VectorRecord): VectorizeVector {
    const idBytes = typeof id === 'string' ? bytes(id) : 0;
    if (idBytes === 0 || idBytes > VECTORIZE_LIMITS.maxIdBytes) {
      throw bad(`id must be 1 to ${VECTORIZE_LIMITS.maxIdBytes} bytes of UTF-8, got ${idBytes}`);
    }
    this.#checkVector(values);
    for (const [key, value] of Object.entries(metadata ?? {})) {
      // https://developers.cloudflare.com/vectorize/best-practices/insert-vectors/#metadata
      if (key === '' || key.includes('.') || key.includes('"') || key.startsWith('$')) {
        throw bad(`metadata key "${key}" of "${id}" is not allowed (empty, or contains "." or '"', or starts with "$")`);
      }
      if (!isScalar(value)) throw bad(`metadata "${key}" of "${id}" must be a string, number or boolean`);
    }
    if (bytes(JSON.stringify(metadata ?? {})) > VECTORIZE_LIMITS.maxMetadataBytes) {
      throw bad(`metadata of "${id}" exceeds ${VECTORIZE_LIMITS.maxMetadataBytes} bytes`);
    }
    return { id, values, namespace, metadata: metadata ?? {} };
  }
}

function checkNamespace(namespace: string): void {
  const n = typeof namespace === 'string' ? bytes(namespace) : 0;
  if (n === 0 || n > VECTORIZE_LIMITS.maxNamespaceBytes) {
    throw bad(`namespace must be 1 to ${VECTORIZE_LIMITS.maxNamespaceBytes} bytes of UTF-8, got ${n}`);
  }
}

const isScalar = (v: unknown): v is MetadataValue =>
  typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

/** The scalar fields of returned metadata (the engine's metadata has no other kind). */
function scalars(metadata: VectorizeMatch['metadata']): VectorMetadata {
  const out: VectorMetadata = {};
  for (const [key, value] of Object.entries(metadata ?? {})) if (isScalar(value)) out[key] = value;
  return out;
}

/**
 * A parsed filter in the form Vectorize accepts: one operator per field, so a field with both
 * allowed and excluded values sends only what is allowed (parseFilter already removed the
 * excluded ones from it). Undefined for no filter, null when nothing can match.
 */
function compileFilter(filter: Filter | null | undefined, indexes?: ReadonlySet<string>): VectorizeVectorMetadataFilter | undefined | null {
  if (!filter) return undefined;
  if (filter.matchesNothing) return null;
  const out: VectorizeVectorMetadataFilter = {};
  for (const { field, allowed, excluded } of filter.conditions) {
    if (indexes && !indexes.has(field)) throw bad(`cannot filter on "${field}": the Vectorize index has no metadata index for it`);
    if (allowed) out[field] = allowed.length === 1 ? { $eq: allowed[0] as MetadataValue } : { $in: allowed };
    else out[field] = excluded.length === 1 ? { $ne: excluded[0] as MetadataValue } : { $nin: excluded };
  }
  if (Object.keys(out).length === 0) return undefined;
  if (bytes(JSON.stringify(out)) > VECTORIZE_LIMITS.maxFilterBytes) throw bad(`filter exceeds ${VECTORIZE_LIMITS.maxFilterBytes} bytes of JSON`);
  return out;
}

/** `processedUpToDatetime` is typed a number but documented (and returned) as ISO 8601. */
function toMillis(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e11 ? value * 1000 : value;
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : ms;
  }
  return undefined;
}
