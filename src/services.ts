import type { Config } from './config';
import type { ChatModel, EmbeddingProvider, IndexSettings, IngestRequest, Reranker, SearchEngine } from './domain';
import type { Logger } from './observability/log';
import type { AccessControl } from './security/access';
import type { ApiKeyStore } from './storage/api-keys';
import type { ChunkStore } from './storage/chunks';
import type { DocumentStore } from './storage/documents';
import type { GenerationStore } from './storage/generations';
import type { SliceStore } from './storage/slices';

/**
 * Everything the pipelines need, built from config in one place (`getServices` in
 * composition.ts, the composition root). Types only: the parts that take it (ingestion,
 * retrieval, generation, http) depend on these interfaces, not on how they are chosen.
 */
export interface Services {
  config: Config;
  log: Logger;
  db: D1Database;
  documents: DocumentStore;
  chunks: ChunkStore;
  /** Documents ingested in slices: which slices are in. */
  slices: SliceStore;
  keys: ApiKeyStore;
  /** Authentication, scopes and rate limits. */
  access: AccessControl;
  originals: R2Bucket;
  queue: Queue<IngestRequest>;
  /** The queue for large documents, consumed one message per invocation; absent: they go with the rest. */
  largeQueue?: Queue<IngestRequest>;
  /** Index generations: which one serves each namespace, which one is being built. */
  generations: GenerationStore;
  embedder: EmbeddingProvider;
  /** The embedder of an index generation's settings (`embedder` when they are the current ones). */
  embedderFor(settings: IndexSettings): EmbeddingProvider;
  /** Where chunks are indexed and searched: the local or the Cloudflare engine. */
  engine: SearchEngine;
  chat: ChatModel;
  /** Reorders fused candidates; absent when RERANK_PROVIDER is "none". */
  reranker?: Reranker;
}
