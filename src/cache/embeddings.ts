import { metrics } from '../observability/metrics';
import type { Services } from '../services';
import { sha256Hex } from '../text/hash';
import { cacheApiGet, cacheApiPut, MemoryLru } from './store';

/**
 * Query embeddings by (model, dimensions, SHA-256 of the text). 2,000 vectors of 1,536
 * dimensions are 12 MiB: the byte cap keeps an isolate's share well inside its 128 MB.
 */
const memory = new MemoryLru<Float32Array>(2_000, 16 * 2 ** 20);

/**
 * The embedding of a query, from the cache when this text was embedded before. Only queries go
 * through here: ingestion already embeds a chunk only when its content (its id) or the model
 * changed (pipeline.ts), so it has nothing to gain. The Cache API tier is used only for cloud
 * embedders (a call of tens of milliseconds); the local embedder computes a vector faster than
 * the Cache API can return one, so it uses the memory tier alone.
 */
export async function embedQuery(services: Services, text: string): Promise<Float32Array> {
  const { embedder, config } = services;
  if (!config.CACHE_ENABLED) return (await embedder.embed([text]))[0] as Float32Array;

  const key = `${embedder.model}\u0000${embedder.dimensions}\u0000${await sha256Hex(text)}`;
  const path = `embedding/${encodeURIComponent(embedder.model)}/${embedder.dimensions}/${key.slice(key.lastIndexOf('\u0000') + 1)}`;
  const shared = config.EMBEDDING_PROVIDER !== 'local';
  let vector = memory.get(key);
  if (!vector && shared) {
    const cached = await cacheApiGet(path);
    if (cached) {
      const bytes = await cached.arrayBuffer();
      if (bytes.byteLength === embedder.dimensions * 4) {
        vector = new Float32Array(bytes);
        memory.set(key, vector, bytes.byteLength, config.EMBEDDING_CACHE_TTL_SECONDS);
      }
    }
  }
  metrics.inc('rag_cache_requests_total', { cache: 'embedding', result: vector ? 'hit' : 'miss' });
  if (vector) return vector;

  vector = (await embedder.embed([text]))[0] as Float32Array;
  memory.set(key, vector, vector.byteLength, config.EMBEDDING_CACHE_TTL_SECONDS);
  if (shared) await cacheApiPut(path, vector.slice().buffer, 'application/octet-stream', config.EMBEDDING_CACHE_TTL_SECONDS);
  return vector;
}
