import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { ingestDocuments } from '../src/ingestion/pipeline';
import { getServices } from '../src/composition';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { REQUEST_LIMITS as L } from '../src/limits';
import { VectorizeIndex } from '../src/engines/cloudflare/vectorize';
import { FakeVectorize } from '../fakes/vectorize';
import { api, type DocumentView, postJson, uploadText, waitUntilSettled } from './helpers';

/**
 * Every cap on what a client sends (REQUEST_LIMITS in src/limits.ts): a request just under it is
 * accepted, one just over it answers 400 naming the cap, never 500, in both engines: offline (the
 * local vector index) and production (Vectorize, with keyword search and filters in D1).
 */

const unique = (prefix: string) => `${prefix}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
const bytes = (text: string) => new TextEncoder().encode(text).length;

/** Fields the production index has metadata indexes for: Vectorize allows 10, documentId is one. */
const INDEXED = ['documentId', ...Array.from({ length: 9 }, (_, i) => `f${i + 1}`)];
/** What filters may name in both profiles: the indexed fields, and those of the keyword-only comparison below. */
const FILTERABLE = [...INDEXED, 'team', 'year', 'draft'].join(',');
const productionEnv = {
  ...env,
  VECTOR_PROVIDER: 'vectorize',
  VECTORIZE: new FakeVectorize({ dimensions: 384, metadataIndexes: INDEXED }),
  FILTERABLE_FIELDS: FILTERABLE,
} as unknown as Env;

type Post = (path: string, body: unknown) => Promise<Response>;
const offlineEnv = { ...env, FILTERABLE_FIELDS: FILTERABLE } as unknown as Env;
const ENGINES: [string, Post][] = [
  [
    'offline',
    async (path, body) =>
      app.fetch(new Request(`http://rag.test${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }), offlineEnv),
  ],
  [
    'production',
    async (path, body) =>
      app.fetch(new Request(`http://rag.test${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }), productionEnv),
  ],
];

async function expectAccepted(response: Response, label = '') {
  if (response.status >= 300) throw new Error(`${label}: expected 2xx, got ${response.status} ${await response.text()}`);
  return response;
}

/** A 400 (or 413) whose message contains `fragment`, e.g. "title: at most 512 characters". */
async function expectRefused(response: Response, fragment: string, status = 400, code = status === 413 ? 'payload_too_large' : 'bad_request') {
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(response.status, body.error?.message).toBe(status);
  expect(body.error.code).toBe(code);
  expect(body.error.message).toContain(fragment);
  return body.error.message;
}

function multipart(files: { name: string; text: string }[], fields: Record<string, string> = {}): RequestInit {
  const form = new FormData();
  for (const file of files) form.append('file', new File([file.text], file.name));
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  return { method: 'POST', body: form };
}

/** A multipart body written by hand, so a file name reaches the Worker byte for byte. */
function rawMultipart(filename: string, text: string): RequestInit {
  const boundary = 'capsboundary';
  const body = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: text/plain\r\n\r\n${text}\r\n--${boundary}--\r\n`;
  return { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body };
}

const rawJson = (path: string, body: string) => api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

async function document(id: string) {
  return (await (await api(`/v1/documents/${id}`)).json()) as DocumentView & { filename: string | null; metadata: Record<string, unknown> };
}

/** `n` lengths of at most `max` adding up to `total` (which must fit). */
function spread(total: number, n: number, max: number): number[] {
  expect(total).toBeLessThanOrEqual(n * max);
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

/** Metadata whose compact JSON is exactly `size` bytes: `{"k0":"v…",…}`, each entry costing 8 + its value. */
function metadataOfBytes(size: number): Record<string, string> {
  const perEntry = 8; // "kN":"" and a comma (the braces make up for the last comma)
  const n = Math.ceil((size - 1) / (L.maxMetadataValueChars + perEntry));
  const lengths = spread(size - 1 - n * perEntry, n, L.maxMetadataValueChars);
  const metadata = Object.fromEntries(lengths.map((length, i) => [`k${i}`, 'v'.repeat(length)]));
  expect(bytes(JSON.stringify(metadata))).toBe(size);
  return metadata;
}

/** A filter `{ documentId: { $in: [...] } }` whose compact JSON is exactly `size` bytes. */
function filterOfBytes(size: number) {
  const perValue = 3; // "" and a comma
  const base = bytes(JSON.stringify({ documentId: { $in: [] } })) - 1;
  const n = Math.ceil((size - base) / (L.maxFilterStringBytes + perValue));
  const filter = { documentId: { $in: spread(size - base - n * perValue, n, L.maxFilterStringBytes).map((length) => 'x'.repeat(length)) } };
  expect(bytes(JSON.stringify(filter))).toBe(size);
  expect(n).toBeLessThanOrEqual(L.maxFilterValues);
  return filter;
}

const fields = (n: number, value: unknown = 'x') => Object.fromEntries(Array.from({ length: n }, (_, i) => [INDEXED[i] ?? `g${i}`, value]));

describe('titles', () => {
  it(`take at most ${L.maxTitleChars} characters, as JSON and as a multipart field`, async () => {
    const namespace = unique('title');
    await expectAccepted(await postJson('/v1/documents', { text: 'title at cap', title: 't'.repeat(L.maxTitleChars), namespace }));
    await expectRefused(await postJson('/v1/documents', { text: 'title over cap', title: 't'.repeat(L.maxTitleChars + 1), namespace }), `title: at most ${L.maxTitleChars} characters`);
    await expectAccepted(await api('/v1/documents', multipart([{ name: 'a.txt', text: 'multipart title at cap' }], { title: 'm'.repeat(L.maxTitleChars), namespace })));
    await expectRefused(
      await api('/v1/documents', multipart([{ name: 'a.txt', text: 'multipart title over cap' }], { title: 'm'.repeat(L.maxTitleChars + 1), namespace })),
      `title: at most ${L.maxTitleChars} characters`,
    );
  });

  it('are one line: line breaks, tabs and runs of spaces become one space (counted after)', async () => {
    const namespace = unique('line');
    const response = await postJson('/v1/documents', { text: 'a title on two lines', title: '  Annual\r\nreport\t 2024 \n', namespace });
    const [accepted] = ((await (await expectAccepted(response)).json()) as { documents: { id: string; title: string }[] }).documents;
    expect(accepted?.title).toBe('Annual report 2024');
    expect((await document(accepted!.id)).title).toBe('Annual report 2024');
    // 510 + "\n\n\n" + 1 is 512 once collapsed.
    await expectAccepted(await postJson('/v1/documents', { text: 'collapsed to the cap', title: `${'a'.repeat(510)}\n\n\nb`, namespace }));
  });

  it('refuse NUL and other control characters', async () => {
    for (const title of ['a\u0000b', 'esc\u001b[31m', 'del\u007f', 'nel\u0085']) {
      await expectRefused(await postJson('/v1/documents', { text: 'control title', title }), 'title: control characters');
      await expectRefused(await api('/v1/documents', multipart([{ name: 'c.txt', text: 'control title' }], { title })), 'title: control characters');
    }
  });
});

describe('half surrogate pairs', () => {
  it('are refused in titles, file names, metadata and filter values (D1 would store U+FFFD×3)', async () => {
    await expectRefused(await rawJson('/v1/documents', '{"text":"lone","title":"a\\ud800b"}'), 'title: not well-formed Unicode');
    await expectRefused(await rawJson('/v1/documents', '{"text":"lone","filename":"x\\udc00.txt"}'), 'filename: not well-formed Unicode');
    await expectRefused(await rawJson('/v1/documents', '{"text":"lone","metadata":{"k":"\\ud800"}}'), 'metadata.k: not well-formed Unicode');
    await expectRefused(await rawJson('/v1/query', '{"query":"lone","filter":{"k":"\\ud800"}}'), 'filter.k: not well-formed Unicode');
    // A whole pair is text.
    await expectAccepted(await rawJson('/v1/documents', '{"text":"pair","title":"emoji \\ud83d\\ude00"}'));
  });
});

describe('file names', () => {
  it(`take at most ${L.maxFilenameChars} characters, as JSON and as multipart names`, async () => {
    const namespace = unique('name');
    const atCap = `${'n'.repeat(L.maxFilenameChars - 4)}.txt`;
    const overCap = `${'n'.repeat(L.maxFilenameChars - 3)}.txt`;
    await expectAccepted(await postJson('/v1/documents', { text: 'name at cap', filename: atCap, namespace }));
    await expectRefused(await postJson('/v1/documents', { text: 'name over cap', filename: overCap, namespace }), `filename: at most ${L.maxFilenameChars} characters`);
    await expectAccepted(await api('/v1/documents', multipart([{ name: atCap, text: 'multipart name at cap' }], { namespace })));
    await expectRefused(await api('/v1/documents', multipart([{ name: overCap, text: 'multipart name over cap' }], { namespace })), `filename: at most ${L.maxFilenameChars} characters`);
    const message = await expectRefused(
      await api('/v1/documents', multipart([{ name: 'ok.txt', text: 'first' }, { name: overCap, text: 'second' }], { namespace })),
      `files.1.filename: at most ${L.maxFilenameChars} characters`,
    );
    expect(message.length).toBeLessThan(200);
  });

  it('are stored without their directories', async () => {
    const namespace = unique('path');
    const cases: [string, RequestInit | Record<string, unknown>, string | null][] = [
      ['multipart', multipart([{ name: '../../etc/passwd', text: 'a traversal by multipart' }], { namespace }), 'passwd'],
      ['raw multipart', rawMultipart('../../../../tmp/evil.txt', 'a raw traversal'), 'evil.txt'],
      ['JSON', { text: 'a traversal by JSON', filename: '..\\..\\windows\\win.ini', namespace }, 'win.ini'],
      ['JSON absolute', { text: 'an absolute path', filename: '/var/data/report.md', namespace }, 'report.md'],
      ['only directories', { text: 'nothing but directories', filename: '../../', namespace }, null],
    ];
    for (const [label, request, stored] of cases) {
      const response = 'method' in request ? await api('/v1/documents', request as RequestInit) : await postJson('/v1/documents', request);
      const [accepted] = ((await (await expectAccepted(response, label)).json()) as { documents: { id: string; title: string }[] }).documents;
      const shown = await document(accepted!.id);
      expect(shown.filename, label).toBe(stored);
      expect(shown.title, label).toBe(stored ?? 'Untitled');
    }
  });

  it('refuse NUL, control and bidi characters', async () => {
    for (const filename of ['a\u0000.txt', 'evil\u0000/../x.txt', 'tab\there.txt', 'line\nbreak.txt', 'invoice\u202etxt.exe']) {
      await expectRefused(await postJson('/v1/documents', { text: 'control name', filename }), 'filename:');
    }
    // workerd's multipart parser refuses a raw NUL in a file name itself: still a 400.
    await expectRefused(await api('/v1/documents', rawMultipart('nul\u0000name.txt', 'raw NUL')), 'The multipart body could not be read.');
    await expectRefused(await api('/v1/documents', rawMultipart('bell\u0007name.txt', 'raw BEL')), 'filename: control characters');
    await expectRefused(await api('/v1/documents', multipart([{ name: 'esc\u001bname.txt', text: 'esc' }])), 'filename: control characters');
  });
});

describe('chunk contexts', () => {
  it(`hold at most ${L.maxContextChars} characters: the title and the innermost headings`, async () => {
    const namespace = unique('ctx');
    const title = `T${'t'.repeat(L.maxTitleChars - 1)}`;
    const headings = Array.from({ length: 6 }, (_, i) => `H${i + 1} ${String(i + 1).repeat(275)}`);
    const markdown = headings.map((h, i) => `${'#'.repeat(i + 1)} ${h}\n\nParagraph ${i + 1} about capybaras.\n`).join('\n');
    const long = await uploadText({ text: markdown, filename: 'deep.md', title, namespace });
    const short = await uploadText({ text: '# Intro\n\nShort context about capybaras.\n', filename: 'short.md', title: 'Short', namespace });
    expect((await waitUntilSettled(long.id)).status).toBe('ready');
    expect((await waitUntilSettled(short.id)).status).toBe('ready');

    // The contexts as the search engine stores them (the local engine's Durable Object of the namespace).
    const contexts = (id: string) =>
      runInDurableObject(env.VECTOR_INDEX.get(env.VECTOR_INDEX.idFromName(namespace)), (_, state) =>
        state.storage.sql
          .exec<{ context: string }>(`SELECT context FROM vectors WHERE document = ? ORDER BY json_extract(passage, '$.position')`, id)
          .toArray()
          .map((r) => r.context),
      );
    expect(await contexts(short.id)).toEqual(['Short › Intro']);
    const deep = await contexts(long.id);
    expect(deep.length).toBeGreaterThan(0);
    for (const context of deep) {
      expect(context.length).toBeLessThanOrEqual(L.maxContextChars);
      expect(context.startsWith('Ttt')).toBe(true);
    }
    // The deepest section keeps its own heading.
    expect(deep.at(-1)?.endsWith(headings.at(-1)!)).toBe(true);
    expect(deep.at(-1)).toContain(' › … › ');
    // Still found by its title and headings.
    const passages = (await (await postJson('/v1/query', { query: 'capybaras', namespace, topK: 10 })).json()) as { passages: unknown[] };
    expect(passages.passages.length).toBeGreaterThan(0);
  });
});

describe.each(ENGINES)('metadata (%s)', (_engine, post) => {
  const upload = (metadata: unknown) => post('/v1/documents', { text: `metadata ${crypto.randomUUID()}`, metadata, namespace: 'caps' });

  it(`takes at most ${L.maxMetadataFields} fields`, async () => {
    await expectAccepted(await upload(Object.fromEntries(Array.from({ length: L.maxMetadataFields }, (_, i) => [`k${i}`, i]))));
    await expectRefused(await upload(Object.fromEntries(Array.from({ length: L.maxMetadataFields + 1 }, (_, i) => [`k${i}`, i]))), `metadata: at most ${L.maxMetadataFields} fields`);
  });

  it(`takes keys of at most ${L.maxFieldNameChars} characters: letters, digits, _ and -, no "." or "$"`, async () => {
    await expectAccepted(await upload({ [`k${'e'.repeat(L.maxFieldNameChars - 1)}`]: 1, 'with-dash_and_1': true }));
    await expectRefused(await upload({ [`k${'e'.repeat(L.maxFieldNameChars)}`]: 1 }), `at most ${L.maxFieldNameChars} characters`);
    for (const key of ['a.b', '$set', 'quote"d', '', '9lives']) await expectRefused(await upload({ [key]: 1 }), 'metadata: field name');
    await expectRefused(await upload({ documentId: 'mine' }), '"documentId" is reserved');
  });

  it(`takes string values of at most ${L.maxMetadataValueChars} characters, and scalars only`, async () => {
    await expectAccepted(await upload({ note: 'v'.repeat(L.maxMetadataValueChars) }));
    await expectRefused(await upload({ note: 'v'.repeat(L.maxMetadataValueChars + 1) }), `metadata.note: at most ${L.maxMetadataValueChars} characters`);
    await expectRefused(await upload({ nested: { a: 1 } }), 'metadata.nested: must be a string');
    await expectRefused(await upload({ list: [1] }), 'metadata.list: must be a string');
  });

  it(`takes at most ${L.maxMetadataBytes} bytes of JSON`, async () => {
    await expectAccepted(await upload(metadataOfBytes(L.maxMetadataBytes)));
    await expectRefused(await upload(metadataOfBytes(L.maxMetadataBytes + 1)), `metadata: at most ${L.maxMetadataBytes} bytes`);
    // Multi-byte characters count as bytes: 1,000 × "é" is 2,000 bytes.
    const wide = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`w${i}`, 'é'.repeat(1000)]));
    await expectRefused(await upload(wide), `metadata: at most ${L.maxMetadataBytes} bytes`);
  });
});

