import { type Config, loadConfig } from './config';
import type { IngestRequest } from './domain';
import { createLogger } from './observability/log';
import { AccessControl } from './security/access';
import type { Services } from './services';
import { ApiKeyStore } from './storage/api-keys';
import { ChunkStore } from './storage/chunks';
import { GenerationStore } from './storage/generations';
import { SliceStore } from './storage/slices';
import { DocumentStore } from './storage/documents';
import { AppError } from './domain/errors';
import { LocalEmbedder } from './providers/local-embedder';
import { LocalEngine } from './engines/local/engine';
import { CloudflareEngine } from './engines/cloudflare/engine';
import { KeywordSearch } from './engines/cloudflare/keyword-search';
import { PassageTable } from './engines/cloudflare/passages';
import { OpenAIChatModel, OpenAIEmbedder } from './providers/openai';
import { CircuitBreaker, type CircuitState, type ResilienceOptions } from './providers/resilience';
import type { ChatModel, EmbeddingProvider, Reranker, SearchEngine } from './domain';
import { VectorizeIndex } from './engines/cloudflare/vectorize';
import { WorkersAIChatModel } from './providers/workers-ai-chat';
import { WorkersAIEmbedder } from './providers/workers-ai-embedder';
import { WorkersAIReranker } from './providers/workers-ai-reranker';

/**
 * The composition root's factories: the one place that chooses implementations from config and
 * touches env.AI, env.VECTORIZE or OpenAI (services.ts assembles the rest).
 */
export interface Providers {
  embedder: EmbeddingProvider;
  engine: SearchEngine;
  chat: ChatModel;
  reranker?: Reranker;
}

/** Local embedder dimension when EMBEDDING_DIMENSIONS is not set. */
const LOCAL_DIMENSIONS = 384;

/**
 * One circuit breaker per backend and isolate: while a provider is down, every request in
 * this isolate fails fast instead of each waiting out its own retries.
 */
const breakers = new Map<string, CircuitBreaker>();
function resilience(name: string, config: Config, timeoutMs: number): ResilienceOptions {
  let breaker = breakers.get(name);
  if (!breaker) breakers.set(name, (breaker = new CircuitBreaker()));
  return { retries: config.PROVIDER_RETRIES, timeoutMs, breaker };
}

/** The breaker of each cloud backend, by role and provider (local implementations have none). */
const BREAKERS = {
  embedding: { 'workers-ai': 'workers-ai-embed', openai: 'openai-embed' },
  vectors: { vectorize: 'vectorize' },
  chat: { 'workers-ai': 'workers-ai-chat', openai: 'openai-chat' },
  reranker: { 'workers-ai': 'workers-ai-rerank' },
} as const;

export type ProviderRole = keyof typeof BREAKERS;

/**
 * The circuit state of each cloud backend this config uses, in this isolate, for /status: what
 * recent real calls found, without making one. `closed` when no call has been made yet; a role
 * whose provider is local (or none) is absent.
 */
export function providerCircuits(config: Config): Partial<Record<ProviderRole, CircuitState>> {
  const providers: Record<ProviderRole, string> = {
    embedding: config.EMBEDDING_PROVIDER,
    vectors: config.VECTOR_PROVIDER,
    chat: config.CHAT_PROVIDER,
    reranker: config.RERANK_PROVIDER,
  };
  const states: Partial<Record<ProviderRole, CircuitState>> = {};
  for (const role of Object.keys(BREAKERS) as ProviderRole[]) {
    const name = (BREAKERS[role] as Record<string, string>)[providers[role]];
    if (name) states[role] = breakers.get(name)?.state ?? 'closed';
  }
  return states;
}

/** The only place that chooses implementations and touches env.AI, env.VECTORIZE or OpenAI. */
export function createProviders(env: Env, config: Config): Providers {
  const embedder = createEmbedder(env, config);
  return {
    embedder,
    engine: createSearchEngine(env, config, embedder.dimensions),
    chat: createChatModel(env, config),
    reranker:
      config.RERANK_PROVIDER === 'workers-ai'
        ? new WorkersAIReranker(requireBinding(env.AI, 'AI', 'RERANK_PROVIDER'), {
            model: config.RERANK_MODEL,
            resilience: resilience(BREAKERS.reranker['workers-ai'], config, config.EMBEDDING_TIMEOUT_MS),
          })
        : undefined,
  };
}

