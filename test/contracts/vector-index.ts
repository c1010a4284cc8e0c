import { describe, expect, it } from 'vitest';
import { AppError, type MetadataFilter, parseFilter } from '../../src/domain';
import type { VectorIndex, VectorMetadata } from '../../src/engines/vector-types';
import { cosine, randomVectors } from '../support';

export interface VectorIndexHarness {
  /** A fresh index, or one whose namespaces the suite has not used (it makes its own, unique ones). */
  index: VectorIndex;
  /** Makes accepted writes visible to queries (Vectorize's writes are asynchronous). */
  settle?: () => Promise<void>;
}

/**
 * What every vector index must do at the vector level, run against each implementation (the
 * local Durable Object's vector-only API, which the vector benchmarks and scale tests drive; and
 * `VectorizeIndex`, the Cloudflare engine's vectors, over the Vectorize fake) so the two agree
 * on what the search engines build on. What the engines do with passages, versions and keyword
 * search is the search-engine contract (contracts/search-engine.ts).
 *
 * The contract, as this suite pins it down:
 * - query returns the exact top-k by cosine similarity, best first, at most topK matches, from
 *   the namespace asked only; topK must be an integer from 1 to 100 (Vectorize's limit without
 *   metadata; the engine asks for at most 100), anything else is an `AppError` 'bad_request',
 *   never silently clamped;
 * - upsert replaces a vector and its metadata; deleteByIds removes, ignoring unknown ids;
 * - filters are parsed (`parseFilter`, which refuses anything outside the syntax before an index
 *   sees it) from Vectorize's syntax ($eq $ne $in $nin, fields ANDed, types compared strictly); a
 *   record without the field fails $eq/$in and passes $ne/$nin;
 * - ids are 1–64 bytes of UTF-8; a longer id is 'bad_request' and nothing of its batch is written;
 * - a vector of other than `dimensions` values is 'misconfigured' (the embedder and the index
 *   disagree: the operator's to fix), never 'bad_request';
 * - ids are unique per index, not per namespace (Vectorize's model), so the suite never reuses
 *   an id across namespaces; count(namespace) is at least the namespace's vectors, exact when the
 *   index holds one namespace (Vectorize counts the whole index).
 * Metadata returned with matches is not part of the contract (Vectorize returns none by default).
 */