describe('metadata, more', () => {
  it('leaves room for documentId within what Vectorize takes per vector', async () => {
    const fake = new FakeVectorize({ dimensions: 2 });
    const index = new VectorizeIndex(fake, { dimensions: 2, resilience: { retries: 0, timeoutMs: 1_000 } });
    const metadata = { ...metadataOfBytes(L.maxMetadataBytes), documentId: 'f'.repeat(32) };
    await expect(index.upsert('caps', [{ id: 'largest', values: new Float32Array([1, 0]), metadata }])).resolves.toBeUndefined();
  });

  it('refuses "__proto__", which a JSON parser keeps and zod would drop', async () => {
    await expectRefused(await rawJson('/v1/documents', '{"text":"proto","metadata":{"__proto__":"x","a":1}}'), 'field name "__proto__"');
    await expectRefused(await rawJson('/v1/query', '{"query":"proto","filter":{"__proto__":"x"}}'), 'field name "__proto__"');
  });

  it('refuses numbers JSON cannot hold (1e400 parses as Infinity)', async () => {
    await expectRefused(await rawJson('/v1/documents', '{"text":"infinite","metadata":{"n":1e400}}'), 'metadata.n: must be a string, a finite number or a boolean');
  });

  it('is checked the same way in a multipart upload', async () => {
    const file = [{ name: 'm.txt', text: 'multipart metadata' }];
    await expectAccepted(await api('/v1/documents', multipart(file, { metadata: JSON.stringify({ team: 'red' }) })));
    await expectRefused(await api('/v1/documents', multipart(file, { metadata: JSON.stringify({ 'a.b': 1 }) })), 'metadata: field name "a.b"');
    await expectRefused(await api('/v1/documents', multipart(file, { metadata: JSON.stringify(metadataOfBytes(L.maxMetadataBytes + 1)) })), `metadata: at most ${L.maxMetadataBytes} bytes`);
    await expectRefused(await api('/v1/documents', multipart(file, { metadata: '['.repeat(10_000) })), 'metadata: not valid JSON');
  });
});

