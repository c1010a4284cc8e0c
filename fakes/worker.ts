/**
 * Local stand-ins for Vectorize and Workers AI, served over Workers RPC so that the engine's
 * production configuration (VECTOR_PROVIDER=vectorize, EMBEDDING_PROVIDER=workers-ai,
 * CHAT_PROVIDER=workers-ai, optionally RERANK_PROVIDER=workers-ai) runs under `wrangler dev` with no
 * account: `npm run start:cloud-local` binds the engine's `VECTORIZE` and `AI` to the two
 * entrypoints below (wrangler.toml, `[env.cloud-local]`). The engine's adapters call them
 * exactly as they call the real bindings.
 *
 * - `FakeVectorizeEntrypoint`: the `Vectorize` binding's methods, answered by one
 *   `FakeVectorize` (fakes/vectorize.ts: Vectorize's limits, error texts and asynchronous
 *   writes) held by a SQLite-backed Durable Object, so the index survives restarts. Writes
 *   show in queries `VECTORIZE_VISIBLE_AFTER_MS` after they are accepted (Vectorize: ~30 s).
 * - `FakeAiEntrypoint`: `run(model, inputs, options)` answered by `FakeAi`
 *   (fakes/workers-ai.ts: Workers AI's shapes, limits and errors, streams as server-sent
 *   events), with three changes for people trying the engine: embeddings come from the engine's
 *   offline hashing embedder (src/providers/local-embedder.ts) at the model's dimension, so
 *   related texts get related vectors; the reranker scores a pair by the cosine of those
 *   vectors; and the chat answer quotes the passages' sentences that best match the question,
 *   citing them ([1], [2]…), as the offline extractive answerer does.
 */
import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';
import { ExtractiveAnswerer } from '../src/generation/extractive-answerer';
import { LocalEmbedder } from '../src/providers/local-embedder';
import type { AiRunner } from '../src/providers/workers-ai-errors';
import { cosine } from './support';
import { FakeVectorize, type FakeVectorizeMutation, type FakeVectorizeState, type FakeVectorizeVector, type Scalar } from './vectorize';
import { FakeAi, defaultReply } from './workers-ai';

export interface FakesEnv {
  FAKE_VECTORIZE: DurableObjectNamespace<FakeVectorizeIndex>;
  /** The one index (`wrangler vectorize create <name>`); the binding always reaches it. */
  VECTORIZE_INDEX_NAME?: string;
  /** Dimensions the index is created with (fixed afterwards, as in Vectorize). */
  VECTORIZE_DIMENSIONS?: string;
  /** Metadata indexes (comma-separated); new ones apply to vectors written afterwards. */
  VECTORIZE_METADATA_INDEXES?: string;
  /** How long after it is accepted a write shows in queries (ms). */
  VECTORIZE_VISIBLE_AFTER_MS?: string;
}

const DEFAULT_INDEX_NAME = 'rag-engine';
const DEFAULT_DIMENSIONS = 768; // @cf/baai/bge-base-en-v1.5, the production default
const DEFAULT_VISIBLE_AFTER_MS = 3000;
const RERANK_DIMENSIONS = 768;

/** Every method of the `Vectorize` binding, forwarded to the index's Durable Object. */
export class FakeVectorizeEntrypoint extends WorkerEntrypoint<FakesEnv> implements Vectorize {
  describe(): Promise<VectorizeIndexInfo> {
    return this.#index().describe();
  }

  query(vector: VectorFloatArray | number[], options?: VectorizeQueryOptions): Promise<VectorizeMatches> {
    return this.#index().query(vector, options) as Promise<VectorizeMatches>;
  }

  queryById(vectorId: string, options?: VectorizeQueryOptions): Promise<VectorizeMatches> {
    return this.#index().queryById(vectorId, options) as Promise<VectorizeMatches>;
  }

  insert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    return this.#index().insert(vectors);
  }

  upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    return this.#index().upsert(vectors);
  }

  deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation> {
    return this.#index().deleteByIds(ids);
  }

  getByIds(ids: string[]): Promise<VectorizeVector[]> {
    return this.#index().getByIds(ids) as Promise<VectorizeVector[]>;
  }

  #index() {
    return indexStub(this.env);
  }
}

function indexStub(env: FakesEnv) {
  return env.FAKE_VECTORIZE.get(env.FAKE_VECTORIZE.idFromName(env.VECTORIZE_INDEX_NAME || DEFAULT_INDEX_NAME));
}

/**
 * One Vectorize index: a `FakeVectorize` in memory, every write kept in this object's SQLite
 * when it is accepted and when it is applied, and reloaded from there when the object starts.
 */
export class FakeVectorizeIndex extends DurableObject<FakesEnv> {
  readonly #sql: SqlStorage;
  readonly #index: FakeVectorize;

