import type { ChatMessage, ChatModel, ChatRequest, ContextPassage } from '../domain';
import type { Passage, SearchRequest } from '../retrieval/search';
import { search } from '../retrieval/search';
import type { Services } from '../services';
import { type AnswerLinks, guardAnswer } from './answer-guard';
import { fitPrompt } from './context-window';
import { ExtractiveAnswerer } from './extractive-answerer';
import { NO_ANSWER } from './prompt';

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
  /** The answer in pieces as the answerer produces them, filtered by guardAnswer. */
  pieces: AsyncIterable<string>;
}

/** Retrieves passages for the last user message and starts the answer from them (generateAnswer). */
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
  return { passages, pieces: generateAnswer(services.chat, request, services.config.ANSWER_LINKS) };
}

/**
 * The answer to `request` in pieces, decided here for every chat provider:
 * - no passages: NO_ANSWER, without calling anything (a model told to say so would, at a price);
 * - no model (CHAT_PROVIDER=extractive): the extractive answerer quotes the passages. It needs
 *   the question and passages, not a prompt, so it is called with the request itself;
 * - a model: the prompt (prompt.ts), fitted to its window (context-window.ts), completed by it.
 * Whoever answered, the pieces are filtered (answer-guard.ts): citations of passages the answerer
 * was not given go and, per `links`, links and images are neutralised.
 */
export function generateAnswer(chat: ChatModel, request: ChatRequest, links: AnswerLinks): AsyncIterable<string> {
  const { pieces, given } = draft(chat, request);
  return guardAnswer(pieces, given, links);
}

function draft(chat: ChatModel, request: ChatRequest): { pieces: AsyncIterable<string>; given: ContextPassage[] } {
  if (request.passages.length === 0) return { pieces: once(NO_ANSWER), given: [] };
  if (!('complete' in chat)) return { pieces: EXTRACTIVE.stream(request), given: request.passages }; // NoChatModel
  // Fitted before the call, so a misconfigured window fails the request, not the stream.
  const prompt = fitPrompt(request, chat);
  return { pieces: chat.complete(prompt.messages), given: prompt.passages };
}

const EXTRACTIVE = new ExtractiveAnswerer();

async function* once(text: string): AsyncIterable<string> {
  yield text;
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
