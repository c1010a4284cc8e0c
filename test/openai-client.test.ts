import { exports } from 'cloudflare:workers';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { uploadText, waitUntilSettled } from './helpers';

/**
 * The official `openai` client, unmodified, against the engine's OpenAI-compatible routes: its
 * requests go to the engine's fetch handler, as they would over the network.
 */
const NAMESPACE = 'openai-client';
const client = new OpenAI({
  apiKey: 'unused: auth is off in the tests',
  baseURL: 'http://rag.test/v1',
  fetch: (url: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(url, init)),
  maxRetries: 0,
});
/** The engine's retrieval fields, which the client passes through as extra body fields. */
const retrieval = { namespace: NAMESPACE } as Record<string, unknown>;
let documentId: string;

beforeAll(async () => {
  const doc = await uploadText({
    text: 'Lighthouse keepers trimmed the wick every four hours. The lamp burned whale oil until 1880, then kerosene.',
    title: 'Lighthouse log',
    namespace: NAMESPACE,
  });
  documentId = doc.id;
  await waitUntilSettled(doc.id);
});

describe('the official openai client', () => {
  it('lists the models it can ask for, and retrieves one', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual(['extractive']);
    expect(await client.models.retrieve('extractive')).toMatchObject({ id: 'extractive', object: 'model' });
  });

  it('gets a cited answer', async () => {
    const completion = await client.chat.completions.create({
      model: 'extractive',
      messages: [{ role: 'user', content: 'What did the lamp burn until 1880?' }],
      ...retrieval,
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.choices[0]?.message.content).toMatch(/whale oil.*\[1\]/s);
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage?.total_tokens).toBe((completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0));
    expect((completion as unknown as { citations: { documentId: string }[] }).citations[0]?.documentId).toBe(documentId);
  });

  it('streams the answer in chunks, with the usage last when asked', async () => {
    const stream = await client.chat.completions.create({
      model: 'extractive',
      messages: [{ role: 'user', content: 'What did the lamp burn until 1880?' }],
      stream: true,
      stream_options: { include_usage: true },
      ...retrieval,
    });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.choices[0]) finishes.push(chunk.choices[0].finish_reason);
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toMatch(/whale oil.*\[1\]/s);
    expect(finishes.at(-1)).toBe('stop');
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('honours max_tokens, ending with finish_reason "length"', async () => {
    const completion = await client.chat.completions.create({
      model: 'extractive',
      messages: [{ role: 'user', content: 'What did the lamp burn until 1880, and what did keepers trim?' }],
      max_tokens: 3,
      temperature: 0,
      ...retrieval,
    });
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(3);
    expect(completion.choices[0]?.message.content?.length).toBeGreaterThan(0);
  });

  it('gets errors in OpenAI’s shape, as the client’s error classes', async () => {
    const unknown = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).message).toMatch(/gpt-4o.*GET \/v1\/models/);
    expect((unknown as InstanceType<typeof OpenAI.APIError>).type).toBe('invalid_request_error');

    const bad = await client.chat.completions.create({ model: 'extractive', messages: [{ role: 'assistant', content: 'no question' }] }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.APIError>).message).toMatch(/at least one user message/);
  });
});
