import { env, exports } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { embedQuery } from '../src/cache/embeddings';
import { clearMemoryTiers } from '../src/cache/store';
import type { EmbeddingProvider } from '../src/domain';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';
import { waitUntilSettled } from './helpers';
import { FakeVectorize } from '../fakes/vectorize';

/**
 * The embedding and response caches, through the API in workerd. The app is called with an
 * env object of this file's own, so its services (and their embedder) can be watched; the
 * documents it uploads are ingested by the Worker's real queue consumer.
 */
const cachedEnv = { ...env } as Env;
const uncachedEnv = { ...env, CACHE_ENABLED: 'false' } as unknown as Env;

/** Counts the texts each env's embedder is asked to embed. */
function countEmbeddings(target: Env): { texts: string[] } {
  const services = getServices(target);
  const inner = services.embedder;
  const seen = { texts: [] as string[] };
  const counting: EmbeddingProvider = {
    model: inner.model,
    dimensions: inner.dimensions,
    maxBatchSize: inner.maxBatchSize,
    embed: (texts) => (seen.texts.push(...texts), inner.embed(texts)),
  };
  services.embedder = counting;
  return seen;
}

function call(path: string, init: RequestInit = {}, target: Env = cachedEnv): Promise<Response> {
  return Promise.resolve(app.fetch(new Request(`http://rag.test${path}`, init), target));
}

const post = (path: string, body: unknown, target: Env = cachedEnv) =>
  call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, target);

interface Answer {
  status: number;
  cache: string | null;
  body: { query?: string; passages: { documentId: string; text: string; score: number }[] } & Record<string, unknown>;
}

async function ask(path: string, body: unknown, target: Env = cachedEnv): Promise<Answer> {
  const response = await post(path, body, target);
  const json = (await response.json()) as Answer['body'];
  expect(response.status, JSON.stringify(json)).toBe(200);
  return { status: response.status, cache: response.headers.get('X-Cache'), body: json };
}

async function upload(namespace: string, text: string, title: string, metadata: Record<string, string> = {}): Promise<string> {
  const response = await post('/v1/documents', { text, title, namespace, metadata });
  expect(response.status).toBe(202);
  const [document] = ((await response.json()) as { documents: { id: string }[] }).documents;
  const settled = await waitUntilSettled((document as { id: string }).id);
  expect(settled.status).toBe('ready');
  return settled.id;
}

async function scrape(): Promise<string> {
  return (await exports.default.fetch(new Request('http://rag.test/metrics'))).text();
}