export function vectorIndexContract(name: string, make: () => VectorIndexHarness | Promise<VectorIndexHarness>): void {
  describe(`VectorIndex contract: ${name}`, () => {
    /** A fresh harness, a unique namespace maker, and vector helpers sized to the index. */
    async function setup() {
      const { index, settle } = await make();
      const run = crypto.randomUUID().slice(0, 8);
      const dims = index.dimensions;
      return {
        index,
        dims,
        ns: (label: string) => `${label}-${run}`,
        /** Writes, then waits until queries see them. */
        write: async (work: () => Promise<void>) => {
          await work();
          await settle?.();
        },
        /** A vector of the index's dimensions starting with `head`, zeros after. */
        vec: (...head: number[]) => Float32Array.from({ length: dims }, (_, i) => head[i] ?? 0),
      };
    }

    it('returns the exact top-k by cosine similarity, best first', async () => {
      const { index, dims, ns, write } = await setup();
      const space = ns('topk');
      const vectors = randomVectors(300, dims, 1);
      const records = vectors.map((values, i) => ({ id: `v${i}`, values, metadata: { i } }));
      await write(async () => {
        await index.upsert(space, records.slice(0, 150));
        await index.upsert(space, records.slice(150));
      });
      expect(await index.count(space)).toBe(300);
      for (const q of randomVectors(5, dims, 2)) {
        const expected = vectors.map((v, i) => ({ id: `v${i}`, score: cosine(q, v) })).sort((a, b) => b.score - a.score).slice(0, 10);
        const got = await index.query(q, { namespace: space, topK: 10 });
        expect(got.map((m) => m.id)).toEqual(expected.map((m) => m.id));
        got.forEach((m, j) => expect(m.score).toBeCloseTo(expected[j]!.score, 5));
      }
      const all = await index.query(vectors[0]!, { namespace: space, topK: 100 });
      expect(all).toHaveLength(100);
      expect(all[0]!.id).toBe('v0');
      expect(all[0]!.score).toBeCloseTo(1, 5);
    });

    it('returns fewer than topK from a small namespace, and nothing from an empty one', async () => {
      const { index, ns, write, vec } = await setup();
      const space = ns('small');
      expect(await index.query(vec(1), { namespace: ns('empty'), topK: 5 })).toEqual([]);
      await write(() => index.upsert(space, [{ id: 's-a', values: vec(1, 0), metadata: {} }, { id: 's-b', values: vec(0, 2), metadata: {} }]));
      const got = await index.query(vec(1, 1), { namespace: space, topK: 5 });
      expect(got.map((m) => m.id).sort()).toEqual(['s-a', 's-b']);
      expect(got[0]!.score).toBeCloseTo(Math.SQRT1_2, 5);
    });

    it('replaces a vector and its metadata on upsert of the same id', async () => {
      const { index, ns, write, vec } = await setup();
      const space = ns('replace');
      await write(() => index.upsert(space, [{ id: 'r-a', values: vec(1, 0), metadata: { v: 1 } }, { id: 'r-b', values: vec(0, 1), metadata: { v: 1 } }]));
      await write(() => index.upsert(space, [{ id: 'r-a', values: vec(0, -1), metadata: { v: 2 } }]));
      expect(await index.count(space)).toBe(2);
      const got = await index.query(vec(0, -1), { namespace: space, topK: 2 });
      expect(got.map((m) => m.id)).toEqual(['r-a', 'r-b']);
      expect(got[0]!.score).toBeCloseTo(1, 5);
      expect(got[1]!.score).toBeCloseTo(-1, 5);
      expect(await ids(index, space, vec(1), { v: 2 })).toEqual(['r-a']);
      expect(await ids(index, space, vec(1), { v: 1 })).toEqual(['r-b']);
    });

    it('deletes by id, ignoring unknown ids', async () => {
      const { index, dims, ns, write } = await setup();
      const space = ns('delete');
      const records = randomVectors(120, dims, 3).map((values, i) => ({ id: `d${i}`, values, metadata: {} }));
      await write(() => index.upsert(space, records));
      await write(() => index.deleteByIds(space, ['d0', 'nope', 'd7', 'd119']));
      expect(await index.count(space)).toBe(117);
      const got = (await index.query(records[1]!.values, { namespace: space, topK: 100 })).map((m) => m.id);
      expect(got).toHaveLength(100);
      for (const gone of ['d0', 'd7', 'd119']) expect(got).not.toContain(gone);
      expect(got[0]).toBe('d1');
      await write(() => index.deleteByIds(space, records.map((r) => r.id)));
      expect(await index.query(records[1]!.values, { namespace: space, topK: 10 })).toEqual([]);
    });

    it('keeps namespaces isolated', async () => {
      const { index, ns, write, vec } = await setup();
      const [a, b] = [ns('iso-a'), ns('iso-b')];
      await write(async () => {
        await index.upsert(a, [{ id: 'a-1', values: vec(1, 0), metadata: { tag: 'x' } }]);
        await index.upsert(b, [{ id: 'b-1', values: vec(1, 0), metadata: { tag: 'x' } }, { id: 'b-2', values: vec(1, 1), metadata: { tag: 'x' } }]);
      });
      expect((await index.query(vec(1, 0), { namespace: a, topK: 10 })).map((m) => m.id)).toEqual(['a-1']);
      expect((await index.query(vec(1, 0), { namespace: b, topK: 10, filter: parseFilter({ tag: 'x' }) })).map((m) => m.id)).toEqual(['b-1', 'b-2']);
      expect(await index.count(a)).toBeGreaterThanOrEqual(1);
      expect(await index.count(b)).toBeGreaterThanOrEqual(2);
      await write(() => index.deleteByIds(b, ['b-1', 'b-2']));
      expect(await index.query(vec(1, 0), { namespace: b, topK: 10 })).toEqual([]);
      expect((await index.query(vec(1, 0), { namespace: a, topK: 10 })).map((m) => m.id)).toEqual(['a-1']);
    });

    it("applies Vectorize's filter semantics, missing fields included", async () => {
      const { index, ns, write, vec } = await setup();
      const space = ns('filter');
      const metas: Record<string, VectorMetadata> = {
        'f-a': { documentId: 'd1', lang: 'en', n: 1 },
        'f-b': { documentId: 'd2', lang: 'fr', n: 2 },
        'f-c': { documentId: 'd3', n: 3, draft: true },
        'f-d': { documentId: 'd1', lang: 'de', n: 4, draft: false },
      };
      await write(() => index.upsert(space, Object.entries(metas).map(([id, metadata]) => ({ id, values: vec(1, 0.1), metadata }))));
      const q = (filter: MetadataFilter) => ids(index, space, vec(1), filter);
      expect(await q({ documentId: 'd1' })).toEqual(['f-a', 'f-d']);
      expect(await q({ documentId: { $eq: 'd1' }, lang: 'de' })).toEqual(['f-d']);
      expect(await q({ lang: { $ne: 'en' } })).toEqual(['f-b', 'f-c', 'f-d']); // missing lang passes $ne
      expect(await q({ lang: { $in: ['en', 'fr'] } })).toEqual(['f-a', 'f-b']); // missing lang fails $in
      expect(await q({ lang: { $nin: ['en', 'fr'] } })).toEqual(['f-c', 'f-d']); // missing lang passes $nin
      expect(await q({ lang: 'en' })).toEqual(['f-a']);
      expect(await q({ draft: true })).toEqual(['f-c']);
      expect(await q({ draft: { $ne: true } })).toEqual(['f-a', 'f-b', 'f-d']);
      expect(await q({ n: { $in: [2, 3] }, draft: true })).toEqual(['f-c']);
      expect(await q({ n: { $in: ['2'] } })).toEqual([]); // types compare strictly
      expect(await q({ n: { $ne: 1, $nin: [4] } })).toEqual(['f-b', 'f-c']); // operators on one field are ANDed
      expect(await q({ n: { $in: [1, 2], $ne: 1 } })).toEqual(['f-b']);
      expect(await q({ n: { $in: [] } })).toEqual([]);
      expect(await q({})).toEqual(['f-a', 'f-b', 'f-c', 'f-d']);
    });

    it('enforces the 64-byte id limit, writing nothing of a rejected batch', async () => {
      const { index, ns, write, vec } = await setup();
      const space = ns('ids');
      await write(() => index.upsert(space, [{ id: 'é'.repeat(32), values: vec(1), metadata: {} }])); // 64 bytes: allowed
      await expectBadRequest(index.upsert(space, [{ id: 'ok', values: vec(0, 1), metadata: {} }, { id: 'é'.repeat(32) + 'x', values: vec(1), metadata: {} }]), '64 bytes');
      await expectBadRequest(index.upsert(space, [{ id: '', values: vec(1), metadata: {} }]), 'id');
      await expectBadRequest(index.upsert(space, [{ id: 'nan', values: vec(Number.NaN), metadata: {} }]), 'finite');
      await write(async () => {}); // let anything wrongly accepted become visible
      expect((await index.query(vec(0, 1), { namespace: space, topK: 10 })).map((m) => m.id)).toEqual(['é'.repeat(32)]);
      expect(await index.count(space)).toBe(1);
    });

    it('accepts topK from 1 to 100 and rejects anything else', async () => {
      const { index, ns, write, vec } = await setup();
      const space = ns('topk-range');
      await write(() => index.upsert(space, [{ id: 't-a', values: vec(1), metadata: {} }]));
      for (const topK of [0, -1, 101, 1000, 1.5, Number.NaN]) await expectBadRequest(index.query(vec(1), { namespace: space, topK }), 'topK');
      expect(await index.query(vec(1), { namespace: space, topK: 100 })).toHaveLength(1);
      expect(await index.query(vec(1), { namespace: space, topK: 1 })).toHaveLength(1);
    });

    it('refuses vectors of the wrong dimension as a misconfiguration, never a bad request', async () => {
      const { index, dims, ns, write, vec } = await setup();
      const space = ns('dims');
      await write(() => index.upsert(space, [{ id: 'w-a', values: vec(1), metadata: {} }]));
      const short = new Float32Array(dims - 1).fill(1);
      await expectError(index.query(short, { namespace: space, topK: 1 }), 'misconfigured', 'dimensions');
      await expectError(index.upsert(space, [{ id: 'w-b', values: short, metadata: {} }]), 'misconfigured', 'dimensions');
      await write(async () => {});
      expect(await index.count(space)).toBe(1);
      expect(await index.dimensionMismatch(space)).toBeNull();
    });
  });
}

/** Ids matching a filter, written as clients write it and parsed as the engines parse it. */
async function ids(index: VectorIndex, namespace: string, vector: Float32Array, filter: MetadataFilter): Promise<string[]> {
  return (await index.query(vector, { namespace, topK: 100, filter: parseFilter(filter) })).map((m) => m.id).sort();
}

async function expectError(p: Promise<unknown>, code: AppError['code'], text?: string): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  if (text) expect((err as AppError).message).toContain(text);
}

const expectBadRequest = (p: Promise<unknown>, text?: string) => expectError(p, 'bad_request', text);
