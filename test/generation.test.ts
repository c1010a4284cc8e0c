import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { AppError, type ChatMessage, type ChatRequest, type CompletionModel, type ContextPassage } from '../src/domain';
import { generateAnswer } from '../src/generation/answer';
import { PROMPT_SHARE } from '../src/generation/context-window';
import { NO_ANSWER, SYSTEM_PROMPT } from '../src/generation/prompt';
import { OpenAIChatModel } from '../src/providers/openai';
import { WorkersAIChatModel } from '../src/providers/workers-ai-chat';
import { countTokens } from '../src/text/tokens';
import { FakeAi } from '../fakes/workers-ai';
import { FAKE_OPENAI_KEY, type RecordedRequest } from './fakes/openai-server';

/** A model that records the messages it is sent and answers `reply` word by word. */
class SpyModel implements CompletionModel {
  readonly model = 'spy';
  readonly sent: ChatMessage[][] = [];

  constructor(
    readonly contextWindow = 8_000,
    readonly maxTokens = 1_000,
    readonly reply = 'It burns paraffin [1].',
  ) {}

  async *complete(messages: ChatMessage[]): AsyncIterable<string> {
    this.sent.push(messages);
    for (const piece of this.reply.match(/\s*\S+/g) ?? []) yield piece;
  }
}

const REQUEST: ChatRequest = {
  question: 'What does the lighthouse burn?',
  history: [],
  passages: [
    { title: 'Lighthouse', text: 'The lighthouse burns paraffin in a pressure lamp. It was lit in 1871.' },
    { title: 'Fog signal', text: 'A fog signal sounds every thirty seconds in thick weather.' },
  ],
};

/** About 450 estimated tokens of text that names its document. */
const page = (n: number) => Array.from({ length: 450 }, (_, i) => `p${n}w${i}`).join(' ');
const docs = (count: number): ContextPassage[] => Array.from({ length: count }, (_, i) => ({ title: `Doc ${i + 1}`, text: page(i + 1) }));

async function collect(pieces: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const piece of pieces) out.push(piece);
  return out;
}

const tokensOf = (messages: ChatMessage[]) => messages.reduce((sum, m) => sum + countTokens(m.content), 0);
/** [number, document] of each passage in the prompt, in order. */
const passagesIn = (messages: ChatMessage[]) =>
  [...(messages.at(-1)?.content ?? '').matchAll(/^<passage number="(\d+)" title="Doc (\d+)">$/gm)].map((m) => [Number(m[1]), Number(m[2])]);

