import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import worker from '../src/index';
import { getServices } from '../src/composition';
import { manifestKey } from '../src/ingestion/recovery';
import { api, type DocumentView, query, uploadText, waitUntilSettled } from './helpers';

/**
 * Recovery from R2 alone: with the catalog (D1) emptied and the search engine's index wiped,
 * `POST /v1/recover` brings back every document with its id, namespace, title and metadata,
 * and ingestion rebuilds its passages.
 */
const services = getServices(env);

async function recoverAll(): Promise<{ scanned: number; restored: number; withoutManifest: number }> {
  const total = { scanned: 0, restored: 0, withoutManifest: 0 };
  let cursor: string | null = null;
  do {
    const response = await api(`/v1/recover${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`, { method: 'POST' });
    expect(response.status).toBe(202);
    const page = (await response.json()) as typeof total & { cursor: string | null };
    for (const k of ['scanned', 'restored', 'withoutManifest'] as const) total[k] += page[k];
    cursor = page.cursor;
  } while (cursor);
  return total;
}

/** Empties the catalog, and the local engine's index of each namespace: as if both were lost. */
async function loseEverythingButR2(namespaces: string[]) {
  await env.DB.batch(['documents', 'chunks', 'passages', 'namespace_generations'].map((table) => env.DB.prepare(`DELETE FROM ${table}`)));
  for (const namespace of namespaces) {
    await runInDurableObject(env.VECTOR_INDEX.get(env.VECTOR_INDEX.idFromName(namespace)), (_, state) => {
      state.storage.sql.exec('DELETE FROM vectors');
    });
  }
}

/** An object put straight into the bucket, delivered as its R2 event. */
async function putIntoBucket(key: string, text: string) {
  await env.ORIGINALS.put(key, text);
  const body = { account: 'a', action: 'PutObject', bucket: 'rag-engine-originals', object: { key, size: text.length }, eventTime: new Date().toISOString() };
  const batch = createMessageBatch('rag-engine-ingest', [{ id: 'r2', timestamp: new Date(), attempts: 1, body }]);
  await worker.queue(batch, env);
  await getQueueResult(batch, createExecutionContext());
}

describe('recovery from the R2 originals', () => {
  it('restores every document, its metadata and its passages, with D1 emptied', async () => {
    const a = await uploadText({ text: 'Quokkas are small wallabies that live on Rottnest Island.', title: 'Quokka notes', namespace: 'rec-a', metadata: { team: 'red', year: 2024 } });
    const b = await uploadText({ text: '# Tides\n\nSpring tides follow the new and full moon.', filename: 'tides.md', namespace: 'rec-b' });
    // An upload from before manifests: only its object's custom metadata says what it was.
    const legacy = await uploadText({ text: 'Narwhal tusks are teeth that grow in a spiral.', title: 'Narwhals', namespace: 'rec-a' });
    await putIntoBucket('inbox/geysers.txt', 'Geysers erupt when underground water boils under pressure.');
    const direct = await services.documents.findByR2Key('inbox/geysers.txt');
    const ids = [a.id, b.id, legacy.id, direct!.id];
    const before = new Map<string, DocumentView>();
    for (const id of ids) before.set(id, await waitUntilSettled(id));
    expect([...before.values()].map((d) => d.status)).toEqual(['ready', 'ready', 'ready', 'ready']);
    await env.ORIGINALS.delete(manifestKey((await services.documents.get(legacy.id))!.r2Key));

    // Recovering an intact catalog changes nothing.
    expect(await recoverAll()).toEqual({ scanned: 4, restored: 0, withoutManifest: 1 });

    await loseEverythingButR2(['rec-a', 'rec-b', services.config.DEFAULT_NAMESPACE]);
    expect(await services.documents.getMany(ids)).toEqual(new Map());
    expect(await query({ query: 'quokkas wallabies', namespace: 'rec-a' })).toEqual([]);

    expect(await recoverAll()).toEqual({ scanned: 4, restored: 4, withoutManifest: 1 });
    for (const id of ids) {
      const after = await waitUntilSettled(id);
      const was = before.get(id)!;
      expect(after.status, id).toBe('ready');
      expect(after.chunkCount).toBe(was.chunkCount);
      if (id === legacy.id) {
        // Without its manifest: its id and namespace come back, its title is its file name, its metadata is lost.
        expect(after).toMatchObject({ namespace: 'rec-a', metadata: {} });
      } else {
        expect({ namespace: after.namespace, title: after.title, filename: after.filename, type: after.type, metadata: after.metadata }).toEqual({
          namespace: was.namespace,
          title: was.title,
          filename: was.filename,
          type: was.type,
          metadata: was.metadata,
        });
      }
    }
    // The passages are searchable again, and filters see the restored metadata.
    expect((await query({ query: 'quokkas wallabies Rottnest', namespace: 'rec-a', filter: { team: 'red' } }))[0]?.documentId).toBe(a.id);
    expect((await query({ query: 'spring tides moon', namespace: 'rec-b' }))[0]?.documentId).toBe(b.id);
    expect((await query({ query: 'narwhal tusks spiral', namespace: 'rec-a' }))[0]?.documentId).toBe(legacy.id);
    expect((await query({ query: 'geysers erupt boils' }))[0]?.documentId).toBe(direct!.id);
  });

  it('is for admins only', async () => {
    const response = await worker.fetch(new Request('http://rag.test/v1/recover', { method: 'POST' }), { ...env, AUTH_ENABLED: 'true', ADMIN_API_KEY: 'a'.repeat(40) } as unknown as Env, createExecutionContext());
    expect(response.status).toBe(401);
  });
});
