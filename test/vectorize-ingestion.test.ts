import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { ingestDocuments } from '../src/ingestion/pipeline';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';
import { FakeVectorize } from '../fakes/vectorize';
import { cloudflareEngine } from './engines';

/** The Cloudflare engine, over Vectorize (a faithful fake: writes apply asynchronously) and D1. */
function withVectorize() {
  const base = getServices(env);
  const fake = new FakeVectorize({ dimensions: base.embedder.dimensions, metadataIndexes: ['documentId', 'team'] });
  const engine = cloudflareEngine(fake, base.embedder.dimensions);
  const services: Services = { ...base, engine };
  return { services, fake, vectors: engine };
}

async function stage(services: Services, text: string): Promise<string> {
  const id = crypto.randomUUID().replaceAll('-', '');
  const namespace = `vz${id.slice(0, 8)}`;
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, text);
  await services.documents.enqueue([
    { id, namespace, title: 'Volcanoes', filename: null, type: 'txt', size: text.length, r2Key, metadata: {} },
  ]);
  return id;
}

describe('ingestion into Vectorize, whose writes apply asynchronously', () => {
  it('records the write that holds a document, so its status can say when it is searchable', async () => {
    const { services, fake, vectors } = withVectorize();
    const id = await stage(services, 'Shield volcanoes are built almost entirely of fluid lava flows.');
    expect((await ingestDocuments(services, [id])).get(id)).toMatchObject({ status: 'ready' });

    const document = await services.documents.get(id);
    expect(document?.vectorWrite).toEqual(vectors.lastWrite());
    expect(document?.vectorWrite?.mutationId).toBeTruthy();
    expect(await vectors.isApplied(document!.vectorWrite!)).toBe(false);

    fake.processPending();
    expect(await vectors.isApplied(document!.vectorWrite!)).toBe(true);
  });

  it('leaves no marker when the index applies writes at once (the local index)', async () => {
    const services = getServices(env);
    const id = await stage(services, 'Stratovolcanoes alternate layers of lava and ash.');
    await ingestDocuments(services, [id]);
    expect((await services.documents.get(id))?.vectorWrite).toBeNull();
  });
});
