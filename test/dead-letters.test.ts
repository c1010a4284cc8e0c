import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { getServices } from '../src/composition';
import { MAX_ATTEMPTS } from '../src/ingestion/consumer';
import worker from '../src/index';
import { api, uploadText, waitUntilSettled } from './helpers';

/** The dead-letter queue's consumer, and replaying failed documents. */
const services = getServices(env);

async function deadLetter(...documentIds: string[]) {
  const batch = createMessageBatch(
    'rag-engine-ingest-dlq',
    documentIds.map((documentId, i) => ({ id: `dl${i}`, timestamp: new Date(), attempts: 1, body: { type: 'ingest', documentId } })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

describe('dead letters', () => {
  it('marks a document whose invocation died failed with its last reason, and keeps a ready one ready', async () => {
    const stuck = await uploadText({ text: 'Gannets plunge from thirty metres.', namespace: 'dlq' });
    const ready = await uploadText({ text: 'Puffins carry many fish at once.', namespace: 'dlq' });
    await waitUntilSettled(stuck.id);
    await waitUntilSettled(ready.id);
    // As if its last attempts died mid-way: still processing, with the last note.
    await env.DB.prepare(`UPDATE documents SET status = 'processing', indexed_at = NULL, error = 'Attempt 5 failed (timed out); retrying in 160 s.' WHERE id = ?`)
      .bind(stuck.id)
      .run();
    await env.DB.prepare(`UPDATE documents SET status = 'processing' WHERE id = ?`).bind(ready.id).run();

    const result = await deadLetter(stuck.id, ready.id, 'f'.repeat(32));
    expect(result.explicitAcks.sort()).toEqual(['dl0', 'dl1', 'dl2']);
    expect(await services.documents.get(stuck.id)).toMatchObject({
      status: 'failed',
      error: `Ingestion gave up after ${MAX_ATTEMPTS} attempts: Attempt 5 failed (timed out); retrying in 160 s.`,
    });
    expect(await services.documents.get(ready.id)).toMatchObject({ status: 'ready', error: expect.stringMatching(/previous version is still searchable/) });

    // Replayed: only the failed documents are queued again, and end ready.
    const replay = await api('/v1/reindex?namespace=dlq&status=failed', { method: 'POST' });
    expect(await replay.json()).toEqual({ queued: 1, generations: [] });
    expect(await waitUntilSettled(stuck.id)).toMatchObject({ status: 'ready' });
  });
});
