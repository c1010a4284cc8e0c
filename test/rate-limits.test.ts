import { evictDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { takeTokens } from '../src/security/token-bucket';

const ADMIN = 'rate-limit-admin-secret-0123456789';

/** The app with auth on, as a client sees it; `overrides` change settings or bindings. */
function engine(overrides: Record<string, unknown> = {}) {
  const engineEnv = { ...env, AUTH_ENABLED: 'true', ADMIN_API_KEY: ADMIN, ...overrides } as Env;
  return (path: string, init: RequestInit = {}) => app.fetch(new Request(`http://rag.test${path}`, init), engineEnv);
}

const json = (key: string, body: unknown): RequestInit => ({
  method: 'POST',
  headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

async function createKey(call: ReturnType<typeof engine>, body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const response = await call('/v1/keys', json(ADMIN, body));
  expect(response.status).toBe(201);
  return response.json();
}

const namespace = () => `rl${crypto.randomUUID().slice(0, 8)}`;

describe('token bucket', () => {
  const policy = { perMinute: 60, burst: 20 };

  it('starts full, admits until empty, then refills at the rate', () => {
    let state = undefined as ReturnType<typeof takeTokens>['state'] | undefined;
    const admitted: boolean[] = [];
    for (let i = 0; i < 21; i++) {
      const d = takeTokens(state, policy, 1, 1_000);
      state = d.state;
      admitted.push(d.admitted);
    }
    expect(admitted.filter(Boolean)).toHaveLength(20);
    const refused = takeTokens(state, policy, 1, 1_000);
    expect(refused).toMatchObject({ admitted: false, remaining: 0, retryAfterSeconds: 1, resetSeconds: 20 });
    // One token a second at 60 a minute.
    expect(takeTokens(state, policy, 1, 2_000)).toMatchObject({ admitted: true, remaining: 0 });
    expect(takeTokens(state, policy, 3, 2_000)).toMatchObject({ admitted: false, retryAfterSeconds: 2 });
  });

  it('never holds more than the burst, and says when a cost can never fit', () => {
    const full = takeTokens({ tokens: 0, at: 0 }, policy, 1, 3_600_000);
    expect(full.remaining).toBe(19);
    expect(takeTokens(undefined, policy, 21, 0)).toMatchObject({ admitted: false, retryAfterSeconds: null });
  });
});

describe('rate limits per key', () => {
  it('admits exactly the burst of 100 parallel queries, refuses the rest with 429, Retry-After and RateLimit headers', async () => {
    const call = engine();
    const { key } = await createKey(call, { scopes: ['read'], namespaces: [namespace()], rateLimit: { perMinute: 1, burst: 20 } });
    const responses = await Promise.all(Array.from({ length: 100 }, () => call('/v1/query', json(key, { query: 'lighthouse' }))));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(80);
    for (const response of responses) {
      expect(response.headers.get('RateLimit-Policy')).toBe('"burst";q=20;w=1200');
      expect(response.headers.get('RateLimit')).toMatch(/^"burst";r=\d+;t=\d+$/);
      if (response.status === 429) {
        expect(Number(response.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
        expect(await response.json()).toMatchObject({ error: { code: 'rate_limited' } });
      }
    }
  });

  it('charges a chat more than a query, and an upload by its number of files', async () => {
    const call = engine();
    const ns = namespace();
    const { key } = await createKey(call, { scopes: ['read', 'write'], namespaces: [ns], rateLimit: { perMinute: 1, burst: 10 } });
    const chat = await call('/v1/chat', json(key, { query: 'lighthouse' }));
    expect(chat.status).toBe(200);
    expect(chat.headers.get('RateLimit')).toMatch(/r=5;/);
    const form = new FormData();
    for (const name of ['a.txt', 'b.txt', 'c.txt']) form.append('file', new File([`Text of ${name} about lighthouses.`], name));
    const upload = await call('/v1/documents', { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
    expect(upload.status).toBe(202);
    expect(upload.headers.get('RateLimit')).toMatch(/r=2;/);
    const tooMany = new FormData();
    for (const name of ['d.txt', 'e.txt', 'f.txt']) tooMany.append('file', new File([`Text of ${name}.`], name));
    const refused = await call('/v1/documents', { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: tooMany });
    expect(refused.status).toBe(429);
    // Refused whole: nothing of it was stored.
    const listed = await call(`/v1/documents?namespace=${ns}`, { headers: { 'x-api-key': key } });
    expect(((await listed.json()) as { documents: { filename: string }[] }).documents.map((d) => d.filename).sort()).toEqual(['a.txt', 'b.txt', 'c.txt']);
  });

  it('keeps keys and spent buckets across a restart of their Durable Object', async () => {
    const call = engine();
    const { id, key } = await createKey(call, { scopes: ['read'], namespaces: [namespace()], rateLimit: { perMinute: 1, burst: 3 } });
    for (let i = 0; i < 3; i++) expect((await call('/v1/query', json(key, { query: 'x' }))).status).toBe(200);
    await evictDurableObject(env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`key:${id}`)));
    // Forget the catalog too: the restarted object must know the key from its own storage.
    await env.DB.prepare('DELETE FROM api_keys WHERE id = ?').bind(id).run();
    const after = await call('/v1/query', json(key, { query: 'x' }));
    expect(after.status).toBe(429);
  });

  it('refuses a revoked key on its very next request', async () => {
    const call = engine();
    const { id, key } = await createKey(call, { scopes: ['read'] });
    expect((await call('/v1/query', json(key, { query: 'x' }))).status).toBe(200);
    const revoked = await call(`/v1/keys/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(revoked.status).toBe(200);
    const next = await call('/v1/query', json(key, { query: 'x' }));
    expect(next.status).toBe(401);
    expect(await next.json()).toMatchObject({ error: { code: 'unauthorized', message: expect.stringMatching(/revoked/) } });
  });

  it('throttles requests with made-up keys per client IP', async () => {
    const call = engine({ RATE_LIMIT_PER_MINUTE: '1', RATE_LIMIT_BURST: '5' });
    const ip = `192.0.2.${Math.floor(Math.random() * 250)}`;
    const guess = (i: number) =>
      call('/v1/query', {
        ...json(`rag_${i.toString(16).padStart(12, '0')}_${'A'.repeat(43)}`, { query: 'x' }),
        headers: { authorization: `Bearer rag_${i.toString(16).padStart(12, '0')}_${'A'.repeat(43)}`, 'content-type': 'application/json', 'cf-connecting-ip': ip },
      });
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await guess(i)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    const refused = await guess(99);
    expect(refused.headers.get('Retry-After')).toBeTruthy();
    expect(refused.headers.get('WWW-Authenticate')).toMatch(/^Bearer/);
  });

  it('limits anonymous clients per IP when configured, and not by default', async () => {
    const open = (overrides: Record<string, unknown>) => {
      const e = { ...env, ...overrides } as Env;
      return (ip: string) =>
        app.fetch(new Request('http://rag.test/v1/query', { ...json('', { query: 'x' }), headers: { 'content-type': 'application/json', 'cf-connecting-ip': ip } }), e);
    };
    const ip = `198.51.100.${Math.floor(Math.random() * 250)}`;
    const unlimited = open({});
    const plain = await Promise.all(Array.from({ length: 30 }, () => unlimited(ip)));
    expect(plain.every((r) => r.status === 200 && !r.headers.has('RateLimit'))).toBe(true);
    const limited = open({ RATE_LIMIT_ANONYMOUS: 'true', RATE_LIMIT_PER_MINUTE: '1', RATE_LIMIT_BURST: '5' });
    const statuses = (await Promise.all(Array.from({ length: 12 }, () => limited(ip)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect((await limited(`203.0.113.${Math.floor(Math.random() * 250)}`)).status).toBe(200);
  });
});

describe('when the rate limiter cannot be reached', () => {
  /** A binding whose objects always fail, like an overloaded or unreachable Durable Object. */
  const broken = {
    idFromName: (name: string) => env.RATE_LIMITER.idFromName(name),
    get: () =>
      new Proxy({}, { get: () => async () => { throw new Error('Durable Object is overloaded'); } }),
  };

  it('by default lets reads through, refuses writes with 503 and Retry-After, and still checks keys', async () => {
    const healthy = engine();
    const { id, key } = await createKey(healthy, { scopes: ['read', 'write'] });
    const { key: revoked, id: revokedId } = await createKey(healthy, { scopes: ['read'] });
    await healthy(`/v1/keys/${revokedId}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });

    const call = engine({ RATE_LIMITER: broken });
    expect((await call('/v1/query', json(key, { query: 'x' }))).status).toBe(200);
    const write = await call('/v1/documents', json(key, { text: 'Paraffin lamps.' }));
    expect(write.status).toBe(503);
    expect(write.headers.get('Retry-After')).toBe('5');
    expect(await write.json()).toMatchObject({ error: { code: 'unavailable' } });
    expect((await call('/v1/query', json(revoked, { query: 'x' }))).status).toBe(401);
    expect((await call('/v1/query', json(`${key.slice(0, -1)}x`, { query: 'x' }))).status).toBe(401);
    expect(id).toMatch(/^[0-9a-f]{12}$/);
  });

  it('follows RATE_LIMIT_UNAVAILABLE: closed refuses reads, open lets writes through', async () => {
    const { key } = await createKey(engine(), { scopes: ['read', 'write'], namespaces: [namespace()] });
    const closed = engine({ RATE_LIMITER: broken, RATE_LIMIT_UNAVAILABLE: 'closed' });
    expect((await closed('/v1/query', json(key, { query: 'x' }))).status).toBe(503);
    const open = engine({ RATE_LIMITER: broken, RATE_LIMIT_UNAVAILABLE: 'open' });
    expect((await open('/v1/documents', json(key, { text: 'Paraffin lamps burn.' }))).status).toBe(202);
  });
});
