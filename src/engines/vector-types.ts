/** The vector-level types the engines use inside: what a vector index stores and answers. */
import type { DocumentMetadata as VectorMetadata, Filter, VectorWrite } from '../domain';

export type { VectorMetadata };

export interface VectorRecord {
  /** ≤ 64 bytes (Vectorize's limit). */
  id: string;
  values: Float32Array | number[];
  metadata: VectorMetadata;
}

export interface VectorQuery {
  topK: number;
  namespace: string;
  filter?: Filter | null;
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


