import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/domain/errors';
import type { Reranker } from '../../src/domain';

export interface RerankerHarness {
  reranker: Reranker;
  /** How many calls reached the backend so far (a local reranker with no backend returns 0). */
  calls: () => number;
}

const QUERY = 'What fuel does the lighthouse burn?';
const RELEVANT = 'The lighthouse burns paraffin in a pressure lamp, and the keeper trims its wick at dusk.';
const UNRELATED = [
  'Tides turn twice a day along the estuary.',
  'Sheep graze on the salt marsh in summer.',
];

/**
 * What every Reranker promises: search.ts scores the fused candidates in slices of
 * `maxBatchSize` and reorders them by these scores, so an implementation must score each text
 * on its own (a cross-encoder scores one query–passage pair at a time), hand the scores back
 * in the order the texts were given, and refuse a slice larger than it said it takes rather
 * than silently drop or split it.
 */
export function rerankerContract(name: string, make: () => RerankerHarness): void {
  describe(`${name} keeps the Reranker contract`, () => {
    it('names its model and states its batch limit', () => {
      const { reranker } = make();
      expect(reranker.model).toMatch(/\S/);
      expect(Number.isInteger(reranker.maxBatchSize) && reranker.maxBatchSize > 0).toBe(true);
    });

    it('returns one finite score per text, in the order given', async () => {
      const { reranker } = make();
      const texts = [UNRELATED[0]!, RELEVANT, UNRELATED[1]!];
      const scores = await reranker.score(QUERY, texts);
      expect(scores).toHaveLength(texts.length);
      expect(scores.every((s) => typeof s === 'number' && Number.isFinite(s))).toBe(true);
      // Order: the i-th score is the one the i-th text gets on its own.
      for (const [i, text] of texts.entries()) {
        const [alone] = await reranker.score(QUERY, [text]);
        expect(scores[i]).toBeCloseTo(alone as number, 5);
      }
    });

    it('scores an obviously relevant passage above unrelated ones', async () => {
      const { reranker } = make();
      // The relevant passage sits in the middle, so neither first nor last place can explain it.
      const [a, relevant, b] = await reranker.score(QUERY, [UNRELATED[0]!, RELEVANT, UNRELATED[1]!]);
      expect(relevant).toBeGreaterThan(a as number);
      expect(relevant).toBeGreaterThan(b as number);
    });

    it('scores no texts without calling its backend', async () => {
      const { reranker, calls } = make();
      expect(await reranker.score(QUERY, [])).toEqual([]);
      expect(calls()).toBe(0);
    });

    it('accepts a full batch of maxBatchSize texts', async () => {
      const { reranker } = make();
      const texts = Array.from({ length: reranker.maxBatchSize }, (_, i) => `passage ${i} about lamp ${i % 7}`);
      const scores = await reranker.score(QUERY, texts);
      expect(scores).toHaveLength(texts.length);
      expect(scores.every(Number.isFinite)).toBe(true);
    });

    it('refuses more than maxBatchSize texts before calling its backend, saying so (callers slice)', async () => {
      const { reranker, calls } = make();
      const texts = Array.from({ length: reranker.maxBatchSize + 1 }, (_, i) => `passage ${i}`);
      const error = await reranker.score(QUERY, texts).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).message).toContain(String(reranker.maxBatchSize));
      expect(calls()).toBe(0);
    });
  });
}
