import { type Config, loadConfig } from './config';
import type { IngestMessage } from './ingestion/messages';
import { createLogger, type Logger } from './observability/log';
import { createProviders } from './composition';
import { AccessControl } from './security/access';
import { ApiKeyStore } from './storage/api-keys';
import type { ChatModel, EmbeddingProvider, Reranker, SearchEngine } from './domain';
import { ChunkStore } from './storage/chunks';
import { DocumentStore } from './storage/documents';

/** Everything the pipelines need, built from config in one place (the composition root). */
export interface Services {
  config: Config;
  log: Logger;
  db: D1Database;
  documents: DocumentStore;
  chunks: ChunkStore;
  keys: ApiKeyStore;
  /** Authentication, scopes and rate limits. */
  access: AccessControl;
  originals: R2Bucket;
  queue: Queue<IngestMessage>;
  embedder: EmbeddingProvider;
  /** Where chunks are indexed and searched: the local or the Cloudflare engine. */
  engine: SearchEngine;
  chat: ChatModel;
  /** Reorders fused candidates; absent when RERANK_PROVIDER is "none". */
  reranker?: Reranker;
}

const cache = new WeakMap<object, Services>();

export function getServices(env: Env): Services {
  const cached = cache.get(env);
  if (cached) return cached;
  const config = loadConfig(env);
  const keys = new ApiKeyStore(env.DB);
  const services: Services = {
    config,
    log: createLogger(config.LOG_LEVEL),
    db: env.DB,
    documents: new DocumentStore(env.DB),
    chunks: new ChunkStore(env.DB),
    keys,
    access: new AccessControl(config, env.RATE_LIMITER, keys),
    originals: env.ORIGINALS,
    queue: env.INGEST_QUEUE as Queue<IngestMessage>,
    ...createProviders(env, config),
  };
  cache.set(env, services);
  return services;
}
