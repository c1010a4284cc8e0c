import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { STATUS_CHECK_TIMEOUT_MS } from '../src/http/routes/status';
import { FakeVectorize } from '../fakes/vectorize';
import { FakeAi } from '../fakes/workers-ai';
import { uploadText, waitUntilSettled } from './helpers';

/**
 * GET /status through the app, each case with its own env object (services are cached per
 * env object), so a broken or hung binding stays in its case.
 */
const ADMIN = 'status-admin-secret-0123456789abcdef';
const OPENAI_KEY = 'sk-status-test-openai-secret-9876543210';
const run = crypto.randomUUID().slice(0, 8);

function engine(overrides: Record<string, unknown>) {
  const engineEnv = { ...env, ...overrides } as unknown as Env;
  return (headers: Record<string, string> = {}) => app.fetch(new Request('http://rag.test/status', { headers }), engineEnv);
}

interface Component {
  status: 'ok' | 'error' | 'configured' | 'unchecked';
  latencyMs?: number;
  error?: string;
  [detail: string]: unknown;
}
interface StatusBody {
  status: string;
  auth: string;
  problems?: string[];
  warnings?: string[];
  components: Record<string, Component>;
  documents: Record<string, number> | null;
  chunks: number | null;
  embedding: { model: string; dimensions: number; chunksByModel: Record<string, number> | null };
  config: Record<string, unknown>;
}

/** Every method of this D1 throws, as a binding whose database is gone does. */
const brokenD1 = new Proxy(
  {},
  {
    get: () => () => {
      throw new Error('D1_ERROR: the database is unavailable');
    },
  },
);

// First in this file, whose D1 starts without keys.
describe('auth on with no key that can be used', () => {
  it('is misconfigured (503), which OPERATIONS_PUBLIC shows to anyone', async () => {
    const response = await engine({ AUTH_ENABLED: 'true', OPERATIONS_PUBLIC: 'true' })();
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ status: 'misconfigured', auth: 'on' });
  });
});

describe('GET /status', () => {
  beforeAll(async () => {
    const document = await uploadText({ text: `The status page reports every dependency (${run}).`, title: 'Status' });
    expect((await waitUntilSettled(document.id)).status).toBe('ready');
  });

  it('checks every component and reports counts, the embedding in use and the configuration', async () => {
    const response = await engine({})();
    const body = (await response.json()) as StatusBody;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({
      status: 'ready',
      auth: 'off',
      checkedAt: expect.any(String),
      components: {
        d1: { status: 'ok', latencyMs: expect.any(Number) },
        r2: { status: 'ok', latencyMs: expect.any(Number) },
        queue: { status: 'unchecked', note: expect.stringMatching(/without sending|does not send/) },
        searchEngine: {
          status: 'ok',
          latencyMs: expect.any(Number),
          engine: 'local',
          vectors: { scope: 'namespace', namespace: 'default', count: expect.any(Number) },
          dimensions: 384,
        },
        embedding: { status: 'ok', provider: 'local', model: 'local-hash-v1', dimensions: 384 },
        chat: { status: 'ok', provider: 'extractive', model: 'extractive' },
      },
      documents: { queued: expect.any(Number), processing: expect.any(Number), ready: expect.any(Number), failed: expect.any(Number) },
      embedding: { model: 'local-hash-v1', dimensions: 384, chunksByModel: { 'local-hash-v1': expect.any(Number) } },
      config: {
        providers: { embedding: { provider: 'local' }, vectorIndex: { provider: 'local' }, chat: { provider: 'extractive' }, reranker: { provider: 'none' } },
        chunking: { size: 512, overlap: 50 },
        auth: { enabled: false, operationsPublic: false },
        rateLimits: { perMinute: 60, burst: 20 },
        quotas: { documents: 0, bytes: 0, passages: 25_000 },
        cors: { origins: 0 },
        secrets: { ADMIN_API_KEY: 'unset', OPENAI_API_KEY: 'unset' },
      },
    });
    expect(body.documents?.ready).toBeGreaterThan(0);
    expect(body.chunks).toBeGreaterThan(0);
    expect((body.components.searchEngine?.vectors as { count: number }).count).toBeGreaterThan(0);
    expect(body).not.toHaveProperty('problems');
    expect(body.components).not.toHaveProperty('reranker');
  });

  it('answers 503 naming d1 when D1 fails, and still checks the rest', async () => {
    const response = await engine({ DB: brokenD1 })();
    expect(response.status).toBe(503);
    const body = (await response.json()) as StatusBody;
    expect(body.status).toBe('unavailable');
    expect(body.components.d1).toMatchObject({ status: 'error', error: expect.stringContaining('database is unavailable') });
    expect(body.problems).toEqual([expect.stringMatching(/^d1: .*database is unavailable/)]);
    expect(body.components.r2?.status).toBe('ok');
    expect(body.components.searchEngine?.status).toBe('ok');
    expect(body).toMatchObject({ documents: null, chunks: null });
  });

  it('gives a hung dependency "timed out" within the deadline instead of hanging', async () => {
    const hung = { head: () => new Promise(() => {}) };
    const started = Date.now();
    const response = await engine({ ORIGINALS: hung })();
    const elapsed = Date.now() - started;
    expect(response.status).toBe(503);
    const body = (await response.json()) as StatusBody;
    expect(body.status).toBe('unavailable');
    expect(body.components.r2).toMatchObject({ status: 'error', error: 'timed out' });
    expect(body.components.r2?.latencyMs).toBeGreaterThanOrEqual(STATUS_CHECK_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(STATUS_CHECK_TIMEOUT_MS + 1_500);
    expect(body.components.d1?.status).toBe('ok');
  });

  it('answers 503 misconfigured naming a dimension mismatch of the vector index', async () => {
    const vectorize = (dimensions: number) => engine({ VECTOR_PROVIDER: 'vectorize', VECTORIZE: new FakeVectorize({ dimensions }) });
    const mismatched = await vectorize(768)();
    expect(mismatched.status).toBe(503);
    const body = (await mismatched.json()) as StatusBody;
    expect(body.status).toBe('misconfigured');
    expect(body.components.searchEngine).toMatchObject({
      status: 'error',
      engine: 'cloudflare',
      error: expect.stringMatching(/768 dimensions but the embedding model makes 384/),
    });
    expect(body.components.searchEngine).not.toHaveProperty('misconfigured');
    expect(body.problems).toEqual([expect.stringMatching(/^searchEngine: The Vectorize index has 768 dimensions/)]);

    const matching = await vectorize(384)();
    expect(matching.status).toBe(200);
    expect(((await matching.json()) as StatusBody).components.searchEngine).toMatchObject({
      status: 'ok',
      vectors: { scope: 'index', count: 0 },
      keywordShards: { namespace: 'default', count: 0 },
    });
  });

  it('does not call billed cloud providers: they are "configured", with their models and circuit state', async () => {
    const ai = new FakeAi();
    const response = await engine({
      AI: ai,
      EMBEDDING_PROVIDER: 'workers-ai',
      CHAT_PROVIDER: 'workers-ai',
      RERANK_PROVIDER: 'workers-ai',
      // Another namespace than the 384-dimensional one the upload above filled.
      DEFAULT_NAMESPACE: `status-${run}`,
    })();
    const body = (await response.json()) as StatusBody;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body.status).toBe('ready');
    expect(body.components).toMatchObject({
      embedding: { status: 'configured', provider: 'workers-ai', model: '@cf/baai/bge-base-en-v1.5', dimensions: 768, circuit: 'closed' },
      chat: { status: 'configured', provider: 'workers-ai', circuit: 'closed' },
      reranker: { status: 'configured', provider: 'workers-ai', model: '@cf/baai/bge-reranker-base', circuit: 'closed' },
      searchEngine: { status: 'ok', dimensions: 768 },
    });
    expect(ai.calls).toEqual([]);
    // The chunks uploaded above were embedded by the local embedder, not this one.
    expect(body.warnings).toEqual([expect.stringMatching(/chunks were embedded with another model .*POST \/v1\/reindex/)]);
  });
});

