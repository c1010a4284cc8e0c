import { env } from 'cloudflare:workers';
import { ExtractiveAnswerer } from '../src/generation/extractive-answerer';
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
import { FakeAi } from './fakes/workers-ai';

/**
 * One contract suite per provider interface, run against every implementation: the offline
 * ones, Workers AI on its fake binding (test/fakes/workers-ai.ts) and OpenAI on its fake
 * server (test/fakes/openai-server.ts). Each adapter's own behaviour (limits, retries, error
 * mapping) is tested in its own file; the vector index contract runs in vector-index-contract.test.ts.
 */

/** Short timeouts, and backoff that records instead of sleeping. */
function fastResilience(): ResilienceOptions {
  return { retries: 2, timeoutMs: 2_000, baseDelayMs: 1, maxDelayMs: 4, sleep: async () => {} };
}

/** Options for an OpenAI adapter talking to the fake server, in a scenario of its own. */
function fakeOpenAI(): OpenAIOptions {
  const scenario = crypto.randomUUID();
  return {
    apiKey: FAKE_OPENAI_KEY,
    baseUrl: 'http://openai.fake/v1',
    fetch: (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('x-test-scenario', scenario);
      return env.FAKE_OPENAI.fetch(input, { ...init, headers });
    },
    resilience: fastResilience(),
  };
}

embeddingProviderContract('LocalEmbedder', () => new LocalEmbedder({ dimensions: 384 }));
embeddingProviderContract('WorkersAIEmbedder on FakeAi', () => new WorkersAIEmbedder(new FakeAi(), { resilience: fastResilience() }));
embeddingProviderContract('OpenAIEmbedder on the fake OpenAI server', () => new OpenAIEmbedder(fakeOpenAI()));

chatModelContract('ExtractiveAnswerer', () => new ExtractiveAnswerer());
chatModelContract('WorkersAIChatModel on FakeAi', () => new WorkersAIChatModel(new FakeAi(), { resilience: fastResilience() }));
chatModelContract('OpenAIChatModel on the fake OpenAI server', () => new OpenAIChatModel(fakeOpenAI()));

rerankerContract('WorkersAIReranker on FakeAi', () => {
  const ai = new FakeAi();
  return { reranker: new WorkersAIReranker(ai, { resilience: fastResilience() }), calls: () => ai.calls.length };
});
