/**
 * Large documents in slices ("ingestion that nothing can stall", part 5): a document of more
 * chunks than INGEST_SLICE_CHUNKS is parsed once, then embedded and indexed one slice per
 * queue message, through the real queue handler. The queues here are spies: each test
 * delivers what was sent, one message per invocation, as the queue for large documents does.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { getServices } from '../src/composition';
import { AppError } from '../src/domain/errors';
import type { DocumentType, EmbeddingProvider, IngestRequest, StoredPassage } from '../src/domain';
import { presentDocument } from '../src/http/present';
import { consumeIngestBatch } from '../src/ingestion/consumer';
import { removeFromIndexes } from '../src/ingestion/indexing';
import { forgetSlices, SLICE_PREFIX } from '../src/ingestion/slices';
import { sweepOverdue } from '../src/ingestion/sweeper';
import type { Services } from '../src/services';
import { FakeVectorize } from '../fakes/vectorize';
import { cloudflareEngine } from './engines';
import { sampleFile } from './helpers';
import { spyQueue } from './support';

const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;

/** Small chunks and slices of three: a few paragraphs make a document of many slices. */
const SLICING = { CHUNK_SIZE: 48, CHUNK_OVERLAP: 8, INGEST_SLICE_CHUNKS: 3 };

/** Paragraphs sharing a marker word: with SLICING, some twenty chunks. */
function text(marker: string, paragraphs = 6): string {
  const topics = ['glaciers', 'volcanoes', 'estuaries', 'deserts', 'tundra', 'reefs', 'canyons', 'wetlands'];
  return Array.from({ length: paragraphs }, (_, p) =>
    Array.from({ length: 6 }, (_, s) => `The ${topics[p % topics.length]} survey ${p}.${s} recorded ${marker} samples near station ${p * 100 + s}.`).join(' '),
  ).join('\n\n');
}

interface Harness {
  services: Services;
  /** Messages sent to either queue, not delivered yet. */
  sent: IngestRequest[];
  /** Texts the embedder was asked to embed. */
  embedded: string[];
}

/** Services with SLICING, spy queues, and an embedder that counts what it embeds (and may fail first). */
function harness(config: Partial<Services['config']> = {}, fail?: () => Error | null): Harness {
  const base = getServices(env);
  const { queue, sent } = spyQueue();
  const embedded: string[] = [];
  const embedder: EmbeddingProvider = Object.create(base.embedder, {
    embed: {
      value: async (texts: string[]) => {
        const error = fail?.();
        if (error) throw error;
        embedded.push(...texts);
        return base.embedder.embed(texts);
      },
    },
  });
  return { services: { ...base, queue, largeQueue: queue, embedder, config: { ...base.config, ...SLICING, ...config } }, sent, embedded };
}

/** Puts an original in R2 and a `queued` row in D1. */
async function stage(
  services: Services,
  namespace: string,
  content: string | Uint8Array,
  id = crypto.randomUUID().replaceAll('-', ''),
  type: DocumentType = 'txt',
): Promise<string> {
  const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, bytes);
  await services.documents.enqueue([{ id, namespace, title: `doc ${id.slice(0, 6)}`, filename: null, type, size: bytes.byteLength, r2Key, metadata: {} }]);
  return id;
}

/** Delivers one message alone, as the queue for large documents does; returns whether it was retried, and with what delay. */
async function deliver(services: Services, body: IngestRequest, attempts = 1): Promise<{ retried: boolean; delaySeconds?: number }> {
  const batch = createMessageBatch('rag-engine-ingest-large', [{ id: crypto.randomUUID(), timestamp: Date.now(), attempts, body }]);
  // The plugin's getQueueResult drops retry options: record the delay asked for.
  const message = batch.messages[0]!;
  const retry = message.retry.bind(message);
  let delaySeconds: number | undefined;
  Object.defineProperty(message, 'retry', { value: (options?: QueueRetryOptions) => ((delaySeconds = options?.delaySeconds), retry(options)) });
  const ctx = createExecutionContext();
  await consumeIngestBatch(batch, services, { alone: true });
  const result = await getQueueResult(batch, ctx);
  return { retried: result.retryMessages.length > 0, delaySeconds };
}

/** Delivers every message sent until none is left (retries at once, attempts counted). */
async function drain(h: Harness): Promise<void> {
  for (let round = 0; h.sent.length; round++) {
    if (round > 200) throw new Error('the queue never drained');
    const body = h.sent.shift() as IngestRequest;
    const { retried } = await deliver(h.services, body);
    if (retried) h.sent.push(body);
  }
}

