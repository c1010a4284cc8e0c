/**
 * Index generations (issue "operations", part 5): a change of embedding model or chunking
 * builds a new generation beside the serving one; queries keep the serving one, embedded with
 * its own model, until the new one is complete, then switch; the old one is removed. Driven
 * through the real queue handler, with spy queues delivered by the test.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { getServices } from '../src/composition';
import type { EmbeddingProvider, IngestRequest, SearchEngine } from '../src/domain';
import { atGeneration } from '../src/engines/generation-engine';
import { consumeIngestBatch } from '../src/ingestion/consumer';
import { removeEverywhere, startRebuild } from '../src/ingestion/generations';
import { sweepGenerations } from '../src/ingestion/sweeper';
import { AppError } from '../src/domain/errors';
import { search } from '../src/retrieval/search';
import type { Services } from '../src/services';
import { spyQueue } from './support';
import { FakeVectorize } from '../fakes/vectorize';
import { cloudflareEngine } from './engines';

const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
const base = getServices(env);

/**
 * Another embedding model: the local embedder's vectors rotated by a third of their length, so
 * a query embedded by one model finds nothing in particular among the other's vectors.
 */
function rotatedModel(embedder: EmbeddingProvider): EmbeddingProvider {
  const shift = Math.floor(embedder.dimensions / 3);
  return Object.create(embedder, {
    model: { value: `${embedder.model}-rotated` },
    embed: {
      value: async (texts: string[]) =>
        (await embedder.embed(texts)).map((v) => {
          const out = new Float32Array(v.length);
          for (let i = 0; i < v.length; i++) out[(i + shift) % v.length] = v[i]!;
          return out;
        }),
    },
  });
}

interface Harness {
  services: Services;
  sent: IngestRequest[];
}

/** An engine for one test, and what makes its writes visible (Vectorize applies them later). */
interface Engine {
  engine: SearchEngine;
  settle(): void;
}

function makeEngine(kind: 'local' | 'cloudflare'): Engine {
  if (kind === 'local') return { engine: base.engine, settle: () => {} };
  const fake = new FakeVectorize({ dimensions: base.embedder.dimensions, metadataIndexes: ['documentId'] });
  return { engine: cloudflareEngine(fake, base.embedder.dimensions), settle: () => fake.processPending() };
}

/**
 * A namespace of documents on `topics`, ingested into generation 0 with the current model
 * (and `config`), over a fresh engine of `kind`.
 */
async function ingested(kind: 'local' | 'cloudflare', topics: string[], config: Partial<Services['config']> = {}) {
  const namespace = unique('gen');
  const { engine, settle } = makeEngine(kind);
  const before = harness(engine, base.embedder, config);
  const ids = await Promise.all(topics.map((topic) => stage(before.services, namespace, topic, textOf(topic))));
  await deliver(before.services, ids.map((documentId) => ({ type: 'ingest', documentId })));
  return { namespace, engine, settle, before, ids };
}

/** `embedder`, throwing what `fault` returns for a call's texts (null: no fault). */
function faulty(embedder: EmbeddingProvider, fault: (texts: string[]) => Error | null): EmbeddingProvider {
  return Object.create(embedder, {
    embed: {
      value: async (texts: string[]) => {
        const error = fault(texts);
        if (error) throw error;
        return embedder.embed(texts);
      },
    },
  });
}

/** Services over `engine` with spy queues; `embedder` and chunking as given (the configuration after a change). */
function harness(engine: SearchEngine, embedder: EmbeddingProvider, config: Partial<Services['config']> = {}): Harness {
  const { queue, sent } = spyQueue();
  const models = new Map([base.embedder, embedder].map((e) => [e.model, e]));
  const services: Services = {
    ...base,
    queue,
    largeQueue: queue,
    engine,
    embedder,
    embedderFor: (settings) => models.get(settings.model) ?? base.embedderFor(settings),
    config: { ...base.config, ...config },
  };
  return { services, sent };
}

async function deliver(services: Services, bodies: IngestRequest[]): Promise<void> {
  const batch = createMessageBatch('rag-engine-ingest', bodies.map((body) => ({ id: crypto.randomUUID(), timestamp: Date.now(), attempts: 1, body })));
  await consumeIngestBatch(batch, services);
}

/**
 * Delivers what was sent as the queue would with faults around: every message twice (two
 * copies in one batch), batches of up to 10, and what the handler asks to retry again with its
 * attempts counted (delays skipped), until nothing is left.
 */