  constructor(ctx: DurableObjectState, env: FakesEnv) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS vectors (id TEXT PRIMARY KEY, vals BLOB NOT NULL, namespace TEXT, metadata TEXT, indexed TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS mutations (id TEXT PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL, ids TEXT);
      CREATE TABLE IF NOT EXISTS mutation_vectors (
        mutation TEXT NOT NULL, pos INTEGER NOT NULL, id TEXT NOT NULL, vals BLOB NOT NULL,
        namespace TEXT, metadata TEXT, indexed TEXT NOT NULL, PRIMARY KEY (mutation, pos));
    `);
    // Dimensions are fixed when the index is created, as in Vectorize.
    const wanted = Number(env.VECTORIZE_DIMENSIONS || DEFAULT_DIMENSIONS);
    let dimensions = Number(this.#meta('dimensions') ?? NaN);
    if (Number.isNaN(dimensions)) this.#setMeta('dimensions', String((dimensions = wanted)));
    else if (dimensions !== wanted) {
      console.warn(`fake Vectorize: the index has ${dimensions} dimensions (VECTORIZE_DIMENSIONS=${wanted} applies to a new index only)`);
    }
    const indexes: string[] = JSON.parse(this.#meta('metadataIndexes') ?? '[]');
    const visibleAfterMs = Number(env.VECTORIZE_VISIBLE_AFTER_MS || DEFAULT_VISIBLE_AFTER_MS);
    this.#index = new FakeVectorize({
      dimensions,
      metadataIndexes: indexes,
      visibleAfterMs,
      restore: this.#load(),
      store: {
        accepted: (m) => this.#accepted(m),
        applied: (m) => this.#applied(m),
        metadataIndexCreated: () => this.#setMeta('metadataIndexes', JSON.stringify(this.#index.metadataIndexes)),
      },
    });
    for (const property of (env.VECTORIZE_METADATA_INDEXES ?? 'documentId').split(',').map((p) => p.trim())) {
      if (property && !indexes.includes(property)) this.#index.createMetadataIndex(property);
    }
  }

  describe(): Promise<VectorizeIndexInfo> {
    return this.#call((index) => index.describe());
  }

  query(vector: VectorFloatArray | number[], options?: VectorizeQueryOptions): Promise<VectorizeMatches> {
    return this.#call((index) => index.query(vector, options));
  }

  queryById(vectorId: string, options?: VectorizeQueryOptions): Promise<VectorizeMatches> {
    return this.#call((index) => index.queryById(vectorId, options));
  }

  insert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    return this.#call((index) => index.insert(vectors));
  }

  upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    return this.#call((index) => index.upsert(vectors));
  }

  deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation> {
    return this.#call((index) => index.deleteByIds(ids));
  }

  getByIds(ids: string[]): Promise<VectorizeVector[]> {
    return this.#call((index) => index.getByIds(ids));
  }

  async #call<T>(call: (index: FakeVectorize) => Promise<T>): Promise<T> {
    try {
      return await call(this.#index);
    } finally {
      this.#index.calls.length = 0; // the call log is for tests; here it would only grow
    }
  }

  #meta(key: string): string | undefined {
    return this.#sql.exec<{ value: string }>('SELECT value FROM meta WHERE key = ?', key).toArray()[0]?.value;
  }

  #setMeta(key: string, value: string): void {
    this.#sql.exec('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)', key, value);
  }

  #accepted(m: FakeVectorizeMutation): void {
    this.#sql.exec('INSERT INTO mutations (id, at, kind, ids) VALUES (?, ?, ?, ?)', m.id, m.at, m.kind, m.kind === 'delete' ? JSON.stringify(m.ids) : null);
    if (m.kind === 'delete') return;
    m.vectors.forEach((v, pos) => {
      this.#sql.exec(
        'INSERT INTO mutation_vectors (mutation, pos, id, vals, namespace, metadata, indexed) VALUES (?, ?, ?, ?, ?, ?, ?)',
        m.id, pos, v.id, blob(v.values), v.namespace ?? null, v.metadata ? JSON.stringify(v.metadata) : null, JSON.stringify([...v.indexed]),
      );
    });
  }

  /** What FakeVectorize did in memory, in SQL: an upsert replaces (the last of a batch wins), an insert keeps the first. */
  #applied(m: FakeVectorizeMutation): void {
    if (m.kind === 'delete') {
      this.#sql.exec('DELETE FROM vectors WHERE id IN (SELECT value FROM json_each(?))', JSON.stringify(m.ids));
    } else {
      this.#sql.exec(
        `INSERT OR ${m.kind === 'upsert' ? 'REPLACE' : 'IGNORE'} INTO vectors (id, vals, namespace, metadata, indexed)
         SELECT id, vals, namespace, metadata, indexed FROM mutation_vectors WHERE mutation = ? ORDER BY pos`,
        m.id,
      );
      this.#sql.exec('DELETE FROM mutation_vectors WHERE mutation = ?', m.id);
    }
    this.#sql.exec('DELETE FROM mutations WHERE id = ?', m.id);
    this.#setMeta('processed', JSON.stringify({ id: m.id, at: m.at }));
  }

  #load(): FakeVectorizeState {
    type Row = { id: string; vals: ArrayBuffer; namespace: string | null; metadata: string | null; indexed: string };
    const vector = (r: Row): FakeVectorizeVector => ({
      id: r.id,
      values: new Float32Array(r.vals),
      ...(r.namespace !== null && { namespace: r.namespace }),
      ...(r.metadata !== null && { metadata: JSON.parse(r.metadata) }),
      indexed: new Map<string, Scalar>(JSON.parse(r.indexed)),
    });
    const vectors = this.#sql.exec<Row>('SELECT id, vals, namespace, metadata, indexed FROM vectors').toArray().map(vector);
    const pending = this.#sql
      .exec<{ id: string; at: number; kind: string; ids: string | null }>('SELECT id, at, kind, ids FROM mutations ORDER BY rowid')
      .toArray()
      .map((m): FakeVectorizeMutation => {
        if (m.kind === 'delete') return { id: m.id, at: m.at, kind: 'delete', ids: JSON.parse(m.ids ?? '[]') };
        const rows = this.#sql.exec<Row>('SELECT id, vals, namespace, metadata, indexed FROM mutation_vectors WHERE mutation = ? ORDER BY pos', m.id);
        return { id: m.id, at: m.at, kind: m.kind === 'insert' ? 'insert' : 'upsert', vectors: rows.toArray().map(vector) };
      });
    const processed = this.#meta('processed');
    return { vectors, pending, processed: processed ? JSON.parse(processed) : null };
  }
}

/** The vector's float32 bytes (a copy: SQLite keeps its own). */
function blob(values: Float32Array): ArrayBuffer {
  return values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength) as ArrayBuffer;
}

const ai = new FakeAi();
ai.chunkBytes = 64;
const embedders = new Map<number, LocalEmbedder>();
function embedOne(text: string, dimensions: number): Float32Array {
  let embedder = embedders.get(dimensions);
  if (!embedder) embedders.set(dimensions, (embedder = new LocalEmbedder({ dimensions })));
  return embedder.embedOne(text);
}
ai.embedding = embedOne;
/** The cosine of the pair's hashing-embedder vectors, mapped to 0–1: deterministic, from the pair alone. */
ai.rerankScore = (query, text) => (1 + cosine(embedOne(query, RERANK_DIMENSIONS), embedOne(text, RERANK_DIMENSIONS))) / 2;
ai.chatReply = extractiveReply;

/** `env.AI.run` for embeddings, chat (streamed or not) and reranking; other `Ai` methods are absent. */
export class FakeAiEntrypoint extends WorkerEntrypoint<FakesEnv> implements AiRunner {
  async run(model: string, inputs: Record<string, unknown>, options?: { signal?: AbortSignal }): Promise<unknown> {
    try {
      return await ai.run(model, inputs, options?.signal ? { signal: options.signal } : {});
    } finally {
      ai.calls.length = 0; // the call log is for tests; here it would only grow
    }
  }
}

/**
 * The offline extractive answer over the passages of the engine's prompt (src/generation/prompt.ts:
 * `<passage number="n" title="…">` blocks, then `Question: …`): the sentences that best match
 * the question, each cited. A prompt it cannot read gets FakeAi's default (the first sentence of
 * each passage, cited).
 */
async function extractiveReply(messages: { role: string; content: string }[]): Promise<string> {
  const prompt = messages.at(-1)?.content ?? '';
  const passages = [...prompt.matchAll(/^<passage number="\d+"(?: title="([^"]*)")?>\n([\s\S]*?)\n<\/passage>$/gm)].map((m) => ({
    title: m[1] ?? '',
    text: m[2] ?? '',
  }));
  const question = /\n\nQuestion: ([\s\S]*)$/.exec(prompt)?.[1]?.trim();
  if (passages.length === 0 || !question) return defaultReply(messages);
  const request: Parameters<ExtractiveAnswerer['stream']>[0] = { question, history: [], passages };
  let answer = '';
  for await (const piece of new ExtractiveAnswerer().stream(request)) answer += piece;
  return answer;
}

/** Not reachable over HTTP under `wrangler dev` (only the engine's bindings call this Worker). */
export default {
  async fetch(_request: Request, env: FakesEnv): Promise<Response> {
    return Response.json({ vectorize: await indexStub(env).describe() });
  },
} satisfies ExportedHandler<FakesEnv>;
