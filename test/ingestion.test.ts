import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import worker from '../src/index';
import { consumeIngestBatch, LARGE_DOCUMENT_BYTES, MAX_ATTEMPTS, MAX_DELAY_SECONDS, retryDelaySeconds } from '../src/ingestion/consumer';
import { acceptUploads } from '../src/ingestion/upload';
import { ingestDocuments, LEASE_MS } from '../src/ingestion/pipeline';
import type { DocumentType } from '../src/ingestion/types';
import { LocalEmbedder } from '../src/providers/local-embedder';
import type { EmbeddingProvider } from '../src/domain';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';
import { api, query, sampleFile, uploadFiles, uploadText, waitUntilSettled } from './helpers';
import { spyQueue } from './support';

const services = getServices(env);
const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;

/** Puts an original in R2 and a `queued` row in D1, without a queue message: only the test ingests it. */
async function stage(namespace: string, content: string | Uint8Array, type: DocumentType = 'txt'): Promise<string> {
  const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  const id = crypto.randomUUID().replaceAll('-', '');
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, bytes);
  await services.documents.enqueue([{ id, namespace, title: `doc ${id.slice(0, 6)}`, filename: null, type, size: bytes.byteLength, r2Key, metadata: {} }]);
  return id;
}

async function chunkRows(documentId: string) {
  const { results } = await env.DB.prepare('SELECT id, embedding_model FROM chunks WHERE document_id = ?')
    .bind(documentId)
    .all<{ id: string; embedding_model: string }>();
  return results;
}

/** Passages of a namespace the search engine finds by a word (keyword search). */
async function keywordHits(namespace: string, word: string): Promise<number> {
  const fusion = { k: 60, vectorWeight: 1, keywordWeight: 1 };
  const found = await services.engine.search({ namespace, text: word, vector: null, mode: 'keyword', limit: 10, candidates: 10, filter: null, fusion });
  return found.length;
}

/** Vectors the search engine holds for a namespace, staged ones included. */
async function vectorCount(namespace: string): Promise<number> {
  return (await services.engine.count(namespace)).vectors;
}

async function ingestOne(id: string, using: Services = services) {
  return (await ingestDocuments(using, [id])).get(id);
}

/** Several paragraphs, well over one 512-token chunk, sharing a marker word. */
function longText(marker: string, paragraphs = 8): string {
  const topics = ['glaciers', 'volcanoes', 'estuaries', 'deserts', 'tundra', 'reefs', 'canyons', 'wetlands', 'savannas', 'fjords'];
  return Array.from({ length: paragraphs }, (_, p) => {
    const topic = topics[p % topics.length];
    return Array.from({ length: 12 }, (_, s) => `The ${topic} survey ${p}.${s} recorded ${marker} samples near station ${p * 100 + s} before the weather turned.`).join(' ');
  }).join('\n\n');
}

const failingEmbedder = (error: unknown): EmbeddingProvider => ({
  model: services.embedder.model,
  dimensions: services.embedder.dimensions,
  maxBatchSize: 100,
  embed: async () => {
    throw error;
  },
});

function batchOf(...messages: { id: string; body: unknown; attempts?: number }[]) {
  return createMessageBatch('rag-engine-ingest', messages.map((m) => ({ timestamp: Date.now(), attempts: 1, ...m })));
}

/**
 * Runs the consumer on a batch. The plugin's getQueueResult never fills `delaySeconds` (its
 * messages drop retry options), so each message's retry() is wrapped to record them.
 */
async function consume(batch: MessageBatch<unknown>, using: Services = services) {
  const delays = new Map<string, number | undefined>();
  for (const message of batch.messages) {
    const retry = message.retry.bind(message);
    Object.defineProperty(message, 'retry', { value: (options?: QueueRetryOptions) => (delays.set(message.id, options?.delaySeconds), retry(options)) });
  }
  const ctx = createExecutionContext();
  await consumeIngestBatch(batch, using);
  const result = await getQueueResult(batch, ctx);
  return { ...result, retryMessages: result.retryMessages.map((m) => ({ msgId: m.msgId, delaySeconds: delays.get(m.msgId) })) };
}

