import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import { buildChatMessages } from '../src/generation/prompt';
import { OpenAIChatModel, OpenAIEmbedder } from '../src/providers/openai';
import { CircuitBreaker, type ResilienceOptions, retryAfterSeconds } from '../src/providers/resilience';
import type { ChatRequest } from '../src/domain';
import { FAKE_OPENAI_KEY, fakeAnswer, fakeEmbedding, type RecordedRequest } from './fakes/openai-server';
import { caught } from './support';

const BASE_URL = 'http://openai.fake/v1';

/**
 * One isolated scenario on the fake OpenAI server (FAKE_OPENAI, see vitest.config.ts):
 * its own fault counters and request log, sleeps recorded instead of waited, jitter 0.
 */
function scenario(headers: Record<string, string> = {}, resilience: Partial<ResilienceOptions> = {}) {
  const id = crypto.randomUUID();
  const delays: number[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const merged = new Headers(init?.headers);
    merged.set('x-test-scenario', id);
    for (const [name, value] of Object.entries(headers)) merged.set(name, value);
    return env.FAKE_OPENAI.fetch(input, { ...init, headers: merged });
  };
  return {
    delays,
    options: {
      apiKey: FAKE_OPENAI_KEY,
      baseUrl: BASE_URL,
      fetch,
      resilience: { retries: 2, timeoutMs: 200, random: () => 0, sleep: async (ms: number) => void delays.push(ms), ...resilience },
    },
    async requests(): Promise<RecordedRequest[]> {
      const response = await env.FAKE_OPENAI.fetch('http://openai.fake/__requests', { headers: { 'x-test-scenario': id } });
      return response.json();
    },
  };
}


