/**
 * Fault injection through the real queue handler ("ingestion that nothing can stall", part 7).
 *
 * Every scenario delivers a batch to `consumeIngestBatch` as the queue would, re-delivers what
 * the handler asked to retry (attempts + 1, delays ignored) until every message is acked or
 * past MAX_ATTEMPTS (then the dead-letter consumer gets it, with its body); what is sent to the
 * queue for large documents (forwarded documents, slices of large ones) is delivered one
 * message per invocation, as its consumer is configured (see `drive`). Each ends with the same
 * invariant checks (`checkInvariants`):
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
 * Then large documents in slices (INGEST_SLICE_CHUNKS 2, every document sliced), with the same
 * checks, plus: every document ready has its clean (unsliced) chunk count, and nothing of any
 * slice is left (R2 objects under ingest-slices/<id>/, slice records): a flaky embedder; flaky
 * R2 reads, slices' included; every message twice (all again, each slice twice at once or one
 * after the other, the ingest batch racing); a throw at each step boundary of a slice; a
 * sliced document failing (a slice refused, staging out of attempts, a re-ingestion refused);
 * a sliced document deleted while its slices are queued or at work.
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
import { deleteDocument as deleteEverywhere } from '../src/ingestion/generations';
import { removeFromIndexes } from '../src/ingestion/indexing';
import type { IngestMessage, SliceMessage } from '../src/ingestion/messages';
import { ingestDocuments } from '../src/ingestion/pipeline';
import { SLICE_PREFIX } from '../src/ingestion/slices';
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

/** What the ingestion queues carry: a document to ingest, or one slice of a large document. */
type Body = IngestMessage | SliceMessage;

interface World {
  services: Services;
  /** Lets an asynchronous engine apply its writes (Vectorize), before the checks. */
  settle(): void;
  /**
   * Messages sent to the queue for large documents (forwarded documents, slices of large
   * ones), whole bodies, not yet delivered (see `drive`).
   */
  large: Body[];
}

/**
 * Fresh services over one engine, with the test chunking; `config` overrides more settings.
 * The queue for large documents records what is sent to it (`send` and `sendBatch`): `drive`
 * delivers it, one message per invocation as its consumer is configured, and nothing reaches
 * the test worker's real queue.
 */