describe('ingestion pipeline', () => {
  it('is idempotent: a second ingestion embeds nothing and stores nothing more', async () => {
    const namespace = unique('idem');
    const text = longText(unique('w'), 4);
    const uploaded = await uploadText({ text, title: 'Field notes', namespace });
    const settled = await waitUntilSettled(uploaded.id);
    expect(settled.status).toBe('ready');
    const rowsBefore = await chunkRows(uploaded.id);
    const vectorsBefore = await vectorCount(namespace);
    expect(rowsBefore.length).toBe(settled.chunkCount);
    expect(vectorsBefore).toBe(settled.chunkCount);

    expect(await ingestOne(uploaded.id)).toEqual({ status: 'ready', chunkCount: settled.chunkCount, embedded: 0, removed: 0 });
    expect((await chunkRows(uploaded.id)).map((r) => r.id).sort()).toEqual(rowsBefore.map((r) => r.id).sort());
    expect(await vectorCount(namespace)).toBe(vectorsBefore);

    const before = (await (await api(`/v1/documents/${uploaded.id}`)).json()) as { updatedAt: string };
    const again = await uploadText({ text, title: 'Field notes', namespace });
    expect(again).toMatchObject({ id: uploaded.id, duplicate: true, status: 'ready' });
    // Re-enqueueing would have set the row back to queued and touched updatedAt.
    expect(await (await api(`/v1/documents/${uploaded.id}`)).json()).toMatchObject({ status: 'ready', updatedAt: before.updatedAt });
    const sent: unknown[] = [];
    const recording = { ...services, queue: { send: async (m: unknown) => void sent.push(m), sendBatch: async (m: unknown[]) => void sent.push(...m) } as unknown as Services['queue'] };
    const [accepted] = await acceptUploads(recording, [{ bytes: new TextEncoder().encode(text) }], { namespace, metadata: {} });
    expect(accepted).toMatchObject({ id: uploaded.id, duplicate: true });
    expect(sent).toEqual([]);
  });

  it('re-embeds only chunks whose model changed, and drops stale chunks after a chunking change', async () => {
    const namespace = unique('chg');
    const id = await stage(namespace, longText(unique('w')));
    const first = await ingestOne(id);
    if (first?.status !== 'ready') throw new Error(`not ready: ${JSON.stringify(first)}`);
    expect(first.chunkCount).toBeGreaterThanOrEqual(3);
    expect(first.embedded).toBe(first.chunkCount);

    const rows = await chunkRows(id);
    const changed = rows.slice(0, 2).map((r) => r.id);
    await env.DB.prepare("UPDATE chunks SET embedding_model = 'old-model' WHERE id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(changed)).run();
    expect(await ingestOne(id)).toEqual({ status: 'ready', chunkCount: first.chunkCount, embedded: 2, removed: 0 });
    expect((await chunkRows(id)).every((r) => r.embedding_model === services.embedder.model)).toBe(true);

    const v2 = { ...services, embedder: new LocalEmbedder({ dimensions: services.embedder.dimensions, model: 'local-hash-v2' }) };
    expect(await ingestOne(id, v2)).toEqual({ status: 'ready', chunkCount: first.chunkCount, embedded: first.chunkCount, removed: 0 });
    expect((await chunkRows(id)).every((r) => r.embedding_model === 'local-hash-v2')).toBe(true);
    expect((await services.documents.get(id))?.embeddingModel).toBe('local-hash-v2');
    expect(await vectorCount(namespace)).toBe(first.chunkCount);

    const small = { ...v2, config: { ...services.config, CHUNK_SIZE: 128, CHUNK_OVERLAP: 16 } };
    const oldIds = new Set(rows.map((r) => r.id));
    const outcome = await ingestOne(id, small);
    if (outcome?.status !== 'ready') throw new Error(`not ready: ${JSON.stringify(outcome)}`);
    const newIds = (await chunkRows(id)).map((r) => r.id);
    expect(outcome.chunkCount).toBeGreaterThan(first.chunkCount);
    expect(newIds.length).toBe(outcome.chunkCount);
    expect(outcome.removed).toBe([...oldIds].filter((x) => !newIds.includes(x)).length);
    expect(outcome.removed).toBeGreaterThan(0);
    expect(outcome.embedded).toBe(newIds.filter((x) => !oldIds.has(x)).length);
    expect(await vectorCount(namespace)).toBe(outcome.chunkCount);
    expect((await services.documents.get(id))?.chunkCount).toBe(outcome.chunkCount);
  });

  it('fails an encrypted PDF with its reason and indexes nothing of it', async () => {
    const namespace = unique('pdf');
    const [doc] = await uploadFiles([{ name: 'locked.pdf', bytes: await sampleFile('documents/pdf/unstructured__password.pdf') }], { namespace });
    const settled = await waitUntilSettled(doc!.id);
    expect(settled).toMatchObject({ status: 'failed', chunkCount: 0 });
    expect(settled.error).toMatch(/password/);
    expect(await chunkRows(doc!.id)).toEqual([]);
    expect(await vectorCount(namespace)).toBe(0);
    for (const mode of ['keyword', 'vector', 'hybrid']) expect(await query({ query: 'locked password pdf', namespace, mode })).toEqual([]);
  });

  it('keeps serving the previous version of a ready document whose original becomes unreadable, with a note', async () => {
    const namespace = unique('gone');
    const marker = unique('m');
    const id = await stage(namespace, longText(marker, 2));
    const first = await ingestOne(id);
    if (first?.status !== 'ready') throw new Error('not ready');
    const hits = await keywordHits(namespace, marker);
    expect(hits).toBeGreaterThan(0);
    await services.originals.delete(`originals/${namespace}/${id}`);
    expect(await ingestOne(id)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/missing/) });
    expect(await keywordHits(namespace, marker)).toBe(hits);
    expect(await vectorCount(namespace)).toBe(first.chunkCount);
    expect(await services.documents.get(id)).toMatchObject({
      status: 'ready',
      chunkCount: first.chunkCount,
      error: expect.stringMatching(/^Re-indexing failed: The original file is missing.*The previous version is still searchable\.$/),
    });
  });

  it('keeps a ready document ready through transient failures of its re-ingestion, and after the last one', async () => {
    const namespace = unique('keep');
    const marker = unique('m');
    const id = await stage(namespace, longText(marker, 2));
    const first = await ingestOne(id);
    if (first?.status !== 'ready') throw new Error('not ready');
    // Changed content, re-ingested while the embedder is down.
    await services.originals.put(`originals/${namespace}/${id}`, longText(unique('n'), 2));
    const down = { ...services, embedder: failingEmbedder(new AppError('provider_timeout', 'The embedding provider timed out.', { retryable: true })) };
    await consume(batchOf({ id: 'r1', body: { type: 'ingest', documentId: id }, attempts: 1 }), down);
    expect(await services.documents.get(id)).toMatchObject({ status: 'ready', error: expect.stringMatching(/^Attempt 1 failed .*retrying in 15 s\.$/) });
    expect(await keywordHits(namespace, marker)).toBeGreaterThan(0);

    const last = await consume(batchOf({ id: 'r6', body: { type: 'ingest', documentId: id }, attempts: MAX_ATTEMPTS }), down);
    expect(last.retryMessages).toEqual([{ msgId: 'r6', delaySeconds: undefined }]); // on to the dead-letter queue
    expect(await services.documents.get(id)).toMatchObject({
      status: 'ready',
      chunkCount: first.chunkCount,
      error: 'Re-indexing failed (The embedding provider timed out.); the previous version is still searchable. Re-index it to try again.',
    });
    expect(await keywordHits(namespace, marker)).toBeGreaterThan(0);
    expect(await vectorCount(namespace)).toBeGreaterThanOrEqual(first.chunkCount);
  });

  it('does not resurrect a document deleted before or while it is processed', async () => {
    expect(await ingestOne('0123456789abcdef0123456789abcdef')).toEqual({ status: 'gone' });

    const namespace = unique('del');
    const marker = unique('m');
    const id = await stage(namespace, longText(marker, 2));
    // Deleted (as DELETE /v1/documents/:id does) after the catalog was read, while embedding.
    const deleting: EmbeddingProvider = {
      ...failingEmbedder(null),
      embed: async (texts) => {
        await services.documents.delete(id);
        return services.embedder.embed(texts);
      },
    };
    expect(await ingestOne(id, { ...services, embedder: deleting })).toEqual({ status: 'gone' });
    expect(await services.documents.get(id)).toBeNull();
    expect(await chunkRows(id)).toEqual([]);
    expect(await keywordHits(namespace, marker)).toBe(0);
    expect(await vectorCount(namespace)).toBe(0);
  });
});