describe('OpenAIEmbedder', () => {
  it('embeds texts in input order, at the configured dimensions, as OpenAI is asked', async () => {
    const s = scenario();
    const embedder = new OpenAIEmbedder({ ...s.options, dimensions: 256 });
    expect(embedder).toMatchObject({ model: 'text-embedding-3-small', dimensions: 256, maxBatchSize: 2048 });
    const texts = ['alpha', 'beta', 'gamma — γ'];
    const vectors = await embedder.embed(texts);
    // The fake answers in reverse order; the adapter must follow `index`.
    expect(vectors).toEqual(texts.map((t) => fakeEmbedding(t, 256)));
    expect(vectors[0]).toBeInstanceOf(Float32Array);
    const [request] = await s.requests();
    expect(request).toMatchObject({ method: 'POST', path: '/v1/embeddings', authorization: 'present' });
    expect(request?.body).toEqual({ model: 'text-embedding-3-small', input: texts, dimensions: 256, encoding_format: 'base64' });
  });

  it('sends requests of batchSize texts and keeps the order across them', async () => {
    const s = scenario();
    const embedder = new OpenAIEmbedder({ ...s.options, dimensions: 32, batchSize: 50 });
    const texts = Array.from({ length: 120 }, (_, i) => `text number ${i}`);
    const vectors = await embedder.embed(texts);
    expect(vectors).toEqual(texts.map((t) => fakeEmbedding(t, 32)));
    expect((await s.requests()).map((r) => (r.body as { input: string[] }).input.length)).toEqual([50, 50, 20]);
  });

  it('refuses more texts than maxBatchSize before calling OpenAI', async () => {
    const s = scenario();
    const embedder = new OpenAIEmbedder({ ...s.options, batchSize: 5000 });
    const error = await caught(embedder.embed(Array.from({ length: 2049 }, (_, i) => `t${i}`)));
    expect(error.message).toContain('at most 2048 texts per call, got 2049');
    expect(await s.requests()).toEqual([]);
  });

  it('the fake holds OpenAI to its limits: 2048 inputs, a model maximum for dimensions, a key', async () => {
    const post = (body: unknown, key: string | null = FAKE_OPENAI_KEY) =>
      env.FAKE_OPENAI.fetch(`${BASE_URL}/embeddings`, {
        method: 'POST',
        headers: key ? { authorization: `Bearer ${key}` } : {},
        body: JSON.stringify(body),
      });
    const tooMany = await post({ model: 'text-embedding-3-small', input: Array.from({ length: 2049 }, () => 'x') });
    expect(tooMany.status).toBe(400);
    expect(await tooMany.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'input', code: 'array_above_max_length' } });
    expect((await post({ model: 'text-embedding-3-small', input: ['x'], dimensions: 1537 })).status).toBe(400);
    expect((await post({ model: 'text-embedding-3-small', input: ['x'] }, null)).status).toBe(401);
    const ok = await post({ model: 'text-embedding-3-small', input: ['x', 'y'], dimensions: 8 });
    expect(await ok.json()).toMatchObject({
      object: 'list',
      model: 'text-embedding-3-small',
      data: [{ object: 'embedding', index: 1 }, { object: 'embedding', index: 0 }],
      usage: { prompt_tokens: 2, total_tokens: 2 },
    });
  });

  it('checks dimensions against the model when built, and OpenAI\'s 400 is passed on, not retried', async () => {
    expect(() => new OpenAIEmbedder({ apiKey: 'k', dimensions: 4096 })).toThrow(/cannot produce 4096/);
    expect(() => new OpenAIEmbedder({ apiKey: 'k', model: 'my-model' })).toThrow(/set the embedding dimensions/);
    // A model the adapter does not know, so only the server can refuse the size.
    const s = scenario({ 'x-fault-times': '0' });
    const error = await caught(new OpenAIEmbedder({ ...s.options, model: 'fault-none', dimensions: 4096 }).embed(['x']));
    expect(error).toMatchObject({ code: 'provider_error', retryable: false });
    expect(error.message).toContain("Invalid value for 'dimensions' = 4096");
    expect(await s.requests()).toHaveLength(1);
  });

  it('rejects vectors of the wrong size as a configuration problem', async () => {
    const s = scenario();
    const error = await caught(new OpenAIEmbedder({ ...s.options, model: 'fault-dimensions', dimensions: 64 }).embed(['x']));
    expect(error).toMatchObject({ code: 'misconfigured', retryable: false });
    expect(error.message).toContain('32-dimensional embeddings, expected 64');
  });

  it('waits out a 429 for its Retry-After, then succeeds', async () => {
    const s = scenario();
    const vectors = await new OpenAIEmbedder({ ...s.options, model: 'fault-429', dimensions: 16 }).embed(['x']);
    expect(vectors).toEqual([fakeEmbedding('x', 16)]);
    expect(s.delays).toEqual([1_000]);
    expect(await s.requests()).toHaveLength(2);
    const ms = scenario({ 'x-fault-retry-after-ms': '1500' });
    await new OpenAIEmbedder({ ...ms.options, model: 'fault-429', dimensions: 16 }).embed(['x']);
    expect(ms.delays).toEqual([1_500]);
  });

  it('gives up at once on a Retry-After too long to wait, and on an exhausted quota', async () => {
    const long = scenario({ 'x-fault-retry-after': '120' });
    const limited = await caught(new OpenAIEmbedder({ ...long.options, model: 'fault-429', dimensions: 16 }).embed(['x']));
    expect(limited).toMatchObject({ code: 'rate_limited', status: 429, retryable: true, retryAfterSeconds: 120 });
    expect(await long.requests()).toHaveLength(1);
    const quota = scenario();
    const broke = await caught(new OpenAIEmbedder({ ...quota.options, model: 'fault-quota', dimensions: 16 }).embed(['x']));
    expect(broke).toMatchObject({ code: 'rate_limited', retryable: false });
    expect(broke.message).toContain('out of quota');
    expect(await quota.requests()).toHaveLength(1);
  });

  it('reads Retry-After as seconds or an HTTP date, and prefers retry-after-ms', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterSeconds(new Headers({ 'retry-after': '7' }), now)).toBe(7);
    expect(retryAfterSeconds(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }), now)).toBe(30);
    expect(retryAfterSeconds(new Headers({ 'retry-after': '7', 'retry-after-ms': '250' }), now)).toBe(0.25);
    expect(retryAfterSeconds(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterSeconds(new Headers(), now)).toBeUndefined();
  });

  it('retries 5xx, then fails as a retryable 502-class error', async () => {
    const s = scenario({ 'x-fault-times': '99' });
    const error = await caught(new OpenAIEmbedder({ ...s.options, model: 'fault-500', dimensions: 16 }).embed(['x']));
    expect(error).toMatchObject({ code: 'provider_error', status: 502, retryable: true });
    expect(error.message).toBe('OpenAI embeddings answered HTTP 500: The server had an error while processing your request. Sorry about that!');
    expect(await s.requests()).toHaveLength(3);
    expect(s.delays).toHaveLength(2);
    // A proxy's HTML error page is not quoted.
    const html = scenario({ 'x-fault-times': '99' });
    const gateway = await caught(new OpenAIEmbedder({ ...html.options, model: 'fault-502', dimensions: 16 }).embed(['x']));
    expect(gateway.message).toBe('OpenAI embeddings answered HTTP 502');
    const once = scenario();
    expect(await new OpenAIEmbedder({ ...once.options, model: 'fault-503', dimensions: 16 }).embed(['x'])).toHaveLength(1);
  });

  it('treats malformed JSON and unexpected shapes as retryable provider errors', async () => {
    const once = scenario();
    expect(await new OpenAIEmbedder({ ...once.options, model: 'fault-malformed', dimensions: 8 }).embed(['x'])).toHaveLength(1);
    expect(await once.requests()).toHaveLength(2);
    for (const model of ['fault-malformed', 'fault-shape']) {
      const s = scenario({ 'x-fault-times': '99' }, { retries: 0 });
      const error = await caught(new OpenAIEmbedder({ ...s.options, model, dimensions: 8 }).embed(['x']));
      expect(error).toMatchObject({ code: 'provider_error', retryable: true, message: 'OpenAI embeddings returned an unexpected answer' });
    }
  });

  it('times out a server that never answers', async () => {
    const s = scenario({ 'x-fault-times': '99' }, { retries: 1, timeoutMs: 200 });
    const started = Date.now();
    const error = await caught(new OpenAIEmbedder({ ...s.options, model: 'fault-hang', dimensions: 8 }).embed(['x']));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ code: 'provider_timeout', status: 504, retryable: true });
    expect(error.message).toBe('OpenAI embeddings did not answer within 200 ms');
    expect(await s.requests()).toHaveLength(2);
  });

  it('reports a bad API key as misconfiguration, without the key, and does not retry', async () => {
    const s = scenario();
    const apiKey = 'sk-proj-wrongkey0123456789abcdefXYZW';
    const error = await caught(new OpenAIEmbedder({ ...s.options, apiKey }).embed(['x']));
    expect(error).toMatchObject({ code: 'misconfigured', status: 503, retryable: false });
    expect(error.message).toContain('the OpenAI API key is missing or invalid');
    for (const leak of [apiKey, apiKey.slice(0, 8), apiKey.slice(-4), 'Incorrect API key']) expect(error.message).not.toContain(leak);
    expect(await s.requests()).toHaveLength(1);
    expect(() => new OpenAIEmbedder({ apiKey: '' })).toThrow(/OPENAI_API_KEY/);
  });

  it('reports an unknown model as misconfiguration', async () => {
    const s = scenario();
    const error = await caught(new OpenAIEmbedder({ ...s.options, model: 'text-embedding-4', dimensions: 8 }).embed(['x']));
    expect(error).toMatchObject({ code: 'misconfigured', retryable: false });
    expect(error.message).toContain('The model `text-embedding-4` does not exist');
  });

  it('maps an unreachable server to a retryable error and opens the breaker on repeated outages', async () => {
    const s = scenario({ 'x-fault-times': '99' }, { retries: 0 });
    const breaker = new CircuitBreaker({ failureThreshold: 2 });
    const embedder = new OpenAIEmbedder({ ...s.options, model: 'fault-503', dimensions: 8, resilience: { ...s.options.resilience, breaker } });
    await caught(embedder.embed(['x']));
    await caught(embedder.embed(['x']));
    const fast = await caught(embedder.embed(['x']));
    expect(fast.message).toMatch(/^OpenAI embeddings is unavailable \(circuit open\); retry in 30 s$/);
    expect(await s.requests()).toHaveLength(2);

    const offline = new OpenAIEmbedder({
      ...s.options,
      resilience: { ...s.options.resilience, retries: 0 },
      fetch: async () => {
        throw new TypeError('Network connection lost.');
      },
    });
    expect(await caught(offline.embed(['x']))).toMatchObject({
      code: 'provider_error',
      retryable: true,
      message: 'OpenAI embeddings: could not reach openai.fake',
    });
  });
});

