import { env } from 'cloudflare:workers';
import { CloudflareEngine } from '../src/engines/cloudflare/engine';
import { KeywordSearch } from '../src/engines/cloudflare/keyword-search';
import { PassageTable } from '../src/engines/cloudflare/passages';
import { VectorizeIndex } from '../src/engines/cloudflare/vectorize';
import { LocalEngine } from '../src/engines/local/engine';

/** The fields tests filter on (as vitest.config.ts's FILTERABLE_FIELDS). */
const capabilities = { filterableFields: ['team', 'year', 'topic', 'lang', 'colour', 'shelf', 'area', 'draft', 'kind', 'tag'] };

/** The local engine over the test worker's Durable Objects. */
export function localEngine(dimensions: number): LocalEngine {
  return new LocalEngine(env.VECTOR_INDEX, dimensions, capabilities);
}

/** The Cloudflare engine over a (fake) Vectorize binding and the test worker's real local D1. */
export function cloudflareEngine(vectorize: Vectorize, dimensions: number, shardSize = 50_000): CloudflareEngine {
  const vectors = new VectorizeIndex(vectorize, {
    dimensions,
    metadataIndexes: ['documentId', ...capabilities.filterableFields],
    resilience: { retries: 0, timeoutMs: 5_000 },
  });
  return new CloudflareEngine(vectors, new KeywordSearch(env.DB, env.KEYWORD_SHARDS, shardSize), new PassageTable(env.DB), capabilities);
}
