import { createExecutionContext, createMessageBatch, evictDurableObject, getQueueResult, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import { consumeIngestBatch, MAX_ATTEMPTS } from '../src/ingestion/consumer';
import type { LocalVectorIndex } from '../src/engines/local/vector-index';
import { LocalVectorIndexClient } from '../src/engines/local/engine';
import { type IndexedPassage, isPassageIndex, type PassageQuery, type VectorMetadata } from '../src/domain/types';
import { getServices, type Services } from '../src/services';
import { api, query, uploadText, waitUntilSettled } from './helpers';
import { caught } from './support';

// worker-configuration.d.ts (generated before the class existed) types the binding as untyped.
const ns = env.VECTOR_INDEX as unknown as DurableObjectNamespace<LocalVectorIndex>;
const DIMS = 4;
const client = new LocalVectorIndexClient(ns, DIMS);
const services = getServices(env);
const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
const stub = (namespace: string) => ns.get(ns.idFromName(namespace));

const FUSION = { k: 60, vectorWeight: 1, keywordWeight: 1 };
const MODES = ['keyword', 'vector', 'hybrid'] as const;

/**
 * A passage with no context by default: keyword search expands queries with the top rows'
 * words (title included), so passages sharing a title would all match each other's words.
 */
function passage(id: string, text: string, context = ''): IndexedPassage {
  return { id, documentId: `doc-${id}`, title: 'Field notes', text, context, position: 0, page: null, headings: null };
}

/** Ids found by the index's one-call search. */
async function searchIds(namespace: string, query: Partial<Omit<PassageQuery, 'namespace'>> & { mode: PassageQuery['mode'] }) {
  const passages = await client.search({
    namespace,
    text: '',
    vector: query.mode === 'keyword' ? null : [1, 0, 0, 0],
    limit: 10,
    candidates: 50,
    fusion: FUSION,
    ...query,
  });
  return passages.map((p) => p.id);
}

describe('LocalVectorIndex as a passage index', () => {
  it('is a PassageIndex, and the engine uses it offline', () => {
    expect(isPassageIndex(client)).toBe(true);
    expect(isPassageIndex(services.vectors)).toBe(true);
  });

  it('publishes all of a batch or none of it', async () => {
    const namespace = unique('pub');
    await client.upsert(namespace, [
      { id: 'a', values: [1, 0, 0, 0], metadata: {} },
      { id: 'b', values: [0, 1, 0, 0], metadata: {} },
    ]);
    // Loads the keyword index first, so that a failed publish could only leak through memory.
    expect(await searchIds(namespace, { mode: 'keyword', text: 'puffin' })).toEqual([]);

    const error = await caught(
      client.publish(namespace, [passage('a', 'Puffins nest in burrows.'), passage('missing', 'Puffins again.'), passage('b', 'Gannets dive for puffin fish.')]),
    );
    expect(error.code).toBe('bad_request');
    expect(error.message).toContain('Vector index: 1 of 3 chunks have no stored vector');
    expect(error.message).toContain('"missing"');
    for (const mode of MODES) expect(await searchIds(namespace, { mode, text: 'puffins burrows gannets' })).toEqual([]);
    // After a restart too (SQL rolled back, not just memory).
    await evictDurableObject(stub(namespace));
    for (const mode of MODES) expect(await searchIds(namespace, { mode, text: 'puffins burrows gannets' })).toEqual([]);

    await client.publish(namespace, [passage('a', 'Puffins nest in burrows.'), passage('b', 'Gannets dive for fish.')]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'puffins' })).toEqual(['a']);
    expect(await searchIds(namespace, { mode: 'vector', vector: [0, 1, 0, 0] })).toEqual(['b', 'a']);
  });

  it('with vector weight 0, vector hits only fill in below the keyword hits, when those are too few', async () => {
    const namespace = unique('fill');
    const texts = ['Otters crack shellfish on stones.', 'Otters sleep holding paws.', 'Herons stalk fish in shallows.'];
    await client.upsert(namespace, [
      { id: 'o1', values: [0, 1, 0, 0], metadata: {} },
      { id: 'o2', values: [0, 0, 1, 0], metadata: {} },
      { id: 'h', values: [1, 0, 0, 0], metadata: {} },
    ]);
    await client.publish(namespace, [passage('o1', texts[0]!), passage('o2', texts[1]!), passage('h', texts[2]!)]);
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

  it('never returns a vector whose chunk is not published, in any mode', async () => {
    const namespace = unique('unpub');
    const records = [
      { id: 'pub', values: [0, 0, 1, 0], metadata: { tag: 'x' } },
      ...Array.from({ length: 6 }, (_, i) => ({ id: `hidden${i}`, values: [1, 0.01 * i, 0, 0], metadata: { tag: 'x' } })),
    ];
    await client.upsert(namespace, records);
    await client.publish(namespace, [passage('pub', 'Otters crack shellfish with stones.')]);
    // The unpublished vectors are stored and are the nearest ones to the query vector.
    const nearest = await client.query([1, 0, 0, 0], { namespace, topK: 7 });
    expect(nearest.slice(0, 6).map((m) => m.id).sort()).toEqual(records.slice(1).map((r) => r.id).sort());

    for (const mode of MODES) {
      for (const filter of [undefined, { tag: 'x' }]) {
        const ids = await searchIds(namespace, { mode, text: 'otters shellfish stones hidden', vector: [1, 0, 0, 0], filter });
        expect(ids, `${mode} ${JSON.stringify(filter)}`).toEqual(['pub']);
      }
    }
  });

  it('returns the passage as published, with its place in the document', async () => {
    const namespace = unique('shape');
    await client.upsert(namespace, [{ id: 'c1', values: [1, 0, 0, 0], metadata: {} }]);
    const published: IndexedPassage = {
      id: 'c1',
      documentId: 'd1',
      title: 'Seabirds',
      text: 'Albatrosses glide for hours without flapping.',
      context: 'Seabirds › Flight',
      position: 3,
      page: 2,
      headings: ['Seabirds', 'Flight'],
    };
    await client.publish(namespace, [published]);
    const [hit] = await client.search({ namespace, text: 'albatross gliding', vector: null, mode: 'keyword', limit: 5, candidates: 5, fusion: FUSION });
    const { context: _context, ...expected } = published;
    expect(hit).toMatchObject(expected);
    expect(hit!.score).toBeGreaterThan(0);
    // The context is searched (weighted as a title) though it is not returned.
    expect(await searchIds(namespace, { mode: 'keyword', text: 'flight' })).toEqual(['c1']);
  });

  it('applies the metadata filter to keyword search', async () => {
    const namespace = unique('kwfilter');
    const metas: Record<string, VectorMetadata> = { en: { lang: 'en' }, fr: { lang: 'fr' }, none: {} };
    await client.upsert(namespace, Object.entries(metas).map(([id, metadata], i) => ({ id, values: [1, i, 0, 0], metadata })));
    await client.publish(namespace, [
      passage('en', 'The glacier retreats every summer.'),
      passage('fr', 'Glacier data, recorded in French.'),
      passage('none', 'A glacier photograph without a language.'),
    ]);
    const keyword = (filter?: PassageQuery['filter']) => searchIds(namespace, { mode: 'keyword', text: 'glacier', filter }).then((ids) => ids.sort());
    expect(await keyword()).toEqual(['en', 'fr', 'none']);
    expect(await keyword({ lang: 'fr' })).toEqual(['fr']);
    expect(await keyword({ lang: { $ne: 'fr' } })).toEqual(['en', 'none']);
    expect(await keyword({ lang: { $in: ['en', 'fr'] } })).toEqual(['en', 'fr']);
    expect(await keyword({ lang: 'de' })).toEqual([]);
    // Hybrid takes the filter on both sides.
    expect(await searchIds(namespace, { mode: 'hybrid', text: 'glacier', filter: { lang: 'en' } })).toEqual(['en']);
    // A filter the index rejects is a bad request, as for vector queries.
    const badFilter = JSON.parse('{"lang":{"$gt":"a"}}') as PassageQuery['filter'];
    expect((await caught(client.search({ namespace, text: 'glacier', vector: null, mode: 'keyword', limit: 5, candidates: 5, filter: badFilter, fusion: FUSION }))).message).toContain('$gt');
  });

  it('forgets deleted ids in keyword and vector search', async () => {
    const namespace = unique('del');
    await client.upsert(namespace, [
      { id: 'keep', values: [0, 1, 0, 0], metadata: {} },
      { id: 'drop', values: [1, 0, 0, 0], metadata: {} },
    ]);
    await client.publish(namespace, [passage('keep', 'Moss grows on the north side of trees.'), passage('drop', 'Lichens and moss, moss, moss cover bare rock.')]);
    // (The feedback from "drop" brings "keep" in second, through "moss".)
    expect(await searchIds(namespace, { mode: 'keyword', text: 'lichens' })).toEqual(['drop', 'keep']);
    expect(await searchIds(namespace, { mode: 'vector' })).toEqual(['drop', 'keep']);

    await client.deleteByIds(namespace, ['drop']);
    expect(await client.count(namespace)).toBe(1);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'lichens' })).toEqual([]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'moss' })).toEqual(['keep']);
    // Gone from the keyword index in memory, not only from what is read back: its statistics
    // (idf) are those of an index built from SQL without it.
    const moss = { namespace, text: 'moss', vector: null, mode: 'keyword', limit: 5, candidates: 5, fusion: FUSION } as const;
    const scored = await client.search(moss);
    await evictDurableObject(stub(namespace));
    expect(await client.search(moss)).toEqual(scored);
    expect(await searchIds(namespace, { mode: 'vector' })).toEqual(['keep']);
    expect(await searchIds(namespace, { mode: 'hybrid', text: 'lichens moss' })).toEqual(['keep']);

    // The id upserted again is not searchable until it is published again, then with its new text.
    await client.upsert(namespace, [{ id: 'drop', values: [1, 0, 0, 0], metadata: {} }]);
    expect(await searchIds(namespace, { mode: 'vector' })).toEqual(['keep']);
    await client.publish(namespace, [passage('drop', 'Ferns unfurl in spring.')]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'lichens' })).toEqual([]);
    expect(await searchIds(namespace, { mode: 'keyword', text: 'ferns' })).toEqual(['drop']);
  });

  it('rebuilds the keyword index from SQL after a restart, with the same results', async () => {
    const namespace = unique('restart');
    const topics = ['tides', 'currents', 'plankton', 'kelp', 'reefs', 'squid', 'krill', 'whales'];
    // Every row a different length and vector, so no two score the same (ties may be ordered either way).
    const texts = Array.from({ length: 40 }, (_, i) => `${topics[i % 8]} and ${topics[(i * 3) % 8]} observed near buoy ${i}; ${'ocean '.repeat(i % 5)}${'sand '.repeat(2 * i)}`);
    await client.upsert(namespace, texts.map((_, i) => ({ id: `r${i}`, values: [1, i / 40, (i % 3) / 3, 0.5], metadata: { odd: i % 2 === 1 } })));
    await client.publish(namespace, texts.map((text, i) => passage(`r${i}`, text, `Survey › ${topics[i % 8]}`)));
    // Loaded before the changes below, so that they go through the index in memory.
    expect(await searchIds(namespace, { mode: 'keyword', text: 'buoy' })).toHaveLength(10);
    await client.deleteByIds(namespace, ['r0', 'r9']);
    await client.publish(namespace, [passage('r3', 'kelp forests shelter otters', 'Survey › kelp')]); // replaces r3's text

    const queries: Omit<PassageQuery, 'namespace'>[] = [
      { mode: 'keyword', text: 'kelp otters ocean', vector: null, limit: 20, candidates: 50, fusion: FUSION },
      { mode: 'keyword', text: 'whales krill', vector: null, limit: 20, candidates: 50, fusion: FUSION, filter: { odd: true } },
      { mode: 'hybrid', text: 'plankton tides otters', vector: [1, 0.5, 0.2, 0.5], limit: 20, candidates: 30, fusion: FUSION },
    ];
    const before = await Promise.all(queries.map((q) => client.search({ namespace, ...q })));
    for (const passages of before) expect(passages.length).toBeGreaterThan(3);
    expect(before[0]![0]!.id).toBe('r3');

    const keywordsLoaded = () => runInDurableObject(stub(namespace), (o: LocalVectorIndex) => (o as unknown as { keywords: unknown }).keywords !== null);
    expect(await keywordsLoaded()).toBe(true);
    await evictDurableObject(stub(namespace));
    expect(await keywordsLoaded()).toBe(false); // a new instance: nothing in memory
    const after = await Promise.all(queries.map((q) => client.search({ namespace, ...q })));
    expect(await keywordsLoaded()).toBe(true);
    expect(after).toEqual(before);
    for (const passages of after) for (const p of passages) expect(['r0', 'r9']).not.toContain(p.id);
    expect(after[0]!.find((p) => p.id === 'r3')?.text).toBe('kelp forests shelter otters');
  });
});