async function drainTwice(h: Harness): Promise<void> {
  let pending = h.sent.splice(0).map((body) => ({ body, attempts: 1 }));
  for (let round = 0; pending.length; round++) {
    if (round > 50) throw new Error('the queue never drained');
    const next: typeof pending = [];
    for (let i = 0; i < pending.length; i += 5) {
      const group = pending.slice(i, i + 5).flatMap((m) => [m, m]);
      const batch = createMessageBatch('rag-engine-ingest', group.map((m, j) => ({ id: `m${j}`, timestamp: Date.now(), attempts: m.attempts, body: m.body })));
      const ctx = createExecutionContext();
      await consumeIngestBatch(batch, h.services);
      const { retryMessages } = await getQueueResult(batch, ctx);
      const retried = new Set(retryMessages.map((r) => r.msgId));
      group.forEach((m, j) => j % 2 === 0 && (retried.has(`m${j}`) || retried.has(`m${j + 1}`)) && next.push({ ...m, attempts: m.attempts + 1 }));
    }
    pending = [...next, ...h.sent.splice(0).map((body) => ({ body, attempts: 1 }))];
  }
}

/** Delivers what was sent, one message at a time, until nothing is left. */
async function drain(h: Harness): Promise<void> {
  for (let n = 0; h.sent.length; n++) {
    if (n > 500) throw new Error('the queue never drained');
    await deliver(h.services, [h.sent.shift()!]);
  }
}

/** Puts an original in R2 and a `queued` row in D1. */
async function stage(services: Services, namespace: string, title: string, text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const id = crypto.randomUUID().replaceAll('-', '');
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, bytes);
  await services.documents.enqueue([{ id, namespace, title, filename: null, type: 'txt', size: bytes.byteLength, r2Key, metadata: {} }]);
  return id;
}

const TOPICS = ['glacier retreat', 'coral bleaching', 'volcanic ash', 'desert locusts', 'tidal estuaries', 'boreal peat', 'monsoon floods', 'alpine lichens'];
const textOf = (topic: string) =>
  Array.from({ length: 8 }, (_, s) => `Field note ${s} on ${topic}: the ${topic} survey measured ${topic} at station ${s} and logged ${topic} again.`).join(' ');

/** Which document each topic's vector query finds first. */
async function firstHits(services: Services, namespace: string, settle: () => void): Promise<(string | undefined)[]> {
  settle();
  return Promise.all(TOPICS.map(async (topic) => (await search(services, { query: `${topic} survey`, topK: 3, namespace, mode: 'vector' }))[0]?.documentId));
}

/**
 * Makes the engine's writes visible; with Vectorize, which applies them later, also lets
 * writeDelayMs pass for the namespace's rebuild and runs the sweeper, which switches a complete
 * build in only then.
 */
async function applyWrites(services: Services, namespace: string, settle: () => void): Promise<void> {
  settle();
  const delay = services.engine.limits.writeDelayMs;
  if (delay === 0) return;
  await env.DB.prepare('UPDATE generation_documents SET updated_at = ? WHERE namespace = ?').bind(Date.now() - delay - 1000, namespace).run();
  await sweepGenerations(services);
}

async function servingGeneration(namespace: string): Promise<number | undefined> {
  const row = await env.DB.prepare(`SELECT generation FROM index_generations WHERE namespace = ? AND state = 'serving'`).bind(namespace).first<{ generation: number }>();
  return row?.generation;
}

async function chunkRows(namespace: string, generation: number): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM chunks WHERE namespace = ? AND generation = ?').bind(namespace, generation).first<{ n: number }>();
  return row?.n ?? 0;
}