describe('GET /status with auth on', () => {
  const authEnv = { AUTH_ENABLED: 'true', ADMIN_API_KEY: ADMIN, OPENAI_API_KEY: OPENAI_KEY, CHAT_PROVIDER: 'openai' };

  it('never shows a secret, only whether it is set', async () => {
    const call = engine(authEnv);
    const response = await call({ authorization: `Bearer ${ADMIN}` });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect(text).not.toContain(ADMIN);
    expect(text).not.toContain(OPENAI_KEY);
    const body = JSON.parse(text) as StatusBody;
    expect(body).toMatchObject({
      status: 'ready',
      auth: 'on',
      config: { auth: { enabled: true }, secrets: { ADMIN_API_KEY: 'set', OPENAI_API_KEY: 'set' }, providers: { openai: { baseUrlHost: 'api.openai.com' } } },
      components: { chat: { status: 'configured', provider: 'openai', model: 'gpt-4o-mini' } },
    });
    const publicText = await (await engine({ ...authEnv, OPERATIONS_PUBLIC: 'true' })()).text();
    expect(publicText).not.toContain(ADMIN);
    expect(publicText).not.toContain(OPENAI_KEY);
  });

  it('gives a non-admin key and the public only the summary', async () => {
    const call = engine(authEnv);
    const created = await app.fetch(
      new Request('http://rag.test/v1/keys', {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `status reader ${run}`, scopes: ['read'] }),
      }),
      { ...env, ...authEnv } as unknown as Env,
    );
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };

    const asReader = await call({ 'x-api-key': key });
    expect(asReader.status).toBe(200);
    expect(await asReader.json()).toEqual({ status: 'ready', auth: 'on' });

    expect((await call()).status).toBe(401);
    const open = await engine({ ...authEnv, OPERATIONS_PUBLIC: 'true' })();
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ status: 'ready', auth: 'on' });
  });

  it('gives the summary, with 503, when a required component fails', async () => {
    const response = await engine({ ...authEnv, OPERATIONS_PUBLIC: 'true', DB: brokenD1 })();
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ status: 'unavailable', auth: 'on' });
  });
});
