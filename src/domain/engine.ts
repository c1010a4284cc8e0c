import type { DocumentMetadata, ScoredPassage, StoredPassage } from './documents';
import type { Filter } from './filter';

/**
 * The search engine: where chunks are indexed and searched. Two implementations, chosen from
 * config by the composition root and asked nothing about which they are:
 * - the local engine (engines/local): one Durable Object per namespace holding vectors,
 *   passages and a BM25F keyword index;
 * - the Cloudflare engine (engines/cloudflare): Vectorize for vectors, D1 for passages, and
 *   the keyword index in Durable Objects, sharded per namespace.
 *
 * Visibility is the same in both: a document's chunks are staged first (stored, never
 * returned), then its version is activated whole, replacing the version before it in one
 * step. While a document is re-ingested its previous version stays searchable; a query never
 * sees half of one version or a mix of two.
 */
export interface SearchEngine {
  /** For logs and /status only: nothing may branch on it. */
  readonly name: 'local' | 'cloudflare';
  readonly dimensions: number;
  readonly limits: EngineLimits;
  readonly capabilities: EngineCapabilities;

  /**
   * Stores chunks of new document versions, unsearchable until `activate`. A chunk whose
   * `vector` is null keeps the vector the engine already holds for its id (unchanged text,
   * same model); returned are the ids of such chunks the engine holds no vector for, which are
   * not staged (stage them again with their vectors). The engine splits large calls into what
   * its backends accept. A kept chunk's title, place and metadata change when it is staged.
   */
  stage(namespace: string, chunks: IndexedChunk[]): Promise<string[]>;
  /**
   * Makes each document's `chunkIds` its searchable version, each document at once: its
   * other chunks (the version before, stale staged ones) stop being searchable and are removed.
   * Every id must have been staged.
   */
  activate(namespace: string, versions: DocumentVersion[]): Promise<void>;
  /** Removes a document: every chunk, staged or searchable. Removing what is absent is no error. */
  remove(namespace: string, documentId: string): Promise<void>;
  search(query: EngineQuery): Promise<ScoredPassage[]>;
  /** A document's searchable passages in document order, at most `limit`, after `from` passages. */
  documentPassages(namespace: string, documentId: string, page: { from: number; limit: number }): Promise<StoredPassage[]>;
  /** What a namespace holds, for /status and /metrics. */
  count(namespace: string): Promise<EngineCounts>;
  /**
   * Why the engine cannot serve this configuration (its vectors have another dimension than
   * the embedder's), or null: a misconfiguration for the operator, never a client's error.
   */
  misconfiguration(namespace: string): Promise<string | null>;
  /**
   * For engines whose vector writes apply asynchronously (Vectorize): a marker of the last
   * write this instance made (stored with documents made ready after it), and whether a
   * marked write is applied yet. Synchronous engines return null and true.
   */
  lastWrite(): VectorWrite | null;
  isApplied(write: VectorWrite): Promise<boolean>;
}

export type SearchMode = 'hybrid' | 'vector' | 'keyword';

export interface EngineLimits {
  /** Most results (and candidates per retriever) one search returns. */
  maxResults: number;
  maxIdBytes: number;
  maxNamespaceBytes: number;
  /** How long after a write a search may still not see it (0: at once); caches wait this long. */
  writeDelayMs: number;
}

export interface EngineCapabilities {
  /**
   * Metadata fields a filter may name besides `documentId`. The API refuses a filter on
   * any other field with the same 400 in both engines (Vectorize matches nothing on a field
   * without a metadata index).
   */
  filterableFields: readonly string[];
}

/** A chunk to stage: what search returns of it, what it is found by, and its document's metadata. */
export interface IndexedChunk {
  id: string;
  documentId: string;
  title: string;
  text: string;
  /** Title and heading path, weighted above the text by keyword search. */
  context: string;
  position: number;
  page: number | null;
  headings: string[] | null;
  /** The document's metadata, for filters. */
  metadata: DocumentMetadata;
  /** The embedding, or null to keep the one stored for this id. */
  vector: Float32Array | number[] | null;
}

export interface DocumentVersion {
  documentId: string;
  chunkIds: string[];
}

export interface EngineQuery {
  namespace: string;
  text: string;
  /** The embedded query; null in keyword mode. */
  vector: Float32Array | number[] | null;
  mode: SearchMode;
  /** Passages wanted. */
  limit: number;
  /** Candidates taken from each retriever before fusion. */
  candidates: number;
  filter: Filter | null;
  fusion: FusionWeights;
}

export interface FusionWeights {
  k: number;
  vectorWeight: number;
  keywordWeight: number;
}

export interface EngineCounts {
  /** Searchable passages. */
  passages: number;
  /** Stored vectors, staged ones included. */
  vectors: number;
  /** What `vectors` counts: the namespace, or the whole index (Vectorize cannot count one namespace). */
  vectorScope: 'namespace' | 'index';
  /** Keyword shards holding the namespace's passages, for an engine that shards them. */
  keywordShards?: number;
}

/** A write to an asynchronous vector index: its mutation id and when it was issued (ms). */
export interface VectorWrite {
  mutationId: string;
  at: number;
}

/**
 * What an index generation is built with: a change of any builds a new generation beside the
 * serving one (src/retrieval/generations.ts), since its chunk ids or vectors differ.
 */
export interface IndexSettings {
  model: string;
  dimensions: number;
  chunkSize: number;
  chunkOverlap: number;
}
