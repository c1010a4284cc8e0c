import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { EmbeddingProvider, SearchEngine } from '../src/domain';
import { ingestDocuments } from '../src/ingestion/pipeline';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';
import { FakeVectorize } from '../fakes/vectorize';
import { cloudflareEngine, localEngine } from './engines';

/**
 * The pipeline's visibility rule, in both engines: while a ready document is re-ingested, its
 * previous version is what search returns, whole; once the new version is ready, only it is.
 */
const base = getServices(env);
const fusion = { k: 60, vectorWeight: 1, keywordWeight: 1 };

const engines: [string, () => { engine: SearchEngine; settle: () => void }][] = [
  ['local', () => ({ engine: localEngine(base.embedder.dimensions), settle: () => {} })],
  [
    'cloudflare',
    () => {
      const fake = new FakeVectorize({ dimensions: base.embedder.dimensions, metadataIndexes: ['documentId'] });
      return { engine: cloudflareEngine(fake, base.embedder.dimensions), settle: () => fake.processPending() };
    },
  ],
];

/** Paragraphs long enough to make several chunks, each carrying `marker`. */
const version = (marker: string) =>
  Array.from({ length: 6 }, (_, i) => `Paragraph ${i} about ${marker} and the harbour lighthouse keeper's log, entry ${i}. `.repeat(25)).join('\n\n');

describe.each(engines)('re-ingesting a ready document (%s engine)', (_name, make) => {
  it('serves the previous version whole until the new one is ready, then only the new one', async () => {
    const { engine, settle } = make();
    const id = crypto.randomUUID().replaceAll('-', '');
    const namespace = `re${id.slice(0, 8)}`;
    const r2Key = `originals/${namespace}/${id}`;
    const services: Services = { ...base, engine };
    const hits = async (word: string, mode: 'keyword' | 'hybrid') => {
      const vector = mode === 'keyword' ? null : (await base.embedder.embed([word]))[0]!;
      const found = await engine.search({ namespace, text: word, vector, mode, limit: 50, candidates: 50, filter: null, fusion });
      return found.filter((p) => p.text.includes(word)).length;
    };

    await services.originals.put(r2Key, version('alphaold'));
    await services.documents.enqueue([{ id, namespace, title: 'Log', filename: null, type: 'txt', size: 1, r2Key, metadata: {} }]);
    const first = (await ingestDocuments(services, [id])).get(id);
    if (first?.status !== 'ready') throw new Error(`not ready: ${JSON.stringify(first)}`);
    settle();
    expect(await hits('alphaold', 'keyword')).toBe(first.chunkCount);

    // Version 2, checked from inside the ingestion: while it is embedded, and once all of it is
    // staged, just before it is activated.
    await services.originals.put(r2Key, version('betanew'));
    const seen: number[][] = [];
    const look = async () => {
      settle();
      seen.push([await hits('alphaold', 'keyword'), await hits('betanew', 'keyword'), await hits('alphaold', 'hybrid'), await hits('betanew', 'hybrid')]);
    };
    const embedder: EmbeddingProvider = {
      model: base.embedder.model,
      dimensions: base.embedder.dimensions,
      maxBatchSize: base.embedder.maxBatchSize,
      embed: async (texts) => (await look(), base.embedder.embed(texts)),
    };
    const watched: SearchEngine = Object.assign(Object.create(engine) as SearchEngine, {
      activate: async (ns: string, versions: Parameters<SearchEngine['activate']>[1]) => (await look(), engine.activate(ns, versions)),
    });
    const second = (await ingestDocuments({ ...services, embedder, engine: watched }, [id])).get(id);
    if (second?.status !== 'ready') throw new Error(`not ready: ${JSON.stringify(second)}`);
    expect(seen.length).toBe(2); // while embedding, and staged before activation
    for (const [oldKeyword, newKeyword, oldHybrid, newHybrid] of seen) {
      expect([oldKeyword, newKeyword, newHybrid]).toEqual([first.chunkCount, 0, 0]);
      expect(oldHybrid).toBe(first.chunkCount);
    }
    settle();
    expect(await hits('alphaold', 'keyword')).toBe(0);
    expect(await hits('alphaold', 'hybrid')).toBe(0);
    expect(await hits('betanew', 'keyword')).toBe(second.chunkCount);
    expect((await engine.count(namespace)).passages).toBe(second.chunkCount);
  });
});