for (const kind of ['local', 'cloudflare'] as const) describe(`index generations (${kind} engine)`, () => {
  it('answers a query before, during and after a change of embedding model with its passage every time', async () => {
    const { namespace, engine, settle, before, ids } = await ingested(kind, TOPICS);
    expect(await firstHits(before.services, namespace, settle)).toEqual(ids);
    expect(await servingGeneration(namespace)).toBe(0);

    // The model changes (a deploy): until a rebuild, queries still use generation 0, embedded with its model.
    const after = harness(engine, rotatedModel(base.embedder));
    expect(await firstHits(after.services, namespace, settle)).toEqual(ids);
    // What that saves: the new model's query vectors against the old model's vectors.
    const mixed = await Promise.all(
      TOPICS.map(async (topic) => {
        const [vector] = await after.services.embedder.embed([`${topic} survey`]);
        const hits = await engine.search({ namespace, text: topic, vector: vector!, mode: 'vector', limit: 1, candidates: 10, filter: null, fusion: { k: 60, vectorWeight: 1, keywordWeight: 1 } });
        return hits[0]?.documentId;
      }),
    );
    expect(mixed).not.toEqual(ids);

    const { generation, queued } = await startRebuild(after.services, namespace);
    expect({ generation, queued }).toEqual({ generation: 1, queued: ids.length });
    // Half of the documents are in the new generation: queries still get the old one, whole.
    for (let i = 0; i < ids.length / 2; i++) await deliver(after.services, [after.sent.shift()!]);
    expect(await servingGeneration(namespace)).toBe(0);
    expect(await base.generations.progress(namespace)).toMatchObject({ generation: 1, built: ids.length / 2, pending: ids.length / 2, failed: 0 });
    expect(await firstHits(after.services, namespace, settle)).toEqual(ids);

    // The last one switches it in (with Vectorize, once its writes are applied); then the old generation is removed.
    for (let i = 0; i < ids.length / 2; i++) await deliver(after.services, [after.sent.shift()!]);
    expect(await servingGeneration(namespace)).toBe(kind === 'local' ? 1 : 0);
    expect(await firstHits(after.services, namespace, settle)).toEqual(ids);
    await applyWrites(after.services, namespace, settle);
    expect(await servingGeneration(namespace)).toBe(1);
    expect(await firstHits(after.services, namespace, settle)).toEqual(ids);
    // (The sweeper looks at every namespace: messages for other tests' namespaces may be sent too.)
    const ours = after.sent.filter((m) => m.type !== 'retire' || m.namespace === namespace);
    expect(ours.length).toBeGreaterThan(0);
    expect(ours).toEqual(ours.map(() => ({ type: 'retire', namespace, generation: 0 })));
    expect(await chunkRows(namespace, 0)).toBe(ids.length);
    await drain(after);
    expect(await chunkRows(namespace, 0)).toBe(0);
    expect((await engine.count(namespace)).passages).toBe(0);
    expect((await atGeneration(engine, 1).count(namespace)).passages).toBe(ids.length);
    expect(await firstHits(after.services, namespace, settle)).toEqual(ids);
    const documents = await base.documents.getMany(ids);
    expect([...documents.values()].every((d) => d.status === 'ready' && d.embeddingModel === after.services.embedder.model)).toBe(true);
  });

  it('serves the old chunking until the new one is complete, with uploads and deletions meanwhile in both', async () => {
    const { namespace, engine, settle, ids } = await ingested(kind, TOPICS.slice(0, 4), { CHUNK_SIZE: 512, CHUNK_OVERLAP: 50 });
    const passagesBefore = (await engine.count(namespace)).passages;
    expect(passagesBefore).toBe(ids.length);

    const after = harness(engine, base.embedder, { CHUNK_SIZE: 32, CHUNK_OVERLAP: 4 });
    await startRebuild(after.services, namespace);
    const builds = after.sent.splice(0);
    await deliver(after.services, [builds.shift()!]);

    // Meanwhile a document is uploaded (ingested with the serving settings, then built too) and one is deleted.
    const added = await stage(after.services, namespace, TOPICS[5]!, textOf(TOPICS[5]!));
    await deliver(after.services, [{ type: 'ingest', documentId: added }]);
    const doomed = (await base.documents.get(ids[3]!))!;
    await removeEverywhere(after.services, doomed);
    await base.documents.delete(doomed.id);
    expect((await engine.count(namespace)).passages).toBe(ids.length); // 3 old + the upload, in the old chunking
    expect(await servingGeneration(namespace)).toBe(0);

    await deliver(after.services, builds);
    await drain(after);
    await applyWrites(after.services, namespace, settle);
    await drain(after);
    expect(await servingGeneration(namespace)).toBe(1);
    const live = [ids[0]!, ids[1]!, ids[2]!, added];
    const documents = await base.documents.getMany(live);
    const chunks = [...documents.values()].reduce((n, d) => n + d.chunkCount, 0);
    expect(chunks).toBeGreaterThan(live.length * 3); // smaller chunks
    expect((await atGeneration(engine, 1).count(namespace)).passages).toBe(chunks);
    expect(await chunkRows(namespace, 1)).toBe(chunks);
    expect(await chunkRows(namespace, 0)).toBe(0);
    settle();
    const found = await search(after.services, { query: `${TOPICS[5]} survey`, topK: 1, namespace, mode: 'keyword' });
    expect(found[0]?.documentId).toBe(added);
    const gone = await search(after.services, { query: `${TOPICS[3]} survey`, topK: 50, namespace, mode: 'keyword' });
    expect(gone.some((p) => p.documentId === doomed.id)).toBe(false);
  });

  it('goes on when its messages are lost (the sweeper), and keeps the old generation serving while a document fails in the new one', async () => {
    const { namespace, engine, settle, ids } = await ingested(kind, TOPICS.slice(0, 3));

    // The new model refuses the third document's text, for good.
    const refusing = faulty(rotatedModel(base.embedder), (texts) =>
      texts.some((t) => t.includes(TOPICS[2]!)) ? new AppError('provider_error', 'The provider refused this text.', { retryable: false }) : null,
    );
    const after = harness(engine, refusing);
    await startRebuild(after.services, namespace);
    // Its messages are lost (a restart): five minutes on, the sweeper sends them again.
    after.sent.splice(0);
    await env.DB.prepare('UPDATE generation_documents SET updated_at = ? WHERE namespace = ?').bind(Date.now() - 6 * 60_000, namespace).run();
    await sweepGenerations(after.services);
    const resent = after.sent.filter((m) => m.type === 'ingest' && m.generation === 1);
    expect(resent.map((m) => (m as { documentId: string }).documentId).sort()).toEqual([...ids].sort());
    after.sent.splice(0);
    await deliver(after.services, resent);
    expect(await base.generations.progress(namespace)).toMatchObject({ generation: 1, built: 2, failed: 1, pending: 0 });
    // The third document stays searchable, on the old generation, which keeps serving.
    expect(await servingGeneration(namespace)).toBe(0);
    expect((await base.documents.get(ids[2]!))?.status).toBe('ready');
    expect(await firstHits(after.services, namespace, settle).then((hits) => hits.slice(0, 3))).toEqual(ids);

    // Deleting it lets the rebuild finish: the sweeper switches the generation in.
    await removeEverywhere(after.services, (await base.documents.get(ids[2]!))!);
    await base.documents.delete(ids[2]!);
    await applyWrites(after.services, namespace, settle);
    if (after.services.engine.limits.writeDelayMs === 0) await sweepGenerations(after.services);
    expect(await servingGeneration(namespace)).toBe(1);
    expect(after.sent).toContainEqual({ type: 'retire', namespace, generation: 0 });
    expect(await firstHits(after.services, namespace, settle).then((hits) => hits.slice(0, 2))).toEqual(ids.slice(0, 2));
  });

  it('ends switched with every document once through a flaky embedder and every message delivered twice', async () => {
    const { namespace, engine, settle, ids } = await ingested(kind, TOPICS);

    // The new model's provider fails every other call, transiently.
    let calls = 0;
    const flaky = faulty(rotatedModel(base.embedder), () =>
      ++calls % 2 === 0 ? new AppError('provider_error', 'The embedding provider failed (injected).', { retryable: true }) : null,
    );
    const after = harness(engine, flaky, { CHUNK_SIZE: 64, CHUNK_OVERLAP: 8 });
    await startRebuild(after.services, namespace);
    await drainTwice(after);
    await applyWrites(after.services, namespace, settle);
    await drainTwice(after);
    expect(calls).toBeGreaterThan(3);
    expect(await servingGeneration(namespace)).toBe(1);
    expect(await base.generations.progress(namespace)).toBeNull();
    const documents = [...(await base.documents.getMany(ids)).values()];
    expect(documents.every((d) => d.status === 'ready')).toBe(true);
    const chunks = documents.reduce((n, d) => n + d.chunkCount, 0);
    expect(await chunkRows(namespace, 1)).toBe(chunks);
    expect((await atGeneration(engine, 1).count(namespace)).passages).toBe(chunks);
    expect(await chunkRows(namespace, 0)).toBe(0);
    // Each document's passages, found once: no duplicate from the double deliveries.
    for (const [i, topic] of TOPICS.entries()) {
      const found = await search(after.services, { query: `${topic} survey`, topK: 50, namespace, mode: 'keyword' });
      const own = found.filter((p) => p.documentId === ids[i]);
      expect(new Set(own.map((p) => p.id)).size).toBe(own.length);
      expect(own.length).toBe(documents.find((d) => d.id === ids[i])!.chunkCount);
    }
    expect(await firstHits(after.services, namespace, settle)).toEqual(ids);
  });
});