function counter(text: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`rag_cache_requests_total{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const fresh = (prefix: string) => `${prefix}${crypto.randomUUID().slice(0, 8)}`;

describe('response cache', () => {
  const namespace = fresh('cacheA');
  const other = fresh('cacheB');
  let lighthouse: string;

  beforeAll(async () => {
    lighthouse = await upload(namespace, 'The lighthouse keeper trims the lamp wick every evening before dusk.', 'Keeper duties', { kind: 'duty', area: 'lamp' });
    await upload(other, 'The lighthouse keeper of the other tenant polishes brass.', 'Other tenant');
  });

  it('answers a repeated query from the cache, with the same body, whitespace aside', async () => {
    const first = await ask('/v1/query', { query: 'lamp wick', namespace });
    expect(first.cache).toBe('miss');
    expect(first.body.passages.map((p) => p.documentId)).toEqual([lighthouse]);
    const second = await ask('/v1/query', { query: 'lamp wick', namespace });
    expect(second.cache).toBe('hit');
    expect(second.body).toEqual(first.body);
    // Trimmed and collapsed whitespace is the same request; the answer echoes this request's text.
    const spaced = await ask('/v1/query', { query: '  lamp \n  wick ', namespace });
    expect(spaced.cache).toBe('hit');
    expect(spaced.body).toEqual({ ...first.body, query: 'lamp \n  wick' });
  });

  it('misses for a different topK, mode or filter, and for another namespace; filter key order does not matter', async () => {
    const base = { query: 'keeper lamp', namespace, filter: { kind: 'duty', area: 'lamp' } };
    expect((await ask('/v1/query', base)).cache).toBe('miss');
    expect((await ask('/v1/query', base)).cache).toBe('hit');
    expect((await ask('/v1/query', { ...base, filter: { area: 'lamp', kind: 'duty' } })).cache).toBe('hit');
    expect((await ask('/v1/query', { ...base, topK: 2 })).cache).toBe('miss');
    expect((await ask('/v1/query', { ...base, mode: 'keyword' })).cache).toBe('miss');
    expect((await ask('/v1/query', { ...base, filter: { kind: 'duty' } })).cache).toBe('miss');
    expect((await ask('/v1/query', { ...base, filter: { kind: { $in: ['duty'] }, area: 'lamp' } })).cache).toBe('miss');
    expect((await ask('/v1/query', { ...base, namespace: other })).cache).toBe('miss');
  });

  it('misses after an upload to the namespace becomes ready, and after a delete; not after another namespace changes', async () => {
    const question = { query: 'fog horn', namespace };
    expect((await ask('/v1/query', question)).cache).toBe('miss');
    expect((await ask('/v1/query', question)).cache).toBe('hit');

    // Another tenant's upload leaves this namespace's answers alone.
    await upload(other, 'The fog horn of the other tenant sounds twice.', 'Other fog horn');
    expect((await ask('/v1/query', question)).cache).toBe('hit');

    const foghorn = await upload(namespace, 'The fog horn sounds every thirty seconds in thick weather.', 'Fog signal');
    const after = await ask('/v1/query', question);
    expect(after.cache).toBe('miss');
    expect(after.body.passages[0]?.documentId).toBe(foghorn);
    expect((await ask('/v1/query', question)).cache).toBe('hit');

    const deleted = await call(`/v1/documents/${foghorn}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    const gone = await ask('/v1/query', question);
    expect(gone.cache).toBe('miss');
    expect(gone.body.passages.map((p) => p.documentId)).not.toContain(foghorn);
  });

  it('finds answers in the Cache API when this isolate has not seen them (another isolate of the data centre)', async () => {
    const question = { query: 'evening wick', namespace };
    const first = await ask('/v1/query', question);
    expect(first.cache).toBe('miss');
    await new Promise((resolve) => setTimeout(resolve, 50)); // the put runs after the response
    clearMemoryTiers();
    const second = await ask('/v1/query', question);
    expect(second).toEqual({ ...first, cache: 'hit' });
  });

  it('caches non-streamed chats and chat completions, not streamed ones', async () => {
    const chat = { query: 'When is the wick trimmed?', namespace };
    const first = await ask('/v1/chat', chat);
    expect(first.cache).toBe('miss');
    const second = await ask('/v1/chat', chat);
    expect(second).toEqual({ ...first, cache: 'hit' });
    // The same question as messages is the same request.
    expect((await ask('/v1/chat', { messages: [{ role: 'user', content: chat.query }], namespace })).cache).toBe('hit');

    const completion = { messages: [{ role: 'user', content: 'When is the wick trimmed?' }], namespace };
    const a = await ask('/v1/chat/completions', completion);
    const b = await ask('/v1/chat/completions', completion);
    expect([a.cache, b.cache]).toEqual(['miss', 'hit']);
    expect(b.body.choices).toEqual(a.body.choices);
    expect(b.body.citations).toEqual(a.body.citations);
    expect(b.body.id).not.toBe(a.body.id);

    const streamed = await post('/v1/chat', { ...chat, stream: true });
    expect(streamed.headers.get('X-Cache')).toBeNull();
    await streamed.text();
  });
});

describe('embedding cache', () => {
  it('embeds a repeated query text once', async () => {
    const namespace = fresh('cacheE');
    await upload(namespace, 'Storm shutters close over the lantern glass in a gale.', 'Storm drill');
    const seen = countEmbeddings(cachedEnv);
    const text = `storm shutters ${crypto.randomUUID()}`;
    const before = await scrape();
    expect((await ask('/v1/query', { query: text, namespace })).cache).toBe('miss');
    // Another topK: a response miss, but the same text, so no second embedding.
    expect((await ask('/v1/query', { query: text, namespace, topK: 2 })).cache).toBe('miss');
    expect((await ask('/v1/chat', { query: text, namespace })).cache).toBe('miss');
    // Keyword mode embeds nothing.
    expect((await ask('/v1/query', { query: text, namespace, mode: 'keyword' })).cache).toBe('miss');
    expect(seen.texts.filter((t) => t === text)).toHaveLength(1);
    const after = await scrape();
    expect(counter(after, 'cache="embedding",result="miss"') - counter(before, 'cache="embedding",result="miss"')).toBe(1);
    expect(counter(after, 'cache="embedding",result="hit"') - counter(before, 'cache="embedding",result="hit"')).toBe(2);
  });

  it('shares cloud embeddings through the Cache API, keyed by model and dimensions', async () => {
    const calls: string[][] = [];
    const embedder = (model: string): EmbeddingProvider => ({
      model,
      dimensions: 8,
      maxBatchSize: 10,
      embed: async (texts) => (calls.push(texts), texts.map(() => Float32Array.from({ length: 8 }, (_, i) => i / 8))),
    });
    const services = (model: string) =>
      ({ embedder: embedder(model), config: { ...getServices(cachedEnv).config, EMBEDDING_PROVIDER: 'workers-ai' } }) as unknown as Services;
    const text = `cloud ${crypto.randomUUID()}`;
    const first = await embedQuery(services('@cf/test/model-a'), text);
    await new Promise((resolve) => setTimeout(resolve, 50));
    clearMemoryTiers();
    const again = await embedQuery(services('@cf/test/model-a'), text);
    expect([...again]).toEqual([...first]);
    expect(calls).toHaveLength(1);
    await embedQuery(services('@cf/test/model-b'), text); // another model: its own entry
    expect(calls).toHaveLength(2);
  });
});

