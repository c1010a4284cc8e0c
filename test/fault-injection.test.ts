/**
 * Fault injection through the real queue handler ("ingestion that nothing can stall", part 7).
 *
 * Every scenario delivers a batch to `consumeIngestBatch` as the queue would, re-delivers what
 * the handler asked to retry (attempts + 1, delays ignored) until every message is acked or
 * past MAX_ATTEMPTS (then the dead-letter consumer gets it), and ends with the same invariant
 * checks (`checkInvariants`):
 * - every good document is `ready`, once, with the chunk count a clean ingestion of the same
 *   text gives, and as many catalog rows;
 * - each of its passages is searchable exactly once: keyword search for the document's marker
 *   word returns exactly its passages, no duplicates, no other document's;
 * - a failed document is `failed` with its reason, a deleted one is gone, and nothing of either
 *   is in any index (keyword search, the engine's passages, the catalog's chunk rows);
 * - the namespace's totals (engine passages and vectors, catalog rows) are the good documents'.
 *
 * Scenarios (one describe each): an embedder failing 30 % of calls; R2 reads of originals
 * failing 10 %; every message delivered twice (the batch again, two copies in a batch, two
 * invocations racing); a throw at each step boundary in turn; markReady committing but
 * throwing (its answer lost); a document whose staging always fails (it runs out of
 * attempts); a poison document in a batch of 50, with a large document forwarded to the queue
 * for large documents (and one whose forwarding fails), and one over its namespace's quota.
 *
 * They run against the local engine (what `getServices` builds in tests) and the Cloudflare
 * engine (a fake Vectorize, the real D1 and keyword shards). Faults are seeded or counted, so
 * every run injects the same ones.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { getServices } from '../src/composition';
import type { EmbeddingProvider } from '../src/domain';
import { AppError } from '../src/domain/errors';
import { consumeDeadLetters, consumeIngestBatch, LARGE_DOCUMENT_BYTES, MAX_ATTEMPTS } from '../src/ingestion/consumer';
import { ingestDocuments, removeFromIndexes } from '../src/ingestion/pipeline';
import type { Services } from '../src/services';
import { keywordTerms } from '../src/text/keyword-terms';
import { FakeVectorize } from '../fakes/vectorize';
import { cloudflareEngine } from './engines';
import { rng } from './support';

// ---------------------------------------------------------------------------------------------
// Documents

const LETTERS = 'bcdfghjklmnprstvwz';
const VOWELS = 'aeiou';
/** Every keyword term a made-up word was given for, across the file's documents. */
const usedTerms = new Set<string>();

/**
 * A pronounceable made-up word whose keyword term (after stemming) no other word of any
 * document has: a marker finds one document, and pseudo-relevance feedback (which adds terms
 * of the best passages to the query) can only add terms of that document.
 */
function word(random: () => number, syllables: number): string {
  for (;;) {
    let out = '';
    for (let i = 0; i < syllables; i++) out += LETTERS[Math.floor(random() * LETTERS.length)]! + VOWELS[Math.floor(random() * VOWELS.length)]!;
    const terms = keywordTerms(out);
    if (terms.length === 1 && !usedTerms.has(terms[0]!)) {
      usedTerms.add(terms[0]!);
      return out;
    }
  }
}

interface Text {
  /** In every paragraph, so in every chunk: keyword search for it finds all the document's passages. */
  marker: string;
  text: string;
}

/**
 * `n` documents of 20–50 short paragraphs each, every paragraph holding the document's marker
 * and words of its own vocabulary (see `word`).
 */
function makeTexts(seed: number, n: number, paragraphs: [number, number] = [20, 50]): Text[] {
  const random = rng(seed);
  return Array.from({ length: n }, () => {
    const marker = word(random, 6);
    const vocabulary = Array.from({ length: 30 }, () => word(random, 3 + Math.floor(random() * 2)));
    const count = paragraphs[0] + Math.floor(random() * (paragraphs[1] - paragraphs[0] + 1));
    const text = Array.from({ length: count }, () => {
      const words = Array.from({ length: 6 }, () => vocabulary[Math.floor(random() * vocabulary.length)]!);
      return `${marker} ${words.join(' ')}.`;
    }).join('\n\n');
    return { marker, text };
  });
}

