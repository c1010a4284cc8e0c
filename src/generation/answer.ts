import type { ChatMessage, ChatModel, ChatRequest, CompletionOptions, ContextPassage } from '../domain';
import { countTokens, truncateToTokens } from '../text/tokens';
import type { Passage, SearchRequest } from '../retrieval/search';
import { search } from '../retrieval/search';
import type { Services } from '../services';
import { type AnswerLinks, guardAnswer } from './answer-guard';
import { fitPrompt } from './context-window';
import { standaloneQuery } from './follow-up';
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
  /** What the passages were searched by: the question, made standalone when it follows others. */
  searchQuery: string;
  /** The answer in pieces as the answerer produces them, filtered by guardAnswer. */
  pieces: AsyncIterable<string>;
  /** Once `pieces` is read to its end: why it ended, and estimated tokens (text/tokens.ts). */
  outcome(): AnswerOutcome;
}

export interface AnswerOutcome {
  /** `length`: cut at the request's `maxTokens`. */
  finish: 'stop' | 'length';
  promptTokens: number;
  completionTokens: number;
}

/** Retrieves passages for the last user message and starts the answer from them (generateAnswer). */
export async function startAnswer(
  services: Services,
  messages: ChatMessage[],
  retrieval: Omit<SearchRequest, 'query'>,
  sampling: CompletionOptions = {},
): Promise<AnswerStream> {
  const lastUser = messages.findLastIndex((m) => m.role === 'user');
  const question = messages[lastUser]?.content ?? '';
  // A follow-up is searched made standalone (follow-up.ts); the model still reads the question as asked.
  const searchQuery = await standaloneQuery(services.chat, messages);
  const passages = await search(services, { ...retrieval, query: searchQuery });
  const request: ChatRequest = {
    question,
    // Earlier turns; a client's system message sent after the question still instructs.
    history: messages.filter((m, i) => i < lastUser || (i > lastUser && m.role === 'system')),
    passages: passages.map((p) => ({ text: p.text, title: p.title })),
  };
  const { pieces, given, prompt } = draft(services.chat, request, sampling);
  const answer = bounded(guardAnswer(pieces, given, services.config.ANSWER_LINKS), sampling.maxTokens);
  return {
    passages,
    searchQuery,
    pieces: answer.pieces,
    outcome: () => ({ finish: answer.cut() ? 'length' : 'stop', promptTokens: countTokens(prompt), completionTokens: countTokens(answer.text()) }),
  };
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
export function generateAnswer(chat: ChatModel, request: ChatRequest, links: AnswerLinks, sampling: CompletionOptions = {}): AsyncIterable<string> {
  const { pieces, given } = draft(chat, request, sampling);
  return bounded(guardAnswer(pieces, given, links), sampling.maxTokens).pieces;
}

/** The answerer's pieces, the passages it was given, and the text it read (for usage). */
function draft(chat: ChatModel, request: ChatRequest, sampling: CompletionOptions): { pieces: AsyncIterable<string>; given: ContextPassage[]; prompt: string } {
  const question = [...request.history.map((m) => m.content), request.question].join('\n');
  if (request.passages.length === 0) return { pieces: once(NO_ANSWER), given: [], prompt: question };
  if (!('complete' in chat)) {
    // NoChatModel: the extractive answerer reads the question and the passages.
    return { pieces: EXTRACTIVE.stream(request), given: request.passages, prompt: [question, ...request.passages.map((p) => p.text)].join('\n') };
  }
  // Fitted before the call, so a misconfigured window fails the request, not the stream.
  const prompt = fitPrompt(request, chat);
  return { pieces: chat.complete(prompt.messages, sampling), given: prompt.passages, prompt: prompt.messages.map((m) => m.content).join('\n') };
}

/**
 * The answer cut at `maxTokens` estimated tokens, whoever answered (a model also stops there
 * itself; the extractive answerer does not know the limit), with what was emitted.
 */
function bounded(pieces: AsyncIterable<string>, maxTokens: number | undefined) {
  let text = '';
  let cut = false;
  async function* read(): AsyncIterable<string> {
    for await (const piece of pieces) {
      if (maxTokens !== undefined && countTokens(text + piece) > maxTokens) {
        const kept = truncateToTokens(text + piece, maxTokens).slice(text.length);
        cut = true;
        if (kept) yield kept;
        text += kept;
        return;
      }
      text += piece;
      yield piece;
    }
  }
  return { pieces: read(), text: () => text, cut: () => cut };
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
