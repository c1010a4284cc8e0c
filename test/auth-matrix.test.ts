import { env } from 'cloudflare:workers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { generateApiKey, type Scope } from '../src/security/api-key';
import { ApiKeyStore } from '../src/storage/api-keys';
import type { DocumentView, PassageView, UploadedDocument } from './helpers';

/**
 * Every guarded route × every kind of credential, with AUTH_ENABLED on. The app is called
 * directly with its own env object (services are cached per env object), so the rest of the
 * suite keeps running with auth off.
 */
const ADMIN = 'admin-secret-for-tests-0123456789';
const authEnv = {
  ...env,
  AUTH_ENABLED: 'true',
  ADMIN_API_KEY: ADMIN,
  RATE_LIMIT_PER_MINUTE: '100000',
  RATE_LIMIT_BURST: '100000',
} as Env;

const run = crypto.randomUUID().slice(0, 8);
/** The tenant whose data must not leak, and the other tenant. */
const A = `auth-a-${run}`;
const B = `auth-b-${run}`;
/** A word only A's document contains, to look for in whatever B is shown. */
const SECRET = `zanzibarite${run.replace(/[^a-z]/g, '')}`;
/** Well-formed (`rag_<12 hex>_<43 chars>`) but never issued. */
const UNKNOWN_KEY = `rag_0123456789ab_${'A'.repeat(43)}`;

interface ErrorBody {
  error: { code: string; message: string };
}
interface CreatedKey {
  id: string;
  key: string;
  scopes: Scope[];
  namespaces: string[] | null;
}
interface ListedDocument extends DocumentView {
  namespace: string;
}
interface ChatAnswer {
  answer: string;
  citations: { documentId: string }[];
  passages: PassageView[];
}
interface ChatCompletion {
  choices: { message: { content: string } }[];
  citations: { documentId: string }[];
}

// ---------------------------------------------------------------------------------------
// Calling the app

type Credential = { authorization: string } | { 'x-api-key': string } | Record<string, never>;
const bearer = (key: string): Credential => ({ authorization: `Bearer ${key}` });
const apiKeyHeader = (key: string): Credential => ({ 'x-api-key': key });

interface Call {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  json?: unknown;
}

async function call({ method, path, json }: Call, credential: Credential): Promise<Response> {
  const headers: Record<string, string> = { ...credential };
  if (json !== undefined) headers['content-type'] = 'application/json';
  const init: RequestInit = { method, headers, body: json === undefined ? undefined : JSON.stringify(json) };
  return app.fetch(new Request(`http://rag.test${path}`, init), authEnv);
}

async function asAdmin<T>(request: Call, status = 200): Promise<T> {
  const response = await call(request, bearer(ADMIN));
  const text = await response.text();
  expect(response.status, `${request.method} ${request.path}: ${text}`).toBe(status);
  return JSON.parse(text) as T;
}

async function expectError(response: Response, status: number, code: string): Promise<ErrorBody> {
  const body = (await response.json()) as ErrorBody;
  expect({ status: response.status, code: body.error?.code }, body.error?.message).toEqual({ status, code });
  if (status === 401) expect(response.headers.get('WWW-Authenticate') ?? '').toMatch(/^Bearer/);
  else expect(response.headers.get('WWW-Authenticate')).toBeNull();
  return body;
}

// ---------------------------------------------------------------------------------------
// Keys and documents

interface NewKey {
  scopes: Scope[];
  namespaces?: string[] | null;
  name?: string;
}

function createKey(spec: NewKey): Promise<CreatedKey> {
  return asAdmin<CreatedKey>({ method: 'POST', path: '/v1/keys', json: { name: `auth-matrix ${run}`, ...spec } }, 201);
}

async function revokedKey(spec: NewKey): Promise<string> {
  const { id, key } = await createKey(spec);
  await asAdmin({ method: 'DELETE', path: `/v1/keys/${id}` });
  return key;
}

