import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { api, postJson, query, sampleFile, uploadFiles, waitUntilSettled } from './helpers';

/**
 * Hostile files uploaded through the API beside good ones, ingested by the real queue
 * consumer: nothing answers 5xx, every hostile file settles `failed` with a reason (or
 * `ready` when it is merely odd), nothing of a failed file is searchable, the good files in
 * the same batch end `ready` and searchable, and the engine answers throughout.
 */
const MiB = 2 ** 20;
const word = (body: string) =>
  strToU8(`<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`);

function lyingDocx(): Uint8Array {
  const bytes = zipSync({ 'word/document.xml': [new Uint8Array(32 * MiB).fill(0x41), { level: 9 }] });
  const view = new DataView(bytes.buffer);
  for (let i = 0; i + 46 <= bytes.length; i++) if (view.getUint32(i, true) === 0x02014b50) view.setUint32(i + 24, 2048, true);
  return bytes;
}

describe('hostile uploads beside good ones', () => {
  it('settles every file, fails the hostile ones with reasons, keeps the good ones ready and searchable', async () => {
    const namespace = `hostile${crypto.randomUUID().slice(0, 8)}`;
    const files = [
      { name: 'good-lamp.md', bytes: strToU8('# Lamps\n\nThe keeper trims the quillwort wick before dusk.') },
      { name: 'good-tide.txt', bytes: strToU8('Spring tides at Skerrymoor reach the third step of the lighthouse.') },
      { name: 'heading-bomb.md', bytes: strToU8(`# a${' '.repeat(MiB)}b\n\nBacktracking zorblax.`) },
      { name: 'lying.docx', bytes: lyingDocx() },
      { name: 'unclosed.docx', bytes: zipSync({ 'word/document.xml': [word('<a'.repeat(2 * MiB)), { level: 0 }] }) },
      { name: 'truncated.pdf', bytes: await sampleFile('documents/pdf/pdfjs__tracemonkey__TRUNCATED-first-508157-bytes.pdf') },
      { name: 'password.pdf', bytes: await sampleFile('documents/pdf/unstructured__password.pdf') },
      { name: 'empty.txt', bytes: new Uint8Array(0) },
      { name: '../../../etc/passwd.md', bytes: strToU8('# Traversal\n\nA name with dots and slashes, about the flimwhistle.') },
      { name: 'rtl-emoji.txt', bytes: strToU8('\u202Eטקסט מימין לשמאל\u202C and 🦜🏳️‍🌈 emoji beside the grommetvane.') },
    ];
    const uploaded = await uploadFiles(files, { namespace });
    expect(uploaded).toHaveLength(files.length);
    const outcomes = new Map<string, Awaited<ReturnType<typeof waitUntilSettled>>>();
    for (const [i, document] of uploaded.entries()) {
      expect((await api('/health')).status).toBe(200);
      outcomes.set(files[i]!.name, await waitUntilSettled(document.id, 60_000));
    }
    const status = (name: string) => outcomes.get(name)?.status;
    const error = (name: string) => outcomes.get(name)?.error ?? '';
    expect(status('good-lamp.md')).toBe('ready');
    expect(status('good-tide.txt')).toBe('ready');
    expect(status('heading-bomb.md')).toBe('ready'); // odd, not harmful: indexed with its heading cut
    expect(error('lying.docx')).toMatch(/too large or too compressed/);
    expect(status('unclosed.docx')).toBe('failed');
    expect(error('unclosed.docx')).toMatch(/no text/);
    expect(error('truncated.pdf')).toMatch(/truncated/);
    expect(error('password.pdf')).toMatch(/password/);
    expect(error('empty.txt')).toMatch(/empty|no text/i);
    expect(status('../../../etc/passwd.md')).toBe('ready');
    expect(status('rtl-emoji.txt')).toBe('ready');
    for (const name of ['lying.docx', 'unclosed.docx', 'truncated.pdf', 'password.pdf', 'empty.txt']) {
      expect(outcomes.get(name)?.chunkCount, name).toBe(0);
    }

    // The good ones are found; nothing of a failed one is.
    expect((await query({ query: 'quillwort wick', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded[0]!.id);
    expect((await query({ query: 'Skerrymoor tides', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded[1]!.id);
    expect((await query({ query: 'zorblax', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded[2]!.id);
    expect((await query({ query: 'flimwhistle', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded[8]!.id);
    expect((await query({ query: 'grommetvane', namespace, mode: 'keyword' }))[0]?.documentId).toBe(uploaded[9]!.id);
    const failedIds = new Set(['lying.docx', 'unclosed.docx', 'truncated.pdf', 'password.pdf', 'empty.txt'].map((n) => uploaded[files.findIndex((f) => f.name === n)]!.id));
    for (const text of ['a', 'tracemonkey', 'trace', 'lorem', 'document']) {
      for (const passage of await query({ query: text, namespace, mode: 'hybrid', topK: 100 })) expect(failedIds.has(passage.documentId)).toBe(false);
    }
  });

  it('refuses a whole request with one file it cannot read (415) and stores nothing of it', async () => {
    const namespace = `hostile${crypto.randomUUID().slice(0, 8)}`;
    const form = new FormData();
    form.append('namespace', namespace);
    form.append('file', new File([strToU8('A good note about the spindlewort.')], 'good.txt'));
    form.append('file', new File([zipSync({ 'xl/workbook.xml': strToU8('<workbook/>') })], 'sheet.docx'));
    // Text with a NUL byte is taken for binary.
    form.append('file', new File([strToU8(`${'Plain words about the bellrope. '.repeat(40)}\u0000 and on.`)], 'nul.txt'));
    form.append('file', new File([new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3e, 0])], 'notes.txt'));
    const response = await api('/v1/documents', { method: 'POST', body: form });
    expect(response.status).toBe(415);
    const listed = (await (await api(`/v1/documents?namespace=${namespace}`)).json()) as { documents: unknown[] };
    expect(listed.documents).toEqual([]);
  });

  it('answers malformed JSON bodies with 400, never 5xx', async () => {
    const bodies = ['{', '[]', 'null', '"x"', '{"query": 1}', '['.repeat(100_000), `{"query":"${'\\ud800'}"}`, '{"query":"x","filter":{"a":{"$regex":"x"}}}'];
    for (const body of bodies) {
      const response = await api('/v1/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(response.status, body.slice(0, 20)).toBeLessThan(500);
      expect([200, 400]).toContain(response.status);
    }
    const lone = await postJson('/v1/query', { query: 'lone \ud800 surrogate' });
    expect(lone.status).toBe(200);
  });
});