describe('files and documents per upload', () => {
  const max = 100; // MAX_FILES_PER_UPLOAD's default
  it(`takes at most MAX_FILES_PER_UPLOAD (${max}) files in a multipart upload`, async () => {
    const namespace = unique('files');
    // The same bytes are one document: a hundred parts, one ingestion.
    const files = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `f${i}.txt`, text: 'the same text in every file' }));
    const accepted = await expectAccepted(await api('/v1/documents', multipart(files(max), { namespace })));
    expect(((await accepted.json()) as { documents: unknown[] }).documents).toHaveLength(max);
    await expectRefused(await api('/v1/documents', multipart(files(max + 1), { namespace })), `files: at most ${max} files or documents per upload`);
  });

  it.each(ENGINES)(`takes at most MAX_FILES_PER_UPLOAD (${max}) documents in a JSON upload (%s)`, async (_engine, post) => {
    const namespace = unique('docs');
    const documents = (n: number) => Array.from({ length: n }, () => ({ text: 'one text, many times' }));
    await expectAccepted(await post('/v1/documents', { documents: documents(max), namespace }));
    await expectRefused(await post('/v1/documents', { documents: documents(max + 1), namespace }), `documents: at most ${max} files or documents per upload`);
    // A huge list is refused as a whole, with one short message.
    const message = await expectRefused(await post('/v1/documents', { documents: documents(100_000), namespace }), 'documents: at most');
    expect(message.length).toBeLessThan(200);
  });

  it('lists ten problems at most, however many items are wrong', async () => {
    const documents = Array.from({ length: 50 }, () => ({ text: 'x', title: 'a\u0000' }));
    const message = await expectRefused(await postJson('/v1/documents', { documents }), 'documents.0.title: control characters');
    expect(message).toContain('and 40 more');
  });
});

