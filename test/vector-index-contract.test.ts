import { env } from 'cloudflare:workers';
import type { LocalVectorIndex } from '../src/engines/local/vector-index';
import { LocalVectorIndexClient } from '../src/engines/local/engine';
import { VectorizeIndex } from '../src/engines/cloudflare/vectorize';
import { vectorIndexContract } from './contracts/vector-index';
import { FakeVectorize } from './fakes/vectorize';

const DIMENSIONS = 8;
const instant = { retries: 0, timeoutMs: 5_000, sleep: async () => {} };

// The suite makes a unique namespace per test, so every test sees fresh Durable Objects.
vectorIndexContract('local Durable Object', () => ({
  index: new LocalVectorIndexClient(env.VECTOR_INDEX as unknown as DurableObjectNamespace<LocalVectorIndex>, DIMENSIONS),
}));

// A fresh index per test; writes become visible on settle, as Vectorize's do after ~30 s.
vectorIndexContract('Vectorize (fake binding)', () => {
  const fake = new FakeVectorize({ dimensions: DIMENSIONS, metadataIndexes: ['documentId', 'lang', 'n', 'draft', 'tag', 'v'] });
  return {
    index: new VectorizeIndex(fake, { dimensions: DIMENSIONS, resilience: instant }),
    settle: async () => fake.processPending(),
  };
});