describe('generation fits the prompt to the model’s context window', () => {
  it('drops the lowest-ranked passages first, so the numbers of those kept do not change', async () => {
    const spy = new SpyModel();
    await collect(generateAnswer(spy, { question: 'q?', history: [], passages: docs(50) }, 'keep'));
    const [messages = []] = spy.sent;
    const kept = passagesIn(messages);
    expect(kept.length).toBeGreaterThan(3);
    expect(kept.length).toBeLessThan(50);
    expect(kept.every(([n, doc], i) => n === i + 1 && doc === n)).toBe(true);
    expect(tokensOf(messages)).toBeLessThanOrEqual(8_000 * PROMPT_SHARE - 1_000);
  });

  it('keeps the best passage, cut to fit, when even it is too long', async () => {
    const spy = new SpyModel();
    const long = Array.from({ length: 20 }, (_, i) => page(i)).join('\n\n');
    await collect(generateAnswer(spy, { question: 'q?', history: [], passages: [{ title: 'Doc 1', text: long }, ...docs(3).slice(1)] }, 'keep'));
    const [messages = []] = spy.sent;
    expect(passagesIn(messages)).toEqual([[1, 1]]);
    const quoted = /<passage number="1" title="Doc 1">\n([\s\S]*)\n<\/passage>/.exec(messages.at(-1)?.content ?? '')?.[1] ?? '';
    expect(quoted.length).toBeGreaterThan(1_000);
    expect(long.startsWith(quoted)).toBe(true);
    expect(tokensOf(messages)).toBeLessThanOrEqual(8_000 * PROMPT_SHARE - 1_000);
  });

  it('drops the oldest turns of a long conversation next, never the client’s instructions', async () => {
    const spy = new SpyModel();
    const turns: ChatMessage[] = Array.from({ length: 40 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i} ${page(i)}` }));
    const history: ChatMessage[] = [{ role: 'system', content: 'Answer in French.' }, ...turns];
    await collect(generateAnswer(spy, { ...REQUEST, history }, 'keep'));
    const [messages = []] = spy.sent;
    expect(messages[0]?.content).toContain('<client_instructions>\nAnswer in French.\n</client_instructions>');
    const kept = messages.slice(1, -1).map((m) => m.content);
    expect(kept.length).toBeGreaterThan(1);
    expect(kept.length).toBeLessThan(40);
    expect(kept).toEqual(turns.slice(-kept.length).map((m) => m.content));
    expect(passagesIn(messages)).toEqual([]); // REQUEST's passages are not Doc n, but they are all there:
    expect([...(messages.at(-1)?.content ?? '').matchAll(/^<passage number="(\d+)"/gm)].map((m) => m[1])).toEqual(['1', '2']);
  });

  it('fits the prompt of every chat model to the window that model states', async () => {
    const ai = new FakeAi();
    ai.chatReply = () => 'Quoted [1].'; // short: the fakes' own reply would quote every passage
    await collect(generateAnswer(new WorkersAIChatModel(ai, { resilience: { retries: 0, timeoutMs: 2_000 } }), { question: 'q?', history: [], passages: docs(80) }, 'keep'));
    const toWorkersAi = ai.calls[0]?.inputs.messages as ChatMessage[];
    expect(passagesIn(toWorkersAi).length).toBeLessThan(80);
    expect(tokensOf(toWorkersAi)).toBeLessThanOrEqual(24_000 * PROMPT_SHARE - 1024);

    const scenario = crypto.randomUUID();
    const openai = new OpenAIChatModel({
      apiKey: FAKE_OPENAI_KEY,
      baseUrl: 'http://openai.fake/v1',
      model: 'gpt-4', // 8,192 tokens
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set('x-test-scenario', scenario);
        headers.set('x-fake-reply', 'Quoted [1].');
        return env.FAKE_OPENAI.fetch(input, { ...init, headers });
      },
      resilience: { retries: 0, timeoutMs: 2_000 },
    });
    await collect(generateAnswer(openai, { question: 'q?', history: [], passages: docs(80) }, 'keep'));
    const log = (await (await env.FAKE_OPENAI.fetch('http://openai.fake/__requests', { headers: { 'x-test-scenario': scenario } })).json()) as RecordedRequest[];
    const toOpenAI = (log[0]?.body as { messages: ChatMessage[] }).messages;
    expect(passagesIn(toOpenAI).length).toBeGreaterThan(3);
    expect(passagesIn(toOpenAI).length).toBeLessThan(passagesIn(toWorkersAi).length);
    expect(tokensOf(toOpenAI)).toBeLessThanOrEqual(8_192 * PROMPT_SHARE - 1024);
  });

  it('refuses, before calling the model, an answer length that leaves too little of the window for passages', () => {
    const spy = new SpyModel(24_000, 20_000);
    let error: unknown;
    try {
      generateAnswer(spy, REQUEST, 'keep');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'misconfigured', message: expect.stringMatching(/LLM_MAX_TOKENS \(20000\)/) });
    expect(spy.sent).toEqual([]);
  });
});

describe('generation’s no-answer rule', () => {
  it('says NO_ANSWER without calling the model when there are no passages', async () => {
    const spy = new SpyModel();
    expect(await collect(generateAnswer(spy, { ...REQUEST, passages: [] }, 'keep'))).toEqual([NO_ANSWER]);
    expect(spy.sent).toEqual([]);
    const ai = new FakeAi();
    expect(await collect(generateAnswer(new WorkersAIChatModel(ai), { ...REQUEST, passages: [] }, 'strip'))).toEqual([NO_ANSWER]);
    expect(ai.calls).toEqual([]);
  });

  it('says the same without a model (CHAT_PROVIDER=extractive)', async () => {
    expect(await collect(generateAnswer({ model: 'extractive' }, { ...REQUEST, passages: [] }, 'keep'))).toEqual([NO_ANSWER]);
  });

  it('is the answer the prompt tells a model to give', () => {
    expect(SYSTEM_PROMPT).toMatch(/say that you could not find it in the documents/);
    expect(NO_ANSWER).toMatch(/could not find an answer .* documents/);
  });
});

describe('generation chooses the answerer and checks its citations', () => {
  it('quotes the passages when there is no model (CHAT_PROVIDER=extractive)', async () => {
    const pieces = await collect(generateAnswer({ model: 'extractive' }, REQUEST, 'keep'));
    expect(pieces.join('')).toBe('The lighthouse burns paraffin in a pressure lamp. [1]');
  });

  it('sends a model the prompt and streams its completion', async () => {
    const spy = new SpyModel();
    const pieces = await collect(generateAnswer(spy, REQUEST, 'keep'));
    expect(pieces.join('')).toBe('It burns paraffin [1].');
    expect(spy.sent[0]?.[0]).toEqual({ role: 'system', content: SYSTEM_PROMPT });
    expect(spy.sent[0]?.at(-1)?.content).toMatch(/^<documents>\n<passage number="1" title="Lighthouse">[\s\S]*Question: What does the lighthouse burn\?$/);
  });

  it('drops citations of passages the model was not given, the ones fitting left out included', async () => {
    const spy = new SpyModel(8_000, 1_000, 'Paraffin [1], fog [2], and [30]. Also [99].');
    const answer = (await collect(generateAnswer(spy, { question: 'q?', history: [], passages: docs(50) }, 'keep'))).join('');
    expect(passagesIn(spy.sent[0] ?? []).length).toBeLessThan(30);
    expect(answer).toBe('Paraffin [1], fog [2], and. Also.');
  });
});
