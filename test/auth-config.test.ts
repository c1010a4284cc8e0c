import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { CONTENT_SECURITY_POLICY, securityHeaders } from '../src/http/browser-safety';

/** The app under other settings, as a client sees it. */
function engine(overrides: Record<string, unknown>) {
  const engineEnv = { ...env, ...overrides } as Env;
  return (path: string, init: RequestInit = {}) => app.fetch(new Request(`http://rag.test${path}`, init), engineEnv);
}

const V1_ROUTES: [string, string][] = [
  ['POST', '/v1/query'],
  ['POST', '/v1/chat'],
  ['POST', '/v1/chat/completions'],
  ['GET', '/v1/documents'],
  ['POST', '/v1/documents'],
  ['GET', '/v1/documents/0123456789abcdef0123456789abcdef'],
  ['DELETE', '/v1/documents/0123456789abcdef0123456789abcdef'],
  ['POST', '/v1/documents/0123456789abcdef0123456789abcdef/reindex'],
  ['POST', '/v1/reindex'],
  ['POST', '/v1/keys'],
  ['GET', '/v1/keys'],
  ['DELETE', '/v1/keys/0123456789ab'],
];

// First in this file, whose D1 starts without keys: auth on, no admin secret, no key.
describe('auth on with no way in', () => {
  it('answers every /v1 route 503 misconfigured, naming the fix, and never serves it open', async () => {
    const call = engine({ AUTH_ENABLED: 'true' });
    for (const [method, path] of V1_ROUTES) {
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer rag_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }]) {
        const response = await call(path, { method, headers: { 'content-type': 'application/json', ...headers }, body: method === 'POST' ? '{}' : undefined });
        expect(response.status, `${method} ${path}`).toBe(503);
        const body = (await response.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('misconfigured');
        expect(body.error.message).toMatch(/ADMIN_API_KEY/);
      }
    }
    expect((await call('/health')).status).toBe(200);
  });

  it('is off under npm start, and /status says so; on, /status needs a key unless configured open', async () => {
    const status = await engine({})('/status');
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ auth: 'off', documents: expect.any(Object) });

    const admin = 'status-admin-secret-0123456789';
    const on = engine({ AUTH_ENABLED: 'true', ADMIN_API_KEY: admin });
    expect((await on('/status')).status).toBe(401);
    expect((await on('/metrics')).status).toBe(401);
    const withKey = await on('/status', { headers: { 'x-api-key': admin } });
    expect(await withKey.json()).toMatchObject({ auth: 'on', documents: expect.any(Object) });

    const open = engine({ AUTH_ENABLED: 'true', ADMIN_API_KEY: admin, OPERATIONS_PUBLIC: 'true' });
    const summary = await open('/status');
    expect(summary.status).toBe(200);
    // Counts across tenants are for admins only.
    expect(Object.keys(await summary.json()).sort()).toEqual(['auth', 'status']);
    expect((await open('/metrics')).status).toBe(200);
    expect((await open('/status', { headers: { 'x-api-key': 'wrong-key' } })).status).toBe(401);
  });
});

describe('browser safety', () => {
  const call = engine({});

  it('reads JSON endpoints only from application/json bodies (415 otherwise), so a cross-site form cannot post', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const response = await call('/v1/query', { method: 'POST', headers: type ? { 'content-type': type } : {}, body: '{"query":"x"}' });
      expect(response.status, String(type)).toBe(415);
      expect(await response.json()).toMatchObject({ error: { code: 'unsupported_media_type' } });
    }
    const ok = await call('/v1/query', { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"query":"x"}' });
    expect(ok.status).toBe(200);
  });

  it('sends nosniff and no-store on every response, errors included', async () => {
    for (const response of [await call('/health'), await call('/v1/documents'), await call('/nowhere'), await call('/v1/query', { method: 'POST' })]) {
      expect(response.headers.get('X-Content-Type-Options')).toBe('nosniff');
      expect(response.headers.get('Cache-Control')).toBe('no-store');
    }
  });

  it('gives HTML a strict Content-Security-Policy', async () => {
    const page = new Hono().use(securityHeaders()).get('/', (c) => c.html('<p>hi</p>'));
    const response = await page.request('/');
    expect(response.headers.get('Content-Security-Policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toMatch(/default-src 'none'/);
    expect(CONTENT_SECURITY_POLICY).toMatch(/frame-ancestors 'none'/);
  });

  it('allows no cross-origin callers by default', async () => {
    const preflight = await call('/v1/query', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.headers.get('Access-Control-Allow-Origin')).toBeNull();
    const simple = await call('/v1/documents', { headers: { origin: 'https://evil.example' } });
    expect(simple.headers.get('Access-Control-Allow-Origin')).toBeNull();
  });

  it('answers preflights for the configured origins only', async () => {
    const cors = engine({ CORS_ORIGINS: 'https://app.example, https://admin.example' });
    const preflight = await cors('/v1/query', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('Access-Control-Allow-Origin')).toBe('https://app.example');
    expect(preflight.headers.get('Access-Control-Allow-Headers')?.toLowerCase()).toContain('authorization');
    expect(preflight.headers.get('Access-Control-Allow-Methods')).toContain('POST');
    const response = await cors('/v1/documents', { headers: { origin: 'https://app.example' } });
    expect(response.headers.get('Access-Control-Allow-Origin')).toBe('https://app.example');
    expect(response.headers.get('Access-Control-Expose-Headers')).toContain('RateLimit');
    const other = await cors('/v1/query', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(other.headers.get('Access-Control-Allow-Origin')).toBeNull();
  });
});