describe('CACHE_ENABLED=false', () => {
  it('turns off both caches', async () => {
    const namespace = fresh('cacheOff');
    await upload(namespace, 'The oil store is kept apart from the lantern room.', 'Oil store');
    const seen = countEmbeddings(uncachedEnv);
    const before = await scrape();
    const question = { query: 'oil store', namespace };
    const first = await ask('/v1/query', question, uncachedEnv);
    const second = await ask('/v1/query', question, uncachedEnv);
    const chat = await post('/v1/chat', question, uncachedEnv);
    expect([first.cache, second.cache, chat.headers.get('X-Cache')]).toEqual([null, null, null]);
    expect(second.body).toEqual(first.body);
    expect(seen.texts.filter((t) => t === 'oil store')).toHaveLength(3);
    const after = await scrape();
    for (const labels of ['cache="embedding",result="hit"', 'cache="embedding",result="miss"', 'cache="response",result="hit"', 'cache="response",result="miss"']) {
      expect(counter(after, labels), labels).toBe(counter(before, labels));
    }
  });
});

describe('cache metrics', () => {
  it('counts response hits and misses', async () => {
    const namespace = fresh('cacheM');
    const before = await scrape();
    const question = { query: 'anything at all', namespace };
    await ask('/v1/query', question);
    await ask('/v1/query', question);
    await ask('/v1/query', question);
    const after = await scrape();
    expect(counter(after, 'cache="response",result="miss"') - counter(before, 'cache="response",result="miss"')).toBe(1);
    expect(counter(after, 'cache="response",result="hit"') - counter(before, 'cache="response",result="hit"')).toBe(2);
    expect(after).toContain('# TYPE rag_cache_requests_total counter');
  });
});

describe('the response cache with an engine whose writes apply later (Vectorize)', () => {
  it('neither serves nor keeps answers computed soon after a change in the namespace', async () => {
    const vectorizeEnv = { ...env, VECTOR_PROVIDER: 'vectorize', VECTORIZE: new FakeVectorize({ dimensions: 384, metadataIndexes: ['documentId'] }) } as unknown as Env;
    const services = getServices(vectorizeEnv);
    const body = (namespace: string) => ({ query: 'geysers erupting', namespace, mode: 'keyword' });

    // Unchanged for long: cached as usual.
    const quiet = `quiet${crypto.randomUUID().slice(0, 8)}`;
    expect((await ask('/v1/query', body(quiet), vectorizeEnv)).cache).toBe('miss');
    expect((await ask('/v1/query', body(quiet), vectorizeEnv)).cache).toBe('hit');

    // Just changed: Vectorize may not show the change for up to its write delay.
    const busy = `busy${crypto.randomUUID().slice(0, 8)}`;
    await services.documents.bumpGeneration(busy);
    expect((await ask('/v1/query', body(busy), vectorizeEnv)).cache).toBe('bypass');
    expect((await ask('/v1/query', body(busy), vectorizeEnv)).cache).toBe('bypass');

    // The local engine applies writes at once: the same change is cached straight away.
    await getServices(cachedEnv).documents.bumpGeneration(busy);
    expect((await ask('/v1/query', body(busy))).cache).toBe('miss');
    expect((await ask('/v1/query', body(busy))).cache).toBe('hit');
  });
});
