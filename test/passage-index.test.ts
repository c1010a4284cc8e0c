import { createExecutionContext, createMessageBatch, evictDurableObject, getQueueResult, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AppError, type EngineQuery, type IndexedChunk, parseFilter } from '../src/domain';
import { LocalEngine } from '../src/engines/local/engine';
import type { LocalVectorIndex } from '../src/engines/local/vector-index';
import { consumeIngestBatch, MAX_ATTEMPTS } from '../src/ingestion/consumer';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';
import { api, query, uploadText, waitUntilSettled } from './helpers';
import { caught } from './support';

/**
 * What is particular to the local engine's Durable Object (LocalVectorIndex): SQL rolled back
 * and memory untouched by a refused call, the in-memory keyword index kept in step with SQL and
 * rebuilt from it after a restart, and the weight-0 vector fill-in. What both engines must do
 * is the search-engine contract (search-engine-conformance.test.ts).
 */

// worker-configuration.d.ts (generated before the class existed) types the binding as untyped.
const ns = env.VECTOR_INDEX as unknown as DurableObjectNamespace<LocalVectorIndex>;
const DIMS = 4;
const engine = new LocalEngine(ns, DIMS, { filterableFields: ['odd'] });
const services = getServices(env);
const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
const stub = (namespace: string) => ns.get(ns.idFromName(namespace));

const FUSION = { k: 60, vectorWeight: 1, keywordWeight: 1 };
const MODES = ['keyword', 'vector', 'hybrid'] as const;

/**
 * A chunk, its own document's by default, with no context by default: keyword search expands
 * queries with the top rows' words (context included), so chunks sharing a context would all
 * match each other's words.
 */
function chunk(id: string, text: string, vector: number[] | null, options: Partial<Omit<IndexedChunk, 'id' | 'text' | 'vector'>> = {}): IndexedChunk {
  return { id, documentId: `doc-${id}`, title: 'Field notes', text, context: '', position: 0, page: null, headings: null, metadata: {}, vector, ...options };
}

/** Stages the chunks and activates them as their documents' versions. */
async function publish(namespace: string, chunks: IndexedChunk[]): Promise<void> {
  await engine.stage(namespace, chunks);
  const versions = new Map<string, string[]>();
  for (const c of chunks) versions.set(c.documentId, [...(versions.get(c.documentId) ?? []), c.id]);
  await engine.activate(namespace, [...versions].map(([documentId, chunkIds]) => ({ documentId, chunkIds })));
}

type Query = Omit<EngineQuery, 'namespace'>;
const base: Query = { text: '', vector: null, mode: 'keyword', limit: 10, candidates: 50, filter: null, fusion: FUSION };

/** Ids found by the engine's one-call search (a vector query of [1, 0, 0, 0] unless told). */
async function searchIds(namespace: string, q: Partial<Query> & { mode: Query['mode'] }): Promise<string[]> {
  const passages = await engine.search({ ...base, vector: q.mode === 'keyword' ? null : [1, 0, 0, 0], ...q, namespace });
  return passages.map((p) => p.id);
}

/** The ids the Durable Object's vector-only query finds: it reads the rows in memory, staged ones included. */
async function storedIds(namespace: string): Promise<string[]> {
  return (await stub(namespace).query([1, 0, 0, 0], 100, null)).map((m) => m.id).sort();
}

