import { env } from 'cloudflare:workers';
import { LocalEmbedder } from '../src/providers/local-embedder';
import { OpenAIChatModel, OpenAIEmbedder, type OpenAIOptions } from '../src/providers/openai';
import type { ResilienceOptions } from '../src/providers/resilience';
import { WorkersAIChatModel } from '../src/providers/workers-ai-chat';
import { WorkersAIEmbedder } from '../src/providers/workers-ai-embedder';
import { WorkersAIReranker } from '../src/providers/workers-ai-reranker';
import { chatModelContract } from './contracts/chat-model';
import { embeddingProviderContract } from './contracts/embedding-provider';
import { rerankerContract } from './contracts/reranker';
import { FAKE_OPENAI_KEY } from './fakes/openai-server';
import { FakeAi } from '../fakes/workers-ai';

/**
 * One contract suite per provider interface, run against every implementation: the offline
 * ones, Workers AI on its fake binding (fakes/workers-ai.ts) and OpenAI on its fake server
 * (test/fakes/openai-server.ts). Each adapter's own behaviour (limits, retries, error mapping)
 * is tested in its own file; the vector index contract runs in vector-index-contract.test.ts.
 * The offline extractive answerer is no chat model (it quotes, it completes no prompt): it is
 * tested in extractive-answerer.test.ts and, as generation/ uses it, in generation.test.ts.
 */

/** Short timeouts, and backoff that records instead of sleeping. */
function fastResilience(): ResilienceOptions {
  return { retries: 2, timeoutMs: 2_000, baseDelayMs: 1, maxDelayMs: 4, sleep: async () => {} };
}

/**
 * Options for an OpenAI adapter talking to the fake server, in a scenario of its own, with extra
 * request headers for the fake (e.g. `x-fake-reply`); `requests` counts what reached it.
 */
function fakeOpenAI(extra: Record<string, string> = {}): OpenAIOptions & { requests(): Promise<number> } {
  const scenario = crypto.randomUUID();
  return {
    apiKey: FAKE_OPENAI_KEY,
    baseUrl: 'http://openai.fake/v1',
    fetch: (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('x-test-scenario', scenario);
      for (const [name, value] of Object.entries(extra)) headers.set(name, value);
      return env.FAKE_OPENAI.fetch(input, { ...init, headers });
    },
    resilience: fastResilience(),
    async requests() {
      const log = await env.FAKE_OPENAI.fetch('http://openai.fake/__requests', { headers: { 'x-test-scenario': scenario } });
      return ((await log.json()) as unknown[]).length;
    },
  };
}

embeddingProviderContract('LocalEmbedder', () => new LocalEmbedder({ dimensions: 384 }));
embeddingProviderContract('WorkersAIEmbedder on FakeAi', () => new WorkersAIEmbedder(new FakeAi(), { resilience: fastResilience() }));
embeddingProviderContract('OpenAIEmbedder on the fake OpenAI server', () => new OpenAIEmbedder(fakeOpenAI()));

chatModelContract('WorkersAIChatModel on FakeAi', (fault) => {
  const ai = new FakeAi();
  if (fault === 'empty') ai.chatReply = () => '';
  // An event cut mid-JSON, as a broken connection would leave it.
  if (fault === 'malformed') ai.respondNext(new Response('data: {"response":"Hel\n\ndata: [DONE]\n\n').body);
  if (fault === 'transient') ai.failNext(1, 'AiError: 3040: Capacity temporarily exceeded, please try again.');
  return { model: new WorkersAIChatModel(ai, { resilience: fastResilience() }), calls: async () => ai.calls.length };
});
chatModelContract('OpenAIChatModel on the fake OpenAI server', (fault) => {
  const server = fakeOpenAI(fault === 'empty' ? { 'x-fake-reply': '' } : {});
  // The fake fails the first request for a `fault-…` model, then answers as usual.
  const model = fault === 'malformed' ? 'fault-malformed' : fault === 'transient' ? 'fault-429' : undefined;
  return { model: new OpenAIChatModel({ ...server, model }), calls: server.requests };
});

rerankerContract('WorkersAIReranker on FakeAi', () => {
  const ai = new FakeAi();
  return { reranker: new WorkersAIReranker(ai, { resilience: fastResilience() }), calls: () => ai.calls.length };
});
