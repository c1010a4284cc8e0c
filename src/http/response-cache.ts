import type { Context } from 'hono';
import type { AppEnv } from './app-env';
import { metrics } from '../observability/metrics';
import type { ChatMessage, CompletionOptions, MetadataFilter, SearchMode } from '../domain';
import type { Services } from '../services';
import { sha256Hex } from '../text/hash';
import { cacheApiGet, cacheApiPut, MemoryLru } from '../cache/store';

/** What a cacheable request asks, before normalisation. The namespace is the principal's, already checked. */
export interface CacheableRequest {
  route: 'query' | 'chat' | 'chat-completions';
  namespace: string;
  topK: number;
  mode: SearchMode;
  filter?: MetadataFilter;
  /** /v1/query's text. */
  query?: string;
  /** The chat routes' messages (a /v1/chat `query` as one user message). */
  messages?: ChatMessage[];
  /** A chat completion's own temperature and answer length. */
  sampling?: CompletionOptions;
}

/** Changes when the shape of what is cached changes, so a deploy never reads an older shape. */
const FORMAT = 3;

/** Answers are JSON text; ~2 bytes a character. */
const memory = new MemoryLru<string>(1_000, 32 * 2 ** 20);

/**
 * The answer to `request` from the cache, or `compute`d and cached. Keys hold the namespace's
 * generation (one D1 read per request): any ingestion or deletion in the namespace bumps it,
 * so no answer is served after what it was computed from changed, and no entry ever needs
 * purging (old ones expire). Sets `X-Cache: hit|miss`; with the cache off nothing is read.
 */
export async function cachedAnswer<T>(c: Context<AppEnv>, request: CacheableRequest, compute: () => Promise<T>): Promise<T> {
  const { services } = c.var;
  const { config } = services;
  if (!config.CACHE_ENABLED) return compute();

  let generation: number;
  let changedAt: number;
  try {
    ({ generation, changedAt } = await services.documents.generation(request.namespace));
  } catch (error) {
    // Without the generation an entry cannot be trusted: answer uncached.
    services.log.warn('cache: namespace generation unreadable', { error: String(error) });
    return compute();
  }
  if (Date.now() - changedAt < services.engine.limits.writeDelayMs) {
    // The engine may not show the latest change yet (Vectorize applies writes asynchronously):
    // an answer computed now could outlive it, so it is neither served from nor kept in the cache.
    c.header('X-Cache', 'bypass');
    return compute();
  }
  const key = await sha256Hex(JSON.stringify([FORMAT, fingerprint(services), generation, normalise(request)]));
  const path = `response/${key}`;
  let text = memory.get(key);
  if (text === undefined) {
    const cached = await cacheApiGet(path);
    if (cached) {
      text = await cached.text();
      memory.set(key, text, text.length * 2, config.RESPONSE_CACHE_TTL_SECONDS);
    }
  }
  metrics.inc('rag_cache_requests_total', { cache: 'response', result: text === undefined ? 'miss' : 'hit' });
  if (text !== undefined) {
    c.header('X-Cache', 'hit');
    return JSON.parse(text) as T;
  }

  const value = await compute();
  c.header('X-Cache', 'miss');
  text = JSON.stringify(value);
  memory.set(key, text, text.length * 2, config.RESPONSE_CACHE_TTL_SECONDS);
  await cacheApiPut(path, text, 'application/json', config.RESPONSE_CACHE_TTL_SECONDS);
  return value;
}

/** Trimmed, whitespace runs as one space. */
export function normaliseText(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

/** The request as its key sees it: texts normalised, the filter with sorted keys, defaults filled in. */
export function normalise(request: CacheableRequest): unknown[] {
  return [
    request.route,
    request.namespace,
    request.topK,
    request.mode,
    request.filter === undefined ? null : canonical(request.filter),
    request.query === undefined ? null : normaliseText(request.query),
    request.messages?.map((m) => [m.role, normaliseText(m.content)]) ?? null,
    request.sampling ? [request.sampling.temperature ?? null, request.sampling.maxTokens ?? null] : null,
  ];
}

/** Objects with their keys sorted, recursively; arrays keep their order. */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value !== 'object' || value === null) return value;
  const object = value as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(object)
      .sort()
      .map((k) => [k, canonical(object[k])]),
  );
}

/** The settings and models that shape an answer, so a configuration change never serves older answers. */
function fingerprint(services: Services): unknown[] {
  const { config, embedder, chat, reranker } = services;
  return [
    embedder.model,
    embedder.dimensions,
    chat.model,
    reranker?.model ?? null,
    config.VECTOR_PROVIDER,
    config.RRF_K,
    config.VECTOR_WEIGHT,
    config.KEYWORD_WEIGHT,
    config.RETRIEVAL_CANDIDATES,
    config.RERANK_CANDIDATES,
    config.LLM_TEMPERATURE,
    config.LLM_MAX_TOKENS,
    config.ANSWER_LINKS,
  ];
}
