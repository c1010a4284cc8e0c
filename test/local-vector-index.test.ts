import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import type { LocalVectorIndex } from '../src/engines/local/vector-index';
import { localVectors } from './local-vectors';
import type { MetadataFilter } from '../src/domain';
import type { VectorMetadata } from '../src/engines/vector-types';
import { cosine, randomVectors, rng } from './support';

// worker-configuration.d.ts (generated before the class existed) types the binding as untyped.
const ns = env.VECTOR_INDEX as unknown as DurableObjectNamespace<LocalVectorIndex>;
const client = (dims: number) => localVectors(dims);

const expectError = async (p: Promise<unknown>, text: string, code: AppError['code']) => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  expect((err as AppError).message).toContain(text);
};
const expectBadRequest = (p: Promise<unknown>, text: string) => expectError(p, text, 'bad_request');
/** A vector of another dimension than the index's is the operator's to fix (503), not the client's. */
const expectMisconfigured = (p: Promise<unknown>, text: string) => expectError(p, text, 'misconfigured');

describe('LocalVectorIndex', () => {
  it('returns the exact top-k by cosine similarity', async () => {
    const index = client(32);
    const vectors = randomVectors(600, 32, 1);
    const records = vectors.map((values, i) => ({ id: `v${i}`, values, metadata: { i } }));
    await index.upsert('topk', records.slice(0, 300));
    await index.upsert('topk', records.slice(300));
    expect(await index.count('topk')).toBe(600);
    for (const q of randomVectors(5, 32, 2)) {
      const expected = vectors.map((v, i) => ({ id: `v${i}`, score: cosine(q, v) })).sort((a, b) => b.score - a.score).slice(0, 10);
      const got = await index.query(q, { namespace: 'topk', topK: 10 });
      expect(got.map((m) => m.id)).toEqual(expected.map((m) => m.id));
      got.forEach((m, j) => expect(m.score).toBeCloseTo(expected[j]!.score, 5));
      expect(got[0]!.metadata).toEqual({ i: Number(got[0]!.id.slice(1)) });
    }
  });

  it('returns fewer than topK when the index is small, and nothing when empty', async () => {
    const index = client(3);
    expect(await index.query([1, 0, 0], { namespace: 'small', topK: 5 })).toEqual([]);
    await index.upsert('small', [{ id: 'a', values: [1, 0, 0], metadata: {} }, { id: 'b', values: [0, 2, 0], metadata: {} }]);
    const got = await index.query([1, 1, 0], { namespace: 'small', topK: 5 });
    expect(got.map((m) => m.id).sort()).toEqual(['a', 'b']);
    expect(got[0]!.score).toBeCloseTo(Math.SQRT1_2, 6);
  });

  it('scores zero vectors as 0, not NaN', async () => {
    const index = client(3);
    await index.upsert('zero', [{ id: 'z', values: [0, 0, 0], metadata: {} }, { id: 'x', values: [1, 0, 0], metadata: {} }]);
    const got = await index.query([1, 0, 0], { namespace: 'zero', topK: 2 });
    expect(got).toEqual([{ id: 'x', score: 1, metadata: {} }, { id: 'z', score: 0, metadata: {} }]);
    const fromZero = await index.query([0, 0, 0], { namespace: 'zero', topK: 2 });
    expect(fromZero.map((m) => m.score)).toEqual([0, 0]);
  });

  it('replaces a vector and its metadata on upsert of the same id', async () => {
    const index = client(2);
    await index.upsert('replace', [{ id: 'a', values: [1, 0], metadata: { v: 1 } }, { id: 'b', values: [0, 1], metadata: { v: 1 } }]);
    await index.query([1, 0], { namespace: 'replace', topK: 1 }); // loads the cache, so the next upsert patches it
    await index.upsert('replace', [{ id: 'a', values: [0, -1], metadata: { v: 2 } }]);
    expect(await index.count('replace')).toBe(2);
    expect(await index.query([0, -1], { namespace: 'replace', topK: 2 })).toEqual([
      { id: 'a', score: 1, metadata: { v: 2 } },
      { id: 'b', score: -1, metadata: { v: 1 } },
    ]);
  });

  it('deletes by id (cache loaded or not), ignoring unknown ids', async () => {
    const index = client(4);
    const records = randomVectors(50, 4, 3).map((values, i) => ({ id: `d${i}`, values, metadata: {} }));
    await index.upsert('delete', records);
    await index.deleteByIds('delete', ['d0', 'nope']);
    await index.query(records[1]!.values, { namespace: 'delete', topK: 1 });
    await index.deleteByIds('delete', ['d1', 'd7', 'd49']);
    expect(await index.count('delete')).toBe(46);
    const ids = (await index.query(records[1]!.values, { namespace: 'delete', topK: 100 })).map((m) => m.id);
    expect(ids).toHaveLength(46);
    for (const gone of ['d0', 'd1', 'd7', 'd49']) expect(ids).not.toContain(gone);
    // The row swapped into a deleted slot still scores against its own vector.
    expect((await index.query(records[48]!.values, { namespace: 'delete', topK: 1 }))[0]!.id).toBe('d48');
  });

  it('keeps namespaces isolated', async () => {
    const index = client(2);
    await index.upsert('iso-a', [{ id: 'same', values: [1, 0], metadata: { ns: 'a' } }]);
    await index.upsert('iso-b', [{ id: 'same', values: [0, 1], metadata: { ns: 'b' } }, { id: 'other', values: [1, 1], metadata: {} }]);
    expect(await index.count('iso-a')).toBe(1);
    expect(await index.count('iso-b')).toBe(2);
    expect(await index.query([1, 0], { namespace: 'iso-a', topK: 5 })).toEqual([{ id: 'same', score: 1, metadata: { ns: 'a' } }]);
    await index.deleteByIds('iso-b', ['same']);
    expect(await index.count('iso-a')).toBe(1);
  });

  it('applies Vectorize filter semantics', async () => {
    const index = client(2);
    const metas: Record<string, VectorMetadata> = {
      a: { doc: 'd1', lang: 'en', n: 1 },
      b: { doc: 'd2', lang: 'fr', n: 2 },
      c: { doc: 'd3', n: 3, draft: true },
      d: { doc: 'd1', lang: 'de', n: 4 },
    };
    await index.upsert('filter', Object.entries(metas).map(([id, metadata]) => ({ id, values: [1, 0.1], metadata })));
    const ids = async (filter: MetadataFilter) =>
      (await index.query([1, 0], { namespace: 'filter', topK: 10, filter })).map((m) => m.id).sort();
    expect(await ids({ doc: 'd1' })).toEqual(['a', 'd']);
    expect(await ids({ doc: { $eq: 'd1' }, lang: 'de' })).toEqual(['d']);
    expect(await ids({ lang: { $eq: 'en' } })).toEqual(['a']);
    expect(await ids({ lang: { $ne: 'en' } })).toEqual(['b', 'c', 'd']); // missing lang passes $ne
    expect(await ids({ lang: { $in: ['en', 'fr'] } })).toEqual(['a', 'b']); // missing lang fails $in
    expect(await ids({ lang: { $nin: ['en', 'fr'] } })).toEqual(['c', 'd']); // missing lang passes $nin
    expect(await ids({ n: { $in: [2, 3] }, draft: true })).toEqual(['c']);
    expect(await ids({ n: { $in: ['2'] } })).toEqual([]); // types compare strictly
    expect(await ids({ missing: 'x' })).toEqual([]);
    expect(await ids({ n: { $ne: 1, $nin: [4] } })).toEqual(['b', 'c']);
    expect(await ids({})).toEqual(['a', 'b', 'c', 'd']);
  });

  it('rejects bad filters, naming the operator', async () => {
    const index = client(2);
    await index.upsert('badfilter', [{ id: 'a', values: [1, 0], metadata: { n: 1 } }]);
    const badFilter = JSON.parse('{"n":{"$gt":0}}') as { n: number };
    await expectBadRequest(index.query([1, 0], { namespace: 'badfilter', topK: 1, filter: badFilter }), '$gt');
    const notArray = JSON.parse('{"n":{"$in":1}}') as { n: number };
    await expectBadRequest(index.query([1, 0], { namespace: 'badfilter', topK: 1, filter: notArray }), '$in');
  });

  it('enforces Vectorize limits', async () => {
    const index = client(2);
    const ns = 'limits';
    await index.upsert(ns, [{ id: 'é'.repeat(32), values: [1, 0], metadata: {} }]); // 64 bytes: allowed
    await expectBadRequest(index.upsert(ns, [{ id: 'é'.repeat(32) + 'x', values: [1, 0], metadata: {} }]), '64 bytes');
    await expectBadRequest(index.upsert(ns, [{ id: '', values: [1, 0], metadata: {} }]), 'id must be');
    await expectBadRequest(index.query([1, 0], { namespace: ns, topK: 0 }), 'topK');
    await expectBadRequest(index.query([1, 0], { namespace: ns, topK: 101 }), 'topK');
    expect(await index.query([1, 0], { namespace: ns, topK: 100 })).toHaveLength(1);
    const many = Array.from({ length: 1001 }, (_, i) => ({ id: `m${i}`, values: [1, 0], metadata: {} }));
    await expectBadRequest(index.upsert(ns, many), '1000');
    await expectBadRequest(index.upsert(ns, [{ id: 'nan', values: [NaN, 0], metadata: {} }]), 'finite');
    expect(await index.count(ns)).toBe(1); // nothing from the rejected batches was written
  });

  it('rejects a dimension other than the one set by the first upsert', async () => {
    await client(4).upsert('dims', [{ id: 'a', values: [1, 2, 3, 4], metadata: {} }]);
    const other = client(3);
    await expectMisconfigured(other.upsert('dims', [{ id: 'b', values: [1, 2, 3], metadata: {} }]), 'a vector has 3 dimensions but this index has 4');
    await expectMisconfigured(other.query([1, 2, 3], { namespace: 'dims', topK: 1 }), 'a vector has 3 dimensions but this index has 4');
  });

  it('stays exact when int8 scores cannot separate rows (near-duplicates fall back to more rescoring)', async () => {
    const index = client(16);
    const base = randomVectors(1, 16, 6)[0]!;
    const r = rng(7);
    // 400 vectors within 1e-4 of each other, and exact duplicates: the int8 bounds overlap.
    const vectors = Array.from({ length: 400 }, (_, i) => (i % 50 === 0 ? base : base.map((x) => x + (r() - 0.5) * 2e-4)));
    await index.upsert('near', vectors.map((values, i) => ({ id: `n${i}`, values, metadata: { even: i % 2 === 0 } })));
    const q = base.map((x) => x + 1e-3);
    const stats = () => runInDurableObject(ns.get(ns.idFromName('near')), (o: LocalVectorIndex) => ({ ...(o as unknown as { stats: { fallbacks: number } }).stats }));
    for (const [topK, filter] of [[10, undefined], [3, { even: true }]] as const) {
      const pool = vectors.map((v, i) => ({ id: `n${i}`, score: cosine(q, v) })).filter((_, i) => !filter || i % 2 === 0);
      const expected = pool.sort((a, b) => b.score - a.score).slice(0, topK);
      const got = await index.query(q, { namespace: 'near', topK, filter });
      got.forEach((m, j) => expect(m.score).toBeCloseTo(expected[j]!.score, 6));
      // Exact, up to the order of equal scores (the duplicates).
      expect(got.map((m) => m.score)).toEqual([...got.map((m) => m.score)].sort((a, b) => b - a));
      expect(got.map((m) => m.score.toFixed(7))).toEqual(expected.map((m) => m.score.toFixed(7)));
    }
    expect((await stats()).fallbacks).toBeGreaterThan(0);
  });

  it('keeps rows, filters and exact scores right through many upserts and deletes after loading', async () => {
    const index = client(8);
    const vectors = randomVectors(3000, 8, 8);
    const live = new Map<string, { values: Float32Array; tag: string }>();
    const put = async (from: number, to: number, tag: (i: number) => string) => {
      const records = vectors.slice(from, to).map((values, j) => ({ id: `c${from + j}`, values, metadata: { tag: tag(from + j) } }));
      for (let i = 0; i < records.length; i += 1000) await index.upsert('churn', records.slice(i, i + 1000));
      for (const rec of records) live.set(rec.id, { values: rec.values, tag: rec.metadata.tag });
    };
    await put(0, 2000, (i) => (i % 3 ? 'a' : 'b'));
    await index.query(vectors[0]!, { namespace: 'churn', topK: 1, filter: { tag: 'b' } }); // loads rows and the tag column
    const gone = Array.from({ length: 700 }, (_, i) => `c${(i * 7) % 2000}`);
    await index.deleteByIds('churn', gone);
    for (const id of gone) live.delete(id);
    await put(1500, 3000, (i) => (i % 2 ? 'b' : 'c')); // replaces 500, adds 1000, new tag value
    expect(await index.count('churn')).toBe(live.size);
    const cases: [Float32Array, MetadataFilter | undefined, (tag: string) => boolean][] = [
      [vectors[5]!, { tag: 'b' }, (tag) => tag === 'b'],
      [vectors[2500]!, { tag: { $nin: ['a'] } }, (tag) => tag !== 'a'],
      [vectors[42]!, undefined, () => true],
    ];
    for (const [q, filter, pass] of cases) {
      const expected = [...live]
        .filter(([, v]) => pass(v.tag))
        .map(([id, v]) => ({ id, score: cosine(q, v.values) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 25);
      const got = await index.query(q, { namespace: 'churn', topK: 25, filter });
      expect(got.map((m) => m.id)).toEqual(expected.map((m) => m.id));
      for (const m of got) expect(m.metadata).toEqual({ tag: live.get(m.id)!.tag });
    }
  });

  it('survives eviction: the cache is rebuilt from SQL', async () => {
    const index = client(8);
    const vectors = randomVectors(200, 8, 4);
    await index.upsert('evict', vectors.map((values, i) => ({ id: `e${i}`, values, metadata: { i, tag: i % 2 ? 'odd' : 'even' } })));
    await index.deleteByIds('evict', ['e5']);
    const q = randomVectors(1, 8, 5)[0]!;
    const before = await index.query(q, { namespace: 'evict', topK: 20, filter: { tag: 'odd' } });
    await evictDurableObject(ns.get(ns.idFromName('evict')));
    expect(await index.count('evict')).toBe(199);
    expect(await index.query(q, { namespace: 'evict', topK: 20, filter: { tag: 'odd' } })).toEqual(before);
    await expectMisconfigured(client(3).upsert('evict', [{ id: 'x', values: [1, 2, 3], metadata: {} }]), 'has 8');
  });
});