/** Puts an original in R2 and a `queued` row in D1, without a queue message: only the test ingests it. */
async function stage(namespace: string, text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const id = crypto.randomUUID().replaceAll('-', '');
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, bytes);
  await services.documents.enqueue([{ id, namespace, title: `doc ${id.slice(0, 6)}`, filename: null, type: 'txt', size: bytes.byteLength, r2Key, metadata: {} }]);
  return id;
}

/** Services whose document store fails to mark documents ready (after the pipeline published them). */
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

describe('the engine with the passage index', () => {
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
    // Inflected query words match through the Porter stems of the keyword index.
    expect((await query({ query: 'cracking urchin', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded.id);
    expect(await query({ query: 'otters', namespace: unique('other'), mode: 'keyword' })).toEqual([]);

    expect((await api(`/v1/documents/${uploaded.id}`, { method: 'DELETE' })).status).toBe(200);
    for (const mode of MODES) expect(await query({ query: 'otters sleeping in kelp', namespace, mode }), mode).toEqual([]);
    expect(await services.vectors.count(namespace)).toBe(0);
  });

  it('filters keyword queries by document metadata', async () => {
    const namespace = unique('engf');
    const text = 'Barnacles glue themselves head-first to rocks and ships.';
    const a = await uploadText({ text, title: 'A', namespace, metadata: { shelf: 'a' } });
    const b = await uploadText({ text: `${text} Again.`, title: 'B', namespace, metadata: { shelf: 'b' } });
    await waitUntilSettled(a.id);
    await waitUntilSettled(b.id);
    expect((await query({ query: 'barnacles', namespace, mode: 'keyword' })).map((p) => p.documentId).sort()).toEqual([a.id, b.id].sort());
    expect((await query({ query: 'barnacles', namespace, mode: 'keyword', filter: { shelf: 'b' } })).map((p) => p.documentId)).toEqual([b.id]);
    expect(await query({ query: 'barnacles', namespace, mode: 'keyword', filter: { shelf: 'c' } })).toEqual([]);
  });

  it('unpublishes a document whose marking ready fails, while its retry is pending, and publishes it on the retry', async () => {
    const namespace = unique('retry');
    const marker = unique('q');
    const id = await stage(namespace, `Hermit crabs trade shells when they outgrow them. Marker ${marker}.`);
    const result = await consumeOne(id, 1, failingMarkReady(new Error('D1 went away'), async () => {}));
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(['m1']);
    expect((await services.documents.get(id))?.status).toBe('queued');
    for (const mode of MODES) expect(await query({ query: `hermit crabs shells ${marker}`, namespace, mode }), mode).toEqual([]);
    // The vectors stay, so the retry embeds nothing again and publishes the same chunks.
    expect(await services.vectors.count(namespace)).toBeGreaterThan(0);

    await consumeOne(id, 2, services);
    expect((await services.documents.get(id))?.status).toBe('ready');
    for (const mode of MODES) expect((await query({ query: `hermit crabs shells ${marker}`, namespace, mode }))[0]?.documentId, mode).toBe(id);
  });

  for (const [kind, error, attempts] of [
    ['a transient error on the last attempt', new Error('D1 went away'), MAX_ATTEMPTS],
    ['a non-retryable error', new AppError('misconfigured', 'The catalog is misconfigured.'), 1],
  ] as const) {
    it(`removes a document that fails after publishing (${kind}) from search`, async () => {
      const namespace = unique('fail');
      const marker = unique('q');
      const id = await stage(namespace, `Hermit crabs trade shells when they outgrow them. Marker ${marker}.`);
      let searchableWhenFailing: string[] = [];
      const using = failingMarkReady(error, async () => {
        searchableWhenFailing = (await query({ query: marker, namespace, mode: 'keyword' })).map((p) => p.documentId);
      });
      const result = await consumeOne(id, attempts, using);
      // The failure came after the chunks were published: they were searchable then.
      expect(searchableWhenFailing).toEqual([id]);
      if (error instanceof AppError) expect(result.explicitAcks).toEqual(['m1']);
      else expect(result.retryMessages.map((m) => m.msgId)).toEqual(['m1']);

      const document = await services.documents.get(id);
      expect(document?.status).toBe('failed');
      expect(document?.error).toMatch(/^Indexing failed/);
      for (const mode of MODES) {
        expect(await query({ query: `hermit crabs shells ${marker}`, namespace, mode }), mode).toEqual([]);
      }
      expect(await services.vectors.count(namespace)).toBe(0);
      expect(await services.chunks.ids(id)).toEqual([]);
    });
  }
});
