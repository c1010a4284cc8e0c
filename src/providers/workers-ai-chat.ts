import { AppError } from '../domain/errors';
import { NO_ANSWER } from '../generation/extractive-answerer';
import { buildChatMessages, renderPassage, systemPrompt } from '../generation/prompt';
import { countTokens } from '../ingestion/tokens';
import { type ResilienceOptions, resilientCall } from './resilience';
import { serverSentEvents } from './sse';
import type { ChatMessage, ChatModel, ChatRequest, ContextPassage } from '../domain/types';
import { type AiRunner, toAppError, WORKERS_AI_DEFAULT_RESILIENCE } from './workers-ai-errors';
import { truncateToTokens } from './workers-ai-embedder';

/**
 * Llama 3.3 70B: an instruct model that follows citation instructions well and is listed as
 * staying active in https://developers.cloudflare.com/changelog/post/2026-05-08-planned-model-deprecations/
 * (which retired `@cf/meta/llama-3.1-8b-instruct` on 30 May 2026).
 */
export const DEFAULT_CHAT_MODEL = '@cf/meta/llama-3.3-70b-instruct-fp8-fast';

/**
 * Context windows in tokens, prompt and answer together, from each model's page, e.g.
 * https://developers.cloudflare.com/workers-ai/models/llama-3.3-70b-instruct-fp8-fast/ ("24,000 tokens").
 */
export const CHAT_CONTEXT_WINDOWS: Readonly<Record<string, number>> = {
  '@cf/meta/llama-3.3-70b-instruct-fp8-fast': 24_000,
  '@cf/meta/llama-3.1-8b-instruct-fast': 128_000,
};
/** For a model not listed above: small enough for any current instruct model. */
const FALLBACK_CONTEXT_WINDOW = 8_000;
/**
 * Share of the window the prompt estimate may fill. `countTokens` estimates BERT WordPiece;
 * a Llama BPE tokenizer spends more tokens on the same text, so the estimate needs headroom.
 */
const PROMPT_SHARE = 0.75;
/** Role markers the chat template adds, and the prompt's <documents>/"Question:" scaffolding. */
const MESSAGE_OVERHEAD = 8;

export interface WorkersAIChatOptions {
  /** Default DEFAULT_CHAT_MODEL. */
  model?: string;
  /** Longest answer in tokens (default 1024; Workers AI's own default is only 256). */
  maxTokens?: number;
  /** Default 0.1: answers should quote the passages, not improvise. */
  temperature?: number;
  /** The model's context window when it is not in CHAT_CONTEXT_WINDOWS. */
  contextWindowTokens?: number;
  /** Covers the wait for the stream; `timeoutMs` is also the longest silence mid-stream. */
  resilience?: ResilienceOptions;
}

/** Answers from a Workers AI text-generation model, streamed, citing the passages as [n]. */
export class WorkersAIChatModel implements ChatModel {
  readonly model: string;
  readonly #ai: AiRunner;
  readonly #maxTokens: number;
  readonly #temperature: number;
  readonly #promptBudget: number;
  readonly #resilience: ResilienceOptions;

  constructor(ai: AiRunner, options: WorkersAIChatOptions = {}) {
    this.#ai = ai;
    this.model = options.model ?? DEFAULT_CHAT_MODEL;
    this.#maxTokens = options.maxTokens ?? 1024;
    this.#temperature = options.temperature ?? 0.1;
    this.#resilience = options.resilience ?? WORKERS_AI_DEFAULT_RESILIENCE;
    const window = options.contextWindowTokens ?? CHAT_CONTEXT_WINDOWS[this.model] ?? FALLBACK_CONTEXT_WINDOW;
    this.#promptBudget = Math.floor(window * PROMPT_SHARE) - this.#maxTokens;
    if (this.#promptBudget < 1_000) {
      throw new AppError('misconfigured', `LLM_MAX_TOKENS (${this.#maxTokens}) leaves too little of ${this.model}'s ${window}-token context for the passages.`);
    }
  }