describe.each(ENGINES)('filters (%s)', (_engine, post) => {
  const search = (filter: unknown, mode = 'hybrid') => post('/v1/query', { query: 'anything at all', filter, mode });

  it('refuse a field outside FILTERABLE_FIELDS, in every mode, with the same 400 in both engines', async () => {
    for (const mode of ['hybrid', 'vector', 'keyword']) {
      const message = await expectRefused(await search({ colour: 'red', f1: 'x' }, mode), 'filter: cannot filter on "colour"; filterable fields are documentId, f1');
      expect(message).toContain('(FILTERABLE_FIELDS; in production each needs a Vectorize metadata index)');
      await expectAccepted(await search({ f1: 'x' }, mode), mode);
    }
  });

  it(`take at most ${L.maxFilterFields} fields, in every mode`, async () => {
    for (const mode of ['hybrid', 'vector', 'keyword']) {
      await expectAccepted(await search(fields(L.maxFilterFields), mode), mode);
      await expectRefused(await search(fields(L.maxFilterFields + 1), mode), `filter: at most ${L.maxFilterFields} fields`);
      // 40 fields: D1 once answered 500 ("too many SQL variables").
      await expectRefused(await search(fields(40), mode), `filter: at most ${L.maxFilterFields} fields`);
    }
  });

  it(`take at most ${L.maxFilterValues} values in all`, async () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => i);
    for (const mode of ['hybrid', 'keyword']) {
      // One list of 100 once needed 103 D1 parameters (500); lists are bound as one JSON value now.
      await expectAccepted(await search({ documentId: { $in: list(L.maxFilterValues).map(String) } }, mode), mode);
      await expectAccepted(await search({ f1: { $nin: list(L.maxFilterValues - 2), $ne: -1 }, f2: 'x' }, mode), mode);
    }
    await expectRefused(await search({ documentId: { $in: list(L.maxFilterValues + 1).map(String) } }), `filter: at most ${L.maxFilterValues} values in all`);
    await expectRefused(await search({ f1: { $in: list(60) }, f2: { $nin: list(40) }, f3: 1 }), `filter: at most ${L.maxFilterValues} values in all`);
    await expectRefused(await search({ f1: { $in: [] } }), 'filter.f1.$in: must be a non-empty list');
  });

  it(`take string values of at most ${L.maxFilterStringBytes} bytes`, async () => {
    await expectAccepted(await search({ f1: 'é'.repeat(L.maxFilterStringBytes / 2) }));
    await expectRefused(await search({ f1: 'é'.repeat(L.maxFilterStringBytes / 2 + 1) }), `filter.f1: at most ${L.maxFilterStringBytes} bytes`);
    await expectRefused(await search({ f1: { $in: ['ok', 'x'.repeat(L.maxFilterStringBytes + 1)] } }), `filter.f1.$in.1: at most ${L.maxFilterStringBytes} bytes`);
  });

  it(`take at most ${L.maxFilterBytes} bytes of JSON, shorthand counted as $eq`, async () => {
    await expectAccepted(await search(filterOfBytes(L.maxFilterBytes)));
    await expectRefused(await search(filterOfBytes(L.maxFilterBytes + 1)), `filter: at most ${L.maxFilterBytes} bytes`);
    // `f1: 1` is 7 bytes as sent but 15 as Vectorize receives it, `f1: { $eq: 1 }`.
    await expectAccepted(await search({ ...filterOfBytes(L.maxFilterBytes - 15), f1: 1 }));
    await expectRefused(await search({ ...filterOfBytes(L.maxFilterBytes - 8), f1: 1 }), `filter: at most ${L.maxFilterBytes} bytes`);
  });

  it('refuse what Vectorize refuses: dotted fields, $or, unknown operators', async () => {
    await expectRefused(await search({ 'a.b': 1 }), 'filter: field name "a.b"');
    await expectRefused(await search({ $or: [{ f1: 1 }, { f2: 2 }] }), 'filter: "$or" is not supported');
    await expectRefused(await search({ f1: { $gt: 3 } }), 'filter.f1: unsupported operator "$gt"');
    await expectRefused(await search({ f1: null }), 'filter.f1: must be a string, a finite number or a boolean');
    await expectRefused(await search([1, 2]), 'filter: must be an object');
  });

  it('survive deeply nested values with a 400', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const response = await api('/v1/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"query":"x","filter":{"f1":{"$in":${deep}}}}` });
    await expectRefused(response, 'filter.f1.$in.0: must be a string');
  });
});

