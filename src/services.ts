import { type Config, loadConfig } from './config';
import { ExtractiveAnswerer } from './generation/extractive-answerer';
import { LocalEmbedder } from './providers/local-embedder';
import { LocalVectorIndexClient } from './providers/local-vector-index';
import type { ChatModel, EmbeddingProvider, VectorIndex } from './providers/types';
import { ChunkStore } from './storage/chunks';
import { DocumentStore } from './storage/documents';

/** Everything the pipelines need, built from config in one place (the composition root). */
export interface Services {
  config: Config;
  db: D1Database;
  documents: DocumentStore;
  chunks: ChunkStore;
  originals: R2Bucket;
  queue: Queue<IngestMessage>;
  embedder: EmbeddingProvider;
  vectors: VectorIndex;
  chat: ChatModel;
}

/** Queue message asking for a document to be (re)ingested from its original in R2. */
export interface IngestMessage {
  type: 'ingest';
  documentId: string;
}

const cache = new WeakMap<object, Services>();

export function getServices(env: Env): Services {
  const cached = cache.get(env);
  if (cached) return cached;
  const config = loadConfig(env);
  const services: Services = {
    config,
    db: env.DB,
    documents: new DocumentStore(env.DB),
    chunks: new ChunkStore(env.DB),
    originals: env.ORIGINALS,
    queue: env.INGEST_QUEUE as Queue<IngestMessage>,
    embedder: new LocalEmbedder({ dimensions: config.EMBEDDING_DIMENSIONS, model: config.EMBEDDING_MODEL }),
    vectors: new LocalVectorIndexClient(env.VECTOR_INDEX, config.EMBEDDING_DIMENSIONS),
    chat: new ExtractiveAnswerer(),
  };
  cache.set(env, services);
  return services;
}