// Fitting the prompt to the window and the no-answer rule are generation's (generation.test.ts).
describe('OpenAIChatModel', () => {
  const request: ChatRequest = {
    question: 'What does the lighthouse burn?',
    history: [
      { role: 'user', content: 'Who keeps the lighthouse?' },
      { role: 'assistant', content: 'A keeper who lives on the island [1].' },
    ],
    passages: [
      { title: 'Lighthouse', text: 'The lighthouse burns paraffin. It was built in 1870.' },
      { title: 'Keeper', text: 'The keeper rows ashore weekly. He likes tea.' },
    ],
  };
  const messages = buildChatMessages(request);

  async function collect(stream: AsyncIterable<string>): Promise<{ pieces: string[]; error?: AppError }> {
    const pieces: string[] = [];
    try {
      for await (const piece of stream) pieces.push(piece);
      return { pieces };
    } catch (error) {
      expect(error).toBeInstanceOf(AppError);
      return { pieces, error: error as AppError };
    }
  }

  it('numbers the passages from 1 in order, after the instructions and the history', () => {
    expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(messages[0]?.content).toMatch(/only the numbered passages.*\[1\]/);
    expect(messages.slice(1, 3)).toEqual(request.history);
    expect(messages[3]?.content).toBe(
      '<documents>\n<passage number="1" title="Lighthouse">\nThe lighthouse burns paraffin. It was built in 1870.\n</passage>\n' +
        '<passage number="2" title="Keeper">\nThe keeper rows ashore weekly. He likes tea.\n</passage>\n</documents>\n\n' +
        'Question: What does the lighthouse burn?',
    );
  });

  it('streams the completion of the messages as given, in pieces that join to the whole', async () => {
    const s = scenario();
    const model = new OpenAIChatModel({ ...s.options, temperature: 0.3, maxTokens: 256 });
    expect(model.model).toBe('gpt-4o-mini');
    const { pieces, error } = await collect(model.complete(messages));
    expect(error).toBeUndefined();
    expect(pieces.length).toBeGreaterThan(5);
    const answer = pieces.join('');
    expect(answer).toBe('From the café’s notes … The lighthouse burns paraffin [1]. The keeper rows ashore weekly [2].');
    const [sent] = await s.requests();
    expect(sent?.path).toBe('/v1/chat/completions');
    expect(sent?.body).toEqual({ model: 'gpt-4o-mini', messages, stream: true, temperature: 0.3, max_tokens: 256 });
    expect(answer).toBe(fakeAnswer(messages));
  });

  it("states its model's context window, a dated snapshot's included, or 8,000 tokens for one it does not know", () => {
    const { options } = scenario();
    expect(new OpenAIChatModel(options)).toMatchObject({ contextWindow: 128_000, maxTokens: 1024 });
    expect(new OpenAIChatModel({ ...options, model: 'gpt-4o-mini-2024-07-18' }).contextWindow).toBe(128_000);
    expect(new OpenAIChatModel({ ...options, model: 'gpt-4.1-mini' }).contextWindow).toBe(1_047_576);
    expect(new OpenAIChatModel({ ...options, model: 'gpt-4-turbo-2024-04-09' }).contextWindow).toBe(128_000);
    expect(new OpenAIChatModel({ ...options, model: 'gpt-4-0613' }).contextWindow).toBe(8_192);
    expect(new OpenAIChatModel({ ...options, model: 'llama3.1:8b' }).contextWindow).toBe(8_000);
    expect(new OpenAIChatModel({ ...options, model: 'llama3.1:8b', contextWindow: 131_072 }).contextWindow).toBe(131_072);
  });

  it('lets a reader stop early, freeing the stream', async () => {
    const s = scenario();
    const pieces: string[] = [];
    for await (const piece of new OpenAIChatModel(s.options).complete(messages)) {
      if (pieces.push(piece) === 2) break;
    }
    expect(pieces).toEqual(['From', ' the']);
  });

  it('retries a 429 before the stream starts', async () => {
    const s = scenario();
    const { pieces, error } = await collect(new OpenAIChatModel({ ...s.options, model: 'fault-429' }).complete(messages));
    expect(error).toBeUndefined();
    expect(pieces.join('')).toContain('[1]');
    expect(s.delays).toEqual([1_000]);
  });

  it('fails with a timeout when the stream stalls mid-way, keeping what came before', async () => {
    const s = scenario({}, { timeoutMs: 200 });
    const started = Date.now();
    const { pieces, error } = await collect(new OpenAIChatModel({ ...s.options, model: 'fault-stall' }).complete(messages));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(pieces.join('')).toBe('From the café’s');
    expect(error).toMatchObject({ code: 'provider_timeout', retryable: true });
    expect(error?.message).toBe('OpenAI chat stalled: no data for 200 ms while streaming');
    expect(await s.requests()).toHaveLength(1);
  });

  it('times out when no answer starts', async () => {
    const s = scenario({ 'x-fault-times': '99' }, { retries: 1, timeoutMs: 200 });
    const { pieces, error } = await collect(new OpenAIChatModel({ ...s.options, model: 'fault-hang' }).complete(messages));
    expect(pieces).toEqual([]);
    expect(error).toMatchObject({ code: 'provider_timeout', message: 'OpenAI chat did not answer within 200 ms' });
    expect(await s.requests()).toHaveLength(2);
  });

  it('fails on a malformed chunk, an answer with no text and a stream cut before [DONE]', async () => {
    const malformed = scenario();
    const broken = await collect(new OpenAIChatModel({ ...malformed.options, model: 'fault-malformed' }).complete(messages));
    expect(broken.error).toMatchObject({ code: 'provider_error', retryable: true, message: 'OpenAI chat returned an unexpected answer' });
    const silent = scenario({ 'x-fake-reply': '' });
    const empty = await collect(new OpenAIChatModel(silent.options).complete(messages));
    expect(empty.error).toMatchObject({ code: 'provider_error', retryable: true, message: 'OpenAI chat returned an empty answer' });
    expect(await silent.requests()).toHaveLength(1); // not retried: the stream had started
    const truncated = scenario();
    const cut = await collect(new OpenAIChatModel({ ...truncated.options, model: 'fault-truncated' }).complete(messages));
    expect(cut.pieces.join('')).toBe('From the café’s');
    expect(cut.error?.message).toBe('OpenAI chat stream ended before the answer was complete');
  });

  it('passes on OpenAI\'s 400 without retrying, and a bad key as misconfiguration', async () => {
    const s = scenario();
    const invalid = await collect(new OpenAIChatModel({ ...s.options, temperature: 2.5 }).complete(messages));
    expect(invalid.error).toMatchObject({ code: 'provider_error', retryable: false });
    expect(invalid.error?.message).toContain("Invalid 'temperature'");
    expect(await s.requests()).toHaveLength(1);
    const apiKey = 'sk-wrong-0123456789abcdef';
    const denied = await collect(new OpenAIChatModel({ ...s.options, apiKey }).complete(messages));
    expect(denied.error).toMatchObject({ code: 'misconfigured', retryable: false });
    expect(denied.error?.message).not.toContain(apiKey.slice(0, 8));
  });
});