describe('filters give the same documents in both engines', () => {
  it('in keyword search, where production filters in D1 (lists bound as one JSON value)', async () => {
    const namespace = unique('same');
    const red = await uploadText({ text: 'Okapi notes from the red team.', metadata: { team: 'red', year: 2024, draft: true }, namespace });
    const blue = await uploadText({ text: 'Okapi notes from the blue team.', metadata: { team: 'blue', year: 2023 }, namespace });
    const none = await uploadText({ text: 'Okapi notes from nobody in particular.', namespace });
    for (const d of [red, blue, none]) expect((await waitUntilSettled(d.id)).status).toBe('ready');
    // The same documents, ingested again by the production engine (the queue's consumer runs offline).
    await ingestDocuments(getServices(productionEnv), [red.id, blue.id, none.id]);
    const cases: [unknown, string[]][] = [
      [{ team: 'red' }, [red.id]],
      [{ team: { $ne: 'red' } }, [blue.id, none.id]],
      [{ year: { $in: [2023, 2024] } }, [red.id, blue.id]],
      [{ year: { $nin: [2024] } }, [blue.id, none.id]],
      [{ year: '2024' }, []],
      [{ draft: true }, [red.id]],
      [{ draft: { $ne: true } }, [blue.id, none.id]],
      [{ draft: { $in: [true, false] } }, [red.id]],
      [{ team: { $in: ['red', 'blue'], $ne: 'blue' }, year: { $nin: [2023], $eq: 2024 } }, [red.id]],
      [{ team: { $nin: ['red', 'blue'] } }, [none.id]],
      [{ documentId: { $in: [blue.id, none.id] }, team: { $ne: 'green' } }, [blue.id, none.id]],
      [{ documentId: { $nin: [blue.id] } }, [red.id, none.id]],
    ];
    for (const [engine, post] of ENGINES) {
      for (const [filter, expected] of cases) {
        const response = await expectAccepted(await post('/v1/query', { query: 'okapi notes', namespace, mode: 'keyword', topK: 10, filter }), engine);
        const ids = [...new Set(((await response.json()) as { passages: { documentId: string }[] }).passages.map((p) => p.documentId))];
        expect(ids.sort(), `${engine} ${JSON.stringify(filter)}`).toEqual([...expected].sort());
      }
    }
  });
});

