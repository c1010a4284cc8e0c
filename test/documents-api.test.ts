import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, type DocumentView, postJson, query, sampleFile, uploadFiles, uploadText, waitUntilSettled } from './helpers';

const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
const MODES = ['hybrid', 'vector', 'keyword'] as const;
const encode = (text: string) => new TextEncoder().encode(text);

interface Listed extends DocumentView {
  namespace: string;
  metadata: Record<string, unknown>;
  indexedAt: string | null;
}

async function getJson<T>(path: string, status = 200): Promise<T> {
  const response = await api(path);
  expect(response.status, path).toBe(status);
  return (await response.json()) as T;
}

async function list(params: Record<string, string>) {
  return getJson<{ documents: Listed[]; nextCursor: string | null }>(`/v1/documents?${new URLSearchParams(params)}`);
}

/** Every page of a listing, following nextCursor. */
async function listAll(params: Record<string, string>) {
  const pages: Listed[][] = [];
  let cursor: string | null = null;
  do {
    const page = await list(cursor ? { ...params, cursor } : params);
    pages.push(page.documents);
    cursor = page.nextCursor;
  } while (cursor && pages.length < 20);
  return pages;
}

async function documentIdsFor(body: Record<string, unknown>): Promise<string[]> {
  return [...new Set((await query({ topK: 20, ...body })).map((p) => p.documentId))].sort();
}

describe('listing documents', () => {
  it('pages newest first and filters by status and namespace', async () => {
    const namespace = unique('list');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await uploadText({ text: `Listing sample number ${i} about otters.`, namespace })).id);
    const [locked] = await uploadFiles([{ name: 'locked.pdf', bytes: await sampleFile('documents/pdf/unstructured__password.pdf') }], { namespace });
    const other = await uploadText({ text: 'A document in another namespace.', namespace: unique('other') });
    ids.push(locked!.id);
    await Promise.all([...ids, other.id].map((id) => waitUntilSettled(id)));

    const pages = await listAll({ namespace, limit: '2' });
    expect(pages.map((p) => p.length)).toEqual([2, 2, 2]);
    expect(pages.flat().map((d) => d.id)).toEqual([...ids].reverse());
    expect(pages.flat().every((d) => d.namespace === namespace)).toBe(true);

    const ready = await listAll({ namespace, status: 'ready', limit: '4' });
    expect(ready.map((p) => p.length)).toEqual([4, 1]);
    expect(ready.flat().map((d) => d.id)).toEqual(ids.slice(0, 5).reverse());
    const failed = await list({ namespace, status: 'failed' });
    expect(failed).toMatchObject({ documents: [{ id: locked!.id, status: 'failed' }], nextCursor: null });
    expect((await list({ status: 'failed', limit: '100' })).documents.every((d) => d.status === 'failed')).toBe(true);

    for (const bad of ['status=done', 'limit=0', 'limit=101', 'namespace=a%20b', 'cursor=-1']) {
      expect((await api(`/v1/documents?${bad}`)).status, bad).toBe(400);
    }
  });
});

