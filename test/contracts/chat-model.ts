import { describe, expect, it } from 'vitest';
import type { ChatModel, ChatRequest } from '../../src/domain/types';

const REQUEST: ChatRequest = {
  question: 'What fuel does the lighthouse burn?',
  history: [],
  passages: [
    { title: 'Lighthouse', text: 'The lighthouse burns paraffin in a pressure lamp. The keeper trims it nightly.' },
    { title: 'Fog signal', text: 'A fog signal sounds every thirty seconds in thick weather.' },
  ],
};

export async function answerOf(model: ChatModel, request: ChatRequest): Promise<{ pieces: string[]; answer: string }> {
  const pieces: string[] = [];
  for await (const piece of model.stream(request)) pieces.push(piece);
  return { pieces, answer: pieces.join('') };
}

/** What every ChatModel promises: the chat route streams its pieces and turns [n] into citations. */
export function chatModelContract(name: string, make: () => ChatModel): void {
  describe(`${name} keeps the ChatModel contract`, () => {
    it('names its model', () => {
      expect(make().model).toMatch(/\S/);
    });

    it('streams pieces that join into a non-empty answer', async () => {
      const { pieces, answer } = await answerOf(make(), REQUEST);
      expect(pieces.length).toBeGreaterThan(0);
      expect(pieces.every((p) => typeof p === 'string')).toBe(true);
      expect(answer.trim()).not.toBe('');
    });

    it('cites the passage that answers, and only passages that exist', async () => {
      const { answer } = await answerOf(make(), REQUEST);
      const cited = [...answer.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]));
      // Passage 1 answers the question: every implementation, model or fake, cites it.
      expect(cited).toContain(1);
      for (const n of cited) expect(n >= 1 && n <= REQUEST.passages.length).toBe(true);
    });

    it('still answers, without citations, when there are no passages', async () => {
      const { answer } = await answerOf(make(), { ...REQUEST, passages: [] });
      expect(answer.trim()).not.toBe('');
      expect(answer).not.toMatch(/\[\d+\]/);
    });
  });
}
