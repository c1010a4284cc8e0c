import { describe, expect, it } from 'vitest';
import type { EmbeddingProvider } from '../../src/domain';

const TEXTS = [
  'The lighthouse keeper trims the wick at dusk.',
  'Paraffin replaced whale oil in most lamps.',
  'A fog signal sounds every thirty seconds.',
];

/**
 * What every EmbeddingProvider promises, whatever its backend: the ingestion pipeline and the
 * query path rely on exactly this, so the offline embedder and the cloud ones must agree on it.
 */
export function embeddingProviderContract(name: string, make: () => EmbeddingProvider): void {
  describe(`${name} keeps the EmbeddingProvider contract`, () => {
    it('names its model and states its dimensions and batch limit', () => {
      const embedder = make();
      expect(embedder.model).toMatch(/\S/);
      expect(Number.isInteger(embedder.dimensions) && embedder.dimensions > 0).toBe(true);
      expect(Number.isInteger(embedder.maxBatchSize) && embedder.maxBatchSize > 0).toBe(true);
    });

    it('returns one vector of `dimensions` finite numbers per text, in order', async () => {
      const embedder = make();
      const batch = await embedder.embed(TEXTS);
      expect(batch).toHaveLength(TEXTS.length);
      for (const [i, vector] of batch.entries()) {
        expect(vector).toBeInstanceOf(Float32Array);
        expect(vector).toHaveLength(embedder.dimensions);
        expect(vector.every(Number.isFinite)).toBe(true);
        // Order: the i-th vector is the one the i-th text gets on its own.
        expect([...vector]).toEqual([...((await embedder.embed([TEXTS[i] as string]))[0] as Float32Array)]);
      }
    });

    it('is deterministic and tells texts apart', async () => {
      const [a, b] = await make().embed([TEXTS[0] as string, TEXTS[1] as string]);
      const [again] = await make().embed([TEXTS[0] as string]);
      expect([...(again as Float32Array)]).toEqual([...(a as Float32Array)]);
      expect([...(b as Float32Array)]).not.toEqual([...(a as Float32Array)]);
    });

    it('returns unit-length vectors', async () => {
      for (const vector of await make().embed(TEXTS)) {
        const norm = Math.hypot(...vector);
        expect(norm).toBeGreaterThan(0.999);
        expect(norm).toBeLessThan(1.001);
      }
    });

    it('accepts a full batch of maxBatchSize texts', async () => {
      const embedder = make();
      const texts = Array.from({ length: embedder.maxBatchSize }, (_, i) => `passage number ${i} about lamp ${i % 7}`);
      const vectors = await embedder.embed(texts);
      expect(vectors).toHaveLength(texts.length);
    });

    it('returns no vectors for no texts', async () => {
      expect(await make().embed([])).toEqual([]);
    });
  });
}
