import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import { api, postJson } from './helpers';

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error.message;
}

/** A body of `size` bytes produced in pieces, sent without a Content-Length. */
function streamOf(size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  const piece = new Uint8Array(1024 * 1024).fill(0x61);
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close();
      controller.enqueue(piece);
      sent += piece.byteLength;
    },
  });
}

describe('errors share one JSON shape', () => {
  it('answers bad JSON with 400', async () => {
    const response = await api('/v1/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":' });
    await expectError(response, 400, 'invalid_json');
  });

  it('answers invalid fields with 400 naming them', async () => {
    const message = await expectError(await postJson('/v1/query', { query: 'x', topK: 500 }), 400, 'bad_request');
    expect(message).toContain('topK');
    await expectError(await postJson('/v1/query', { query: 'x', filter: { year: { $gt: 3 } } }), 400, 'bad_request');
    await expectError(await postJson('/v1/documents', { text: '   ' }), 400, 'bad_request');
    await expectError(await postJson('/v1/chat', { messages: [{ role: 'assistant', content: 'hi' }] }), 400, 'bad_request');
  });

  it('answers unknown routes and documents with 404', async () => {
    await expectError(await api('/v2/nothing'), 404, 'not_found');
    await expectError(await api('/v1/documents/0123456789abcdef0123456789abcdef'), 404, 'not_found');
    await expectError(await api('/v1/documents/0123456789abcdef0123456789abcdef', { method: 'DELETE' }), 404, 'not_found');
  });

  it('rejects an oversized upload with 413 from its Content-Length', async () => {
    const form = new FormData();
    form.append('file', new File(['tiny'], 'a.txt'));
    const response = await api('/v1/documents', {
      method: 'POST',
      headers: { 'content-length': String(26 * 1024 * 1024) },
      body: 'x',
    });
    await expectError(response, 413, 'payload_too_large');
  });

  it('rejects a query or chat body over 1 MiB with 413', async () => {
    const huge = JSON.stringify({ query: 'x'.repeat(1024 * 1024 + 10) });
    for (const path of ['/v1/query', '/v1/chat']) {
      const response = await api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
      await expectError(response, 413, 'payload_too_large');
    }
  });

  it('rejects an oversized streamed upload with 413 while it streams', async () => {
    const response = await api('/v1/documents', {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body: streamOf(26 * 1024 * 1024),
      // @ts-expect-error: workerd needs duplex for a streamed request body
      duplex: 'half',
    });
    await expectError(response, 413, 'payload_too_large');
  });

  it('rejects unsupported files with 415 and stores nothing', async () => {
    const form = new FormData();
    form.append('file', new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])], 'image.png'));
    form.append('file', new File(['fine text'], 'notes.txt'));
    const message = await expectError(await api('/v1/documents', { method: 'POST', body: form }), 415, 'unsupported_media_type');
    expect(message).toContain('image.png');
    const list = (await (await api('/v1/documents?limit=100')).json()) as { documents: { filename: string }[] };
    expect(list.documents.some((d) => d.filename === 'notes.txt')).toBe(false);
  });

  it('rejects a body that is neither multipart nor JSON with 415', async () => {
    await expectError(await api('/v1/documents', { method: 'POST', body: 'plain', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
  });
});

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      CHUNK_SIZE: 512,
      CHUNK_OVERLAP: 50,
      MAX_UPLOAD_BYTES: 25 * 1024 * 1024,
      EMBEDDING_PROVIDER: 'local',
      VECTOR_PROVIDER: 'local',
      CHAT_PROVIDER: 'extractive',
      RERANK_PROVIDER: 'none',
      PROVIDER_RETRIES: 3,
      LLM_TIMEOUT_MS: 30_000,
    });
    // Fusion tuned for the lexical local embedder; semantic embedders count equally.
    expect(config).toMatchObject({ RRF_K: 60, VECTOR_WEIGHT: 0, KEYWORD_WEIGHT: 1 });
    expect(loadConfig({ EMBEDDING_PROVIDER: 'workers-ai' })).toMatchObject({ RRF_K: 60, VECTOR_WEIGHT: 1 });
    expect(loadConfig({ VECTOR_WEIGHT: '0.5' })).toMatchObject({ RRF_K: 60, VECTOR_WEIGHT: 0.5 });
    // The dimension follows the embedding model unless set (384 for the local embedder).
    expect(config.EMBEDDING_DIMENSIONS).toBeUndefined();
  });

  it('names every bad setting', () => {
    expect(() => loadConfig({ CHUNK_SIZE: 'big', EMBEDDING_DIMENSIONS: '4096' })).toThrow(/CHUNK_SIZE.*EMBEDDING_DIMENSIONS/);
    expect(() => loadConfig({ CHUNK_SIZE: '100', CHUNK_OVERLAP: '100' })).toThrow(/CHUNK_OVERLAP: must be smaller than CHUNK_SIZE/);
    expect(() => loadConfig({ EMBEDDING_PROVIDER: 'magic' })).toThrow(/EMBEDDING_PROVIDER/);
    expect(() => loadConfig({ CHAT_PROVIDER: 'openai' })).toThrow(/OPENAI_API_KEY: required/);
    expect(() => loadConfig({ EMBEDDING_DIMENSIONS: '3072' })).toThrow(/EMBEDDING_DIMENSIONS/);
  });

  it('reads numbers and flags given as strings, as wrangler vars are', () => {
    expect(loadConfig({ CHUNK_SIZE: '256', AUTH_ENABLED: 'true' })).toMatchObject({ CHUNK_SIZE: 256, AUTH_ENABLED: true });
  });
});
