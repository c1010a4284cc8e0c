import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DocumentView, query, sampleFile, uploadFiles, waitUntilSettled } from './helpers';
import expectations from './sample-documents.json';

/**
 * The acceptance run of a new user: every file of ../shared/data/documents uploaded in
 * one request through the API. Text-bearing files must become ready and be found in the
 * top 3 by a query phrased from their content; unreadable ones must fail with a reason.
 */
/** What each file must become (shared with scripts/check-samples.mjs, which runs it against a running engine). */
const READABLE: Record<string, string> = expectations.readable;
const UNREADABLE: Record<string, RegExp> = Object.fromEntries(
  Object.entries(expectations.unreadable).map(([path, { pattern, flags }]) => [path, new RegExp(pattern, flags)]),
);

const NAMESPACE = 'samples';
const settled = new Map<string, DocumentView>();

beforeAll(async () => {
  const paths = [...Object.keys(READABLE), ...Object.keys(UNREADABLE)];
  const files = await Promise.all(
    paths.map(async (path) => ({ name: path.split('/')[1] as string, bytes: await sampleFile(`documents/${path}`) })),
  );
  const uploaded = await uploadFiles(files, { namespace: NAMESPACE });
  expect(uploaded).toHaveLength(paths.length);
  for (const [i, document] of uploaded.entries()) settled.set(paths[i] as string, await waitUntilSettled(document.id, 120_000));
}, 180_000);

describe('every sample document, uploaded as a user would', () => {
  it.each(Object.entries(READABLE))('%s is ready and found in the top 3', async (path, phrase) => {
    const document = settled.get(path) as DocumentView;
    expect(document, path).toMatchObject({ status: 'ready', error: null });
    expect(document.chunkCount).toBeGreaterThan(0);
    const passages = await query({ query: phrase, namespace: NAMESPACE, topK: 10 });
    const top = [...new Set(passages.map((p) => p.documentId))].slice(0, 3);
    expect(top, `top documents for "${phrase}"`).toContain(document.id);
  });

  it.each(Object.entries(UNREADABLE))('%s fails with a reason', (path, reason) => {
    const document = settled.get(path) as DocumentView;
    expect(document.status).toBe('failed');
    expect(document.error).toMatch(reason);
    expect(document.chunkCount).toBe(0);
  });

  it('covers every file in the sample folder', async () => {
    const listing = (await (await env.TEST_DATA.fetch('http://data/documents')).json()) as string[];
    const documents = listing.filter((path) => /\.(pdf|docx|md|txt)$/.test(path));
    expect(documents.length).toBeGreaterThan(40);
    expect(documents.sort()).toEqual([...Object.keys(READABLE), ...Object.keys(UNREADABLE)].sort());
  });
});
