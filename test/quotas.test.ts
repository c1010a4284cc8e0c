import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { ingestDocuments } from '../src/ingestion/pipeline';
import { getServices } from '../src/composition';

const namespace = () => `q${crypto.randomUUID().slice(0, 8)}`;

function engine(overrides: Record<string, unknown>) {
  const engineEnv = { ...env, ...overrides } as Env;
  const call = (path: string, init: RequestInit = {}) => app.fetch(new Request(`http://rag.test${path}`, init), engineEnv);
  const upload = (ns: string, texts: string[]) =>
    call('/v1/documents', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: ns, documents: texts.map((text, i) => ({ text, title: `doc ${i}` })) }),
    });
  return { env: engineEnv, call, upload };
}

async function objectsUnder(prefix: string): Promise<number> {
  // Originals only: each upload also keeps its manifest (`<key>.json`) beside it.
  return (await env.ORIGINALS.list({ prefix })).objects.filter((o) => !o.key.endsWith(".json")).length;
}

describe('per-namespace quotas', () => {
  it('refuses an upload that would exceed QUOTA_DOCUMENTS before storing anything, per namespace', async () => {
    const { upload } = engine({ QUOTA_DOCUMENTS: '3' });
    const ns = namespace();
    expect((await upload(ns, ['one', 'two'])).status).toBe(202);
    const refused = await upload(ns, ['three', 'four']);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'quota_exceeded', message: expect.stringMatching(/holds 2 of its 3 documents/) } });
    expect(await objectsUnder(`originals/${ns}/`)).toBe(2);
    // A re-upload of a stored document adds nothing; another namespace has its own quota.
    expect((await upload(ns, ['one'])).status).toBe(202);
    expect((await upload(ns, ['three'])).status).toBe(202);
    expect((await upload(namespace(), ['one', 'two', 'three'])).status).toBe(202);
  });

  it('refuses an upload that would exceed QUOTA_BYTES', async () => {
    const { upload } = engine({ QUOTA_BYTES: '100' });
    const ns = namespace();
    expect((await upload(ns, ['x'.repeat(60)])).status).toBe(202);
    const refused = await upload(ns, ['y'.repeat(60)]);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'quota_exceeded', message: expect.stringMatching(/QUOTA_BYTES/) } });
    expect(await objectsUnder(`originals/${ns}/`)).toBe(1);
  });

  it('fails a document that would take its namespace over QUOTA_PASSAGES, indexing nothing of it', async () => {
    const { env: quotaEnv, upload } = engine({ QUOTA_PASSAGES: '3', CHUNK_SIZE: '20', CHUNK_OVERLAP: '0' });
    const services = getServices(quotaEnv);
    const ns = namespace();
    // Stored directly, without a queue message, so that only this test's ingestion runs.
    const store = async (text: string) => {
      const id = crypto.randomUUID().replaceAll('-', '');
      const r2Key = `originals/${ns}/${id}`;
      await services.originals.put(r2Key, text);
      await services.documents.enqueue([{ id, namespace: ns, title: 'Lamps', filename: null, type: 'txt', size: text.length, r2Key, metadata: {} }]);
      return id;
    };
    const sentence = (i: number) => `Sentence ${i} tells how the lighthouse keeper trims the paraffin wick before dusk every evening.`;
    const smallId = await store(sentence(1));
    const largeId = await store(Array.from({ length: 8 }, (_, i) => sentence(i + 2)).join('\n\n'));
    const outcomes = await ingestDocuments(services, [smallId, largeId]);
    expect(outcomes.get(smallId)).toMatchObject({ status: 'ready' });
    expect(outcomes.get(largeId)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/quota of 3 \(QUOTA_PASSAGES\)/) });
    expect(await services.chunks.count(ns)).toBe(1);
    expect(await services.documents.get(largeId)).toMatchObject({ status: 'failed', chunkCount: 0 });
    // At the quota, uploads are refused up front.
    await ingestDocuments(services, [await store(`${sentence(20)}\n\n${sentence(21)}`)]);
    expect(await services.chunks.count(ns)).toBe(3);
    const refused = await upload(ns, ['more']);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'quota_exceeded', message: expect.stringMatching(/holds 3 passages/) } });
  });
});
