import { parseFilter } from '../src/domain';
import { describe, expect, it } from 'vitest';
import type { ResilienceOptions } from '../src/providers/resilience';
import { VectorizeIndex, type VectorizeIndexOptions } from '../src/engines/cloudflare/vectorize';
import { mapVectorizeError } from '../src/engines/cloudflare/vectorize-errors';
import { randomVectors } from './support';
import { FakeVectorize, type FakeVectorizeOptions } from '../fakes/vectorize';
import { caught } from './support';

const DIMS = 4;
const NS = 'default';

function setup(fakeOptions: Partial<FakeVectorizeOptions> = {}, options: Partial<VectorizeIndexOptions> = {}) {
  const sleeps: number[] = [];
  const resilience: ResilienceOptions = { retries: 2, timeoutMs: 1_000, sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 };
  const fake = new FakeVectorize({ dimensions: DIMS, metadataIndexes: ['documentId'], ...fakeOptions });
  const index = new VectorizeIndex(fake, { dimensions: DIMS, resilience, ...options });
  const calls = (op: string) => fake.calls.filter((c) => c.op === op);
  return { fake, index, sleeps, calls };
}

const record = (id: string, values: number[] = [1, 0, 0, 0], metadata = {}) => ({ id, values, metadata });


describe('VectorizeIndex', () => {
  it('upserts 2,500 vectors in 3 calls of at most 1,000, into the namespace', async () => {
    const { fake, index, calls } = setup();
    const records = randomVectors(2500, DIMS, 1).map((values, i) => ({ id: `v${i}`, values, metadata: { documentId: 'd' } }));
    await index.upsert('tenant-a', records);
    expect(calls('upsert').map((c) => c.count)).toEqual([1000, 1000, 500]);
    fake.processPending();
    expect(await index.count('tenant-a')).toBe(2500);
    expect(await index.query(records[7]!.values, { namespace: 'tenant-b', topK: 5 })).toEqual([]);
    expect((await index.query(records[7]!.values, { namespace: 'tenant-a', topK: 1 }))[0]!.id).toBe('v7');
  });

  it('deletes in calls of at most 100 ids, skipping ids that cannot exist', async () => {
    const { index, calls } = setup();
    await index.deleteByIds(NS, [...Array.from({ length: 250 }, (_, i) => `d${i}`), 'x'.repeat(65), '']);
    expect(calls('deleteByIds').map((c) => c.count)).toEqual([100, 100, 50]);
    await index.deleteByIds(NS, []);
    await index.upsert(NS, []);
    expect(calls('deleteByIds')).toHaveLength(3);
    expect(calls('upsert')).toHaveLength(0);
  });

  it('tracks the last mutation and tells when it is searchable', async () => {
    let now = 1_000_000;
    const clock = () => now++; // every reading later than the last, as across real round trips
    const { fake, index } = setup({ now: clock }, { now: clock });
    expect(index.lastMutationId).toBeNull();
    await index.upsert(NS, [record('a')]);
    const first = index.lastMutationId!;
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    expect(await index.isProcessed(first)).toBe(false); // nothing processed yet
    expect(await index.query([1, 0, 0, 0], { namespace: NS, topK: 1 })).toEqual([]); // not visible yet

    await index.deleteByIds(NS, ['a']);
    const second = index.lastMutationId!;
    expect(second).not.toBe(first);
    fake.processPending();
    expect(await index.isProcessed(second)).toBe(true);
    expect(await index.isProcessed(first)).toBe(true); // applied in order, before `second`

    // Another isolate knows only the id and when it was issued.
    const elsewhere = new VectorizeIndex(fake, { dimensions: DIMS, resilience: { retries: 0, timeoutMs: 1_000 } });
    await index.upsert(NS, [record('b')]);
    const third = { id: index.lastMutationId!, at: index.lastMutationAt! };
    await index.upsert(NS, [record('c')]);
    expect(await elsewhere.isProcessed(third.id, third.at)).toBe(false);
    fake.processPending();
    expect(await elsewhere.isProcessed(third.id)).toBe(false); // a later mutation is processed: no way to order it without a time
    expect(await elsewhere.isProcessed(third.id, third.at)).toBe(true);
  });

  it('makes writes visible after visibleAfterMs', async () => {
    let now = 1_000_000;
    const { index } = setup({ visibleAfterMs: 30_000, now: () => now });
    await index.upsert(NS, [record('a')]);
    expect(await index.query([1, 0, 0, 0], { namespace: NS, topK: 1 })).toEqual([]);
    now += 30_000;
    expect((await index.query([1, 0, 0, 0], { namespace: NS, topK: 1 })).map((m) => m.id)).toEqual(['a']);
  });

  it("asks for ids and scores only (returnMetadata 'none'), topK up to 100", async () => {
    const { fake, index, calls } = setup();
    await index.upsert(NS, [record('a', [1, 0, 0, 0], { documentId: 'd1' })]);
    fake.processPending();
    expect(await index.query([1, 0, 0, 0], { namespace: NS, topK: 100 })).toEqual([{ id: 'a', score: 1, metadata: {} }]);
    expect(calls('query')[0]!.options).toMatchObject({ topK: 100, namespace: NS, returnMetadata: 'none', returnValues: false });
  });

  it("clamps topK to 50 when configured to return all metadata, and rejects topK over 100 before calling", async () => {
    const { fake, index, calls } = setup({}, { returnMetadata: 'all' });
    await index.upsert(NS, [record('a', [1, 0, 0, 0], { documentId: 'd1', title: 'T' })]);
    fake.processPending();
    expect(await index.query([1, 0, 0, 0], { namespace: NS, topK: 80 })).toEqual([{ id: 'a', score: 1, metadata: { documentId: 'd1', title: 'T' } }]);
    expect(calls('query')[0]!.options?.topK).toBe(50);
    const error = await caught(index.query([1, 0, 0, 0], { namespace: NS, topK: 101 }));
    expect(error.code).toBe('bad_request');
    expect(calls('query')).toHaveLength(1);
  });

  it('validates before calling: ids, metadata, namespaces, dimensions', async () => {
    const { index, fake } = setup();
    const cases: [Promise<unknown>, string][] = [
      [index.upsert(NS, [record('x'.repeat(65))]), '64 bytes'],
      [index.upsert(NS, [record('big', undefined, { text: 'x'.repeat(10 * 1024) })]), '10240 bytes'],
      [index.upsert(NS, [record('dot', undefined, { 'a.b': 1 })]), 'metadata key "a.b"'],
      [index.upsert(NS, [record('dollar', undefined, { $x: 1 })]), 'metadata key "$x"'],
      [index.upsert('n'.repeat(65), [record('a')]), 'namespace'],
    ];
    for (const [p, text] of cases) {
      const error = await caught(p);
      expect(error.code).toBe('bad_request');
      expect(error.message).toContain(text);
    }
    // A vector of another dimension than configured: the operator's to fix (503), never the client's.
    for (const p of [index.upsert(NS, [record('a', [1, 0, 0])]), index.query([1, 0, 0], { namespace: NS, topK: 1 })]) {
      const error = await caught(p);
      expect([error.code, error.status]).toEqual(['misconfigured', 503]);
      expect(error.message).toContain('a vector has 3 dimensions but the configuration has 4');
    }
    expect(fake.calls).toEqual([]);
  });

  it('refuses filters on fields without a metadata index when the list is given', async () => {
    const { fake, index } = setup({}, { metadataIndexes: ['documentId'] });
    await index.upsert(NS, [record('a', [1, 0, 0, 0], { documentId: 'd1', team: 'legal' })]);
    fake.processPending();
    const error = await caught(index.query([1, 0, 0, 0], { namespace: NS, topK: 5, filter: parseFilter({ team: 'legal' }) }));
    expect(error.code).toBe('bad_request');
    expect(error.message).toContain('"team"');
    // Without the list, Vectorize's own behaviour shows: no metadata index, no match.
    const unchecked = new VectorizeIndex(fake, { dimensions: DIMS, resilience: { retries: 0, timeoutMs: 1_000 } });
    expect(await unchecked.query([1, 0, 0, 0], { namespace: NS, topK: 5, filter: parseFilter({ team: 'legal' }) })).toEqual([]);
    expect((await unchecked.query([1, 0, 0, 0], { namespace: NS, topK: 5, filter: parseFilter({ documentId: 'd1' }) })).map((m) => m.id)).toEqual(['a']);
  });

  it('rewrites several operators on one field into the single one Vectorize accepts', async () => {
    const { fake, index, calls } = setup();
    await index.upsert(NS, [record('a', [1, 0, 0, 0], { documentId: 'd1' })]);
    fake.processPending();
    await index.query([1, 0, 0, 0], { namespace: NS, topK: 5, filter: parseFilter({ documentId: { $ne: 'd2', $nin: ['d3'] } }) });
    await index.query([1, 0, 0, 0], { namespace: NS, topK: 5, filter: parseFilter({ documentId: { $in: ['d1', 'd2'], $ne: 'd2' } }) });
    expect(calls('query').map((c) => c.options?.filter)).toEqual([{ documentId: { $nin: ['d2', 'd3'] } }, { documentId: { $eq: 'd1' } }]);
    expect(await index.query([1, 0, 0, 0], { namespace: NS, topK: 5, filter: parseFilter({ documentId: { $eq: 'd1', $ne: 'd1' } }) })).toEqual([]);
    expect(calls('query')).toHaveLength(2); // nothing can match: no call
  });

  it('reports a dimension mismatch between the embedder and the index', async () => {
    const { index } = setup();
    expect(await index.checkDimensions(DIMS)).toBeNull();
    expect(await index.checkDimensions(768)).toBe(
      'The Vectorize index has 4 dimensions but the embedding model makes 768: set EMBEDDING_DIMENSIONS/EMBEDDING_MODEL to match the index, or create an index with 768 dimensions and reindex.',
    );
  });

  it('retries a transient failure with backoff, through the injected sleep', async () => {
    const { fake, index, sleeps, calls } = setup();
    await index.upsert(NS, [record('a')]);
    fake.processPending();
    fake.failNext('query', new Error('VECTOR_QUERY_ERROR: Status + 500'));
    expect((await index.query([1, 0, 0, 0], { namespace: NS, topK: 1 })).map((m) => m.id)).toEqual(['a']);
    expect(calls('query')).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
  });

  it('gives up after the retries, retryably, and does not retry bad input', async () => {
    const { fake, index, calls } = setup();
    fake.failNext('upsert', new Error('VECTOR_UPSERT_ERROR (code = 40041): Too Many Requests'), 3);
    const limited = await caught(index.upsert(NS, [record('a')]));
    expect([limited.code, limited.retryable]).toEqual(['rate_limited', true]);
    expect(calls('upsert')).toHaveLength(3);
    expect(index.lastMutationId).toBeNull();

    fake.failNext('query', new Error('VECTOR_QUERY_ERROR (code = 40006): invalid query vector, expected 768 dimensions, and got 4 dimensions'));
    const wrongDimensions = await caught(index.query([1, 0, 0, 0], { namespace: NS, topK: 1 }));
    expect([wrongDimensions.code, wrongDimensions.retryable]).toEqual(['misconfigured', false]);
    expect(wrongDimensions.message).toContain('expected 768 dimensions, and got 4 dimensions');
    expect(calls('query')).toHaveLength(1);
  });

  it('times out a call that never answers', async () => {
    const { fake } = setup();
    const index = new VectorizeIndex(fake, { dimensions: DIMS, resilience: { retries: 0, timeoutMs: 20 } });
    fake.failNext('describe', 'stall');
    const error = await caught(index.count(NS));
    expect([error.code, error.retryable]).toEqual(['provider_timeout', true]);
  });

  it('maps binding errors to AppErrors', () => {
    const map = (message: string) => {
      const e = mapVectorizeError(new Error(message), 'query');
      return [e.code, e.retryable];
    };
    expect(map('VECTOR_UPSERT_ERROR (code = 40008): id too long; max is 64 bytes, got 87 bytes')).toEqual(['bad_request', false]);
    expect(map('VECTOR_QUERY_ERROR (code = 40025): max top K is 50, but got 60')).toEqual(['bad_request', false]);
    expect(map('VECTOR_QUERY_ERROR (code = 40026): Failed to parse the request body as JSON: returnMetadata: expected value')).toEqual(['bad_request', false]);
    expect(map('VECTOR_DELETE_ERROR (code = 40007): too many ids in payload; max id count is 100, got 101')).toEqual(['bad_request', false]);
    expect(map('VECTOR_DELETE_ERROR (code = 40041): Too Many Requests')).toEqual(['rate_limited', true]);
    expect(map('VECTOR_QUERY_ERROR: Status + 500')).toEqual(['provider_error', true]);
    expect(map('VECTOR_QUERY_ERROR (code = 49999): something new')).toEqual(['provider_error', true]);
    expect(map('Binding VECTORIZE needs to be run remotely')).toEqual(['misconfigured', false]);
    const provider = mapVectorizeError(new Error('VECTOR_QUERY_ERROR: Status + 500 internal detail'), 'query');
    expect(provider.message).toBe('Vectorize query failed.'); // clients see no backend detail
  });
});