describe('the local engine', () => {
  it('is the engine offline', () => {
    expect(services.engine).toBeInstanceOf(LocalEngine);
    expect(services.engine.name).toBe('local');
  });

  it('stages all of a call or none of it, in SQL and in memory, across a restart', async () => {
    const namespace = unique('stage');
    await publish(namespace, [chunk('seed', 'Terns hover before they dive.', [0, 0, 0, 1])]);
    // Loads the keyword index and the rows in memory first, so that a refused call could leak through them.
    expect(await searchIds(namespace, { mode: 'hybrid', text: 'puffin' })).toEqual(['seed']);

    const error = await caught(
      engine.stage(namespace, [
        chunk('a', 'Puffins nest in burrows.', [1, 0, 0, 0]),
        chunk('x'.repeat(65), 'Puffins again.', [0, 0, 1, 0]), // an id Vectorize would refuse
        chunk('b', 'Gannets dive for puffin fish.', [0, 1, 0, 0]),
      ]),
    );
    expect(error.code).toBe('bad_request');
    expect(error.message).toContain('64 bytes');
    // A chunk without a vector that has none stored is not staged, and said so.
    expect(await engine.stage(namespace, [chunk('missing', 'Puffins again.', null)])).toEqual(['missing']);
    const nothingStaged = async () => {
      expect(await engine.count(namespace)).toMatchObject({ passages: 1, vectors: 1 });
      expect(await storedIds(namespace)).toEqual(['seed']);
      expect((await caught(engine.activate(namespace, [{ documentId: 'doc-a', chunkIds: ['a'] }]))).status).toBe(400);
      for (const mode of MODES) expect(await searchIds(namespace, { mode, text: 'puffins burrows gannets' }), mode).not.toContain('a');
    };
    await nothingStaged();
    // After a restart too (SQL rolled back, not just memory).
    await evictDurableObject(stub(namespace));
    await nothingStaged();

    await publish(namespace, [chunk('a', 'Puffins nest in burrows.', [1, 0, 0, 0]), chunk('b', 'Gannets dive for fish.', [0, 1, 0, 0])]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'puffins' })).toEqual(['a']);
    expect(await searchIds(namespace, { mode: 'vector', vector: [0.5, 1, 0, 0] })).toEqual(['b', 'a', 'seed']);
  });

  it('with vector weight 0, vector hits only fill in below the keyword hits, when those are too few', async () => {
    const namespace = unique('fill');
    await publish(namespace, [
      chunk('o1', 'Otters crack shellfish on stones.', [0, 1, 0, 0]),
      chunk('o2', 'Otters sleep holding paws.', [0, 0, 1, 0]),
      chunk('h', 'Herons stalk fish in shallows.', [1, 0, 0, 0]),
    ]);
    const fusion = { k: 60, vectorWeight: 0, keywordWeight: 1 };
    // The nearest vector is the heron's; with weight 0 it cannot outrank a keyword hit.
    const hybrid = await searchIds(namespace, { mode: 'hybrid', text: 'otters', vector: [1, 0, 0, 0], limit: 3, fusion });
    expect(hybrid.slice(0, 2).sort()).toEqual(['o1', 'o2']);
    expect(hybrid[2]).toBe('h');
    // Enough keyword hits for the page: the same passages as keyword search, in its order.
    const keyword = await searchIds(namespace, { mode: 'keyword', text: 'otters', limit: 2 });
    expect(await searchIds(namespace, { mode: 'hybrid', text: 'otters', vector: [1, 0, 0, 0], limit: 2, fusion })).toEqual(keyword);
    // No keyword hit at all (a misspelling): the vector list fills the page.
    expect(await searchIds(namespace, { mode: 'hybrid', text: 'herrons', vector: [1, 0, 0, 0], limit: 1, fusion })).toEqual(['h']);
  });

  it('keeps the keyword index in memory in step with SQL as documents are removed and replaced', async () => {
    const namespace = unique('step');
    await publish(namespace, [
      chunk('keep', 'Moss grows on the north side of trees.', [0, 1, 0, 0]),
      chunk('drop', 'Lichens and moss, moss, moss cover bare rock.', [1, 0, 0, 0]),
    ]);
    // (The feedback from "drop" brings "keep" in second, through "moss".)
    expect(await searchIds(namespace, { mode: 'keyword', text: 'lichens' })).toEqual(['drop', 'keep']);
    expect(await searchIds(namespace, { mode: 'vector' })).toEqual(['drop', 'keep']);

    await engine.remove(namespace, 'doc-drop');
    expect(await engine.count(namespace)).toMatchObject({ passages: 1, vectors: 1 });
    expect(await searchIds(namespace, { mode: 'keyword', text: 'lichens' })).toEqual([]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'moss' })).toEqual(['keep']);
    // Gone from the keyword index in memory, not only from what is read back: its statistics
    // (idf) are those of an index built from SQL without it.
    const moss: Query = { ...base, text: 'moss', limit: 5, candidates: 5 };
    const scored = await engine.search({ namespace, ...moss });
    await evictDurableObject(stub(namespace));
    expect(await engine.search({ namespace, ...moss })).toEqual(scored);
    expect(await searchIds(namespace, { mode: 'vector' })).toEqual(['keep']);
    expect(await searchIds(namespace, { mode: 'hybrid', text: 'lichens moss' })).toEqual(['keep']);

    // The id staged again is not searchable until activated, then with its new text.
    await engine.stage(namespace, [chunk('drop', 'Ferns unfurl in spring.', [1, 0, 0, 0])]);
    expect(await searchIds(namespace, { mode: 'vector' })).toEqual(['keep']);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'ferns' })).toEqual([]);
    await engine.activate(namespace, [{ documentId: 'doc-drop', chunkIds: ['drop'] }]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'lichens' })).toEqual([]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'ferns' })).toEqual(['drop']);

    // A new version replacing a chunk: the old one leaves the index in memory as it leaves SQL.
    await engine.stage(namespace, [chunk('keep2', 'Moss carpets old stone walls.', [0, 0, 1, 0], { documentId: 'doc-keep' })]);
    await engine.activate(namespace, [{ documentId: 'doc-keep', chunkIds: ['keep2'] }]);
    const mossAgain = await engine.search({ namespace, ...moss });
    expect(mossAgain.map((p) => p.id)).toEqual(['keep2']);
    await evictDurableObject(stub(namespace));
    expect(await engine.search({ namespace, ...moss })).toEqual(mossAgain);
  });

  it('rebuilds the keyword index from SQL after a restart, with the same results', async () => {
    const namespace = unique('restart');
    const topics = ['tides', 'currents', 'plankton', 'kelp', 'reefs', 'squid', 'krill', 'whales'];
    // Every row a different length and vector, so no two score the same (ties may be ordered either way).
    const texts = Array.from({ length: 40 }, (_, i) => `${topics[i % 8]} and ${topics[(i * 3) % 8]} observed near buoy ${i}; ${'ocean '.repeat(i % 5)}${'sand '.repeat(2 * i)}`);
    await publish(
      namespace,
      texts.map((text, i) => chunk(`r${i}`, text, [1, i / 40, (i % 3) / 3, 0.5], { context: `Survey › ${topics[i % 8]}`, metadata: { odd: i % 2 === 1 } })),
    );
    // Loaded before the changes below, so that they go through the index in memory.
    expect(await searchIds(namespace, { mode: 'keyword', text: 'buoy' })).toHaveLength(10);
    await engine.remove(namespace, 'doc-r0');
    await engine.remove(namespace, 'doc-r9');
    // A new version of r3's document: another chunk in place of r3.
    await engine.stage(namespace, [chunk('r3b', 'kelp forests shelter otters', [1, 0.3, 0, 0.5], { documentId: 'doc-r3', context: 'Survey › kelp', metadata: { odd: true } })]);
    await engine.activate(namespace, [{ documentId: 'doc-r3', chunkIds: ['r3b'] }]);

    const queries: Query[] = [
      { ...base, text: 'kelp otters ocean', limit: 20 },
      { ...base, text: 'whales krill', limit: 20, filter: parseFilter({ odd: true }) },
      { ...base, mode: 'hybrid', text: 'plankton tides otters', vector: [1, 0.5, 0.2, 0.5], limit: 20, candidates: 30 },
    ];
    const before = await Promise.all(queries.map((q) => engine.search({ namespace, ...q })));
    for (const passages of before) expect(passages.length).toBeGreaterThan(3);
    expect(before[0]![0]!.id).toBe('r3b');

    const keywordsLoaded = () => runInDurableObject(stub(namespace), (o: LocalVectorIndex) => (o as unknown as { keywords: unknown }).keywords !== null);
    expect(await keywordsLoaded()).toBe(true);
    await evictDurableObject(stub(namespace));
    expect(await keywordsLoaded()).toBe(false); // a new instance: nothing in memory
    const after = await Promise.all(queries.map((q) => engine.search({ namespace, ...q })));
    expect(await keywordsLoaded()).toBe(true);
    expect(after).toEqual(before);
    for (const passages of after) for (const p of passages) expect(['r0', 'r9', 'r3']).not.toContain(p.id);
    expect(after[0]!.find((p) => p.id === 'r3b')?.text).toBe('kelp forests shelter otters');
  });
});

