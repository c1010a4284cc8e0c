import { describe, expect, it } from 'vitest';
import type { ChatMessage, CompletionModel } from '../src/domain';
import { carryTerms, standaloneQuery } from '../src/generation/follow-up';
import { postJson, uploadText, waitUntilSettled } from './helpers';

const conversation = (first: string, answer: string, second: string): ChatMessage[] => [
  { role: 'user', content: first },
  { role: 'assistant', content: answer },
  { role: 'user', content: second },
];

/** A chat model that answers every prompt with `reply` (or fails), recording what it was asked. */
function model(reply: string | Error) {
  const asked: ChatMessage[][] = [];
  const chat: CompletionModel = {
    model: 'fake',
    contextWindow: 8_000,
    maxTokens: 256,
    async *complete(messages) {
      asked.push(messages);
      if (reply instanceof Error) throw reply;
      yield reply;
    },
  };
  return { chat, asked };
}

describe('follow-up questions are searched made standalone', () => {
  it('offline, by carrying the earlier user turns’ key terms, latest first', () => {
    const earlier: ChatMessage[] = [
      { role: 'user', content: 'Tell me about the Quokkadb storage engine.' },
      { role: 'assistant', content: 'Quokkadb keeps pages in a log.' },
    ];
    expect(carryTerms(earlier, 'How do I install it?')).toBe('How do I install it? tell quokkadb storage engine');
    // Terms already in the question are not repeated; stopwords never carried.
    expect(carryTerms(earlier, 'Is the Quokkadb engine fast?')).toBe('Is the Quokkadb engine fast? tell storage');
  });

  it('leaves a first question as it is', async () => {
    expect(await standaloneQuery(model('unused').chat, [{ role: 'user', content: 'How do I install it?' }])).toBe('How do I install it?');
  });

  it('with a chat model, by its rewrite, given the conversation; by carried terms when it fails', async () => {
    const messages = conversation('What is Quokkadb?', 'A storage engine.', 'How do I install it?');
    const good = model('install Quokkadb storage engine\n(extra lines are ignored)');
    expect(await standaloneQuery(good.chat, messages)).toBe('install Quokkadb storage engine');
    expect(good.asked[0]?.at(-1)?.content).toMatch(/user: What is Quokkadb\?\nassistant: A storage engine\.\nuser: How do I install it\?/);
    expect(await standaloneQuery(model(new Error('down')).chat, messages)).toBe('How do I install it? quokkadb');
  });

  it('finds the document the conversation is about, which the follow-up alone misses', async () => {
    const namespace = `follow${crypto.randomUUID().slice(0, 8)}`;
    const other = await uploadText({
      namespace,
      title: 'Wombatdb',
      text: 'How do I install Wombatdb? To install it, run the installer; install it again to upgrade. Install notes for every platform.',
    });
    const about = await uploadText({ namespace, title: 'Quokkadb', text: 'Quokkadb is a storage engine for small devices. Installing Quokkadb: copy the library into your project.' });
    await waitUntilSettled(other.id);
    await waitUntilSettled(about.id);
    const top = async (body: Record<string, unknown>) => {
      const response = await postJson(body.messages ? '/v1/chat' : '/v1/query', { ...body, namespace, topK: 1 });
      return (await response.json()) as { passages: { documentId: string }[]; searchQuery?: string };
    };
    // Alone, the follow-up finds the document that talks most of installing.
    expect((await top({ query: 'How do I install it?' })).passages[0]?.documentId).toBe(other.id);
    // In its conversation, it is searched with what the conversation is about.
    const answer = await top({ messages: conversation('What is Quokkadb?', 'A storage engine for small devices.', 'How do I install it?') });
    expect(answer.searchQuery).toBe('How do I install it? quokkadb');
    expect(answer.passages[0]?.documentId).toBe(about.id);
  });
});