describe('one document', () => {
  it('shows its state, and DELETE forgets it everywhere', async () => {
    const namespace = unique('one');
    const doc = await uploadText({ text: 'Narwhals use their tusk to sense the salinity of arctic water.', title: 'Narwhals', namespace });
    const settled = await waitUntilSettled(doc.id);
    const shown = await getJson<Listed>(`/v1/documents/${doc.id}`);
    expect(shown).toMatchObject({ id: doc.id, namespace, title: 'Narwhals', status: 'ready', error: null, chunkCount: 1 });
    expect(shown.indexedAt).not.toBeNull();
    expect(settled.chunkCount).toBe(1);
    for (const mode of MODES) expect(await documentIdsFor({ query: 'narwhal tusk salinity', namespace, mode }), mode).toEqual([doc.id]);
    const key = `originals/${namespace}/${doc.id}`;
    expect(await env.ORIGINALS.get(key)).not.toBeNull();
    expect(await env.ORIGINALS.get(`${key}.json`)).not.toBeNull(); // its manifest, for recovery

    const deleted = await api(`/v1/documents/${doc.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: doc.id, deleted: true });
    await getJson(`/v1/documents/${doc.id}`, 404);
    expect((await list({ namespace })).documents).toEqual([]);
    for (const mode of MODES) expect(await query({ query: 'narwhal tusk salinity', namespace, mode }), mode).toEqual([]);
    expect(await env.ORIGINALS.get(key)).toBeNull();
    expect(await env.ORIGINALS.get(`${key}.json`)).toBeNull();
    expect((await api(`/v1/documents/${doc.id}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('shows why a document failed', async () => {
    const [locked] = await uploadFiles([{ name: 'locked.pdf', bytes: await sampleFile('documents/pdf/unstructured__password.pdf') }], { namespace: unique('err') });
    await waitUntilSettled(locked!.id);
    const shown = await getJson<Listed>(`/v1/documents/${locked!.id}`);
    expect(shown).toMatchObject({ status: 'failed', chunkCount: 0, indexedAt: null });
    expect(shown.error).toMatch(/password/);
  });
});

describe('reindexing', () => {
  it('sends one document back through the queue', async () => {
    const namespace = unique('rx');
    const doc = await uploadText({ text: 'Axolotls regrow lost limbs.\n\nThey stay larval all their lives.', namespace });
    const before = await waitUntilSettled(doc.id);
    const { indexedAt } = await getJson<Listed>(`/v1/documents/${doc.id}`);

    const response = await api(`/v1/documents/${doc.id}/reindex`, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ id: doc.id, status: 'queued' });
    expect(['queued', 'processing']).toContain((await getJson<Listed>(`/v1/documents/${doc.id}`)).status);
    const after = await waitUntilSettled(doc.id);
    expect(after).toMatchObject({ status: 'ready', chunkCount: before.chunkCount, error: null });
    expect((await getJson<Listed>(`/v1/documents/${doc.id}`)).indexedAt! > indexedAt!).toBe(true);
    expect((await api('/v1/documents/0123456789abcdef0123456789abcdef/reindex', { method: 'POST' })).status).toBe(404);
  });

  it('queues every document of a namespace', async () => {
    const namespace = unique('rxa');
    const bystander = await uploadText({ text: 'Not in the reindexed namespace.', namespace: unique('by') });
    const docs = await Promise.all([1, 2, 3].map((i) => uploadText({ text: `Reindex sample ${i} on kelp forests.`, namespace })));
    await Promise.all([...docs, bystander].map((d) => waitUntilSettled(d.id)));
    const bystanderBefore = await getJson<Listed>(`/v1/documents/${bystander.id}`);

    const response = await api(`/v1/reindex?namespace=${namespace}`, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ queued: 3, generations: [{ namespace, generation: 1, queued: 3 }] });
    const settled = await Promise.all(docs.map((d) => waitUntilSettled(d.id)));
    expect(settled.map((d) => d.status)).toEqual(['ready', 'ready', 'ready']);
    // Built beside generation 0, generation 1 serves once every document is in it.
    await expect.poll(async () => (await env.DB.prepare(`SELECT generation FROM index_generations WHERE namespace = ? AND state = 'serving'`).bind(namespace).first())?.generation, { timeout: 20_000 }).toBe(1);
    expect((await query({ query: 'kelp forests', namespace, mode: 'keyword' })).length).toBe(3);
    expect(await getJson<Listed>(`/v1/documents/${bystander.id}`)).toMatchObject({ status: 'ready', indexedAt: bystanderBefore.indexedAt });
    expect((await api('/v1/reindex?namespace=a%20b', { method: 'POST' })).status).toBe(400);
  });
});

describe('uploads with metadata', () => {
  it('applies shared multipart metadata, and query filters honour it in every mode', async () => {
    const namespace = unique('meta');
    const red = await uploadFiles(
      [
        { name: 'a.txt', bytes: encode('Zebrafish larvae are transparent, which helps imaging.') },
        { name: 'b.md', bytes: encode('# Zebrafish\n\nZebrafish regenerate heart tissue.') },
      ],
      { namespace, metadata: JSON.stringify({ team: 'red', year: 2024 }) },
    );
    const blue = await uploadFiles([{ name: 'c.txt', bytes: encode('Zebrafish stripes form through cell interactions.') }], {
      namespace,
      metadata: JSON.stringify({ team: 'blue', year: 2023 }),
    });
    expect(red.map((d) => d.status)).toEqual(['queued', 'queued']);
    const redIds = red.map((d) => d.id).sort();
    const blueId = blue[0]!.id;
    expect(new Set([...redIds, blueId]).size).toBe(3);
    await Promise.all([...redIds, blueId].map((id) => waitUntilSettled(id)));
    for (const id of redIds) expect((await getJson<Listed>(`/v1/documents/${id}`)).metadata).toEqual({ team: 'red', year: 2024 });

    const all = [...redIds, blueId].sort();
    const cases: [Record<string, unknown>, string[]][] = [
      [{ team: 'red' }, redIds],
      [{ team: { $eq: 'blue' } }, [blueId]],
      [{ team: { $in: ['red', 'blue'] } }, all],
      [{ team: { $ne: 'red' } }, [blueId]],
      [{ team: { $nin: ['red', 'blue'] } }, []],
      [{ year: { $in: [2023] } }, [blueId]],
      [{ colour: { $ne: 'green' } }, all],
    ];
    for (const mode of MODES) {
      for (const [filter, expected] of cases) {
        expect(await documentIdsFor({ query: 'zebrafish', namespace, mode, filter }), `${mode} ${JSON.stringify(filter)}`).toEqual(expected);
      }
    }
  });

  it('rejects invalid metadata with 400 and stores nothing', async () => {
    const namespace = unique('badmeta');
    for (const metadata of ['{not json', '[1,2]', JSON.stringify({ documentId: 'x' }), JSON.stringify({ nested: { a: 1 } })]) {
      const form = new FormData();
      form.append('file', new File(['Some text.'], 'x.txt'));
      form.append('namespace', namespace);
      form.append('metadata', metadata);
      const response = await api('/v1/documents', { method: 'POST', body: form });
      expect(response.status, metadata).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    }
    expect((await list({ namespace })).documents).toEqual([]);
  });

  it('accepts a JSON bulk upload with per-document metadata', async () => {
    const namespace = unique('bulk');
    const response = await postJson('/v1/documents', {
      namespace,
      documents: [
        { text: 'Bulk loading: the first text mentions meerkats.', title: 'First', metadata: { lang: 'en' } },
        { text: 'Bulk loading: the second text mentions meerkats too.', title: 'Second', metadata: { lang: 'fr', draft: true } },
        { text: 'Bulk loading: a third text without metadata, meerkats again.' },
      ],
    });
    expect(response.status).toBe(202);
    const { documents } = (await response.json()) as { documents: { id: string; title: string; duplicate: boolean }[] };
    expect(documents.map((d) => [d.title, d.duplicate])).toEqual([['First', false], ['Second', false], ['Untitled', false]]);
    expect(new Set(documents.map((d) => d.id)).size).toBe(3);
    await Promise.all(documents.map((d) => waitUntilSettled(d.id)));
    const shown = await Promise.all(documents.map((d) => getJson<Listed>(`/v1/documents/${d.id}`)));
    expect(shown.map((d) => [d.status, d.metadata])).toEqual([['ready', { lang: 'en' }], ['ready', { lang: 'fr', draft: true }], ['ready', {}]]);
    for (const mode of MODES) {
      expect(await documentIdsFor({ query: 'meerkats', namespace, mode, filter: { lang: 'fr' } }), mode).toEqual([documents[1]!.id]);
      expect(await documentIdsFor({ query: 'meerkats', namespace, mode, filter: { draft: true } }), mode).toEqual([documents[1]!.id]);
    }
  });
});
