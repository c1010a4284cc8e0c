import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import { buildChatMessages } from '../src/generation/prompt';
import { countTokens, truncateToTokens } from '../src/text/tokens';
import type { ResilienceOptions } from '../src/providers/resilience';
import type { ChatMessage } from '../src/domain';
import { WorkersAIChatModel } from '../src/providers/workers-ai-chat';
import { WorkersAIEmbedder } from '../src/providers/workers-ai-embedder';
import { type AiRunner, toAppError } from '../src/providers/workers-ai-errors';
import { WorkersAIReranker } from '../src/providers/workers-ai-reranker';
import { answerOf } from './contracts/chat-model';
import { FakeAi } from '../fakes/workers-ai';

// The real binding fits the adapters' view of it (checked by tsc, not at run time).
const acceptsTheRealBinding: (ai: Ai) => AiRunner = (ai) => ai;
void acceptsTheRealBinding;

const CAPACITY = 'AiError: 3040: Capacity temporarily exceeded, please try again.';

/** Fast: short timeouts, and backoff that records instead of sleeping. */
function fastResilience(): ResilienceOptions & { sleeps: number[] } {
  const sleeps: number[] = [];
  return { retries: 2, timeoutMs: 50, baseDelayMs: 1, maxDelayMs: 4, sleep: async (ms) => void sleeps.push(ms), sleeps };
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

// The provider contracts run against these adapters in provider-contracts.test.ts.

describe('WorkersAIEmbedder', () => {
  it('sends the texts to bge-base in one call and returns its 768-dimensional vectors in order', async () => {
    const ai = new FakeAi();
    const embedder = new WorkersAIEmbedder(ai, { resilience: fastResilience() });
    expect(embedder.model).toBe('@cf/baai/bge-base-en-v1.5');
    expect(embedder.dimensions).toBe(768);
    expect(embedder.maxBatchSize).toBe(100);
    const texts = ['alpha', 'beta', 'gamma'];
    const vectors = await embedder.embed(texts);
    expect(ai.calls).toEqual([{ model: '@cf/baai/bge-base-en-v1.5', inputs: { text: texts } }]);
    const direct = (await ai.run('@cf/baai/bge-base-en-v1.5', { text: texts })) as { data: number[][] };
    expect(vectors.map((v) => [...v])).toEqual(direct.data.map((row) => [...Float32Array.from(row)]));
  });

  it('knows the dimensions of the other bge models, and needs them for a model it does not know', async () => {
    const ai = new FakeAi();
    expect(new WorkersAIEmbedder(ai, { model: '@cf/baai/bge-small-en-v1.5' }).dimensions).toBe(384);
    expect(new WorkersAIEmbedder(ai, { model: '@cf/baai/bge-large-en-v1.5' }).dimensions).toBe(1024);
    expect(new WorkersAIEmbedder(ai, { model: '@cf/baai/bge-m3' }).dimensions).toBe(1024);
    expect(() => new WorkersAIEmbedder(ai, { model: '@cf/acme/new-embedder' })).toThrow(/EMBEDDING_DIMENSIONS/);
    expect(() => new WorkersAIEmbedder(ai, { dimensions: 384 })).toThrow(/768/);
    expect(new WorkersAIEmbedder(ai, { model: '@cf/acme/new-embedder', dimensions: 512 }).dimensions).toBe(512);
  });

  it('refuses more than 100 texts itself, before calling (the service would refuse them too)', async () => {
    const ai = new FakeAi();
    const texts = Array.from({ length: 101 }, (_, i) => `text ${i}`);
    const error = await rejection(new WorkersAIEmbedder(ai, { resilience: fastResilience() }).embed(texts));
    expect(error.code).toBe('internal');
    expect(ai.calls).toHaveLength(0);
    await expect(ai.run('@cf/baai/bge-base-en-v1.5', { text: texts })).rejects.toThrow(/5006/);
    expect(new WorkersAIEmbedder(ai, { maxBatchSize: 500 }).maxBatchSize).toBe(100);
  });

  it('cuts a text longer than the 512-token window at a word, keeping the start', async () => {
    const ai = new FakeAi();
    const long = Array.from({ length: 1500 }, (_, i) => `word${i}`).join(' ');
    const cjk = '灯塔守护者每天晚上修剪灯芯。'.repeat(100);
    await new WorkersAIEmbedder(ai, { resilience: fastResilience() }).embed([long, cjk, 'short text']);
    const [sentLong, sentCjk, sentShort] = ai.calls[0]?.inputs.text as string[];
    for (const sent of [sentLong, sentCjk] as string[]) {
      expect(countTokens(sent)).toBeLessThanOrEqual(512);
      expect(countTokens(sent)).toBeGreaterThan(400);
    }
    expect(long.startsWith(sentLong as string)).toBe(true);
    expect(long[(sentLong as string).length]).toBe(' '); // cut between words
    expect(cjk.startsWith(sentCjk as string)).toBe(true);
    expect(sentShort).toBe('short text');
  });

  it('retries a capacity error and then succeeds', async () => {
    const ai = new FakeAi().failNext(2, CAPACITY);
    const resilience = fastResilience();
    const vectors = await new WorkersAIEmbedder(ai, { resilience }).embed(['alpha']);
    expect(vectors).toHaveLength(1);
    expect(ai.calls).toHaveLength(3);
    expect(resilience.sleeps).toHaveLength(2);
  });

  it('gives up on capacity after its retries with a retryable rate_limited error', async () => {
    const ai = new FakeAi().failNext(3, CAPACITY);
    const error = await rejection(new WorkersAIEmbedder(ai, { resilience: fastResilience() }).embed(['alpha']));
    expect(error).toMatchObject({ code: 'rate_limited', retryable: true, status: 429 });
    expect(error.message).not.toContain('AiError'); // clients see the situation, the logs see the cause
    expect(ai.calls).toHaveLength(3);
  });

  it('reports an unknown model as misconfigured, without retrying', async () => {
    const ai = new FakeAi();
    const embedder = new WorkersAIEmbedder(ai, { model: '@cf/acme/no-such-embedder', dimensions: 768, resilience: fastResilience() });
    const error = await rejection(embedder.embed(['alpha']));
    expect(error).toMatchObject({ code: 'misconfigured', retryable: false });
    expect(ai.calls).toHaveLength(1);
  });

  it('fails a call that hangs with a retryable provider_timeout, after its retries', async () => {
    const ai = new FakeAi().hangNext(3);
    const error = await rejection(new WorkersAIEmbedder(ai, { resilience: fastResilience() }).embed(['alpha']));
    expect(error).toMatchObject({ code: 'provider_timeout', retryable: true });
    expect(ai.calls).toHaveLength(3);
  });

  it('does not wait inside a call for the daily allocation to reset, but says when it does', async () => {
    const ai = new FakeAi().failNext(1, 'AiError: 3036: You have used up your daily free allocation of 10,000 neurons.');
    const error = await rejection(new WorkersAIEmbedder(ai, { resilience: fastResilience() }).embed(['alpha']));
    expect(error).toMatchObject({ code: 'rate_limited', retryable: true });
    expect(error.retryAfterSeconds).toBeGreaterThan(0);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(86_400);
    expect(ai.calls).toHaveLength(1);
  });

  it.each([
    ['no data', { shape: [1, 768] }, 'provider_error'],
    ['too few vectors', { shape: [0, 768], data: [] }, 'provider_error'],
    ['a shape that disagrees', { shape: [1, 1024], data: [new Array(768).fill(0.01)] }, 'provider_error'],
    ['a non-number', { data: [[...new Array(767).fill(0.01), 'x']] }, 'provider_error'],
    ['the wrong dimension', { shape: [1, 1024], data: [new Array(1024).fill(0.01)] }, 'misconfigured'],
  ])('rejects a malformed response (%s) without retrying', async (_name, response, code) => {
    const ai = new FakeAi().respondNext(response);
    const error = await rejection(new WorkersAIEmbedder(ai, { resilience: fastResilience() }).embed(['alpha']));
    expect(error).toMatchObject({ code, retryable: false });
    expect(ai.calls).toHaveLength(1);
  });
});

describe('truncateToTokens', () => {
  it('keeps text that fits and cuts a single over-long word by tokens', () => {
    expect(truncateToTokens('a few words', 10)).toBe('a few words');
    const huge = 'x'.repeat(6 * 100);
    expect(countTokens(truncateToTokens(huge, 10))).toBe(10);
  });
});

describe('Workers AI errors', () => {
  it.each([
    ['AiError: 3040: Capacity temporarily exceeded, please try again.', 'rate_limited', true],
    ['InferenceUpstreamError: ERROR 3040: No more data centers to forward the request to', 'rate_limited', true],
    ['4006: you have used up your daily free allocation of 10,000 neurons', 'rate_limited', true],
    ['AiError: 3007: Request timeout', 'provider_timeout', true],
    ['AiError: 3008: Request was aborted', 'provider_timeout', true],
    ['AiError: 3006: Request is too large', 'bad_request', false],
    ["AiError: 5006: Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt'", 'bad_request', false],
    ['AiError: 5007: No such model @cf/x/y or task', 'misconfigured', false],
    ['AiError: 3042: The model name is invalid', 'misconfigured', false],
    ['AiError: 5016: User has not agreed to Llama3.2 model terms', 'misconfigured', false],
    ['AiError: 3023: Service unavailable for account', 'misconfigured', false],
    ['Binding AI needs to be run remotely', 'misconfigured', false],
    ['request 1234: internal server error', 'provider_error', true],
    ['Network connection lost.', 'provider_error', true],
  ])('%s → %s', (message, code, retryable) => {
    const error = toAppError(new Error(message), '@cf/m') as AppError;
    expect(error).toBeInstanceOf(AppError);
    expect({ code: error.code, retryable: error.retryable }).toEqual({ code, retryable });
    expect((error as Error).cause).toBeInstanceOf(Error);
  });

  it('resets the daily allocation at 00:00 UTC', () => {
    const at = Date.UTC(2026, 10, 28, 23, 59, 0);
    expect((toAppError(new Error('3036: daily limit'), '@cf/m', () => at) as AppError).retryAfterSeconds).toBe(60);
  });
});

const PASSAGES = [
  { title: 'Lighthouse', text: 'The lighthouse burns paraffin in a pressure lamp. It was lit in 1871.' },
  { title: 'Fog signal', text: 'A fog signal sounds every thirty seconds in thick weather.' },
];
const MESSAGES: ChatMessage[] = buildChatMessages({ question: 'What does the lighthouse burn?', history: [], passages: PASSAGES });

// Fitting the prompt to the window and the no-answer rule are generation's (generation.test.ts).
describe('WorkersAIChatModel', () => {
  it('streams the answer: pieces split across SSE chunks and UTF-8 characters join to the whole reply', async () => {
    const ai = new FakeAi();
    ai.chunkBytes = 5;
    const { pieces, answer } = await answerOf(new WorkersAIChatModel(ai, { resilience: fastResilience() }), MESSAGES);
    expect(pieces.length).toBeGreaterThan(3);
    expect(answer).toBe('According to the documents — The lighthouse burns paraffin in a pressure lamp [1]. A fog signal sounds every thirty seconds in thick weather [2].');
  });

  it('sends the messages as given, streamed, with its max_tokens and temperature', async () => {
    const ai = new FakeAi();
    await answerOf(new WorkersAIChatModel(ai, { maxTokens: 300, temperature: 0.2, resilience: fastResilience() }), MESSAGES);
    expect(ai.calls).toEqual([
      { model: '@cf/meta/llama-3.3-70b-instruct-fp8-fast', inputs: { messages: MESSAGES, stream: true, max_tokens: 300, temperature: 0.2 } },
    ]);
  });

  it("states its model's context window, from the model's page or as configured", () => {
    const ai = new FakeAi();
    expect(new WorkersAIChatModel(ai)).toMatchObject({ contextWindow: 24_000, maxTokens: 1024 });
    expect(new WorkersAIChatModel(ai, { model: '@cf/meta/llama-3.1-8b-instruct-fast' }).contextWindow).toBe(128_000);
    expect(new WorkersAIChatModel(ai, { model: '@cf/acme/new-chat' }).contextWindow).toBe(8_000);
    expect(new WorkersAIChatModel(ai, { model: '@cf/acme/new-chat', contextWindow: 32_000 }).contextWindow).toBe(32_000);
  });

  it('retries a capacity error before the stream starts', async () => {
    const ai = new FakeAi().failNext(1, CAPACITY);
    const { answer } = await answerOf(new WorkersAIChatModel(ai, { resilience: fastResilience() }), MESSAGES);
    expect(answer).toContain('[1]');
    expect(ai.calls).toHaveLength(2);
  });

  it('fails an answer with no text, and one that is not a stream, with a retryable provider_error', async () => {
    const ai = new FakeAi();
    ai.chatReply = () => '';
    const empty = await rejection(answerOf(new WorkersAIChatModel(ai, { resilience: fastResilience() }), MESSAGES));
    expect(empty).toMatchObject({ code: 'provider_error', retryable: true, message: 'Workers AI chat (@cf/meta/llama-3.3-70b-instruct-fp8-fast) returned an empty answer' });
    const unstreamed = await rejection(answerOf(new WorkersAIChatModel(new FakeAi().respondNext({ response: 'Hello' }), { resilience: fastResilience() }), MESSAGES));
    expect(unstreamed).toMatchObject({ code: 'provider_error', retryable: true, message: 'Workers AI chat (@cf/meta/llama-3.3-70b-instruct-fp8-fast) returned an unexpected answer' });
  });

  it('fails a stream that ends without [DONE] (retryable: nothing was complete)', async () => {
    const ai = new FakeAi().streamFault('truncate');
    const error = await rejection(answerOf(new WorkersAIChatModel(ai, { resilience: fastResilience() }), MESSAGES));
    expect(error).toMatchObject({ code: 'provider_error', retryable: true });
  });

  it('fails a stream that stalls with provider_timeout', async () => {
    const ai = new FakeAi().streamFault('stall');
    const error = await rejection(answerOf(new WorkersAIChatModel(ai, { resilience: fastResilience() }), MESSAGES));
    expect(error).toMatchObject({ code: 'provider_timeout', retryable: true });
  });

  it('reads models that stream in OpenAI format', async () => {
    const ai = new FakeAi();
    const model = new WorkersAIChatModel(ai, { model: '@cf/zai-org/glm-4.7-flash', resilience: fastResilience() });
    const { answer } = await answerOf(model, MESSAGES);
    expect(answer).toContain('paraffin in a pressure lamp [1]');
  });

  it('reports an unknown model as misconfigured', async () => {
    const ai = new FakeAi();
    const model = new WorkersAIChatModel(ai, { model: '@cf/meta/llama-3.1-8b-instruct', resilience: fastResilience() });
    const error = await rejection(answerOf(model, MESSAGES));
    expect(error).toMatchObject({ code: 'misconfigured', retryable: false });
  });
});

describe('WorkersAIReranker', () => {
  const texts = ['A fog signal sounds in thick weather.', 'Tides turn twice a day.', 'The lighthouse burns paraffin: the lighthouse lamp burns bright.'];

  it('returns the scores in the order the passages were given, though the service sorts them', async () => {
    const ai = new FakeAi();
    const reranker = new WorkersAIReranker(ai, { resilience: fastResilience() });
    expect(reranker.model).toBe('@cf/baai/bge-reranker-base');
    const scores = await reranker.score('what does the lighthouse burn', texts);
    expect(ai.calls[0]?.inputs).toEqual({ query: 'what does the lighthouse burn', contexts: texts.map((text) => ({ text })), top_k: 3 });
    const raw = (await ai.run('@cf/baai/bge-reranker-base', ai.calls[0]?.inputs as Record<string, unknown>)) as {
      response: { id: number; score: number }[];
    };
    expect(raw.response.map((r) => r.id)).not.toEqual([0, 1, 2]); // best first, not input order
    expect(scores).toEqual([0, 1, 2].map((id) => raw.response.find((r) => r.id === id)?.score));
    expect(Math.max(...scores)).toBe(scores[2]);
  });

  it('scores nothing for no passages, and refuses more than its batch', async () => {
    const ai = new FakeAi();
    const reranker = new WorkersAIReranker(ai, { resilience: fastResilience() });
    expect(await reranker.score('q', [])).toEqual([]);
    expect((await rejection(reranker.score('q', new Array(101).fill('t')))).code).toBe('internal');
    expect(ai.calls).toHaveLength(0);
  });

  it('rejects a response that leaves a passage unscored', async () => {
    const ai = new FakeAi().respondNext({ response: [{ id: 0, score: 0.9 }, { id: 2, score: 0.1 }] });
    const error = await rejection(new WorkersAIReranker(ai, { resilience: fastResilience() }).score('q', texts));
    expect(error).toMatchObject({ code: 'provider_error', retryable: false });
  });
});
