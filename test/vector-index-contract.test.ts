import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { type MetadataFilter, parseFilter } from '../src/domain';
import { VectorizeIndex } from '../src/engines/cloudflare/vectorize';
import type { LocalVectorIndex } from '../src/engines/local/vector-index';
import { callIndex } from '../src/engines/rpc-errors';
import type { VectorIndex } from '../src/engines/vector-types';
import { FakeVectorize } from '../fakes/vectorize';
import { vectorIndexContract } from './contracts/vector-index';
import { caught } from './support';

const DIMENSIONS = 8;
const instant = { retries: 0, timeoutMs: 5_000, sleep: async () => {} };

/**
 * The local Durable Object's vector-only API (upsert, deleteByIds, query with a parsed filter),
 * one object per namespace, as a `VectorIndex`; errors restored to AppErrors by their prefix, as
 * the local engine restores them after RPC.
 */
function localDurableObject(dimensions: number): VectorIndex {
  const ns = env.VECTOR_INDEX as unknown as DurableObjectNamespace<LocalVectorIndex>;
  const stub = (namespace: string) => ns.get(ns.idFromName(namespace));
  return {
    dimensions,
    upsert: (namespace, records) => callIndex(() => stub(namespace).upsert(records.map((r) => ({ ...r, values: Array.from(r.values) })))),
    deleteByIds: (namespace, ids) => callIndex(() => stub(namespace).deleteByIds(ids)),
    query: (vector, { namespace, topK, filter }) => callIndex(() => stub(namespace).query(Array.from(vector), topK, filter ?? null)),
    count: async (namespace) => (await callIndex(() => stub(namespace).count())).vectors,
    dimensionMismatch: async (namespace) => {
      const stored = await callIndex(() => stub(namespace).storedDimensions());
      return stored === null || stored === dimensions ? null : `holds ${stored}-dimensional vectors, not ${dimensions}`;
    },
  };
}

// The suite makes a unique namespace per test, so every test sees fresh Durable Objects.
vectorIndexContract('local Durable Object (vector-only API)', () => ({ index: localDurableObject(DIMENSIONS) }));

// A fresh index per test; writes become visible on settle, as Vectorize's do after ~30 s.
vectorIndexContract('VectorizeIndex (fake binding)', () => {
  const fake = new FakeVectorize({ dimensions: DIMENSIONS, metadataIndexes: ['documentId', 'lang', 'n', 'draft', 'tag', 'v'] });
  return {
    index: new VectorizeIndex(fake, { dimensions: DIMENSIONS, resilience: instant }),
    settle: async () => fake.processPending(),
  };
});

// The indexes take filters parsed once; what the syntax does not allow never reaches them.
describe('parseFilter, before any index', () => {
  it('refuses filters outside the syntax as bad requests, naming the operator', async () => {
    const parse = async (filter: unknown) => parseFilter(filter as MetadataFilter);
    for (const [filter, text] of [
      [{ n: { $gt: 0 } }, '$gt'],
      [{ n: { $in: 1 } }, '$in'],
      [{ $or: [{ n: 1 }, { n: 2 }] }, '$or'],
      [{ n: [1, 2] }, 'n'],
      [{ n: null }, 'n'],
      [{ n: { $eq: { nested: 1 } } }, 'n'],
      [{ 'a.b': 1 }, 'a.b'],
    ] as const) {
      const error = await caught(parse(filter));
      expect(error.code, JSON.stringify(filter)).toBe('bad_request');
      expect(error.message).toContain(text);
    }
  });

  it('parses no conditions to null, and contradictions to a filter matching nothing', () => {
    expect(parseFilter(undefined)).toBeNull();
    expect(parseFilter({})).toBeNull();
    expect(parseFilter({ a: { $eq: 1, $ne: 1 } })).toEqual({ conditions: [{ field: 'a', allowed: [], excluded: [] }], matchesNothing: true });
    expect(parseFilter({ a: { $in: [1, 2], $nin: [2] }, b: { $ne: 'x' } })).toEqual({
      conditions: [
        { field: 'a', allowed: [1], excluded: [] },
        { field: 'b', excluded: ['x'] },
      ],
      matchesNothing: false,
    });
  });
});