describe.each(ENGINES)('queries (%s)', (_engine, post) => {
  it(`take topK up to ${L.maxTopK}`, async () => {
    await expectAccepted(await post('/v1/query', { query: 'topK', topK: L.maxTopK }));
    await expectRefused(await post('/v1/query', { query: 'topK', topK: L.maxTopK + 1 }), `topK: at most ${L.maxTopK}`);
  });

  it(`take a query of at most ${L.maxQueryChars} characters`, async () => {
    await expectAccepted(await post('/v1/query', { query: 'q'.repeat(L.maxQueryChars) }));
    await expectRefused(await post('/v1/query', { query: 'q'.repeat(L.maxQueryChars + 1) }), `query: at most ${L.maxQueryChars} characters`);
    await expectAccepted(await post('/v1/chat', { query: 'q'.repeat(L.maxQueryChars) }));
    await expectRefused(await post('/v1/chat', { query: 'q'.repeat(L.maxQueryChars + 1) }), `query: at most ${L.maxQueryChars} characters`);
  });

  it(`take a namespace of at most ${L.maxNamespaceChars} characters`, async () => {
    await expectAccepted(await post('/v1/query', { query: 'ns', namespace: 'n'.repeat(L.maxNamespaceChars) }));
    await expectRefused(await post('/v1/query', { query: 'ns', namespace: 'n'.repeat(L.maxNamespaceChars + 1) }), `namespace: a namespace is 1-${L.maxNamespaceChars}`);
  });
});