const fusion = { k: 60, vectorWeight: 1, keywordWeight: 1 };
async function keywordHits(services: Services, namespace: string, word: string): Promise<string[]> {
  const found = await services.engine.search({ namespace, text: word, vector: null, mode: 'keyword', limit: 100, candidates: 100, filter: null, fusion });
  return found.map((p) => p.id);
}

async function chunkRows(documentId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM chunks WHERE document_id = ?').bind(documentId).first<{ n: number }>();
  return row?.n ?? 0;
}

async function sliceObjects(services: Services, documentId: string): Promise<number> {
  return (await services.originals.list({ prefix: `${SLICE_PREFIX}${documentId}/` })).objects.length;
}

/** The chunk count of the same text ingested in one piece. */
async function unslicedCount(content: string): Promise<number> {
  const h = harness({ INGEST_SLICE_CHUNKS: 100_000 });
  const id = await stage(h.services, unique('whole'), content);
  await deliver(h.services, { type: 'ingest', documentId: id });
  const document = await h.services.documents.get(id);
  expect(document?.status).toBe('ready');
  return document!.chunkCount;
}

describe('ingestion in slices', () => {
  it('parses once, indexes slice by slice with its progress shown, and is searchable only with every slice in', async () => {
    const h = harness();
    const namespace = unique('sl');
    const content = text('zorbulite');
    const expected = await unslicedCount(content);
    const id = await stage(h.services, namespace, content);

    await deliver(h.services, { type: 'ingest', documentId: id });
    const total = Math.ceil(expected / SLICING.INGEST_SLICE_CHUNKS);
    expect(total).toBeGreaterThan(3);
    expect(h.sent).toHaveLength(total);
    expect(h.sent.every((m) => m.type === 'slice' && m.documentId === id)).toBe(true);
    expect(h.embedded).toEqual([]); // parsing embeds nothing
    let document = await h.services.documents.get(id);
    expect(document?.status).toBe('processing');
    expect(presentDocument(document!).progress).toEqual({ total, done: 0 });

    for (let done = 1; done < total; done++) {
      await deliver(h.services, h.sent.shift()!);
      document = await h.services.documents.get(id);
      expect(document?.slices).toEqual({ total, done });
      // Staged, never searchable before the last slice.
      expect(await keywordHits(h.services, namespace, 'zorbulite')).toEqual([]);
      // No invocation embeds more than its slice.
      expect(h.embedded.length).toBeLessThanOrEqual(done * SLICING.INGEST_SLICE_CHUNKS);
    }
    await deliver(h.services, h.sent.shift()!);
    document = await h.services.documents.get(id);
    expect(document).toMatchObject({ status: 'ready', chunkCount: expected, error: null, slices: null });
    expect(presentDocument(document!).progress).toBeNull();
    const hits = await keywordHits(h.services, namespace, 'zorbulite');
    expect(hits).toHaveLength(expected);
    expect(new Set(hits).size).toBe(expected);
    expect(h.embedded).toHaveLength(expected);
    expect(await chunkRows(id)).toBe(expected);
    expect((await h.services.engine.count(namespace)).passages).toBe(expected);
    expect(await sliceObjects(h.services, id)).toBe(0);
    const { n } = (await env.DB.prepare('SELECT COUNT(*) AS n FROM document_slices WHERE document_id = ?').bind(id).first<{ n: number }>())!;
    expect(n).toBe(0);
  });

  it('repeats no work for a slice delivered again, and finishes again when the last one was lost after its work', async () => {
    const h = harness();
    const namespace = unique('sl');
    const id = await stage(h.services, namespace, text('quibberite'));
    await deliver(h.services, { type: 'ingest', documentId: id });
    const slices = [...h.sent];
    for (const body of slices) await deliver(h.services, body);
    const embeddedOnce = h.embedded.length;
    const ready = await h.services.documents.get(id);
    expect(ready?.status).toBe('ready');
    // Every slice again (a queue delivering twice): nothing is embedded, nothing changes.
    for (const body of slices) expect((await deliver(h.services, body)).retried).toBe(false);
    expect(h.embedded).toHaveLength(embeddedOnce);
    expect(await h.services.documents.get(id)).toMatchObject({ status: 'ready', chunkCount: ready!.chunkCount, indexedAt: ready!.indexedAt });
    expect(await keywordHits(h.services, namespace, 'quibberite')).toHaveLength(ready!.chunkCount);
  });

  it("keeps a slice's claim through a transient failure, and fails the document alone on a refusal", async () => {
    let failNext: Error | null = null;
    const h = harness({}, () => {
      const error = failNext;
      failNext = null;
      return error;
    });
    const namespace = unique('sl');
    const id = await stage(h.services, namespace, text('plindrite'));
    await deliver(h.services, { type: 'ingest', documentId: id });
    await deliver(h.services, h.sent.shift()!);

    failNext = new AppError('provider_error', 'The embedding provider is down.', { retryable: true });
    const body = h.sent.shift()!;
    const { retried, delaySeconds } = await deliver(h.services, body);
    expect(retried).toBe(true);
    expect(delaySeconds).toBe(15);
    let document = await h.services.documents.get(id);
    expect(document?.status).toBe('processing');
    expect(document?.slices).toEqual({ total: h.sent.length + 2, done: 1 });
    expect(document?.error).toMatch(/Attempt 1 failed \(The embedding provider is down\.\); retrying in 15 s/);
    // Its lease outlasts the wait: the sweeper leaves it alone.
    expect(await sweepOverdue(h.services)).not.toContain(id);
    expect((await deliver(h.services, body, 2)).retried).toBe(false);
    expect((await h.services.documents.get(id))?.slices?.done).toBe(2);

    failNext = new AppError('provider_error', 'The provider refused this text.', { retryable: false });
    expect((await deliver(h.services, h.sent.shift()!)).retried).toBe(false);
    document = await h.services.documents.get(id);
    expect(document).toMatchObject({ status: 'failed', chunkCount: 0 });
    expect(document?.error).toMatch(/refused this text/);
    expect(await chunkRows(id)).toBe(0);
    expect((await h.services.engine.count(namespace)).vectors).toBe(0);
    expect(await sliceObjects(h.services, id)).toBe(0);
    // The slices still queued belong to a claim that ended: they change nothing.
    await drain(h);
    expect((await h.services.documents.get(id))?.status).toBe('failed');
    expect((await h.services.engine.count(namespace)).vectors).toBe(0);
  });

  it('serves the previous version of a ready document until the last slice of the new one is in', async () => {
    const h = harness();
    const namespace = unique('sl');
    const id = await stage(h.services, namespace, text('vormelite'));
    h.sent.push({ type: 'ingest', documentId: id });
    await drain(h);
    const first = await h.services.documents.get(id);
    expect(first?.status).toBe('ready');

    // The original changes (half of it new), and is re-ingested.
    await stage(h.services, namespace, `${text('vormelite', 3)}\n\n${text('skandrite', 3)}`, id);
    await deliver(h.services, { type: 'ingest', documentId: id });
    const slices = h.sent.splice(0);
    for (const body of slices.slice(0, -1)) {
      await deliver(h.services, body);
      expect(await keywordHits(h.services, namespace, 'skandrite')).toEqual([]);
      expect(await keywordHits(h.services, namespace, 'vormelite')).toHaveLength(first!.chunkCount);
    }
    const embeddedBefore = h.embedded.length;
    await deliver(h.services, slices.at(-1)!);
    const second = await h.services.documents.get(id);
    expect(second?.status).toBe('ready');
    expect(second?.chunkCount).toBe(await unslicedCount(`${text('vormelite', 3)}\n\n${text('skandrite', 3)}`));
    expect(h.embedded.length - embeddedBefore).toBeLessThanOrEqual(SLICING.INGEST_SLICE_CHUNKS);
    expect(await keywordHits(h.services, namespace, 'skandrite')).not.toEqual([]);
    // The old version's chunks are gone from the engine and the catalog: only the new ones remain.
    expect((await h.services.engine.count(namespace)).passages).toBe(second!.chunkCount);
    expect(await chunkRows(id)).toBe(second!.chunkCount);
  });

  it('leaves nothing of a document deleted while its slices are queued', async () => {
    const h = harness();
    const namespace = unique('sl');
    const id = await stage(h.services, namespace, text('drammelite'));
    await deliver(h.services, { type: 'ingest', documentId: id });
    await deliver(h.services, h.sent.shift()!);
    expect(await sliceObjects(h.services, id)).toBeGreaterThan(0);
    // What DELETE /v1/documents/:id does.
    const document = (await h.services.documents.get(id))!;
    await removeFromIndexes(h.services, document);
    await h.services.documents.delete(id);
    await forgetSlices(h.services, id);
    await drain(h);
    expect(await h.services.documents.get(id)).toBeNull();
    expect(await chunkRows(id)).toBe(0);
    expect((await h.services.engine.count(namespace)).vectors).toBe(0);
    expect(await sliceObjects(h.services, id)).toBe(0);
  });

  it('takes over when slices stop coming: the sweeper re-queues it, and the next claim reuses what was embedded', async () => {
    const h = harness();
    const namespace = unique('sl');
    const id = await stage(h.services, namespace, text('frostelite'));
    await deliver(h.services, { type: 'ingest', documentId: id });
    const stalled = h.sent.splice(0);
    await deliver(h.services, stalled[0]!);
    await deliver(h.services, stalled[1]!);
    const embeddedBefore = h.embedded.length;
    // The rest of its messages are lost (a restart); its lease runs out.
    expect(await sweepOverdue(h.services)).not.toContain(id);
    await env.DB.prepare('UPDATE documents SET lease_until = ? WHERE id = ?').bind(Date.now() - 1, id).run();
    expect(await sweepOverdue(h.services)).toContain(id);
    expect(h.sent).toEqual([{ type: 'ingest', documentId: id }]);
    await deliver(h.services, h.sent.shift()!);
    // A lost message of the claim taken over turns up late: it changes nothing.
    expect((await deliver(h.services, stalled[2]!)).retried).toBe(false);
    await drain(h);
    const document = await h.services.documents.get(id);
    expect(document?.status).toBe('ready');
    // The two slices done before were not embedded again.
    expect(h.embedded.length - embeddedBefore).toBe(document!.chunkCount - embeddedBefore);
    expect(await keywordHits(h.services, namespace, 'frostelite')).toHaveLength(document!.chunkCount);
    expect(await sliceObjects(h.services, id)).toBe(0);
  });
});