function createEmbedder(env: Env, config: Config): EmbeddingProvider {
  switch (config.EMBEDDING_PROVIDER) {
    case 'local':
      return new LocalEmbedder({ dimensions: config.EMBEDDING_DIMENSIONS ?? LOCAL_DIMENSIONS, model: config.EMBEDDING_MODEL });
    case 'workers-ai':
      return new WorkersAIEmbedder(requireBinding(env.AI, 'AI', 'EMBEDDING_PROVIDER'), {
        model: config.EMBEDDING_MODEL,
        dimensions: config.EMBEDDING_DIMENSIONS,
        maxBatchSize: config.EMBEDDING_BATCH_SIZE,
        resilience: resilience(BREAKERS.embedding['workers-ai'], config, config.EMBEDDING_TIMEOUT_MS),
      });
    case 'openai':
      return new OpenAIEmbedder({
        apiKey: config.OPENAI_API_KEY as string,
        baseUrl: config.OPENAI_BASE_URL,
        model: config.EMBEDDING_MODEL,
        dimensions: config.EMBEDDING_DIMENSIONS,
        batchSize: config.EMBEDDING_BATCH_SIZE,
        resilience: resilience(BREAKERS.embedding.openai, config, config.EMBEDDING_TIMEOUT_MS),
      });
  }
}

/** The search engine VECTOR_PROVIDER names; both refuse filters on fields outside FILTERABLE_FIELDS alike. */
function createSearchEngine(env: Env, config: Config, dimensions: number): SearchEngine {
  const capabilities = { filterableFields: config.FILTERABLE_FIELDS };
  switch (config.VECTOR_PROVIDER) {
    case 'local':
      return new LocalEngine(env.VECTOR_INDEX, dimensions, capabilities);
    case 'vectorize': {
      const vectors = new VectorizeIndex(requireBinding(env.VECTORIZE, 'VECTORIZE', 'VECTOR_PROVIDER') as unknown as Vectorize, {
        dimensions,
        metadataIndexes: ['documentId', ...config.FILTERABLE_FIELDS],
        resilience: resilience(BREAKERS.vectors.vectorize, config, config.EMBEDDING_TIMEOUT_MS),
      });
      return new CloudflareEngine(
        vectors,
        new KeywordSearch(env.DB, requireBinding(env.KEYWORD_SHARDS, 'KEYWORD_SHARDS', 'VECTOR_PROVIDER'), config.KEYWORD_SHARD_SIZE),
        new PassageTable(env.DB),
        capabilities,
      );
    }
  }
}

function createChatModel(env: Env, config: Config): ChatModel {
  switch (config.CHAT_PROVIDER) {
    case 'extractive':
      // No model: generation/ quotes the passages itself (generation/extractive-answerer.ts).
      return { model: 'extractive' };
    case 'workers-ai':
      return new WorkersAIChatModel(requireBinding(env.AI, 'AI', 'CHAT_PROVIDER'), {
        model: config.CHAT_MODEL,
        maxTokens: config.LLM_MAX_TOKENS,
        temperature: config.LLM_TEMPERATURE,
        resilience: resilience(BREAKERS.chat['workers-ai'], config, config.LLM_TIMEOUT_MS),
      });
    case 'openai':
      return new OpenAIChatModel({
        apiKey: config.OPENAI_API_KEY as string,
        baseUrl: config.OPENAI_BASE_URL,
        model: config.CHAT_MODEL,
        maxTokens: config.LLM_MAX_TOKENS,
        temperature: config.LLM_TEMPERATURE,
        resilience: resilience(BREAKERS.chat.openai, config, config.LLM_TIMEOUT_MS),
      });
  }
}

function requireBinding<T>(binding: T | undefined, name: string, setting: string): T {
  if (!binding) {
    throw new AppError('misconfigured', `${setting} needs the ${name} binding, which this environment does not have (see wrangler.toml).`);
  }
  return binding;
}

const cache = new WeakMap<object, Services>();

/** The services of an environment, built once per `env` object (an isolate keeps them). */
export function getServices(env: Env): Services {
  const cached = cache.get(env);
  if (cached) return cached;
  const config = loadConfig(env);
  const keys = new ApiKeyStore(env.DB);
  const providers = createProviders(env, config);
  const embedders = new Map<string, EmbeddingProvider>();
  const services: Services = {
    config,
    log: createLogger(config.LOG_LEVEL),
    db: env.DB,
    documents: new DocumentStore(env.DB),
    chunks: new ChunkStore(env.DB),
    slices: new SliceStore(env.DB),
    keys,
    access: new AccessControl(config, env.RATE_LIMITER, keys),
    originals: env.ORIGINALS,
    queue: env.INGEST_QUEUE as Queue<IngestRequest>,
    largeQueue: env.LARGE_INGEST_QUEUE as Queue<IngestRequest> | undefined,
    generations: new GenerationStore(env.DB),
    ...providers,
    embedderFor(settings) {
      const { embedder } = providers;
      if (settings.model === embedder.model && settings.dimensions === embedder.dimensions) return embedder;
      const key = `${settings.model}\n${settings.dimensions}`;
      const made = embedders.get(key) ?? createEmbedder(env, { ...config, EMBEDDING_MODEL: settings.model, EMBEDDING_DIMENSIONS: settings.dimensions });
      embedders.set(key, made);
      return made;
    },
  };
  cache.set(env, services);
  return services;
}