describe('FakeVectorize is no kinder than Vectorize', () => {
  const fake = () => new FakeVectorize({ dimensions: 2, metadataIndexes: ['tag'] });
  const v = (id: string, metadata: Record<string, string | number | boolean> = {}, namespace?: string) => ({ id, values: [1, 0], metadata, namespace });

  it('refuses what Vectorize refuses, with its error texts', async () => {
    const f = fake();
    await expect(f.query([1, 0], { topK: 101 })).rejects.toThrow('max top K is 100, but got 101');
    await expect(f.query([1, 0], { topK: 51, returnMetadata: 'all' })).rejects.toThrow('(code = 40025): with returnValues=true or returnMetadata=all, max top K is 50, but got 51');
    await expect(f.query([1, 0], { topK: 51, returnValues: true })).rejects.toThrow('max top K is 50');
    await expect(f.query([1, 0], { topK: 5, returnMetadata: true })).rejects.toThrow('(code = 40026)');
    await expect(f.query([1, 0, 0], {})).rejects.toThrow('(code = 40006): invalid query vector, expected 2 dimensions, and got 3 dimensions');
    await expect(f.upsert([v('x'.repeat(65))])).rejects.toThrow('(code = 40008): id too long; max is 64 bytes, got 65 bytes');
    await expect(f.upsert(Array.from({ length: 1001 }, (_, i) => v(`m${i}`)))).rejects.toThrow('max count is 1000, got 1001');
    await expect(f.upsert([{ id: 'd', values: [1, 0, 0] }])).rejects.toThrow('expected 2 dimensions');
    await expect(f.deleteByIds(Array.from({ length: 101 }, (_, i) => `m${i}`))).rejects.toThrow('max id count is 100, got 101');
    await expect(f.getByIds(Array.from({ length: 21 }, (_, i) => `m${i}`))).rejects.toThrow('max id count is 20, got 21');
    await expect(f.query([1, 0], { filter: { tag: { $ne: 'a', $nin: ['b'] } } })).rejects.toThrow('invalid filter');
  });

  it('hides writes until processed, and filters only on fields indexed when written', async () => {
    const f = fake();
    const { mutationId } = await f.upsert([v('early', { tag: 'a', kind: 'x' }, 'ns')]);
    expect((await f.query([1, 0], { namespace: 'ns' })).matches).toEqual([]);
    expect((await f.describe()).processedUpToMutation).toBeNull();
    f.processPending();
    expect(String((await f.describe()).processedUpToMutation)).toBe(mutationId);
    expect((await f.query([1, 0], { namespace: 'ns' })).count).toBe(1);
    expect((await f.query([1, 0], { namespace: 'other' })).count).toBe(0);
    expect((await f.query([1, 0], { filter: { kind: 'x' } })).count).toBe(0); // no metadata index
    expect((await f.query([1, 0], { filter: { kind: { $ne: 'y' } } })).count).toBe(0);
    f.createMetadataIndex('kind');
    expect((await f.query([1, 0], { filter: { kind: 'x' } })).count).toBe(0); // written before the index
    await f.upsert([v('late', { tag: 'a', kind: 'x' }, 'ns')]);
    f.processPending();
    expect((await f.query([1, 0], { filter: { kind: 'x' } })).matches.map((m) => m.id)).toEqual(['late']);
  });

  it('keeps ids unique per index: an upsert in another namespace moves the vector', async () => {
    const f = fake();
    await f.upsert([v('same', {}, 'a')]);
    await f.upsert([v('same', {}, 'b')]);
    f.processPending();
    expect((await f.query([1, 0], { namespace: 'a' })).count).toBe(0);
    expect((await f.query([1, 0], { namespace: 'b' })).count).toBe(1);
    expect((await f.describe()).vectorCount).toBe(1);
  });

  it('indexes only the first 64 bytes of a string', async () => {
    const f = fake();
    await f.upsert([v('long', { tag: 'x'.repeat(64) + 'tail' })]);
    f.processPending();
    expect((await f.query([1, 0], { filter: { tag: 'x'.repeat(64) + 'other' } })).count).toBe(1);
    expect((await f.query([1, 0], { filter: { tag: 'x'.repeat(64) + 'tail' }, returnMetadata: 'indexed' })).matches[0]!.metadata).toEqual({ tag: 'x'.repeat(64) });
  });
});
