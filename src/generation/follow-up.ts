import type { ChatMessage, ChatModel } from '../domain';
import { terms, words } from '../text/analyze';

/**
 * The query a conversation's last question is searched by. A follow-up ("and how is it
 * installed?") names nothing it is about; searched alone it finds whatever mentions
 * installing. So before retrieval it is made standalone:
 * - with a chat model: the model rewrites it, given the conversation (`rewriteWithModel`);
 * - without one (the offline default), or when the model fails: the question plus the key
 *   terms of the earlier user turns that it lacks, most recent turn first (`carryTerms`).
 * A conversation of one question is searched as it is.
 */
export async function standaloneQuery(chat: ChatModel, messages: ChatMessage[]): Promise<string> {
  const lastUser = messages.findLastIndex((m) => m.role === 'user');
  const question = messages[lastUser]?.content ?? '';
  const earlier = messages.slice(0, Math.max(lastUser, 0)).filter((m) => m.role === 'user' || m.role === 'assistant');
  if (!earlier.some((m) => m.role === 'user')) return question;
  if ('complete' in chat) {
    try {
      const rewritten = await rewriteWithModel(chat, earlier, question);
      if (rewritten) return rewritten;
    } catch (error) {
      console.warn('follow-up: the chat model could not rewrite the question; carrying terms instead', error);
    }
  }
  return carryTerms(earlier, question);
}

/** Terms carried from earlier turns at most: enough to name a topic, not to drown the question. */
const CARRIED_TERMS = 6;

/**
 * The question followed by the earlier user turns' distinct words that are not stopwords and
 * not already in it, the latest turn's first, at most CARRIED_TERMS.
 */
export function carryTerms(earlier: ChatMessage[], question: string): string {
  const have = new Set(terms(question));
  const carried: string[] = [];
  for (const turn of earlier.filter((m) => m.role === 'user').reverse()) {
    for (const word of words(turn.content)) {
      const term = terms(word)[0];
      if (!term || have.has(term)) continue;
      have.add(term);
      carried.push(word);
      if (carried.length === CARRIED_TERMS) return `${question} ${carried.join(' ')}`;
    }
  }
  return carried.length ? `${question} ${carried.join(' ')}` : question;
}

const REWRITE_INSTRUCTIONS =
  'Rewrite the last question of the conversation as one standalone search query that names what it refers to. ' +
  'Answer with the query only, on one line, without quotes or explanation. Do not answer the question.';

/** The model's standalone query, or '' when it answered nothing usable. */
async function rewriteWithModel(chat: Extract<ChatModel, { complete: unknown }>, earlier: ChatMessage[], question: string): Promise<string> {
  const transcript = [...earlier.slice(-6), { role: 'user' as const, content: question }]
    .map((m) => `${m.role}: ${m.content.slice(0, 2_000)}`)
    .join('\n');
  let text = '';
  for await (const piece of chat.complete(
    [
      { role: 'system', content: REWRITE_INSTRUCTIONS },
      { role: 'user', content: `<conversation>\n${transcript}\n</conversation>` },
    ],
    { temperature: 0, maxTokens: 64 },
  )) {
    text += piece;
  }
  const line = text.trim().split('\n')[0]?.replace(/^["']|["']$/g, '').trim() ?? '';
  // A query far longer than the question is an answer, not a rewrite.
  return line.length > 0 && line.length <= 4 * question.length + 200 ? line : '';
}