/** A document's searchable passages, in order, as the engine returns them. */
async function passagesOf(services: Services, namespace: string, id: string): Promise<Omit<StoredPassage, 'id' | 'documentId' | 'title'>[]> {
  const all: StoredPassage[] = [];
  for (let from = 0; ; from += 100) {
    const page = await services.engine.documentPassages(namespace, id, { from, limit: 100 });
    all.push(...page);
    if (page.length < 100) break;
  }
  // Ids and titles hold the document id, which differs between the two ingestions.
  return all.map(({ id: _id, documentId: _d, title: _t, ...rest }) => rest);
}

for (const kind of ['local', 'cloudflare'] as const) {
  describe(`real files in slices (${kind} engine)`, () => {
    it('indexes the largest PDF and a long Markdown file in slices exactly as in one piece', async () => {
      const base = getServices(env);
      const engine = kind === 'local' ? base.engine : cloudflareEngine(new FakeVectorize({ dimensions: base.embedder.dimensions, metadataIndexes: ['documentId'] }), base.embedder.dimensions);
      for (const [path, type] of [
        ['documents/pdf/pdfjs__tracemonkey.pdf', 'pdf'],
        ['documents/md/mammoth.js__README.md', 'md'],
      ] as const) {
        const bytes = await sampleFile(path);
        const results = [];
        for (const sliceChunks of [100_000, 4]) {
          const h = harness({ INGEST_SLICE_CHUNKS: sliceChunks, CHUNK_SIZE: 512, CHUNK_OVERLAP: 50 });
          h.services = { ...h.services, engine };
          const namespace = unique('real');
          const id = await stage(h.services, namespace, bytes, undefined, type);
          h.sent.push({ type: 'ingest', documentId: id });
          await drain(h);
          const document = await h.services.documents.get(id);
          expect(document?.status, path).toBe('ready');
          results.push({ chunkCount: document!.chunkCount, passages: await passagesOf(h.services, namespace, id) });
        }
        const [whole, sliced] = results;
        expect(sliced!.chunkCount, path).toBe(whole!.chunkCount);
        expect(sliced!.chunkCount, `${path} is sliced`).toBeGreaterThan(4);
        expect(sliced!.passages, path).toEqual(whole!.passages);
        expect(sliced!.passages).toHaveLength(sliced!.chunkCount);
      }
    }, 60_000);
  });
}
