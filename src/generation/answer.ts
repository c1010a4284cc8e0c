import type { ChatMessage, ChatRequest } from '../domain/types';
import type { Passage, SearchRequest } from '../retrieval/search';
import { search } from '../retrieval/search';
import type { Services } from '../services';
import { guardAnswer } from './answer-guard';

export interface Citation {
  /** The number used in the answer, [1] → 1. */
  number: number;
  passageId: string;
  documentId: string;
  title: string;
  page: number | null;
  headings: string[] | null;
}

export interface AnswerStream {
  passages: Passage[];
  /** The answer in pieces as the model produces them, filtered by guardAnswer. */
  pieces: AsyncIterable<string>;
}

/**
 * Retrieves passages for the last user message and starts the chat model on them. The pieces
 * are filtered (answer-guard.ts): citations of passages not given and, per ANSWER_LINKS,
 * links and images are neutralised here, whichever model answered.
 */
export async function startAnswer(
  services: Services,
  messages: ChatMessage[],
  retrieval: Omit<SearchRequest, 'query'>,
): Promise<AnswerStream> {
  const lastUser = messages.findLastIndex((m) => m.role === 'user');
  const question = messages[lastUser]?.content ?? '';
  const passages = await search(services, { ...retrieval, query: question });
  const request: ChatRequest = {
    question,
    // Earlier turns; a client's system message sent after the question still instructs.
    history: messages.filter((m, i) => i < lastUser || (i > lastUser && m.role === 'system')),
    passages: passages.map((p) => ({ text: p.text, title: p.title })),
  };
  const pieces = guardAnswer(services.chat.stream(request), request.passages, services.config.ANSWER_LINKS);
  return { passages, pieces };
}

/** The passages an answer cites, in order of first citation; numbers that point nowhere are dropped. */
export function citationsOf(answer: string, passages: Passage[]): Citation[] {
  const cited = new Set<number>();
  for (const match of answer.matchAll(/\[(\d+)\]/g)) cited.add(Number(match[1]));
  return [...cited]
    .filter((n) => n >= 1 && n <= passages.length)
    .map((n) => {
      const p = passages[n - 1] as Passage;
      return { number: n, passageId: p.id, documentId: p.documentId, title: p.title, page: p.page, headings: p.headings };
    });
}