describe('ingestion queue consumer', () => {
  it('acks malformed messages and messages for missing documents', async () => {
    const batch = batchOf({ id: 'bad', body: { foo: 1 } }, { id: 'missing', body: { type: 'ingest', documentId: 'f'.repeat(32) } });
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(['bad', 'missing']);
    expect(result.retryMessages).toEqual([]);
    expect(result.retryBatch.retry).toBe(false);
  });

  it('retries a transient failure with backoff and tells the user', async () => {
    const id = await stage(unique('tr'), 'Transient failures deserve another chance.');
    const result = await consume(batchOf({ id: 'm1', body: { type: 'ingest', documentId: id }, attempts: 2 }), {
      ...services,
      embedder: failingEmbedder(new Error('socket hang up')),
    });
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages).toEqual([{ msgId: 'm1', delaySeconds: retryDelaySeconds(2) }]);
    expect(retryDelaySeconds(2)).toBe(60);
    const document = await services.documents.get(id);
    expect(document?.status).toBe('queued');
    expect(document?.error).toMatch(/Attempt 2 failed.*retrying in 60 s/);
    expect(await chunkRows(id)).toEqual([]);
  });

  it('forwards a large document of a batch to the queue for large documents, and ingests the rest', async () => {
    const small = await stage(unique('small'), 'A small document stays with its batch.');
    const large = await stage(unique('large'), `A large document goes alone. ${'Words fill the page. '.repeat(LARGE_DOCUMENT_BYTES / 20)}`);
    expect((await services.documents.get(large))!.size).toBeGreaterThanOrEqual(LARGE_DOCUMENT_BYTES);
    const { queue: largeQueue, sent } = spyQueue();
    const result = await consume(
      batchOf({ id: 'm1', body: { type: 'ingest', documentId: small } }, { id: 'm2', body: { type: 'ingest', documentId: large } }),
      { ...services, largeQueue },
    );
    expect(result.explicitAcks.sort()).toEqual(['m1', 'm2']);
    expect(sent).toEqual([{ type: 'ingest', documentId: large }]);
    expect((await services.documents.get(small))?.status).toBe('ready');
    expect((await services.documents.get(large))?.status).toBe('queued');
    // On the large documents' queue it comes alone, and is ingested.
    // On the large documents' queue it comes alone; with this many chunks it goes on in slices, on the same queue.
    for (let i = 0; i < sent.length; i++) {
      const alone = createMessageBatch('rag-engine-ingest-large', [{ id: `large-${i}`, timestamp: Date.now(), attempts: 1, body: sent[i] }]);
      await consumeIngestBatch(alone, { ...services, largeQueue }, { alone: true });
    }
    expect((await services.documents.get(large))?.status).toBe('ready');
    expect(sent.slice(1).every((body) => body.type === 'slice')).toBe(true);
  });

  it('ingests an uploaded large document through the queue for large documents, beside small ones', async () => {
    const namespace = unique('upl');
    const encode = (text: string) => new TextEncoder().encode(text);
    const uploaded = await uploadFiles(
      [
        { name: 'small-a.txt', bytes: encode('Gannets dive from thirty metres.') },
        { name: 'large.txt', bytes: encode(`Kittiwakes nest on sheer cliffs. ${'Seabirds gather on the ledges. '.repeat(LARGE_DOCUMENT_BYTES / 30)}`) },
        { name: 'small-b.txt', bytes: encode('Puffins carry many fish at once.') },
      ],
      { namespace },
    );
    for (const doc of uploaded) expect((await waitUntilSettled(doc.id, 60_000)).status).toBe('ready');
    expect((await query({ query: 'kittiwakes sheer cliffs', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded[1]!.id);
  }, 90_000);

  it('spreads its retries over more than an hour, so an hour-long provider outage does not use them up', () => {
    let waited = 0;
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) waited += retryDelaySeconds(attempt);
    expect(waited).toBeGreaterThan(3600);
    expect(retryDelaySeconds(1)).toBe(15);
  });

  it("waits as long as the provider's Retry-After asks, up to the queue's longest delay", async () => {
    for (const [asked, expected] of [
      [900, 900],
      [3, retryDelaySeconds(1)],
      [24 * 3600, MAX_DELAY_SECONDS],
    ] as const) {
      const id = await stage(unique('ra'), 'Rate limited providers say when to come back.');
      const result = await consume(batchOf({ id: 'm1', body: { type: 'ingest', documentId: id }, attempts: 1 }), {
        ...services,
        embedder: failingEmbedder(new AppError('rate_limited', 'The embedding provider is rate limited.', { retryable: true, retryAfterSeconds: asked })),
      });
      expect(result.retryMessages).toEqual([{ msgId: 'm1', delaySeconds: expected }]);
      expect((await services.documents.get(id))?.error).toMatch(new RegExp(`retrying in ${expected} s`));
    }
  });

  it('marks the document failed on the last attempt and lets the message go to the dead-letter queue', async () => {
    const id = await stage(unique('last'), 'The last attempt gives up.');
    const result = await consume(batchOf({ id: 'm1', body: { type: 'ingest', documentId: id }, attempts: MAX_ATTEMPTS }), {
      ...services,
      embedder: failingEmbedder(new AppError('provider_timeout', 'The embedding provider timed out.', { retryable: true })),
    });
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages).toEqual([{ msgId: 'm1', delaySeconds: undefined }]);
    const document = await services.documents.get(id);
    expect(document?.status).toBe('failed');
    expect(document?.error).toBe(`Indexing failed after ${MAX_ATTEMPTS} attempts: The embedding provider timed out.`);
  });

  it('fails and acks on a non-retryable provider error', async () => {
    const id = await stage(unique('nr'), 'A bad API key will not fix itself.');
    const result = await consume(batchOf({ id: 'm1', body: { type: 'ingest', documentId: id } }), {
      ...services,
      embedder: failingEmbedder(new AppError('misconfigured', 'The embedding API key is invalid.')),
    });
    expect(result.explicitAcks).toEqual(['m1']);
    expect(result.retryMessages).toEqual([]);
    expect(await services.documents.get(id)).toMatchObject({ status: 'failed', error: 'Indexing failed: The embedding API key is invalid.' });
  });

  it('isolates a poison document: the provider refusing its text fails it alone, not its batch', async () => {
    const namespace = unique('poison');
    const goods = await Promise.all([1, 2, 3].map((n) => stage(namespace, `Gannet colony note ${n}: gannets dive for fish.`)));
    const poison = await stage(namespace, 'This text contains FORBIDDEN-WORD, which the provider refuses.');
    // An embedder that refuses (400, not retryable) any call holding the poison text.
    const refusing: EmbeddingProvider = {
      model: services.embedder.model,
      dimensions: services.embedder.dimensions,
      maxBatchSize: 100,
      embed: async (texts) => {
        if (texts.some((t) => t.includes('FORBIDDEN-WORD'))) throw new AppError('bad_request', 'The provider refused one of the texts.');
        return services.embedder.embed(texts);
      },
    };
    const ids = [...goods, poison];
    const result = await consume(batchOf(...ids.map((documentId, i) => ({ id: `p${i}`, body: { type: 'ingest', documentId } }))), { ...services, embedder: refusing });
    expect(result.explicitAcks.sort()).toEqual(['p0', 'p1', 'p2', 'p3']);
    for (const id of goods) expect(await services.documents.get(id)).toMatchObject({ status: 'ready', chunkCount: 1 });
    expect(await services.documents.get(poison)).toMatchObject({ status: 'failed', error: expect.stringMatching(/refused one of the texts/) });
    expect(await keywordHits(namespace, 'gannets')).toBe(3);
  });

  it('defers a duplicate delivery while another holds the document, and takes over a stale claim', async () => {
    const namespace = unique('lease');
    const id = await stage(namespace, 'Kittiwakes nest on narrow cliff ledges.');
    // Another delivery claimed it a moment ago.
    const other = await services.documents.claim([id], LEASE_MS);
    expect(other.claimed.has(id)).toBe(true);
    const duplicate = await consume(batchOf({ id: 'd1', body: { type: 'ingest', documentId: id } }));
    expect(duplicate.explicitAcks).toEqual([]);
    expect(duplicate.retryMessages).toHaveLength(1);
    expect(duplicate.retryMessages[0]?.delaySeconds).toBeGreaterThan(LEASE_MS / 1000 - 60);
    expect(await services.documents.get(id)).toMatchObject({ status: 'processing' });
    expect(await keywordHits(namespace, 'kittiwakes')).toBe(0);

    // Its lease ran out (the invocation died): the next delivery takes the document over.
    await env.DB.prepare('UPDATE documents SET lease_until = ? WHERE id = ?').bind(Date.now() - 1, id).run();
    const takeover = await consume(batchOf({ id: 'd2', body: { type: 'ingest', documentId: id } }));
    expect(takeover.explicitAcks).toEqual(['d2']);
    expect(await services.documents.get(id)).toMatchObject({ status: 'ready', chunkCount: 1 });
    expect(await keywordHits(namespace, 'kittiwakes')).toBe(1);
  });

  it('ends with the newest content when the original is overwritten mid-flight and a later claim takes over', async () => {
    const namespace = unique('flight');
    const id = await stage(namespace, 'Version one: razorbills winter at sea.');
    const key = `originals/${namespace}/${id}`;
    let overtaken = false;
    // While the first claim embeds its (old) content: the object is overwritten, the claim's lease
    // runs out, and a later delivery ingests the new content to the end.
    const slow: EmbeddingProvider = {
      model: services.embedder.model,
      dimensions: services.embedder.dimensions,
      maxBatchSize: 100,
      embed: async (texts) => {
        if (!overtaken) {
          overtaken = true;
          await services.originals.put(key, 'Version two: guillemots crowd the stacks.');
          await env.DB.prepare('UPDATE documents SET lease_until = ? WHERE id = ?').bind(Date.now() - 1, id).run();
          expect(await ingestOne(id)).toMatchObject({ status: 'ready' });
        }
        return services.embedder.embed(texts);
      },
    };
    expect(await ingestOne(id, { ...services, embedder: slow })).toEqual({ status: 'superseded' });
    expect(await services.documents.get(id)).toMatchObject({ status: 'ready', chunkCount: 1 });
    expect(await keywordHits(namespace, 'guillemots')).toBe(1);
    expect(await keywordHits(namespace, 'razorbills')).toBe(0);
  });

  it('ingests a good document even when the same batch holds an unreadable one', async () => {
    const namespace = unique('mix');
    const good = await stage(namespace, 'Puffins nest in burrows on grassy sea cliffs.');
    const bad = await stage(namespace, await sampleFile('documents/pdf/unstructured__password.pdf'), 'pdf');
    const result = await consume(
      batchOf({ id: 'g', body: { type: 'ingest', documentId: good } }, { id: 'b', body: { type: 'ingest', documentId: bad } }, { id: 'g2', body: { type: 'ingest', documentId: good } }),
    );
    expect(result.explicitAcks.sort()).toEqual(['b', 'g', 'g2']);
    expect(result.retryMessages).toEqual([]);
    expect(await services.documents.get(good)).toMatchObject({ status: 'ready', chunkCount: 1, error: null });
    expect((await services.documents.get(bad))?.error).toMatch(/password/);
    expect((await services.documents.get(bad))?.status).toBe('failed');
    expect((await query({ query: 'puffins burrows', namespace, mode: 'keyword' }))[0]?.documentId).toBe(good);
  });
});
