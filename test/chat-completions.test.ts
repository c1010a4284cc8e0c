import { describe, expect, it } from 'vitest';
import { NO_ANSWER } from '../src/generation/prompt';
import { postJson, uploadText, waitUntilSettled } from './helpers';

const NAMESPACE = 'openai-compat';

describe('POST /v1/chat/completions (OpenAI format)', () => {
  it('answers in OpenAI chat.completion shape, citing the indexed document', async () => {
    const doc = await uploadText({ text: 'Sourdough rises because wild yeast ferments the flour.', title: 'Bread', namespace: NAMESPACE });
    await waitUntilSettled(doc.id);
    const response = await postJson('/v1/chat/completions', {
      model: 'extractive',
      namespace: NAMESPACE,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Why does sourdough rise?' }] },
      ],
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      object: string;
      id: string;
      choices: { index: number; message: { role: string; content: string }; finish_reason: string }[];
      citations: { number: number; documentId: string }[];
    };
    expect(body.object).toBe('chat.completion');
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant' }, finish_reason: 'stop' });
    expect(body.choices[0]?.message.content).toMatch(/wild yeast.*\[1\]/);
    expect(body.citations[0]).toMatchObject({ number: 1, documentId: doc.id });
  });

  it('streams chat.completion.chunk events ending with [DONE]', async () => {
    const response = await postJson('/v1/chat/completions', {
      stream: true,
      namespace: NAMESPACE,
      messages: [{ role: 'user', content: 'What ferments the flour in sourdough?' }],
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events = (await response.text()).split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((data) => JSON.parse(data));
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.at(-1).choices[0].finish_reason).toBe('stop');
    const content = chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join('');
    expect(content).toContain('wild yeast');
  });

  it('says nothing was found, citing nothing, when no passage matches (generation’s no-answer rule)', async () => {
    const response = await postJson('/v1/chat/completions', {
      namespace: 'openai-compat-empty',
      messages: [{ role: 'user', content: 'Why does sourdough rise?' }],
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { model: string; choices: { message: { content: string } }[]; citations: unknown[] };
    expect(body.model).toBe('extractive');
    expect(body.choices[0]?.message.content).toBe(NO_ANSWER);
    expect(body.citations).toEqual([]);
  });

  it('refuses a conversation without a user message, in the engine error shape', async () => {
    const response = await postJson('/v1/chat/completions', { messages: [{ role: 'system', content: 'hi' }] });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('bad_request');
  });
});