  async *stream(request: ChatRequest): AsyncIterable<string> {
    // Nothing to answer from: the instructions would make the model say so, at a price.
    if (request.passages.length === 0) {
      yield NO_ANSWER;
      return;
    }
    const inputs = {
      messages: this.#messages(request),
      stream: true,
      max_tokens: this.#maxTokens,
      temperature: this.#temperature,
    };
    // Retries cover the wait for the stream only: once pieces are out, a retry would repeat them.
    const body = await resilientCall(
      `workers-ai chat ${this.model}`,
      (signal) => this.#ai.run(this.model, inputs, { signal }).catch((error: unknown) => {
        throw toAppError(error, this.model);
      }),
      this.#resilience,
    );
    if (!(body instanceof ReadableStream)) {
      throw new AppError('provider_error', `Workers AI did not stream an answer from ${this.model}.`, { retryable: true });
    }
    let answered = false;
    const label = `Workers AI chat (${this.model})`;
    for await (const { data } of serverSentEvents(body, { label, stallTimeoutMs: this.#resilience.timeoutMs })) {
      if (data === '[DONE]') {
        if (!answered) yield NO_ANSWER;
        return;
      }
      const piece = pieceOf(data, this.model);
      if (piece) {
        answered = true;
        yield piece;
      }
    }
    throw new AppError('provider_error', `${label}: the stream ended before the answer was complete.`, { retryable: true });
  }

  /**
   * The shared prompt (the rules and the client's instructions, numbered passages, the
   * question), cut to fit the model's window: the lowest-ranked passages go first, so the
   * numbers of those kept do not change; then the oldest turns of the conversation. The
   * client's instructions are never dropped (the prompt builder caps them).
   */
  #messages(request: ChatRequest): ChatMessage[] {
    const system = systemPrompt(request.history);
    let left = this.#promptBudget - countTokens(system) - countTokens(request.question) - 2 * MESSAGE_OVERHEAD;
    const passages: ContextPassage[] = [];
    for (const passage of request.passages) {
      // Counted as sent: delimiters, title and escapes included.
      const cost = countTokens(renderPassage(passage, passages.length + 1));
      if (cost > left) {
        // Always keep the best passage, cut to fit: an answer needs something to quote.
        if (passages.length === 0) {
          const frame = countTokens(renderPassage({ ...passage, text: '' }, 1));
          passages.push({ ...passage, text: truncateToTokens(passage.text, Math.max(0, left - frame)) });
        }
        break;
      }
      passages.push(passage);
      left -= cost;
    }
    const turns: ChatMessage[] = [];
    for (const message of request.history.filter((m) => m.role !== 'system').reverse()) {
      left -= countTokens(message.content) + MESSAGE_OVERHEAD;
      if (left < 0) break;
      turns.unshift(message);
    }
    const instructions = request.history.filter((m) => m.role === 'system');
    return buildChatMessages({ ...request, passages, history: [...instructions, ...turns] });
  }
}

/**
 * The text of one streamed event: `{"response":"…","p":"…"}` from Workers AI's own models
 * (`p` is padding that hides token lengths), `{"choices":[{"delta":{"content":"…"}}]}` from
 * models served in OpenAI's format. A final event carries only `usage`.
 */
function pieceOf(data: string, model: string): string | undefined {
  let event: { response?: unknown; error?: unknown; choices?: { delta?: { content?: unknown } }[] };
  try {
    event = JSON.parse(data) as typeof event;
  } catch (cause) {
    throw new AppError('provider_error', `Workers AI streamed an unreadable event from ${model}.`, { retryable: true, cause });
  }
  if (event.error !== undefined) {
    throw toAppError(new Error(typeof event.error === 'string' ? event.error : JSON.stringify(event.error)), model);
  }
  const piece = typeof event.response === 'string' ? event.response : event.choices?.[0]?.delta?.content;
  return typeof piece === 'string' ? piece : undefined;
}
