import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';

/** Uploads that meet a storage or queue failure: a 503 to retry, and nothing half-stored. */
const upload = (target: Env, namespace: string, text: string) =>
  app.fetch(
    new Request('http://rag.test/v1/documents', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text, namespace }) }),
    target,
  );

async function nothingStored(namespace: string) {
  const rows = await env.DB.prepare('SELECT COUNT(*) AS n FROM documents WHERE namespace = ?').bind(namespace).first<{ n: number }>();
  expect(rows?.n).toBe(0);
  expect((await env.ORIGINALS.list({ prefix: `originals/${namespace}/` })).objects).toEqual([]);
}

async function expectRetryLater(response: Response, what: string) {
  expect(response.status).toBe(503);
  expect(response.headers.get('Retry-After')).toBe('5');
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error).toEqual({ code: 'unavailable', message: `The ${what} is unavailable; nothing of this upload was kept. Try again in a few seconds.` });
}

describe('an upload that meets a failure', () => {
  it('answers 503 with Retry-After and stores nothing when R2 fails part-way', async () => {
    let puts = 0;
    // The original is stored, its manifest is not.
    const flaky = new Proxy(env.ORIGINALS, {
      get: (target, key) =>
        key === 'put'
          ? async (...args: Parameters<R2Bucket['put']>) => {
              if (++puts > 1) throw new Error('R2 went away');
              return target.put(...args);
            }
          : Reflect.get(target, key).bind(target),
    });
    const namespace = `r2fail${crypto.randomUUID().slice(0, 8)}`;
    await expectRetryLater(await upload({ ...env, ORIGINALS: flaky } as unknown as Env, namespace, 'Storm petrels feed at sea.'), 'storage');
    await nothingStored(namespace);
  });

  it('answers 503 and takes back the originals and the rows when the queue refuses the messages', async () => {
    const down = { send: async () => Promise.reject(new Error('queue down')), sendBatch: async () => Promise.reject(new Error('queue down')) };
    const namespace = `qfail${crypto.randomUUID().slice(0, 8)}`;
    await expectRetryLater(await upload({ ...env, INGEST_QUEUE: down } as unknown as Env, namespace, 'Shearwaters glide low over waves.'), 'queue');
    await nothingStored(namespace);
    // And once the queue is back, the same upload goes through.
    const again = await upload(env, namespace, 'Shearwaters glide low over waves.');
    expect(again.status).toBe(202);
  });
});
