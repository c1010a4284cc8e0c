import { describe, expect, it } from 'vitest';
import { ExtractiveAnswerer, splitSentences } from '../src/generation/extractive-answerer';
import { NO_ANSWER } from '../src/generation/prompt';

async function answer(question: string, texts: string[]): Promise<string> {
  let out = '';
  for await (const piece of new ExtractiveAnswerer().stream({ question, history: [], passages: texts.map((text) => ({ text, title: 't' })) })) {
    out += piece;
  }
  return out;
}

describe('extractive answerer', () => {
  it('splits sentences at full stops and paragraph breaks, never quoting Markdown headings', () => {
    expect(splitSentences('# Lighthouse\nThe lamp burns paraffin. It turns.\n\nFog horn sounds')).toEqual([
      'The lamp burns paraffin.',
      'It turns.',
      'Fog horn sounds',
    ]);
    expect(splitSentences('line one\nstill the same sentence.')).toEqual(['line one still the same sentence.']);
  });

  it('quotes the sentences that match the question and cites their passages', async () => {
    const text = await answer('What does the lamp burn?', [
      'Keepers polished brass every morning.',
      '## Lamps\nThe lamp burns paraffin oil. Wicks are trimmed at dusk.',
    ]);
    expect(text).toBe('The lamp burns paraffin oil. [2]');
  });

  it('says so when nothing matches, or there is nothing to quote', async () => {
    expect(await answer('Who won the match?', ['Basalt columns form as lava cools.'])).toBe(NO_ANSWER);
    expect(await answer('Who won the match?', [])).toBe(NO_ANSWER);
    expect(await answer('?!', ['Basalt columns form as lava cools.'])).toBe(NO_ANSWER);
  });

  it('streams one piece per quoted sentence, each citing its passage', async () => {
    const pieces: string[] = [];
    const request = { question: 'What does the lamp burn and when are wicks trimmed?', history: [], passages: [{ title: 'Lamps', text: 'The lamp burns paraffin oil. Wicks are trimmed at dusk.' }] };
    for await (const piece of new ExtractiveAnswerer().stream(request)) pieces.push(piece);
    expect(pieces).toEqual(['The lamp burns paraffin oil. [1]', ' Wicks are trimmed at dusk. [1]']);
  });
});