function world(engine: 'local' | 'cloudflare', config: Partial<Services['config']> = {}): World {
  const base = getServices(env);
  const large: Body[] = [];
  const largeQueue = {
    send: async (body: Body) => void large.push(structuredClone(body)),
    sendBatch: async (messages: Iterable<{ body: Body }>) => void large.push(...[...messages].map((m) => structuredClone(m.body))),
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

/**
 * Throws on the first `times` calls: `before` the work, or `after` it is done (its result
 * lost). Decided by the call's rank, so calls running at once (slices) fault no more often.
 */
function throwing<T extends object>(target: T, name: keyof T & string, when: 'before' | 'after', times: number, injected: Injected): T {
  return wrap(target, name, async (call) => {
    const fault = injected.calls++ < times;
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

/**
 * Draws for seams that calls running at once reach (slices): the draw of the nth call with a
 * given key depends on the seed, the key and n only, not on the order concurrent calls come in,
 * so every run injects the same faults.
 */
function keyedRandom(seed: number): (key: string) => number {
  const seen = new Map<string, number>();
  return (key) => {
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    let hash = 0x811c9dc5; // FNV-1a
    for (const c of `${seed}\u0000${n}\u0000${key}`) hash = Math.imul(hash ^ c.charCodeAt(0), 0x01000193);
    return rng(hash)();
  };
}

/** flakyEmbedder, with draws keyed by the texts (see keyedRandom). */
function flakyEmbedderByContent(embedder: EmbeddingProvider, rate: number, seed: number, injected: Injected): EmbeddingProvider {
  const draw = keyedRandom(seed);
  return wrap(embedder, 'embed', async (call, [texts]) => {
    injected.calls++;
    if (draw((texts as string[]).join('\u0000')) < rate) {
      injected.faults++;
      throw new AppError('provider_error', 'The embedding provider failed (injected).', { retryable: true });
    }
    return call();
  });
}

/**
 * Stable names for R2 keys, so keyed draws are the same in every run: an original's key (its
 * namespace and id random) and a slice's document id become the document's rank in `documents`
 * (filled once they are staged), and a slice's claim (a random attempt id) its rank among its
 * document's claims.
 */
function stableKeys(): { documents: string[]; name: (key: string) => string } {
  const documents: string[] = [];
  const claims = new Map<string, string[]>();
  const doc = (id: string) => (documents.includes(id) ? `doc${documents.indexOf(id)}` : id);
  return {
    documents,
    name: (key) => {
      const slice = key.startsWith(SLICE_PREFIX) ? key.slice(SLICE_PREFIX.length).split('/') : null;
      if (slice?.length !== 3) {
        // An original: originals/<namespace>/<document id>, the namespace random too.
        const id = /[0-9a-f]{32}$/.exec(key)?.[0];
        return id ? `original/${doc(id)}` : key;
      }
      const [id, attempt, file] = slice as [string, string, string];
      const seen = claims.get(id) ?? [];
      claims.set(id, seen);
      if (!seen.includes(attempt)) seen.push(attempt);
      return `${SLICE_PREFIX}${doc(id)}/claim${seen.indexOf(attempt)}/${file}`;
    },
  };
}

/**
 * R2 reads failing `rate` of calls, draws keyed by the object's key (`name` makes it stable,
 * see keyedRandom): half the faults fail the `get` itself, half the read of the body, whichever
 * way it is read (`arrayBuffer` for originals, `json` for slices, `text`). `slices` counts
 * faults on slice objects.
 */
function flakyOriginals(
  originals: R2Bucket,
  rate: number,
  seed: number,
  injected: Injected & { slices: number },
  name: (key: string) => string = (key) => key,
): R2Bucket {
  const draw = keyedRandom(seed);
  const READS = new Set<PropertyKey>(['arrayBuffer', 'json', 'text', 'blob', 'bytes']);
  return wrap(originals, 'get', async (call, [key]) => {
    injected.calls++;
    const roll = draw(name(String(key)));
    const fault = () => {
      injected.faults++;
      if (String(key).startsWith(SLICE_PREFIX)) injected.slices++;
    };
    if (roll < rate / 2) throw (fault(), new Error('R2 get failed (injected): we encountered an internal error'));
    const object = (await call()) as R2ObjectBody | null;
    if (roll >= rate || !object) return object;
    fault();
    return new Proxy(object, {
      get(t, prop) {
        const value: unknown = Reflect.get(t, prop, t);
        if (READS.has(prop)) {
          return async () => {
            throw new Error('R2 body read failed (injected): network connection lost');
          };
        }
        return typeof value === 'function' ? value.bind(t) : value;
      },
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The queue

const QUEUE = 'rag-engine-ingest';

interface Delivery {
  /** The message id (two copies of one message have different ids). */
  id: string;
  /** The message as sent: an ingest message, or a slice of a large document. */
  body: Body;
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
  /** Messages the queue for large documents got during the drive (copies included), as first delivered. */
  sent: Delivery[];
}

interface DriveOptions {
  /**
   * Each slice message is delivered twice: its copy in an invocation of its own at the same
   * time (`together`), or in the round after (`later`, once the first has been handled).
   */
  sliceCopies?: 'together' | 'later';
  /** Runs before each round after the first (`round` counts from 1), e.g. to delete a document while its slices are queued. */
  beforeRound?: (round: number) => Promise<void>;
}

/** One invocation of the real handler on a batch; returns the ids it acked and those it asked to retry. */
async function deliver(services: Services, messages: Delivery[]): Promise<{ acked: string[]; retried: string[] }> {
  const alone = messages[0]?.large === true;
  const batch = createMessageBatch(
    alone ? `${QUEUE}-large` : QUEUE,
    messages.map((m) => ({ id: m.id, timestamp: Date.now(), attempts: m.attempts, body: structuredClone(m.body) })),
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
 * its MAX_ATTEMPTS-th attempt goes to the dead-letter consumer instead, with its body.
 * Messages sent to the queue for large documents (documents forwarded there, slices of large
 * documents) come in the next round, one per invocation (`alone`), all at once, and are
 * retried the same way, one per invocation.
 */
async function drive(w: World, firstRound: Delivery[][], options: DriveOptions = {}): Promise<Drive> {
  const { services } = w;
  const report: Drive = { deliveries: 0, acked: new Set(), deadLettered: [], sent: [] };
  const ids = new Set(firstRound.flat().map((m) => m.id));
  const idFor = (body: Body) => {
    const base = body.type === 'slice' ? `slice-${body.documentId}-${body.attempt.slice(0, 8)}-${body.slice}` : `large-${body.documentId}`;
    let id = base;
    for (let n = 2; ids.has(id); n++) id = `${base}~${n}`;
    ids.add(id);
    return id;
  };
  let round = firstRound;
  let held: Delivery[][] = [];
  for (let n = 0; round.some((batch) => batch.length) || held.length; n++) {
    if (n > 3 * MAX_ATTEMPTS) throw new Error('the queue never drained');
    if (n > 0) await options.beforeRound?.(n);
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
    const copies: Delivery[][] = [];
    for (const body of w.large.splice(0)) {
      const message: Delivery = { id: idFor(body), body, attempts: 1, large: true };
      report.sent.push(message);
      alone.push([message]);
      if (body.type === 'slice' && options.sliceCopies) {
        const copy: Delivery = { ...message, id: idFor(body) };
        report.sent.push(copy);
        (options.sliceCopies === 'together' ? alone : copies).push([copy]);
      }
    }
    round = [next, ...alone, ...held];
    held = copies;
  }
  if (report.deadLettered.length) {
    const batch = createMessageBatch(
      `${QUEUE}-dlq`,
      report.deadLettered.map((m) => ({ id: m.id, timestamp: Date.now(), attempts: 1, body: structuredClone(m.body) })),
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

const messagesFor = (ids: string[], prefix = 'm'): Delivery[] =>
  ids.map((documentId, i) => ({ id: `${prefix}${i}`, body: { type: 'ingest', documentId }, attempts: 1 }));

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
// Large documents in slices

/** Smaller chunks still for the sliced scenarios: their documents have several slices each. */
const SLICED_CHUNKING = { CHUNK_SIZE: 48, CHUNK_OVERLAP: 8 };

/** Slices of two chunks: every document of the sliced scenarios (three chunks or more) is ingested in slices. */
const SLICED = { ...SLICED_CHUNKING, INGEST_SLICE_CHUNKS: 2 };

/** The sliced scenarios' documents: 10 of 10–24 paragraphs, some 4 to 10 chunks (2 to 5 slices) each. */
const slicedTexts = () => makeTexts(808, 10, [10, 24]);

/** The sliced scenarios' fixture: clean chunk counts with their chunking, unsliced. */
const slicedFixture = (key: string, make: () => Text[]) => fixture(key, make, SLICED_CHUNKING);

/**
 * Deletes a document as DELETE /v1/documents/:id does (`deleteDocument`, then its original);
 * with `forget` false, without removing its slices (that removal is best effort): the slices
 * still queued must clean up for themselves.
 */
async function deleteDocument(services: Services, id: string, { forget = true } = {}): Promise<void> {
  const document = await services.documents.get(id);
  if (!document) return;
  if (forget) await deleteEverywhere(services, document);
  else {
    await removeFromIndexes(services, document);
    await services.documents.delete(document.id);
  }
  await services.originals.delete(document.r2Key);
}

/** Nothing left of any slice of these documents: no R2 object under their prefix, no slice record. */
async function expectNoSlicesLeft(world: World, ids: string[]): Promise<void> {
  for (const id of ids) {
    const listed = await world.services.originals.list({ prefix: `${SLICE_PREFIX}${id}/` });
    expect(listed.objects.map((o) => o.key), `slice objects of ${id} left in R2`).toEqual([]);
    const { results } = await env.DB.prepare('SELECT attempt, slice FROM document_slices WHERE document_id = ?').bind(id).all();
    expect(results, `slice records of ${id} left in D1`).toEqual([]);
  }
}

/**
 * Every document that ends ready was ingested in slices: one claim of it sent a slice message
 * for each of its slices (its clean chunk count, INGEST_SLICE_CHUNKS a slice), and no more.
 */
function expectSliced(report: Drive, expected: Expected[]): void {
  for (const doc of expected.filter((d) => d.outcome === 'ready')) {
    const byClaim = new Map<string, Set<number>>();
    for (const { body } of report.sent) {
      if (body.type !== 'slice' || body.documentId !== doc.id) continue;
      byClaim.set(body.attempt, (byClaim.get(body.attempt) ?? new Set()).add(body.slice));
    }
    const total = Math.ceil(doc.chunks! / SLICED.INGEST_SLICE_CHUNKS);
    expect(total, `${doc.id} has more than one slice`).toBeGreaterThan(1);
    expect(byClaim.size, `claims of ${doc.id} that sliced it`).toBeGreaterThan(0);
    for (const slices of byClaim.values()) expect([...slices].sort((a, b) => a - b), `slices of ${doc.id}`).toEqual([...Array(total).keys()]);
  }
}

/**
 * The end of a sliced scenario: every message acked (the batch's and every slice's), each ready
 * document sliced, the invariants (`checkInvariants`: chunk counts those of a clean,
 * unsliced ingestion), and nothing left of any slice.
 */
async function checkSliced(world: World, report: Drive, messages: Delivery[], namespace: string, expected: Expected[]): Promise<void> {
  expectDrained(report, [...messages, ...report.sent]);
  expectSliced(report, expected);
  await checkInvariants(world, namespace, expected);
  await expectNoSlicesLeft(world, expected.map((d) => d.id));
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
        expect(report.deadLettered.map((m) => m.body)).toEqual([{ type: 'ingest', documentId: doomed }]);
        expect([...report.acked].sort()).toEqual(messages.filter((m) => m.body.documentId !== doomed).map((m) => m.id).sort());
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
        expect(report.sent).toHaveLength(1);
        expect(report.sent[0]!.body).toMatchObject({ type: 'ingest', documentId: ids[LARGE]! });
        expectDrained(report, [...messages, ...report.sent]);
        expect(report.acked).toContain(`large-${ids[LARGE]}`);
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

    describe(`large documents in slices (INGEST_SLICE_CHUNKS ${SLICED.INGEST_SLICE_CHUNKS}: every document of the scenario is sliced)`, () => {
      it('an embedder failing 30 % of its calls: every document ready once, with its clean chunk count', async () => {
        const { texts, counts } = await slicedFixture('sliced', slicedTexts);
        const w = world(engine, SLICED);
        const injected = { calls: 0, faults: 0 };
        w.services = { ...w.services, embedder: flakyEmbedderByContent(w.services.embedder, 0.3, 3, injected) };
        const { namespace, ids, expected } = await setUp(w, 'slicedemb', texts, counts);
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        // Only slices embed: each fault is a slice's.
        expect(injected.faults).toBeGreaterThan(0);
        expect(report.deliveries, 'the faults cost re-deliveries').toBeGreaterThan(1 + report.sent.length);
        await checkSliced(w, report, messages, namespace, expected);
      });

      it('R2 reads (originals and slices) failing 10 % of calls: every document ready once', async () => {
        const { texts, counts } = await slicedFixture('sliced', slicedTexts);
        const w = world(engine, SLICED);
        const injected = { calls: 0, faults: 0, slices: 0 };
        const keys = stableKeys();
        w.services = { ...w.services, originals: flakyOriginals(w.services.originals, 0.1, 5, injected, keys.name) };
        const { namespace, ids, expected } = await setUp(w, 'slicedr2', texts, counts);
        keys.documents.push(...ids);
        const messages = messagesFor(ids);
        const report = await drive(w, [messages]);
        expect(injected.slices, 'reads of slices failed too').toBeGreaterThan(0);
        expect(injected.faults).toBeGreaterThan(injected.slices);
        await checkSliced(w, report, messages, namespace, expected);
      });

      describe('every message delivered twice', () => {
        it('everything delivered again, slices included: the second run embeds nothing; a document deleted in between stays gone', async () => {
          const { texts, counts } = await slicedFixture('sliced', slicedTexts);
          const w = world(engine, SLICED);
          const embedded = { texts: 0 };
          w.services = {
            ...w.services,
            embedder: wrap(w.services.embedder, 'embed', (call, [batch]) => ((embedded.texts += (batch as string[]).length), call())),
          };
          const { namespace, ids, expected } = await setUp(w, 'slicedtwice', texts, counts);
          const messages = messagesFor(ids);
          const first = await drive(w, [messages]);
          await checkSliced(w, first, messages, namespace, expected);
          const firstEmbedded = embedded.texts;
          expect(firstEmbedded).toBe(counts.reduce((a, b) => a + b, 0));

          const gone = ids[0]!;
          await deleteDocument(w.services, gone);
          expected[0] = { ...expected[0]!, outcome: 'deleted' };

          // The ingest batch again, and every slice message again (each alone), all at once:
          // the ready documents are ingested again, in slices of a new claim.
          const again = first.sent.map((m) => [{ ...m, attempts: 1 }]);
          const second = await drive(w, [messages, ...again]);
          expect(embedded.texts, 'the second run embeds nothing').toBe(firstEmbedded);
          expectDrained(second, [...messages, ...again.flat(), ...second.sent]);
          expectSliced(second, expected);
          await checkInvariants(w, namespace, expected);
          await expectNoSlicesLeft(w, ids);
        });

        it('each slice message twice at once: two invocations of the same slice race', async () => {
          const { texts, counts } = await slicedFixture('sliced', slicedTexts);
          const w = world(engine, SLICED);
          const { namespace, expected, ids } = await setUp(w, 'slicedrace', texts, counts);
          const messages = messagesFor(ids);
          const report = await drive(w, [messages], { sliceCopies: 'together' });
          await checkSliced(w, report, messages, namespace, expected);
        });

        it('each slice message again once it was handled', async () => {
          const { texts, counts } = await slicedFixture('sliced', slicedTexts);
          const w = world(engine, SLICED);
          const { namespace, expected, ids } = await setUp(w, 'slicedlater', texts, counts);
          const messages = messagesFor(ids);
          const report = await drive(w, [messages], { sliceCopies: 'later' });
          await checkSliced(w, report, messages, namespace, expected);
        });

        it('the ingest batch to two invocations at once: one slices each document, the other defers, then slices it again', async () => {
          const { texts, counts } = await slicedFixture('sliced', slicedTexts);
          const w = world(engine, SLICED);
          const { namespace, expected, ids } = await setUp(w, 'slicedracing', texts, counts);
          const a = messagesFor(ids, 'a');
          const b = messagesFor(ids, 'b');
          const report = await drive(w, [a, b]);
          await checkSliced(w, report, [...a, ...b], namespace, expected);
        });
      });

      describe('a consumer that throws at each step boundary of a slice in turn', () => {
        /**
         * Each seam throws on its first two calls (all of them slices' or their last one's):
         * - before and after staging the slice's chunks (`engine.stage`);
         * - after writing its chunk rows (`chunks.write`);
         * - after recording the slice done (`slices.complete`, its answer lost);
         * - before activating the whole version (`engine.activate`, in the last slice's publish);
         * - after marking the document ready (`documents.markReady` committed, its answer lost).
         */
        const boundaries: { name: string; inject: (s: Services, injected: Injected) => Services; redelivered?: false }[] = [
          { name: 'before staging its chunks (engine.stage)', inject: (s, i) => ({ ...s, engine: throwing(s.engine, 'stage', 'before', 2, i) }) },
          { name: 'after staging its chunks (engine.stage)', inject: (s, i) => ({ ...s, engine: throwing(s.engine, 'stage', 'after', 2, i) }) },
          { name: 'after writing its chunk rows (chunks.write)', inject: (s, i) => ({ ...s, chunks: throwing(s.chunks, 'write', 'after', 2, i) }) },
          { name: 'after recording it done (slices.complete, its answer lost)', inject: (s, i) => ({ ...s, slices: throwing(s.slices, 'complete', 'after', 2, i) }) },
          { name: 'before activating the version (engine.activate)', inject: (s, i) => ({ ...s, engine: throwing(s.engine, 'activate', 'before', 2, i) }) },
          {
            name: 'after marking ready (documents.markReady committed, its answer lost)',
            inject: (s, i) => ({ ...s, documents: throwing(s.documents, 'markReady', 'after', 2, i) }),
            // The last slice reads the document back, finds it ready, and is done.
            redelivered: false,
          },
        ];
        for (const boundary of boundaries) {
          it(`throws ${boundary.name}`, async () => {
            const { texts, counts } = await slicedFixture('sliced', slicedTexts);
            const w = world(engine, SLICED);
            const injected = { calls: 0, faults: 0 };
            w.services = boundary.inject(w.services, injected);
            const { namespace, ids, expected } = await setUp(w, 'slicedboundary', texts, counts);
            const messages = messagesFor(ids);
            const report = await drive(w, [messages]);
            expect(injected.faults, 'the seam was reached and threw').toBe(2);
            // The batch, and each slice once: more when the faults cost re-deliveries.
            if (boundary.redelivered === false) expect(report.deliveries, 'no re-delivery').toBe(1 + report.sent.length);
            else expect(report.deliveries, 'the faults cost re-deliveries').toBeGreaterThan(1 + report.sent.length);
            await checkSliced(w, report, messages, namespace, expected);
          });
        }
      });

      describe('a sliced document that fails', () => {
        it('one of its slices refused by the provider: the document fails at once, nothing of it left in any index', async () => {
          const { texts, counts } = await slicedFixture('sliced-deleted', () => slicedTexts().slice(0, 6));
          const w = world(engine, SLICED);
          const { namespace, ids, expected } = await setUp(w, 'slicedpoison', texts, counts);
          const marker = texts[2]!.marker;
          // Refuses (400, not retryable) the first call holding the document's text, and that call's texts ever after: one slice.
          let poison: string | null = null;
          w.services = {
            ...w.services,
            embedder: wrap(w.services.embedder, 'embed', async (call, [batch]) => {
              const key = (batch as string[]).join('\u0000');
              if (poison === null && key.includes(marker)) poison = key;
              if (key === poison) throw new AppError('bad_request', 'The provider refused one of the texts (injected).');
              return call();
            }),
          };
          expected[2] = { ...expected[2]!, outcome: 'failed', reason: /^Indexing failed: The provider refused one of the texts/ };
          const messages = messagesFor(ids);
          const report = await drive(w, [messages]);
          expect(poison).not.toBeNull();
          await checkSliced(w, report, messages, namespace, expected);
        });

        /*
         * Slice B read its state while the claim held the document; then slice A was refused and
         * the document failed for good. B's staging after that must be taken back.
         */
        it('one of its slices refused while another is at work, which stages its chunks once the document has failed: nothing of it left', async () => {
          const { texts, counts } = await slicedFixture('sliced-deleted', () => slicedTexts().slice(0, 6));
          const w = world(engine, SLICED);
          const { namespace, ids, expected } = await setUp(w, 'slicedslow', texts, counts);
          const doomed = ids[2]!;
          const marker = texts[2]!.marker;
          let poison: string | null = null;
          let waited = 0;
          const base = w.services;
          w.services = {
            ...base,
            embedder: wrap(base.embedder, 'embed', async (call, [batch]) => {
              const key = (batch as string[]).join('\u0000');
              if (poison === null && key.includes(marker)) poison = key;
              if (key === poison) throw new AppError('bad_request', 'The provider refused one of the texts (injected).');
              return call();
            }),
            // The document's other slices are slow: they stage once the refused one has failed it.
            engine: wrap(base.engine, 'stage', async (call, [, chunks]) => {
              if ((chunks as { documentId: string }[]).some((c) => c.documentId === doomed)) {
                for (let i = 0; i < 400 && (await base.documents.get(doomed))?.status !== 'failed'; i++) await scheduler.wait(5);
                waited++;
              }
              return call();
            }),
          };
          expected[2] = { ...expected[2]!, outcome: 'failed', reason: /^Indexing failed: The provider refused one of the texts/ };
          const messages = messagesFor(ids);
          const report = await drive(w, [messages]);
          expect(waited, 'slices of the document staged after it failed').toBeGreaterThan(0);
          await checkSliced(w, report, messages, namespace, expected);
        });

        /*
         * A re-ingestion in slices that fails for good keeps the previous version, and only its
         * catalog rows: slices write none before the version is activated.
         */
        it(
          'a ready document re-ingested in slices, one of which is refused: it keeps its previous version, and only it, in the catalog too',
          async () => {
            const { texts, counts } = await slicedFixture('sliced-reingest', () => slicedTexts().slice(0, 2));
            const w = world(engine, SLICED);
            const { namespace, ids, expected } = await setUp(w, 'slicedkeep', texts.slice(0, 1), counts.slice(0, 1));
            const first = messagesFor(ids);
            await checkSliced(w, await drive(w, [first]), first, namespace, expected);
            const id = ids[0]!;
            const before = await chunkRowIds(id);

            // Version 2 (another text, its own marker), re-indexed as POST /v1/documents/:id/reindex does.
            const document = (await w.services.documents.get(id))!;
            await w.services.originals.put(document.r2Key, new TextEncoder().encode(texts[1]!.text));
            await w.services.documents.markQueued([id]);
            // The provider refuses one slice of it, once every other slice is in.
            const total = Math.ceil(counts[1]! / SLICED.INGEST_SLICE_CHUNKS);
            let poison: string | null = null;
            const base = w.services;
            w.services = {
              ...base,
              embedder: wrap(base.embedder, 'embed', async (call, [batch]) => {
                const key = (batch as string[]).join('\u0000');
                if (poison === null && key.includes(texts[1]!.marker)) poison = key;
                if (key !== poison) return call();
                for (let i = 0; i < 400 && (await base.documents.get(id))?.slices?.done !== total - 1; i++) await scheduler.wait(5);
                throw new AppError('bad_request', 'The provider refused one of the texts (injected).');
              }),
            };
            const again = messagesFor(ids, 'r');
            const report = await drive(w, [again]);
            expectDrained(report, [...again, ...report.sent]);
            expect(report.sent.filter((m) => m.body.type === 'slice')).toHaveLength(total);
            w.settle();
            expect(await w.services.documents.get(id)).toMatchObject({
              status: 'ready',
              chunkCount: counts[0],
              error: expect.stringMatching(/^Re-indexing failed \(The provider refused one of the texts/),
            });
            const hits = async (marker: string) => (await keywordSearch(w.services, namespace, marker)).map((h) => h.id).sort();
            expect(await hits(texts[0]!.marker), 'the previous version is searchable, whole').toEqual(before);
            expect(await hits(texts[1]!.marker), 'nothing of the failed version is searchable').toEqual([]);
            const passages = await w.services.engine.documentPassages(namespace, id, { from: 0, limit: 1000 });
            expect(passages.map((p) => p.id).sort()).toEqual(before);
            await expectNoSlicesLeft(w, ids);
            expect(await chunkRowIds(id), "catalog rows: the previous version's").toEqual(before);
            expect(await w.services.chunks.count(namespace), 'catalog chunk rows of the namespace').toBe(counts[0]);
          },
        );

        it('staging its chunks always fails (transiently): it fails after MAX_ATTEMPTS, its slice messages dead-lettered, nothing of it left', async () => {
          const { texts, counts } = await slicedFixture('sliced-deleted', () => slicedTexts().slice(0, 6));
          const w = world(engine, SLICED);
          const { namespace, ids, expected } = await setUp(w, 'slicedexhaust', texts, counts);
          const doomed = ids[2]!;
          // Stages its chunks, then throws: each attempt leaves staged chunks behind to clean up.
          w.services = {
            ...w.services,
            engine: wrap(w.services.engine, 'stage', async (call, [, chunks]) => {
              const result = await call();
              if ((chunks as { documentId: string }[]).some((c) => c.documentId === doomed)) throw new Error('injected: the engine lost the connection');
              return result;
            }),
          };
          expected[2] = { ...expected[2]!, outcome: 'failed', reason: new RegExp(`^Indexing failed after ${MAX_ATTEMPTS} attempts`) };
          const messages = messagesFor(ids);
          const report = await drive(w, [messages]);
          // Its slices run their attempts side by side: the first at its last attempt fails the
          // document and goes to the dead-letter queue; any other finds the claim gone and is acked.
          expect(report.deadLettered.length).toBeGreaterThan(0);
          for (const { body } of report.deadLettered) expect(body).toMatchObject({ type: 'slice', documentId: doomed });
          expect([...report.acked, ...report.deadLettered.map((m) => m.id)].sort()).toEqual([...messages, ...report.sent].map((m) => m.id).sort());
          expectSliced(report, expected);
          await checkInvariants(w, namespace, expected);
          await expectNoSlicesLeft(w, ids);
        });
      });

      describe('a sliced document deleted while its slices are queued or at work', () => {
        /** Which document is deleted: the third, so its batch neighbours are in the same rounds. */
        const DOOMED = 2;
        const cases: { name: string; inject: (w: World, doomed: string) => DriveOptions | void }[] = [
          {
            name: 'deleted as DELETE /v1/documents/:id does, its slices queued',
            inject: (w, doomed) => ({ beforeRound: async (n) => void (n === 1 && (await deleteDocument(w.services, doomed))) }),
          },
          {
            // As an R2 delete event does it (applyR2Event removes no slice), or the API when its
            // best-effort removal of the slices fails: the slices still queued remove them.
            name: 'deleted without removing its slices (an R2 delete event), its slices queued: they remove them',
            inject: (w, doomed) => ({ beforeRound: async (n) => void (n === 1 && (await deleteDocument(w.services, doomed, { forget: false }))) }),
          },
          {
            name: 'deleted while one of its slices stages its chunks',
            inject: (w, doomed) => {
              const base = w.services;
              let done = false;
              w.services = {
                ...base,
                engine: wrap(base.engine, 'stage', async (call, [, chunks]) => {
                  if (!done && (chunks as { documentId: string }[]).some((c) => c.documentId === doomed)) {
                    done = true;
                    await deleteDocument(base, doomed);
                  }
                  return call();
                }),
              };
            },
          },
          {
            name: 'deleted while its last slice publishes it (before marking ready)',
            inject: (w, doomed) => {
              const base = w.services;
              w.services = {
                ...base,
                documents: wrap(base.documents, 'markReady', async (call, [updates]) => {
                  if ((updates as { id: string }[]).some((u) => u.id === doomed)) await deleteDocument(base, doomed);
                  return call();
                }),
              };
            },
          },
          {
            name: 'deleted while it is cut into slices (before its claim records them)',
            // startSlices has put the slice objects when it finds the document gone: it removes them.
            inject: (w, doomed) => {
              const base = w.services;
              w.services = {
                ...base,
                slices: wrap(base.slices, 'start', async (call, [documentId]) => {
                  if (documentId === doomed) await deleteDocument(base, doomed);
                  return call();
                }),
              };
            },
          },
        ];
        for (const c of cases) {
          const run = async () => {
            const { texts, counts } = await slicedFixture('sliced-deleted', () => slicedTexts().slice(0, 6));
            const w = world(engine, SLICED);
            const { namespace, ids, expected } = await setUp(w, 'sliceddel', texts, counts);
            const doomed = ids[DOOMED]!;
            const options = c.inject(w, doomed) ?? {};
            expected[DOOMED] = { ...expected[DOOMED]!, outcome: 'deleted' };
            const messages = messagesFor(ids);
            const report = await drive(w, [messages], options);
            expect(await w.services.documents.get(doomed)).toBeNull();
            await checkSliced(w, report, messages, namespace, expected);
          };
          it(c.name, run);
        }
      });
    });
  });
}