describe.each(['/v1/chat', '/v1/chat/completions'])('chats on %s', (path) => {
  const user = (content: unknown) => ({ role: 'user', content });
  const chat = (messages: unknown[], extra: Record<string, unknown> = {}) => postJson(path, { messages, ...extra });

  it(`take at most ${L.maxChatMessages} messages`, async () => {
    const turns = (n: number) => Array.from({ length: n }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` }));
    await expectAccepted(await chat([...turns(L.maxChatMessages - 1), user('last question')]));
    await expectRefused(await chat([...turns(L.maxChatMessages), user('last question')]), `messages: at most ${L.maxChatMessages} messages`);
  });

  it(`take messages of at most ${L.maxMessageChars} characters`, async () => {
    await expectAccepted(await chat([user('m'.repeat(L.maxMessageChars))]));
    await expectRefused(await chat([user('m'.repeat(L.maxMessageChars + 1))]), `messages.0.content: at most ${L.maxMessageChars} characters`);
  });

  it(`take at most ${L.maxChatChars} characters across all messages`, async () => {
    const half = L.maxChatChars / 2;
    await expectAccepted(await chat([{ role: 'assistant', content: 'a'.repeat(half) }, user('u'.repeat(half))]));
    await expectRefused(
      await chat([{ role: 'assistant', content: 'a'.repeat(half) }, user('u'.repeat(half)), { role: 'assistant', content: 'x' }, user('one more')]),
      `messages: at most ${L.maxChatChars} characters across all messages`,
    );
  });

  it('answer 400 invalid_json to a body of 10,000 "[", and 400 to one nested 100,000 deep', async () => {
    await expectRefused(await rawJson(path, '['.repeat(10_000)), 'not valid JSON', 400, 'invalid_json');
    await expectRefused(await rawJson(path, `{"messages":${'['.repeat(100_000)}${']'.repeat(100_000)}}`), 'messages');
  });
});

describe('OpenAI-style chat content', () => {
  const completion = (content: unknown, extra: Record<string, unknown> = {}) => postJson('/v1/chat/completions', { messages: [{ role: 'user', content }], ...extra });
  const parts = (n: number, text = 'p') => Array.from({ length: n }, () => ({ type: 'text', text }));

  it(`takes at most ${L.maxContentParts} parts, ${L.maxMessageChars} characters together`, async () => {
    await expectAccepted(await completion(parts(L.maxContentParts)));
    await expectRefused(await completion(parts(L.maxContentParts + 1)), `messages.0.content: at most ${L.maxContentParts} parts`);
    await expectAccepted(await completion(parts(4, 'q'.repeat(L.maxMessageChars / 4))));
    await expectRefused(await completion([...parts(4, 'q'.repeat(L.maxMessageChars / 4)), { type: 'text', text: 'q' }]), `messages.0.content: at most ${L.maxMessageChars} characters`);
  });

  it(`takes a model name and part types of at most ${L.maxLabelChars} characters`, async () => {
    // At the cap, the name is read (and is no model this engine has: 404); over it, refused unread.
    await expectRefused(await completion('hi', { model: 'm'.repeat(L.maxLabelChars) }), 'does not exist here', 404, 'not_found');
    await expectAccepted(await completion('hi', { model: 'extractive' }));
    await expectRefused(await completion('hi', { model: 'm'.repeat(L.maxLabelChars + 1) }), `model: at most ${L.maxLabelChars} characters`);
    await expectRefused(await completion([{ type: 't'.repeat(L.maxLabelChars + 1), text: 'hi' }]), `messages.0.content.0.type: at most ${L.maxLabelChars} characters`);
  });
});

describe('bodies that are not valid JSON', () => {
  it('answer 400 invalid_json on every JSON endpoint, never 500', async () => {
    for (const path of ['/v1/query', '/v1/chat', '/v1/chat/completions', '/v1/documents']) {
      for (const body of ['['.repeat(10_000), '{'.repeat(10_000), '{"query":', '\u0000', '{"a":1}}', "{'single':1}"]) {
        await expectRefused(await rawJson(path, body), 'not valid JSON', 400, 'invalid_json');
      }
    }
  });

  it('answer 400 to valid JSON of the wrong shape', async () => {
    for (const body of ['null', '[]', '"text"', '42', `${'['.repeat(50_000)}${']'.repeat(50_000)}`]) {
      await expectRefused(await rawJson('/v1/documents', body), 'Invalid input');
      await expectRefused(await rawJson('/v1/query', body), 'Invalid input');
    }
  });

  it('answer 413 to a JSON body over 1 MiB', async () => {
    await expectRefused(await rawJson('/v1/query', JSON.stringify({ query: 'x', pad: 'p'.repeat(1024 * 1024) })), 'exceeds', 413);
  });
});

describe('listing', () => {
  it(`takes pages of at most ${L.maxPageSize}`, async () => {
    await expectAccepted(await api(`/v1/documents?limit=${L.maxPageSize}`));
    await expectRefused(await api(`/v1/documents?limit=${L.maxPageSize + 1}`), `limit: at most ${L.maxPageSize} documents a page`);
  });
});
