import { env } from 'cloudflare:workers';
import { CloudflareEngine } from '../src/engines/cloudflare/engine';
import { KeywordSearch } from '../src/engines/cloudflare/keyword-search';
import { PassageTable } from '../src/engines/cloudflare/passages';
import { VectorizeIndex } from '../src/engines/cloudflare/vectorize';
import { LocalEngine } from '../src/engines/local/engine';
import type { ResilienceOptions } from '../src/providers/resilience';
import { FakeVectorize } from '../fakes/vectorize';
import { searchEngineContract, SUITE_FILTER_FIELDS } from './contracts/search-engine';

const DIMENSIONS = 384;
const capabilities = { filterableFields: SUITE_FILTER_FIELDS };
const resilience: ResilienceOptions = { retries: 0, timeoutMs: 10_000, sleep: async () => {} };

// The suite makes unique namespaces per test, so every test sees fresh Durable Objects.
searchEngineContract('local', async () => ({
  engine: new LocalEngine(env.VECTOR_INDEX, DIMENSIONS, capabilities),
  settle: async () => {},
  reconfigured: (dimensions) => new LocalEngine(env.VECTOR_INDEX, dimensions, capabilities),
}));

// A fresh Vectorize fake per test (its writes become visible on settle, as Vectorize's do after
// ~30 s) over the test worker's local D1, migrated by setup.ts. The suite's ids are unique, so
// tests never meet in D1. Twice: with one keyword shard per namespace, and with shards of two
// passages, so that every case also runs across several shards.
for (const [label, shardSize] of [['cloudflare', 50_000], ['cloudflare, 2-passage keyword shards', 2]] as const) {
  searchEngineContract(label, async () => {
    const metadataIndexes = ['documentId', ...capabilities.filterableFields];
    const fake = new FakeVectorize({ dimensions: DIMENSIONS, metadataIndexes });
    const engine = (dimensions: number) =>
      new CloudflareEngine(
        new VectorizeIndex(fake, { dimensions, metadataIndexes, resilience }),
        new KeywordSearch(env.DB, env.KEYWORD_SHARDS, shardSize),
        new PassageTable(env.DB),
        capabilities,
      );
    return {
      engine: engine(DIMENSIONS),
      settle: async () => fake.processPending(),
      reconfigured: engine,
    };
  });
}