/** The API refuses a past expiresAt, so an expired key goes straight into the catalog. */
async function expiredKey({ scopes, namespaces = null }: NewKey): Promise<string> {
  const { id, key, hash } = await generateApiKey();
  const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000).toISOString();
  await new ApiKeyStore(env.DB).create({
    id,
    name: `expired ${run}`,
    hash,
    scopes,
    namespaces,
    rateLimit: null,
    expiresAt: minutesAgo(1),
    createdAt: minutesAgo(10),
    revokedAt: null,
  });
  return key;
}

async function upload(text: string, namespace: string): Promise<string> {
  const { documents } = await asAdmin<{ documents: UploadedDocument[] }>({ method: 'POST', path: '/v1/documents', json: { text, namespace } }, 202);
  expect(documents).toHaveLength(1);
  return (documents[0] as UploadedDocument).id;
}

async function poll(done: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitUntilReady(id: string): Promise<void> {
  await poll(async () => {
    const document = await asAdmin<DocumentView>({ method: 'GET', path: `/v1/documents/${id}` });
    expect(document.status, document.error ?? '').not.toBe('failed');
    return document.status === 'ready';
  }, `document ${id}`);
}

/** Until nothing in `namespace` (in any, when omitted) is queued or being processed. */
async function waitUntilSettled(namespace?: string): Promise<void> {
  const pending = async (status: string) => {
    const params = new URLSearchParams({ status, limit: '1', ...(namespace && { namespace }) });
    return (await asAdmin<{ documents: unknown[] }>({ method: 'GET', path: `/v1/documents?${params}` })).documents.length;
  };
  await poll(async () => (await pending('queued')) + (await pending('processing')) === 0, `namespace ${namespace ?? '(all)'} to settle`);
}

async function readyDocument(text: string, namespace: string): Promise<string> {
  const id = await upload(text, namespace);
  await waitUntilReady(id);
  return id;
}

// ---------------------------------------------------------------------------------------
// Fixtures

/** A's document, B's document, and one key per role and scope. */
interface Fixture {
  docA: string;
  docB: string;
  /** read+write for A, and read for B (the acceptance flow). */
  keyA: string;
  keyB: string;
  keys: Record<Scope, ScopeKeys>;
}
interface ScopeKeys {
  /** Has the scope; confined to A unless the scope is admin. */
  right: string;
  /** Lacks the scope: write for read routes, read for write routes, read+write for admin routes. */
  wrongScope: string;
  /** Has the scope but is confined to B (admin keys cannot be confined). */
  otherNamespace: string | null;
  revoked: string;
  expired: string;
}

let fx: Fixture;

beforeAll(async () => {
  const [docA, docB] = await Promise.all([
    readyDocument(`Quokkas of tenant A keep the ${SECRET} in a burrow under the lighthouse.`, A),
    readyDocument('Quokkas of tenant B live on Rottnest Island and smile at tourists.', B),
  ]);
  const key = async (spec: NewKey) => (await createKey(spec)).key;
  const readA: NewKey = { scopes: ['read'], namespaces: [A] };
  const writeA: NewKey = { scopes: ['write'], namespaces: [A] };
  const admin: NewKey = { scopes: ['admin'] };
  fx = {
    docA,
    docB,
    keyA: await key({ scopes: ['read', 'write'], namespaces: [A] }),
    keyB: await key({ scopes: ['read'], namespaces: [B] }),
    keys: {
      read: {
        right: await key(readA),
        wrongScope: await key(writeA),
        otherNamespace: await key({ scopes: ['read'], namespaces: [B] }),
        revoked: await revokedKey(readA),
        expired: await expiredKey(readA),
      },
      write: {
        right: await key(writeA),
        wrongScope: await key(readA),
        otherNamespace: await key({ scopes: ['write'], namespaces: [B] }),
        revoked: await revokedKey(writeA),
        expired: await expiredKey(writeA),
      },
      admin: {
        right: await key(admin),
        wrongScope: await key({ scopes: ['read', 'write'] }),
        otherNamespace: null,
        revoked: await revokedKey(admin),
        expired: await expiredKey(admin),
      },
    },
  };
});

// ---------------------------------------------------------------------------------------
// The routes

/** What a request acts on: always something of A's, so only the credential differs. */
interface Target {
  documentId: string;
  keyId: string;
}

interface Route {
  name: string;
  scope: Scope;
  /** How the route reaches a namespace: by document id, by naming it, or not at all. */
  tenancy: 'document' | 'named' | 'none';
  success: 200 | 201 | 202;
  request: (t: Target) => Call;
  /** The route changes what it acts on: give it a document, or a key, of its own. */
  own?: 'document' | 'key';
  /** The right key's request re-queues documents: wait for them before the next test. */
  requeues?: 'namespace' | 'all';
  /** Checks the right key's answer. */
  verify?: (body: unknown, t: Target) => void;
}

const passageDocuments = (body: unknown) => (body as { passages: PassageView[] }).passages.map((p) => p.documentId);

const ROUTES: Route[] = [
  {
    name: 'POST /v1/query',
    scope: 'read',
    tenancy: 'named',
    success: 200,
    request: () => ({ method: 'POST', path: '/v1/query', json: { query: `quokkas ${SECRET}`, namespace: A } }),
    verify: (body) => expect(passageDocuments(body)).toContain(fx.docA),
  },
  {
    name: 'POST /v1/chat',
    scope: 'read',
    tenancy: 'named',
    success: 200,
    request: () => ({ method: 'POST', path: '/v1/chat', json: { query: `Where is the ${SECRET}?`, namespace: A } }),
    verify: (body) => expect(passageDocuments(body)).toContain(fx.docA),
  },
  {
    name: 'POST /v1/chat/completions',
    scope: 'read',
    tenancy: 'named',
    success: 200,
    request: () => ({
      method: 'POST',
      path: '/v1/chat/completions',
      json: { messages: [{ role: 'user', content: `Where is the ${SECRET}?` }], namespace: A },
    }),
    verify: (body) => expect((body as ChatCompletion).choices[0]?.message.content).toContain(SECRET),
  },
  {
    name: 'GET /v1/models',
    scope: 'read',
    tenancy: 'none',
    success: 200,
    request: () => ({ method: 'GET', path: '/v1/models' }),
    verify: (body) => expect((body as { data: { id: string }[] }).data.map((m) => m.id)).toEqual(['extractive']),
  },
  {
    name: 'GET /v1/documents',
    scope: 'read',
    tenancy: 'named',
    success: 200,
    request: () => ({ method: 'GET', path: `/v1/documents?namespace=${A}&limit=100` }),
    verify: (body) => {
      const documents = (body as { documents: ListedDocument[] }).documents;
      expect(documents.map((d) => d.id)).toContain(fx.docA);
      expect(documents.every((d) => d.namespace === A)).toBe(true);
    },
  },
  {
    name: 'GET /v1/documents/:id',
    scope: 'read',
    tenancy: 'document',
    success: 200,
    request: (t) => ({ method: 'GET', path: `/v1/documents/${t.documentId}` }),
    verify: (body, t) => expect(body).toMatchObject({ id: t.documentId, namespace: A, status: 'ready' }),
  },
  {
    name: 'GET /v1/documents/:id/passages',
    scope: 'read',
    tenancy: 'document',
    success: 200,
    request: (t) => ({ method: 'GET', path: `/v1/documents/${t.documentId}/passages` }),
    verify: (body, t) => expect(body).toMatchObject({ id: t.documentId, passages: [expect.objectContaining({ text: expect.stringContaining(SECRET) })] }),
  },
  {
    name: 'GET /status',
    scope: 'read',
    tenancy: 'none',
    success: 200,
    request: () => ({ method: 'GET', path: '/status' }),
    // A non-admin key learns whether the engine is ready, not what it holds.
    verify: (body) => expect(body).toEqual({ status: 'ready', auth: 'on' }),
  },
  {
    name: 'POST /v1/documents',
    scope: 'write',
    tenancy: 'named',
    success: 202,
    request: () => ({ method: 'POST', path: '/v1/documents', json: { text: `Uploaded by the write key of A (${run}).`, namespace: A } }),
    verify: (body) => expect((body as { documents: UploadedDocument[] }).documents).toMatchObject([{ status: 'queued' }]),
  },
  {
    name: 'DELETE /v1/documents/:id',
    scope: 'write',
    tenancy: 'document',
    success: 200,
    own: 'document',
    request: (t) => ({ method: 'DELETE', path: `/v1/documents/${t.documentId}` }),
    verify: (body, t) => expect(body).toEqual({ id: t.documentId, deleted: true }),
  },
  {
    name: 'POST /v1/documents/:id/reindex',
    scope: 'write',
    tenancy: 'document',
    success: 202,
    own: 'document',
    requeues: 'namespace',
    request: (t) => ({ method: 'POST', path: `/v1/documents/${t.documentId}/reindex` }),
    verify: (body, t) => expect(body).toEqual({ id: t.documentId, status: 'queued' }),
  },
  {
    name: 'POST /v1/reindex?namespace=',
    scope: 'write',
    tenancy: 'named',
    success: 202,
    requeues: 'namespace',
    request: () => ({ method: 'POST', path: `/v1/reindex?namespace=${A}` }),
    verify: (body) => expect((body as { queued: number }).queued).toBeGreaterThan(0),
  },
  {
    name: 'POST /v1/keys',
    scope: 'admin',
    tenancy: 'none',
    success: 201,
    request: () => ({ method: 'POST', path: '/v1/keys', json: { name: `made by a key ${run}`, scopes: ['read'], namespaces: [A] } }),
    verify: (body) => expect(body).toMatchObject({ scopes: ['read'], namespaces: [A], key: expect.stringMatching(/^rag_/) }),
  },
  {
    name: 'GET /v1/keys',
    scope: 'admin',
    tenancy: 'none',
    success: 200,
    request: () => ({ method: 'GET', path: '/v1/keys' }),
    verify: (body) => {
      const { keys } = body as { keys: Record<string, unknown>[] };
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) expect(Object.keys(key).filter((k) => k === 'key' || k === 'hash')).toEqual([]);
    },
  },
  {
    name: 'DELETE /v1/keys/:id',
    scope: 'admin',
    tenancy: 'none',
    success: 200,
    own: 'key',
    request: (t) => ({ method: 'DELETE', path: `/v1/keys/${t.keyId}` }),
    verify: (body, t) => expect(body).toEqual({ id: t.keyId, revoked: true }),
  },
  {
    name: 'POST /v1/reindex (every namespace)',
    scope: 'admin',
    tenancy: 'none',
    success: 202,
    requeues: 'all',
    request: () => ({ method: 'POST', path: '/v1/reindex' }),
    verify: (body) => expect((body as { queued: number }).queued).toBeGreaterThan(0),
  },
  {
    name: 'POST /v1/recover',
    scope: 'admin',
    tenancy: 'none',
    success: 202,
    request: () => ({ method: 'POST', path: '/v1/recover' }),
    // An intact catalog: every original is known, nothing is restored.
    verify: (body) => expect(body).toMatchObject({ restored: 0, cursor: null }),
  },
  {
    name: 'GET /metrics',
    scope: 'admin',
    tenancy: 'none',
    success: 200,
    request: () => ({ method: 'GET', path: '/metrics' }),
    verify: (body) => expect(body).toMatch(/^rag_index_documents\{namespace="[^"]+",status="ready"\} [1-9]/m),
  },
];

// ---------------------------------------------------------------------------------------
// The credentials

interface Denial {
  status: 401 | 403 | 404;
  code: 'unauthorized' | 'forbidden' | 'not_found';
}
interface CredentialCase {
  name: string;
  /** Whether the case makes sense for the route (default: always). */
  applies?: (route: Route) => boolean;
  credential: (route: Route) => Credential;
  /** null: the request must succeed. */
  expected: (route: Route) => Denial | null;
}

const UNAUTHORIZED: Denial = { status: 401, code: 'unauthorized' };
const FORBIDDEN: Denial = { status: 403, code: 'forbidden' };
const NOT_FOUND: Denial = { status: 404, code: 'not_found' };

const CREDENTIALS: CredentialCase[] = [
  { name: 'no key', credential: () => ({}), expected: () => UNAUTHORIZED },
  { name: 'unknown well-formed key', credential: () => bearer(UNKNOWN_KEY), expected: () => UNAUTHORIZED },
  { name: 'garbage key', credential: () => apiKeyHeader('not-a-key'), expected: () => UNAUTHORIZED },
  { name: 'garbage Authorization', credential: () => ({ authorization: 'Basic dXNlcjpwYXNz' }), expected: () => UNAUTHORIZED },
  { name: 'wrong scope', credential: (r) => bearer(fx.keys[r.scope].wrongScope), expected: () => FORBIDDEN },
  {
    name: 'key of another namespace',
    applies: (r) => r.tenancy !== 'none',
    credential: (r) => bearer(fx.keys[r.scope].otherNamespace as string),
    // A document of A is "not there" for B; naming A is forbidden.
    expected: (r) => (r.tenancy === 'document' ? NOT_FOUND : FORBIDDEN),
  },
  { name: 'revoked key', credential: (r) => apiKeyHeader(fx.keys[r.scope].revoked), expected: () => UNAUTHORIZED },
  { name: 'expired key', credential: (r) => bearer(fx.keys[r.scope].expired), expected: () => UNAUTHORIZED },
  { name: 'right key', credential: (r) => bearer(fx.keys[r.scope].right), expected: () => null },
];

describe.each(ROUTES)('$name ($scope)', (route) => {
  let target: Target;

  beforeAll(async () => {
    target = {
      documentId: route.own === 'document' ? await readyDocument(`A document of A for ${route.name} (${run}).`, A) : fx.docA,
      keyId: route.own === 'key' ? (await createKey({ scopes: ['read'], name: `victim of ${route.name}` })).id : '000000000000',
    };
  });

  // The cases run in order, the right key last: for DELETE its success also shows that no
  // refused request removed the document first.
  for (const credentialCase of CREDENTIALS.filter((c) => c.applies?.(route) ?? true)) {
    it(credentialCase.name, async () => {
      const credential = credentialCase.credential(route);
      const response = await call(route.request(target), credential);
      const denial = credentialCase.expected(route);
      if (denial) {
        const body = await expectError(response, denial.status, denial.code);
        if (denial.code === 'not_found') {
          // Exactly what an unknown id gets: nothing says the document exists elsewhere.
          const unknown = await call(route.request({ ...target, documentId: crypto.randomUUID().replaceAll('-', '') }), credential);
          expect({ status: unknown.status, body: await unknown.json() }).toEqual({ status: 404, body });
        }
        return;
      }
      const text = await response.text();
      expect(response.status, text).toBe(route.success);
      if (route.verify) route.verify(response.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text, target);
      if (route.requeues) await waitUntilSettled(route.requeues === 'namespace' ? A : undefined);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Beyond the matrix

describe('a key confined to namespace B', () => {
  const readB = () => bearer(fx.keys.read.otherNamespace as string);

  it('queries its own namespace when it names none, and sees nothing of A', async () => {
    const response = await call({ method: 'POST', path: '/v1/query', json: { query: `quokkas ${SECRET}`, topK: 50 } }, readB());
    expect(response.status).toBe(200);
    const documents = passageDocuments(await response.json());
    expect(documents).toContain(fx.docB);
    expect(documents).not.toContain(fx.docA);
  });

  it('chats over its own namespace only', async () => {
    const chat = await call({ method: 'POST', path: '/v1/chat', json: { query: `Where is the ${SECRET}?` } }, readB());
    expect(chat.status).toBe(200);
    const answer = (await chat.json()) as ChatAnswer;
    expect(answer.passages.map((p) => p.documentId)).not.toContain(fx.docA);
    expect(answer.citations.map((c) => c.documentId)).not.toContain(fx.docA);
    expect(answer.answer).not.toContain(SECRET);

    const completion = await call(
      { method: 'POST', path: '/v1/chat/completions', json: { messages: [{ role: 'user', content: `Where is the ${SECRET}?` }] } },
      readB(),
    );
    expect(completion.status).toBe(200);
    const body = (await completion.json()) as ChatCompletion;
    expect(body.citations.map((c) => c.documentId)).not.toContain(fx.docA);
    expect(body.choices[0]?.message.content).not.toContain(SECRET);
  });

  it('lists its own namespace when it names none', async () => {
    const response = await call({ method: 'GET', path: '/v1/documents?limit=100' }, readB());
    expect(response.status).toBe(200);
    const { documents } = (await response.json()) as { documents: ListedDocument[] };
    expect(documents.map((d) => d.id)).toContain(fx.docB);
    expect(documents.map((d) => d.id)).not.toContain(fx.docA);
    expect(documents.every((d) => d.namespace === B)).toBe(true);
  });

  it('is refused A in a multipart upload too', async () => {
    const form = new FormData();
    form.append('file', new File(['smuggled into A'], 'smuggle.txt'));
    form.append('namespace', A);
    const response = await app.fetch(
      new Request('http://rag.test/v1/documents', { method: 'POST', body: form, headers: bearer(fx.keys.write.otherNamespace as string) }),
      authEnv,
    );
    await expectError(response, 403, 'forbidden');
  });
});

describe('credentials and keys', () => {
  it('answers /health without a key', async () => {
    const response = await call({ method: 'GET', path: '/health' }, {});
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('accepts a key as X-API-Key as well as Bearer', async () => {
    for (const credential of [apiKeyHeader(fx.keys.read.right), bearer(fx.keys.read.right), { authorization: `bearer ${fx.keys.read.right}` }]) {
      expect((await call({ method: 'GET', path: `/v1/documents/${fx.docA}` }, credential)).status).toBe(200);
    }
  });

  it('lets admin create keys but not confine an admin key to namespaces', async () => {
    const response = await call({ method: 'POST', path: '/v1/keys', json: { scopes: ['admin'], namespaces: [A] } }, bearer(ADMIN));
    await expectError(response, 400, 'bad_request');
    const past = await call({ method: 'POST', path: '/v1/keys', json: { scopes: ['read'], expiresAt: '2001-01-01T00:00:00Z' } }, bearer(ADMIN));
    await expectError(past, 400, 'bad_request');
  });

  it('answers 404 for revoking an unknown key id', async () => {
    await expectError(await call({ method: 'DELETE', path: '/v1/keys/0123456789ab' }, bearer(ADMIN)), 404, 'not_found');
    await expectError(await call({ method: 'DELETE', path: '/v1/keys/not-an-id' }, bearer(ADMIN)), 404, 'not_found');
  });

  it('never shows a key or its hash after creation', async () => {
    const created = await createKey({ scopes: ['read'], namespaces: [A] });
    const listed = await asAdmin<{ keys: Record<string, unknown>[] }>({ method: 'GET', path: '/v1/keys?revoked=true' });
    const mine = listed.keys.find((k) => k.id === created.id);
    expect(mine).toBeDefined();
    expect(JSON.stringify(listed)).not.toContain(created.key);
    for (const key of listed.keys) expect(Object.keys(key).filter((k) => k === 'key' || k === 'hash')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// The acceptance flow, end to end

describe('acceptance: two tenants', () => {
  const runNs = crypto.randomUUID().slice(0, 8);
  const tenantA = `accept-a-${runNs}`;
  const tenantB = `accept-b-${runNs}`;
  const word = `xylophonist${runNs.replace(/[^a-z]/g, '')}`;
  const created: string[] = [];

  afterAll(async () => {
    for (const id of created) await call({ method: 'DELETE', path: `/v1/keys/${id}` }, bearer(ADMIN));
  });

  it('keeps A and B apart, refuses A key management, and refuses a revoked key at once', async () => {
    const keyA = await createKey({ name: 'tenant A', scopes: ['read', 'write'], namespaces: [tenantA] });
    const keyB = await createKey({ name: 'tenant B', scopes: ['read'], namespaces: [tenantB] });
    created.push(keyA.id, keyB.id);
    const asA = bearer(keyA.key);
    const asB = bearer(keyB.key);

    // A uploads with its own key, into its namespace without naming it.
    const uploaded = await call({ method: 'POST', path: '/v1/documents', json: { text: `The ${word} of tenant A plays at midnight.` } }, asA);
    expect(uploaded.status).toBe(202);
    const [document] = ((await uploaded.json()) as { documents: UploadedDocument[] }).documents;
    const id = (document as UploadedDocument).id;
    await waitUntilReady(id);
    const seenByA = await call({ method: 'GET', path: `/v1/documents/${id}` }, asA);
    expect(await seenByA.json()).toMatchObject({ id, namespace: tenantA, status: 'ready' });
    const foundByA = await call({ method: 'POST', path: '/v1/query', json: { query: word } }, asA);
    expect(passageDocuments(await foundByA.json())).toContain(id);

    // B cannot see, query, get or delete anything of A: 404s and empty results, never 5xx.
    const attempts: [Call, number][] = [
      [{ method: 'GET', path: `/v1/documents/${id}` }, 404],
      [{ method: 'DELETE', path: `/v1/documents/${id}` }, 403], // B's key is read-only: refused before the lookup
      [{ method: 'POST', path: `/v1/documents/${id}/reindex` }, 403],
      [{ method: 'POST', path: '/v1/query', json: { query: word, namespace: tenantA } }, 403],
      [{ method: 'GET', path: `/v1/documents?namespace=${tenantA}` }, 403],
    ];
    for (const [request, status] of attempts) {
      const response = await call(request, asB);
      expect(response.status, `${request.method} ${request.path}`).toBe(status);
    }
    const queried = await call({ method: 'POST', path: '/v1/query', json: { query: word, topK: 50 } }, asB);
    expect(queried.status).toBe(200);
    expect(passageDocuments(await queried.json())).toEqual([]);
    const listed = await call({ method: 'GET', path: '/v1/documents' }, asB);
    expect(((await listed.json()) as { documents: unknown[] }).documents).toEqual([]);
    // A B key that may write still cannot delete A's document: it is not there for it.
    const writerB = await createKey({ scopes: ['read', 'write'], namespaces: [tenantB] });
    created.push(writerB.id);
    await expectError(await call({ method: 'DELETE', path: `/v1/documents/${id}` }, bearer(writerB.key)), 404, 'not_found');
    expect((await call({ method: 'GET', path: `/v1/documents/${id}` }, asA)).status).toBe(200);

    // A's key cannot manage keys.
    await expectError(await call({ method: 'POST', path: '/v1/keys', json: { scopes: ['read'] } }, asA), 403, 'forbidden');

    // Revoked: refused on the very next request.
    await asAdmin({ method: 'DELETE', path: `/v1/keys/${keyA.id}` });
    await expectError(await call({ method: 'GET', path: `/v1/documents/${id}` }, asA), 401, 'unauthorized');
  });
});