/** Smaller chunks than the default, so a document of 20–50 short paragraphs has several passages. */
const CHUNKING = { CHUNK_SIZE: 128, CHUNK_OVERLAP: 16 };

const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 10)}`;

/**
 * Puts an original in R2 and a `queued` row in D1, as an upload does (the test sends the
 * messages). The title is the marker: a title word shared by documents (indexed with every
 * passage) would let feedback terms reach other documents.
 */
async function stage(services: Services, namespace: string, { text, marker }: Text): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const id = crypto.randomUUID().replaceAll('-', '');
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, bytes);
  await services.documents.enqueue([{ id, namespace, title: marker, filename: null, type: 'txt', size: bytes.byteLength, r2Key, metadata: {} }]);
  return id;
}

/**
 * Chunk counts of a clean ingestion of the same texts, in a namespace of their own, with no
 * fault: what each good document must end with.
 */
async function cleanChunkCounts(texts: Text[], config: Partial<Services['config']> = {}): Promise<number[]> {
  const base = getServices(env);
  const services: Services = { ...base, config: { ...base.config, ...CHUNKING, ...config } };
  const namespace = unique('clean');
  const ids = await Promise.all(texts.map((t) => stage(services, namespace, t)));
  const outcomes = await ingestDocuments(services, ids);
  return ids.map((id) => {
    const outcome = outcomes.get(id);
    if (outcome?.status !== 'ready') throw new Error(`clean ingestion: ${JSON.stringify(outcome)}`);
    return outcome.chunkCount;
  });
}

// ---------------------------------------------------------------------------------------------
// Engines

interface World {
  services: Services;
  /** Lets an asynchronous engine apply its writes (Vectorize), before the checks. */
  settle(): void;
  /** Documents forwarded to the queue for large documents, not yet delivered (see `drive`). */
  large: string[];
}

/**
 * Fresh services over one engine, with the test chunking; `config` overrides more settings.
 * The queue for large documents records what is sent to it: `drive` delivers it, one message
 * per invocation as its consumer is configured, and nothing reaches the test worker's real queue.
 */
function world(engine: 'local' | 'cloudflare', config: Partial<Services['config']> = {}): World {
  const base = getServices(env);
  const large: string[] = [];
  const largeQueue = {
    send: async (body: { documentId: string }) => void large.push(body.documentId),
    sendBatch: async (messages: Iterable<{ body: { documentId: string } }>) => void large.push(...[...messages].map((m) => m.body.documentId)),
  } as unknown as Queue<never>;
  const services: Services = { ...base, largeQueue, config: { ...base.config, ...CHUNKING, ...config } };
  if (engine === 'local') return { services, settle: () => {}, large };
  // A fake Vectorize of its own: its whole-index count is this scenario's vectors.
  const fake = new FakeVectorize({ dimensions: base.embedder.dimensions, metadataIndexes: ['documentId'] });
  return { services: { ...services, engine: cloudflareEngine(fake, base.embedder.dimensions) }, settle: () => fake.processPending(), large };
}

// ---------------------------------------------------------------------------------------------
// Fault seams

/**
 * The same object with one method wrapped (`around` gets the original call). Calls keep the
 * original as `this`: the stores' private fields need it.
 */
function wrap<T extends object>(target: T, name: keyof T & string, around: (call: () => Promise<unknown>, args: unknown[]) => Promise<unknown>): T {
  return new Proxy(target, {
    get(t, prop) {
      const value: unknown = Reflect.get(t, prop, t);
      if (typeof value !== 'function') return value;
      if (prop !== name) return value.bind(t);
      return (...args: unknown[]) => around(() => Promise.resolve(value.apply(t, args)), args);
    },
  });
}

/** Counts of what a fault seam did. */
interface Injected {
  calls: number;
  faults: number;
}

/** Throws `make()` on the first `times` calls: `before` the work, or `after` it is done (its result lost). */
function throwing<T extends object>(target: T, name: keyof T & string, when: 'before' | 'after', times: number, injected: Injected): T {
  return wrap(target, name, async (call) => {
    injected.calls++;
    const fault = injected.faults < times;
    if (fault && when === 'before') throw (injected.faults++, new Error(`injected fault before ${name}`));
    const result = await call();
    if (fault) throw (injected.faults++, new Error(`injected fault after ${name}`));
    return result;
  });
}

/** An embedder failing `rate` of its calls, transiently, as a provider's 5xx would. */
function flakyEmbedder(embedder: EmbeddingProvider, rate: number, seed: number, injected: Injected): EmbeddingProvider {
  const random = rng(seed);
  return wrap(embedder, 'embed', async (call) => {
    injected.calls++;
    if (random() < rate) {
      injected.faults++;
      throw new AppError('provider_error', 'The embedding provider failed (injected).', { retryable: true });
    }
    return call();
  });
}

// ---------------------------------------------------------------------------------------------
// The queue

const QUEUE = 'rag-engine-ingest';

interface Delivery {
  /** The message id (two copies of one document's message have different ids). */
  id: string;
  documentId: string;
  attempts: number;
  /** A message of the queue for large documents, whose consumer takes one per invocation. */
  large?: boolean;
}

interface Drive {
  /** Invocations of the handler, re-deliveries included. */
  deliveries: number;
  /** Messages acked (explicitly, or implicitly by a handler that returned), by message id. */
  acked: Set<string>;
  /** Messages retried past MAX_ATTEMPTS: the queue moved them to the dead-letter queue. */
  deadLettered: Delivery[];
}

/** One invocation of the real handler on a batch; returns the ids it acked and those it asked to retry. */
async function deliver(services: Services, messages: Delivery[]): Promise<{ acked: string[]; retried: string[] }> {
  const alone = messages[0]?.large === true;
  const batch = createMessageBatch(
    alone ? `${QUEUE}-large` : QUEUE,
    messages.map((m) => ({ id: m.id, timestamp: Date.now(), attempts: m.attempts, body: { type: 'ingest', documentId: m.documentId } })),
  );
  const ctx = createExecutionContext();
  try {
    await consumeIngestBatch(batch, services, { alone });
  } catch (error) {
    // A handler that throws has the whole batch retried.
    console.error('fault-injection: the handler threw', error);
    return { acked: [], retried: messages.map((m) => m.id) };
  }
  const result = await getQueueResult(batch, ctx);
  if (result.retryBatch.retry) return { acked: [], retried: messages.map((m) => m.id) };
  const retried = new Set(result.retryMessages.map((m) => m.msgId));
  // A message neither acked nor retried is acked when the handler returns.
  return { acked: messages.map((m) => m.id).filter((id) => !retried.has(id)), retried: [...retried] };
}

/**
 * Drives messages as the queues would: the first round's batches are delivered at once (two
 * invocations racing, when there are two), then what the handler asked to retry comes back in
 * one batch per round with its attempts counted, until nothing is left; a message retried on
 * its MAX_ATTEMPTS-th attempt goes to the dead-letter consumer instead. Documents forwarded to
 * the queue for large documents come in the next round, one per invocation (`alone`).
 */
async function drive(w: World, firstRound: Delivery[][]): Promise<Drive> {
  const { services } = w;
  const report: Drive = { deliveries: 0, acked: new Set(), deadLettered: [] };
  let round = firstRound;
  for (let n = 0; round.some((batch) => batch.length); n++) {
    if (n > 2 * MAX_ATTEMPTS) throw new Error('the queue never drained');
    round = round.filter((batch) => batch.length);
    const results = await Promise.all(round.map((batch) => deliver(services, batch)));
    report.deliveries += round.length;
    const next: Delivery[] = [];
    const alone: Delivery[][] = [];
    round.forEach((batch, b) => {
      const { acked, retried } = results[b]!;
      for (const id of acked) report.acked.add(id);
      for (const message of batch.filter((m) => retried.includes(m.id))) {
        if (message.attempts >= MAX_ATTEMPTS) report.deadLettered.push(message);
        else if (message.large) alone.push([{ ...message, attempts: message.attempts + 1 }]);
        else next.push({ ...message, attempts: message.attempts + 1 });
      }
    });
    for (const documentId of w.large.splice(0)) alone.push([{ id: `large-${documentId}`, documentId, attempts: 1, large: true }]);
    round = [next, ...alone];
  }
  if (report.deadLettered.length) {
    const batch = createMessageBatch(
      `${QUEUE}-dlq`,
      report.deadLettered.map((m) => ({ id: m.id, timestamp: Date.now(), attempts: 1, body: { type: 'ingest', documentId: m.documentId } })),
    );
    await consumeDeadLetters(batch, services);
  }
  return report;
}

/** Where the poison and the large document sit in the batch of 50. */
const POISON = 17;
const LARGE = 33;

/**
 * The batch of 50. The large document: its paragraphs, then blank space to 4 MiB
 * (LARGE_DOCUMENT_BYTES), the size from which a batch forwards a document to the queue for
 * large documents.
 */
const poisonBatch = () => makeTexts(505, 50).map((t, i) => (i === LARGE ? { ...t, text: `${t.text}\n\n${' '.repeat(LARGE_DOCUMENT_BYTES)}` } : t));

const messagesFor = (ids: string[], prefix = 'm'): Delivery[] => ids.map((documentId, i) => ({ id: `${prefix}${i}`, documentId, attempts: 1 }));

// ---------------------------------------------------------------------------------------------
// Invariants

interface Expected {
  id: string;
  marker: string;
  /** ready: with `chunks` passages; failed: with an error matching `reason`; deleted: gone. */
  outcome: 'ready' | 'failed' | 'deleted';
  chunks?: number;
  reason?: RegExp;
}

async function chunkRowIds(documentId: string): Promise<string[]> {
  const { results } = await env.DB.prepare('SELECT id FROM chunks WHERE document_id = ?').bind(documentId).all<{ id: string }>();
  return results.map((r) => r.id).sort();
}

/** Keyword search for one word, as many results as the engine gives. */
async function keywordSearch(services: Services, namespace: string, text: string) {
  const limit = services.engine.limits.maxResults;
  const fusion = { k: 60, vectorWeight: 1, keywordWeight: 1 };
  return services.engine.search({ namespace, text, vector: null, mode: 'keyword', limit, candidates: limit, filter: null, fusion });
}

async function checkInvariants(world: World, namespace: string, expected: Expected[]): Promise<void> {
  const { services } = world;
  world.settle();
  let total = 0;
  for (const doc of expected) {
    const record = await services.documents.get(doc.id);
    const rows = await chunkRowIds(doc.id);
    const hits = await keywordSearch(services, namespace, doc.marker);
    const passages = await services.engine.documentPassages(namespace, doc.id, { from: 0, limit: 1000 });
    const hitIds = hits.map((h) => h.id).sort();
    if (doc.outcome === 'ready') {
      total += doc.chunks!;
      expect(record, doc.id).toMatchObject({ status: 'ready', chunkCount: doc.chunks, error: null });
      expect(rows, `catalog rows of ${doc.id}`).toHaveLength(doc.chunks!);
      // Exactly its passages, each once: no duplicate, no other document's, none missing.
      expect(
        hits.every((h) => h.documentId === doc.id),
        `search for ${doc.marker} returns only ${doc.id}`,
      ).toBe(true);
      expect(new Set(hitIds).size, `no duplicate hits for ${doc.marker}`).toBe(hitIds.length);
      expect(hitIds, `search for ${doc.marker} finds every passage of ${doc.id}`).toEqual(rows);
      expect(passages.map((p) => p.id).sort()).toEqual(rows);
    } else {
      if (doc.outcome === 'failed') expect(record, doc.id).toMatchObject({ status: 'failed', chunkCount: 0, error: expect.stringMatching(doc.reason!) });
      else expect(record, doc.id).toBeNull();
      expect(rows, `catalog rows of ${doc.outcome} ${doc.id}`).toEqual([]);
      expect(hits, `search for the marker of ${doc.outcome} ${doc.id}`).toEqual([]);
      expect(passages, `engine passages of ${doc.outcome} ${doc.id}`).toEqual([]);
    }
  }
  // Nothing else in the namespace: no leftover staged vectors of failed attempts, no stray rows.
  const counts = await services.engine.count(namespace);
  expect(counts.passages, 'engine passages').toBe(total);
  expect(counts.vectors, 'engine vectors, staged ones included').toBe(total);
  expect(await services.chunks.count(namespace), 'catalog chunk rows').toBe(total);
  const { results } = await env.DB.prepare("SELECT id, status FROM documents WHERE namespace = ? AND status NOT IN ('ready', 'failed')")
    .bind(namespace)
    .all<{ id: string; status: string }>();
  expect(results, 'documents left queued or processing').toEqual([]);
}

/** Stages texts in a fresh namespace; the expected outcome of each is ready with its clean chunk count. */
async function setUp(world: World, prefix: string, texts: Text[], counts: number[]) {
  const namespace = unique(prefix);
  const ids: string[] = [];
  for (const t of texts) ids.push(await stage(world.services, namespace, t));
  const expected: Expected[] = ids.map((id, i) => ({ id, marker: texts[i]!.marker, outcome: 'ready', chunks: counts[i]! }));
  return { namespace, ids, expected };
}

/** Every message acked (or dead-lettered only where the scenario expects it). */
function expectDrained(report: Drive, messages: Delivery[]) {
  expect(report.deadLettered, 'dead-lettered messages').toEqual([]);
  expect([...report.acked].sort()).toEqual(messages.map((m) => m.id).sort());
}

// ---------------------------------------------------------------------------------------------
// Scenarios, on each engine

// The texts are fixed (seeded) and made once per key, their clean chunk counts with them; both
// engines' runs of a scenario share them (in namespaces of their own).
const cached = new Map<string, Promise<{ texts: Text[]; counts: number[] }>>();
function fixture(key: string, make: () => Text[], config: Partial<Services['config']> = {}): Promise<{ texts: Text[]; counts: number[] }> {
  if (!cached.has(key)) {
    const texts = make();
    cached.set(key, cleanChunkCounts(texts, config).then((counts) => ({ texts, counts })));
  }
  return cached.get(key)!;
}

for (const engine of ['local', 'cloudflare'] as const) {
  describe(`fault injection through the queue handler (${engine} engine)`, () => {
    describe('an embedder failing 30 % of its calls (transient provider errors)', () => {
      it('ends with every document ready once, each passage searchable once', async () => {
        const { texts, counts } = await fixture('flaky-embedder', () => makeTexts(101, 40));
        const w = world(engine);
        const injected = { calls: 0, faults: 0 };
        // A fixed seed: which calls fail depends only on their order, so the run is repeatable.
        w.services = { ...w.services, embedder: flakyEmbedder(w.services.embedder, 0.3, 7, injected) };
        const { namespace, ids, expected } = await setUp(w, 'flakyemb', texts, counts);
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(injected.faults).toBeGreaterThan(0);
        expect(report.deliveries).toBeGreaterThan(1); // the faults did cost re-deliveries
        expectDrained(report, messages);
        await checkInvariants(w, namespace, expected);
      });
    });

    describe('R2 reads of originals failing 10 % of calls (transient)', () => {
      it('ends with every document ready once, each passage searchable once', async () => {
        const { texts, counts } = await fixture('flaky-r2', () => makeTexts(202, 40));
        const w = world(engine);
        const injected = { calls: 0, faults: 0 };
        const random = rng(11);
        // Half the faults fail the `get` itself, half the read of the body (a stream cut mid-way).
        w.services = {
          ...w.services,
          originals: wrap(w.services.originals, 'get', async (call) => {
            injected.calls++;
            const roll = random();
            if (roll < 0.05) throw (injected.faults++, new Error('R2 get failed (injected): we encountered an internal error'));
            const object = (await call()) as R2ObjectBody | null;
            if (roll < 0.1 && object) {
              injected.faults++;
              return wrap(object, 'arrayBuffer', async () => {
                throw new Error('R2 body read failed (injected): network connection lost');
              });
            }
            return object;
          }),
        };
        const { namespace, ids, expected } = await setUp(w, 'flakyr2', texts, counts);
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(injected.faults).toBeGreaterThan(0);
        expectDrained(report, messages);
        await checkInvariants(w, namespace, expected);
      });
    });

    describe('every message delivered twice', () => {
      it('the same batch delivered twice: the second embeds nothing; a document deleted in between stays gone', async () => {
        const { texts, counts } = await fixture('twice', () => makeTexts(303, 20));
        const w = world(engine);
        const embedded = { calls: 0, faults: 0, texts: 0 };
        w.services = {
          ...w.services,
          embedder: wrap(w.services.embedder, 'embed', (call, [batch]) => ((embedded.texts += (batch as string[]).length), call())),
        };
        const { namespace, ids, expected } = await setUp(w, 'twice', texts, counts);
        const messages = messagesFor(ids);
        expectDrained(await drive(w, [messages]), messages);
        const firstEmbedded = embedded.texts;
        expect(firstEmbedded).toBe(counts.reduce((a, b) => a + b, 0));

        // Deleted between the deliveries, as DELETE /v1/documents/:id does it.
        const gone = (await w.services.documents.get(ids[0]!))!;
        await removeFromIndexes(w.services, gone);
        await w.services.documents.delete(gone.id);
        await w.services.originals.delete(gone.r2Key);
        expected[0] = { ...expected[0]!, outcome: 'deleted' };

        expectDrained(await drive(w, [messages]), messages);
        expect(embedded.texts, 'the second delivery embeds nothing').toBe(firstEmbedded);
        await checkInvariants(w, namespace, expected);
      });

      it('two copies of each message in one batch', async () => {
        const { texts, counts } = await fixture('twice', () => makeTexts(303, 20));
        const w = world(engine);
        const { namespace, ids, expected } = await setUp(w, 'copies', texts, counts);
        const messages = [...messagesFor(ids, 'a'), ...messagesFor(ids, 'b')];
        expectDrained(await drive(w, [messages]), messages);
        await checkInvariants(w, namespace, expected);
      });

      it('the same batch delivered to two invocations at once: one defers to the other', async () => {
        const { texts, counts } = await fixture('twice', () => makeTexts(303, 20));
        const w = world(engine);
        const { namespace, ids, expected } = await setUp(w, 'racing', texts, counts);
        const a = messagesFor(ids, 'a');
        const b = messagesFor(ids, 'b');
        const report = await drive(w, [a, b]);
        expectDrained(report, [...a, ...b]);
        await checkInvariants(w, namespace, expected);
      });
    });

    describe('a consumer that throws at each step boundary in turn', () => {
      /**
       * Each seam throws on its first two calls: the first fails the batch's shared call (the
       * pipeline then indexes each document alone), the second fails the first document
       * indexed alone, which the queue then re-delivers. Seams are services' methods:
       * - after parsing: the passage quota check (`chunks.count`), the first call after a
       *   document is parsed and chunked (parseDocument itself is imported, not a service);
       * - before embedding: `chunks.embeddedModels`, the first call of indexing a group;
       * - after embedding: `embedder.embed`, its vectors lost;
       * - after writing vectors: `engine.stage`, done;
       * - after writing rows: `chunks.write`, done;
       * - after activating, before marking ready: `engine.activate`, done;
       * - before marking ready: `documents.markReady`, not done.
       */
      const boundaries: { name: string; inject: (s: Services, injected: Injected) => Services }[] = [
        { name: 'after parsing (the quota check that follows it)', inject: (s, i) => ({ ...s, chunks: throwing(s.chunks, 'count', 'before', 2, i) }) },
        { name: 'after chunking, before embedding', inject: (s, i) => ({ ...s, chunks: throwing(s.chunks, 'embeddedModels', 'before', 2, i) }) },
        { name: 'after embedding', inject: (s, i) => ({ ...s, embedder: throwing(s.embedder, 'embed', 'after', 2, i) }) },
        { name: 'after writing vectors (engine.stage)', inject: (s, i) => ({ ...s, engine: throwing(s.engine, 'stage', 'after', 2, i) }) },
        { name: 'after writing rows (chunks.write)', inject: (s, i) => ({ ...s, chunks: throwing(s.chunks, 'write', 'after', 2, i) }) },
        { name: 'after activating the version (engine.activate)', inject: (s, i) => ({ ...s, engine: throwing(s.engine, 'activate', 'after', 2, i) }) },
        { name: 'before marking ready (documents.markReady)', inject: (s, i) => ({ ...s, documents: throwing(s.documents, 'markReady', 'before', 2, i) }) },
      ];
      for (const boundary of boundaries) {
        it(`throws ${boundary.name}`, async () => {
          const { texts, counts } = await fixture('boundaries', () => makeTexts(404, 20));
          const w = world(engine);
          const injected = { calls: 0, faults: 0 };
          w.services = boundary.inject(w.services, injected);
          const { namespace, ids, expected } = await setUp(w, 'boundary', texts, counts);
          const messages = messagesFor(ids);
          const report = await drive(w, [messages]);
          expect(injected.faults, 'the seam was reached and threw').toBe(2);
          expect(report.deliveries, 'the second fault cost a re-delivery').toBeGreaterThan(1);
          expectDrained(report, messages);
          await checkInvariants(w, namespace, expected);
        });
      }
    });

    describe('a D1 write that commits but reports a failure', () => {
      /*
       * documents.markReady commits but its call throws (a D1 answer lost after the commit).
       * Before the pipeline re-read the catalog there, it took back every never-ready document
       * of the group (engine and chunk rows) although the catalog said `ready`; indexed again
       * alone, each then ended `superseded` (markReady had cleared its claim), acked, `ready`
       * with nothing searchable.
       */
      it('throws after marking ready (documents.markReady committed): every document still ends searchable', async () => {
        const { texts, counts } = await fixture('boundaries', () => makeTexts(404, 20));
        const w = world(engine);
        const injected = { calls: 0, faults: 0 };
        w.services = { ...w.services, documents: throwing(w.services.documents, 'markReady', 'after', 2, injected) };
        const { namespace, ids, expected } = await setUp(w, 'lostready', texts, counts);
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(injected.faults).toBeGreaterThan(0);
        expectDrained(report, messages);
        await checkInvariants(w, namespace, expected);
      });
    });

    describe('a document whose staging always fails (transiently) in a batch of 20', () => {
      it('fails it after MAX_ATTEMPTS, dead-letters its message, and leaves nothing of it staged', async () => {
        const { texts, counts } = await fixture('boundaries', () => makeTexts(404, 20));
        const w = world(engine);
        const { namespace, ids, expected } = await setUp(w, 'exhaust', texts, counts);
        const doomed = ids[5]!;
        // Stages its chunks, then throws: each attempt leaves staged chunks behind to clean up.
        w.services = {
          ...w.services,
          engine: wrap(w.services.engine, 'stage', async (call, [, chunks]) => {
            const result = await call();
            if ((chunks as { documentId: string }[]).some((c) => c.documentId === doomed)) throw new Error('injected: the engine lost the connection');
            return result;
          }),
        };
        expected[5] = { ...expected[5]!, outcome: 'failed', reason: new RegExp(`^Indexing failed after ${MAX_ATTEMPTS} attempts`) };
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(report.deliveries).toBe(MAX_ATTEMPTS);
        expect(report.deadLettered.map((m) => m.documentId)).toEqual([doomed]);
        expect([...report.acked].sort()).toEqual(messages.filter((m) => m.documentId !== doomed).map((m) => m.id).sort());
        await checkInvariants(w, namespace, expected);
      });
    });

    describe('a poison document in a batch of 50', () => {
      it('fails the document the provider refuses, alone; sends the large one to be ingested alone; the other 48 are ready', async () => {
        const { texts, counts } = await fixture('poison', poisonBatch);
        const w = world(engine);
        const poison = texts[POISON]!.marker;
        // Refuses (400, not retryable) any call holding the poison document's text.
        w.services = {
          ...w.services,
          embedder: wrap(w.services.embedder, 'embed', async (call, [batch]) => {
            if ((batch as string[]).some((t) => t.includes(poison))) throw new AppError('bad_request', 'The provider refused one of the texts (injected).');
            return call();
          }),
        };
        const { namespace, ids, expected } = await setUp(w, 'poison', texts, counts);
        expect((await w.services.documents.get(ids[LARGE]!))?.size).toBeGreaterThanOrEqual(LARGE_DOCUMENT_BYTES);
        expected[POISON] = { ...expected[POISON]!, outcome: 'failed', reason: /^Indexing failed: The provider refused one of the texts/ };
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        // The batch, then the large document alone; no re-delivery: the poison fails at once.
        expect(report.deliveries).toBe(2);
        expectDrained(report, [...messages, { id: `large-${ids[LARGE]}`, documentId: ids[LARGE]!, attempts: 1 }]);
        await checkInvariants(w, namespace, expected);
      });

      it('ingests the large document with its batch when the queue for large documents refuses it', async () => {
        const { texts, counts } = await fixture('poison', poisonBatch);
        const w = world(engine);
        w.services = {
          ...w.services,
          largeQueue: {
            send: async () => {
              throw new Error('injected: Queue send failed (internal error)');
            },
          } as unknown as Queue<never>,
        };
        // The first ten documents, the large one among them (it is the 34th): a batch of 11.
        const picked = [...texts.slice(0, 10), texts[LARGE]!];
        const { namespace, ids, expected } = await setUp(w, 'largefwd', picked, [...counts.slice(0, 10), counts[LARGE]!]);
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(report.deliveries, 'kept in its batch, not retried').toBe(1);
        expectDrained(report, messages);
        await checkInvariants(w, namespace, expected);
      });

      it('fails a document too big for its namespace: over the passage quota (QUOTA_PASSAGES)', async () => {
        // Besides a batch's large documents (ingested alone, above), the one limit on a
        // document's size at ingestion is its namespace's passage quota: over it, it fails.
        const { texts, counts } = await fixture('too-big', () => [...makeTexts(606, 49), ...makeTexts(607, 1, [3000, 3000])]);
        const good = counts.slice(0, 49).reduce((a, b) => a + b, 0);
        const big = counts[49]!;
        const quota = good + 5;
        expect(big, 'the big document alone exceeds the quota').toBeGreaterThan(quota);
        const w = world(engine, { QUOTA_PASSAGES: quota });
        const { namespace, ids, expected } = await setUp(w, 'toobig', texts, counts);
        expected[49] = { ...expected[49]!, outcome: 'failed', reason: /over its quota/ };
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(report.deliveries).toBe(1);
        expectDrained(report, messages);
        await checkInvariants(w, namespace, expected);
      });
    });
  });
}