/** Puts an original in R2 and a `queued` row in D1, without a queue message: only the test ingests it. */
async function enqueue(namespace: string, text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const id = crypto.randomUUID().replaceAll('-', '');
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, bytes);
  await services.documents.enqueue([{ id, namespace, title: `doc ${id.slice(0, 6)}`, filename: null, type: 'txt', size: bytes.byteLength, r2Key, metadata: {} }]);
  return id;
}

/** Services whose document store fails to mark documents ready (after the pipeline activated them). */
function failingMarkReady(error: unknown, onCall: () => Promise<void>): Services {
  const documents = new Proxy(services.documents, {
    get(target, property) {
      if (property === 'markReady') {
        return async () => {
          await onCall();
          throw error;
        };
      }
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...services, documents };
}

async function consumeOne(documentId: string, attempts: number, using: Services) {
  const batch = createMessageBatch('rag-engine-ingest', [{ id: 'm1', timestamp: new Date(), attempts, body: { type: 'ingest', documentId } }]);
  const ctx = createExecutionContext();
  await consumeIngestBatch(batch, using);
  return getQueueResult(batch, ctx);
}

describe('ingestion with the local engine', () => {
  it('finds an uploaded document in every mode, and nothing of it once deleted', async () => {
    const namespace = unique('eng');
    const uploaded = await uploadText({
      text: 'Sea otters wrap themselves in kelp to sleep without drifting away. They crack urchins on their bellies with stones.',
      title: 'Otter habits',
      namespace,
    });
    expect((await waitUntilSettled(uploaded.id)).status).toBe('ready');
    for (const mode of MODES) {
      const passages = await query({ query: 'otters sleeping in kelp', namespace, mode });
      expect(passages[0]?.documentId, mode).toBe(uploaded.id);
      expect(passages[0]?.text).toContain('urchins');
      expect(passages[0]?.title).toBe('Otter habits');
    }
    expect((await api(`/v1/documents/${uploaded.id}`, { method: 'DELETE' })).status).toBe(200);
    for (const mode of MODES) expect(await query({ query: 'otters sleeping in kelp', namespace, mode }), mode).toEqual([]);
    expect(await services.engine.count(namespace)).toMatchObject({ passages: 0, vectors: 0 });
  });

  it('takes back a document whose marking ready fails, while its retry is pending, and serves it after the retry', async () => {
    const namespace = unique('retry');
    const marker = unique('q');
    const id = await enqueue(namespace, `Hermit crabs trade shells when they outgrow them. Marker ${marker}.`);
    const result = await consumeOne(id, 1, failingMarkReady(new Error('D1 went away'), async () => {}));
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(['m1']);
    expect((await services.documents.get(id))?.status).toBe('queued');
    for (const mode of MODES) expect(await query({ query: `hermit crabs shells ${marker}`, namespace, mode }), mode).toEqual([]);
    expect((await services.engine.count(namespace)).passages).toBe(0);

    // The retry must index the document again: the vectors were taken back with it.
    await consumeOne(id, 2, services);
    expect((await services.documents.get(id))?.status).toBe('ready');
    for (const mode of MODES) expect((await query({ query: `hermit crabs shells ${marker}`, namespace, mode }))[0]?.documentId, mode).toBe(id);
  });

  for (const [kind, error, attempts] of [
    ['a transient error on the last attempt', new Error('D1 went away'), MAX_ATTEMPTS],
    ['a non-retryable error', new AppError('misconfigured', 'The catalog is misconfigured.'), 1],
  ] as const) {
    it(`removes a document that fails after activation (${kind}) from search`, async () => {
      const namespace = unique('fail');
      const marker = unique('q');
      const id = await enqueue(namespace, `Hermit crabs trade shells when they outgrow them. Marker ${marker}.`);
      let searchableWhenFailing: string[] = [];
      const using = failingMarkReady(error, async () => {
        searchableWhenFailing = (await query({ query: marker, namespace, mode: 'keyword' })).map((p) => p.documentId);
      });
      const result = await consumeOne(id, attempts, using);
      // The failure came after the chunks were activated: they were searchable then.
      expect(searchableWhenFailing).toEqual([id]);
      if (error instanceof AppError) expect(result.explicitAcks).toEqual(['m1']);
      else expect(result.retryMessages.map((m) => m.msgId)).toEqual(['m1']);

      const document = await services.documents.get(id);
      expect(document?.status).toBe('failed');
      expect(document?.error).toMatch(/^Indexing failed/);
      for (const mode of MODES) {
        expect(await query({ query: `hermit crabs shells ${marker}`, namespace, mode }), mode).toEqual([]);
      }
      expect(await services.engine.count(namespace)).toMatchObject({ passages: 0, vectors: 0 });
      expect(await services.chunks.count(namespace)).toBe(0);
    });
  }
});
