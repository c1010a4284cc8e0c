import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import worker from '../src/index';
import { getServices } from '../src/composition';
import { query, sampleFile, uploadText, waitUntilSettled } from './helpers';

/** An R2 event notification body, in the documented format. */
function r2Event(action: string, key: string, size?: number) {
  return {
    account: '3f4b7e3dcab231cbfdaa90a6a28bd548',
    action,
    bucket: 'rag-engine-originals',
    object: size === undefined ? { key } : { key, size, eTag: 'c846ff7a18f28c2e262116d6e8719ef0' },
    eventTime: new Date().toISOString(),
  };
}

let sequence = 0;
/** Delivers messages to the Worker's queue handler, as the queue would. */
async function deliver(...bodies: unknown[]) {
  const batch = createMessageBatch(
    'rag-engine-ingest',
    bodies.map((body) => ({ id: `m${++sequence}`, timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  return getQueueResult(batch, ctx);
}

async function documentForKey(key: string) {
  return getServices(env).documents.findByR2Key(key);
}

describe('objects put straight into the bucket (R2 event notifications)', () => {
  it('indexes a created object, re-indexes it when it changes, and forgets it when deleted', async () => {
    const key = 'inbox/glaciers.md';
    const first = '# Glaciers\n\nGlaciers carve U-shaped valleys.\n\n## Moraines\n\nMoraines are ridges of debris left by glaciers.';
    await env.ORIGINALS.put(key, first);
    const created = await deliver(r2Event('PutObject', key, first.length));
    expect(created.explicitAcks).toEqual([`m${sequence}`]);

    const document = await documentForKey(key);
    expect(document).toMatchObject({ status: 'ready', title: 'glaciers.md', type: 'md' });
    expect((await query({ query: 'U-shaped valleys' }))[0]?.documentId).toBe(document?.id);

    const changed = first.replace('ridges of debris', 'long ridges of rock and debris');
    await env.ORIGINALS.put(key, changed);
    await deliver(r2Event('PutObject', key, changed.length));
    const after = await documentForKey(key);
    expect(after?.id).toBe(document?.id); // tracked by key: the same document, updated
    expect((await query({ query: 'ridges of rock', topK: 1 }))[0]?.text).toContain('long ridges of rock');
    expect(await query({ query: 'ridges of debris left', mode: 'keyword' })).not.toContainEqual(
      expect.objectContaining({ text: expect.stringContaining('Moraines are ridges of debris') }),
    );

    await env.ORIGINALS.delete(key);
    const deleted = await deliver(r2Event('DeleteObject', key));
    expect(deleted.explicitAcks).toHaveLength(1);
    expect(await documentForKey(key)).toBeNull();
    expect(await query({ query: 'U-shaped valleys glaciers moraines' })).toEqual([]);
  });

  it('records an unsupported or unreadable object as failed with a reason', async () => {
    await env.ORIGINALS.put('inbox/photo.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
    await env.ORIGINALS.put('inbox/locked.pdf', await sampleFile('documents/pdf/unstructured__password.pdf'));
    const result = await deliver(r2Event('PutObject', 'inbox/photo.png', 12), r2Event('PutObject', 'inbox/locked.pdf', 14_500));
    expect(result.explicitAcks).toHaveLength(2);
    expect(await documentForKey('inbox/photo.png')).toMatchObject({ status: 'failed', error: expect.stringMatching(/not a supported document/) });
    expect(await documentForKey('inbox/locked.pdf')).toMatchObject({ status: 'failed', error: expect.stringMatching(/password/i) });
  });

  it('ignores the events of its own uploads, which the API has already queued', async () => {
    const uploaded = await uploadText({ text: 'Sea otters hold hands while they sleep.', title: 'Otters' });
    await waitUntilSettled(uploaded.id);
    const own = (await getServices(env).documents.get(uploaded.id))!.r2Key;
    const result = await deliver(r2Event('PutObject', own, 40), r2Event('DeleteObject', own));
    expect(result.explicitAcks).toHaveLength(2);
    expect(await getServices(env).documents.get(uploaded.id)).toMatchObject({ status: 'ready' });
  });
});

describe('the custom metadata of objects put into the bucket', () => {
  it('becomes the document’s metadata, filterable like metadata given to the API', async () => {
    const key = 'inbox/harbour.txt';
    const text = 'The harbour master logs every tide and every ship that enters the harbour.';
    // R2's customMetadata; through the S3 API, the x-amz-meta-team header lands here too.
    await env.ORIGINALS.put(key, text, { customMetadata: { team: 'legal', year: '2024' } });
    await deliver(r2Event('PutObject', key, text.length));
    const document = await documentForKey(key);
    expect(document).toMatchObject({ status: 'ready', metadata: { team: 'legal', year: '2024' } });
    expect((await query({ query: 'harbour master tide', filter: { team: 'legal' } }))[0]?.documentId).toBe(document?.id);
    expect(await query({ query: 'harbour master tide', filter: { team: 'sales' } })).toEqual([]);
    expect((await query({ query: 'harbour master tide', filter: { year: '2024' } }))[0]?.documentId).toBe(document?.id);

    // Changed metadata, same bytes: the document follows it.
    await env.ORIGINALS.put(key, text, { customMetadata: { team: 'sales' } });
    await deliver(r2Event('PutObject', key, text.length));
    expect(await documentForKey(key)).toMatchObject({ status: 'ready', metadata: { team: 'sales' } });
    expect(await query({ query: 'harbour master tide', filter: { team: 'legal' } })).toEqual([]);
    expect((await query({ query: 'harbour master tide', filter: { team: 'sales' } }))[0]?.documentId).toBe(document?.id);
  });

  it('fails the document, naming the problem, when its metadata breaks the API’s rules', async () => {
    const key = 'inbox/odd.txt';
    await env.ORIGINALS.put(key, 'Some text.', { customMetadata: { 'bad.key': 'x', documentId: 'mine' } });
    await deliver(r2Event('PutObject', key, 10));
    const document = await documentForKey(key);
    expect(document).toMatchObject({ status: 'failed', metadata: {} });
    expect(document?.error).toMatch(/custom metadata of "odd.txt" cannot be used.*"bad\.key".*letters, digits.*"documentId" is reserved/);
  });
});
