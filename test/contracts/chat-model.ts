import { describe, expect, it } from 'vitest';
import { AppError, type ChatMessage, type CompletionModel } from '../../src/domain';
import { buildChatMessages } from '../../src/generation/prompt';

/** The engine's prompt (generation/prompt.ts) for a question two passages can answer. */
export const MESSAGES: ChatMessage[] = buildChatMessages({
  question: 'What fuel does the lighthouse burn?',
  history: [],
  passages: [
    { title: 'Lighthouse', text: 'The lighthouse burns paraffin in a pressure lamp. The keeper trims it nightly.' },
    { title: 'Fog signal', text: 'A fog signal sounds every thirty seconds in thick weather.' },
  ],
});

/** What the backend is told to do on the next call (each implementation scripts it on its own fake). */
export type ChatFault =
  /** Answer with a stream that carries no text. */
  | 'empty'
  /** Answer with a stream the adapter cannot read. */
  | 'malformed'
  /** Fail the first call with an error worth retrying (capacity, HTTP 429), then answer. */
  | 'transient';

export interface ChatModelUnderTest {
  model: CompletionModel;
  /** Calls that reached the backend so far. */
  calls(): Promise<number>;
}

export async function answerOf(model: CompletionModel, messages: ChatMessage[]): Promise<{ pieces: string[]; answer: string }> {
  const pieces: string[] = [];
  for await (const piece of model.complete(messages)) pieces.push(piece);
  return { pieces, answer: pieces.join('') };
}

async function failureOf(model: CompletionModel): Promise<AppError> {
  const error = await answerOf(model, MESSAGES).then(() => new Error('expected the completion to fail'), (e: unknown) => e);
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

/**
 * What every CompletionModel promises generation/: it streams the completion of the messages in
 * pieces, states its window, retries before the stream starts, and fails alike when the backend
 * answers nothing or garbage (a retryable provider_error, never an empty or partial "answer").
 */
export function chatModelContract(name: string, make: (fault?: ChatFault) => ChatModelUnderTest): void {
  describe(`${name} keeps the CompletionModel contract`, () => {
    it('names its model and states its window and longest answer', () => {
      const { model } = make();
      expect(model.model).toMatch(/\S/);
      expect(model.maxTokens).toBeGreaterThan(0);
      expect(model.contextWindow).toBeGreaterThan(model.maxTokens);
    });

    it('streams the completion in pieces that join into the answer', async () => {
      const { model, calls } = make();
      const { pieces, answer } = await answerOf(model, MESSAGES);
      expect(pieces.length).toBeGreaterThan(1);
      expect(pieces.every((p) => typeof p === 'string' && p !== '')).toBe(true);
      // The fakes quote and cite the passages of the prompt they were sent.
      expect(answer).toMatch(/paraffin in a pressure lamp \[1\]/);
      expect(await calls()).toBe(1);
    });

    it('retries a transient failure before the stream starts', async () => {
      const { model, calls } = make('transient');
      const { answer } = await answerOf(model, MESSAGES);
      expect(answer).toContain('[1]');
      expect(await calls()).toBe(2);
    });

    it('fails an answer with no text with a retryable provider_error', async () => {
      const { model } = make('empty');
      expect(await failureOf(model)).toMatchObject({ code: 'provider_error', retryable: true, status: 502 });
    });

    it('fails a malformed answer with the same error', async () => {
      const { model } = make('malformed');
      expect(await failureOf(model)).toMatchObject({ code: 'provider_error', retryable: true, status: 502 });
    });
  });
}
