import type { StoredPassage } from '../storage/chunks';

/**
 * The engine's provider interfaces. One composition root (`providers/index.ts`) picks an
 * implementation from config; nothing else touches `env.AI`, `env.VECTORIZE` or OpenAI.
 * Every interface is batch-first, and every implementation turns its backend's failures
 * into `AppError`s (retryable or not).
 */

/** Turns texts into vectors of a fixed dimension. */
export interface EmbeddingProvider {
  /** Identifies the model; stored with each chunk so a model change is detectable. */
  readonly model: string;
  readonly dimensions: number;
  /** Most texts accepted by one `embed` call. */
  readonly maxBatchSize: number;
  /** One vector per text, in order. */
  embed(texts: string[]): Promise<Float32Array[]>;
}

/** Metadata values a vector carries for filtering (Vectorize accepts the same kinds). */
export type MetadataValue = string | number | boolean;
export type VectorMetadata = Record<string, MetadataValue>;

export interface VectorRecord {
  /** ≤ 64 bytes (Vectorize's limit). */
  id: string;
  values: Float32Array | number[];
  metadata: VectorMetadata;
}

/**
 * A metadata filter in Vectorize's syntax: `{ field: value }` means `$eq`;
 * operators `$eq`, `$ne`, `$in`, `$nin`; all conditions must hold (no OR).
 */
export type MetadataFilter = Record<
  string,
  MetadataValue | { $eq?: MetadataValue; $ne?: MetadataValue; $in?: MetadataValue[]; $nin?: MetadataValue[] }
>;

export interface VectorQuery {
  topK: number;
  namespace: string;
  filter?: MetadataFilter;
}

export interface VectorMatch {
  id: string;
  /** Cosine similarity, higher is closer. */
  score: number;
  metadata: VectorMetadata;
}

export interface VectorIndex {
  readonly dimensions: number;
  upsert(namespace: string, records: VectorRecord[]): Promise<void>;
  deleteByIds(namespace: string, ids: string[]): Promise<void>;
  query(vector: Float32Array | number[], query: VectorQuery): Promise<VectorMatch[]>;
  /** Vector count per namespace, for /status. */
  count(namespace: string): Promise<number>;
  /**
   * Why the index cannot take this embedder's vectors (its dimension differs), or null.
   * A model change with another dimension needs a new index: /status reports it.
   */
  dimensionMismatch(namespace: string): Promise<string | null>;
  /**
   * For indexes whose writes apply asynchronously (Vectorize): the last write this instance
   * made, and whether a given write is applied yet. Synchronous indexes omit both.
   */
  lastWrite?(): VectorWrite | null;
  isApplied?(write: VectorWrite): Promise<boolean>;
}

/** A chunk as the passage index keeps it: what retrieval returns, plus the context it indexes. */
export interface IndexedPassage extends StoredPassage {
  /** Title and heading path, weighted above the text by keyword search. */
  context: string;
}

export interface ScoredPassage extends StoredPassage {
  /**
   * Fused score in hybrid mode, cosine similarity in vector mode, BM25F in keyword mode;
   * the reranker's relevance score when reranking is on.
   */
  score: number;
}

export interface PassageQuery {
  namespace: string;
  text: string;
  /** The embedded query; null in keyword mode. */
  vector: Float32Array | number[] | null;
  mode: 'hybrid' | 'vector' | 'keyword';
  /** Passages wanted. */
  limit: number;
  /** Candidates taken from each retriever before fusion. */
  candidates: number;
  filter?: MetadataFilter;
  fusion: { k: number; vectorWeight: number; keywordWeight: number };
}

/**
 * A vector index that also keeps the passages and a keyword index over them, so that a hybrid
 * query (vector and keyword search, fusion, the passages' texts) is one call: the offline
 * engine's Durable Object. A chunk is searchable once published; removing its vector removes it.
 */
export interface PassageIndex extends VectorIndex {
  /** Makes chunks whose vectors are stored searchable, all of them at once. */
  publish(namespace: string, passages: IndexedPassage[]): Promise<void>;
  /** Makes published chunks unsearchable again, keeping their vectors (ids not published are ignored). */
  unpublish(namespace: string, ids: string[]): Promise<void>;
  search(query: PassageQuery): Promise<ScoredPassage[]>;
}

export function isPassageIndex(index: VectorIndex): index is PassageIndex {
  const candidate = index as Partial<PassageIndex>;
  return typeof candidate.publish === 'function' && typeof candidate.unpublish === 'function' && typeof candidate.search === 'function';
}

/** A write to an asynchronous vector index: its mutation id and when it was issued (ms). */
export interface VectorWrite {
  mutationId: string;
  at: number;
}

/** A passage handed to a chat model, numbered from 1 in the order given. */
export interface ContextPassage {
  text: string;
  title: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  /** The user's question (the last user message). */
  question: string;
  /**
   * Earlier turns, oldest first, without the question. `system` messages here are the
   * client's instructions: the prompt puts them after the engine's rules, never in their place.
   */
  history: ChatMessage[];
  passages: ContextPassage[];
}

/** Answers a question from numbered passages, citing them as [1], [2]… */
export interface ChatModel {
  readonly model: string;
  /** Yields the answer in pieces; joined, they are the whole answer. */
  stream(request: ChatRequest): AsyncIterable<string>;
}

/** Reorders passages by relevance to a query (a cross-encoder), after fusion. */
export interface Reranker {
  readonly model: string;
  /** Most passages scored in one call. */
  readonly maxBatchSize: number;
  /** One relevance score per text, in the order given (higher is more relevant). */
  score(query: string, texts: string[]): Promise<number[]>;
}
