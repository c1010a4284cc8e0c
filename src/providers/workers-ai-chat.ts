import { AppError } from '../domain/errors';
import { type ResilienceOptions, resilientCall } from './resilience';
import { serverSentEvents } from './sse';
import type { ChatMessage, CompletionModel, CompletionOptions } from '../domain';
import { type AiRunner, toAppError, WORKERS_AI_DEFAULT_RESILIENCE } from './workers-ai-errors';

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

export interface WorkersAIChatOptions {
  /** Default DEFAULT_CHAT_MODEL. */
  model?: string;
  /** Longest answer in tokens (default 1024; Workers AI's own default is only 256). */
  maxTokens?: number;
  /** Default 0.1: answers should quote the passages, not improvise. */
  temperature?: number;
  /** The model's context window when it is not in CHAT_CONTEXT_WINDOWS. */
  contextWindow?: number;
  /** Covers the wait for the stream; `timeoutMs` is also the longest silence mid-stream. */
  resilience?: ResilienceOptions;
}

/** Completions from a Workers AI text-generation model, streamed. */
export class WorkersAIChatModel implements CompletionModel {
  readonly model: string;
  readonly contextWindow: number;
  readonly maxTokens: number;
  readonly #ai: AiRunner;
  readonly #temperature: number;
  readonly #resilience: ResilienceOptions;
  readonly #label: string;

  constructor(ai: AiRunner, options: WorkersAIChatOptions = {}) {
    this.#ai = ai;
    this.model = options.model ?? DEFAULT_CHAT_MODEL;
    this.contextWindow = options.contextWindow ?? CHAT_CONTEXT_WINDOWS[this.model] ?? FALLBACK_CONTEXT_WINDOW;
    this.maxTokens = options.maxTokens ?? 1024;
    this.#temperature = options.temperature ?? 0.1;
    this.#resilience = options.resilience ?? WORKERS_AI_DEFAULT_RESILIENCE;
    this.#label = `Workers AI chat (${this.model})`;
  }

  async *complete(messages: ChatMessage[], options: CompletionOptions = {}): AsyncIterable<string> {
    const maxTokens = Math.min(options.maxTokens ?? this.maxTokens, this.maxTokens);
    const inputs = { messages, stream: true, max_tokens: maxTokens, temperature: options.temperature ?? this.#temperature };
    // Retries cover the wait for the stream only: once pieces are out, a retry would repeat them.
    const body = await resilientCall(
      `workers-ai chat ${this.model}`,
      (signal) => this.#ai.run(this.model, inputs, { signal }).catch((error: unknown) => {
        throw toAppError(error, this.model);
      }),
      this.#resilience,
    );
    if (!(body instanceof ReadableStream)) throw this.#malformed(new Error(`not a stream: ${typeof body}`));
    let answered = false;
    for await (const { data } of serverSentEvents(body, { label: this.#label, stallTimeoutMs: this.#resilience.timeoutMs })) {
      if (data === '[DONE]') {
        // No text is no answer (not "nothing found", which generation/ says itself): asking again may get one.
        if (!answered) throw new AppError('provider_error', `${this.#label} returned an empty answer`, { retryable: true });
        return;
      }
      const piece = this.#pieceOf(data);
      if (piece) {
        answered ||= piece.trim() !== '';
        yield piece;
      }
    }
    throw new AppError('provider_error', `${this.#label} stream ended before the answer was complete`, { retryable: true });
  }

  /** Retryable: a stream garbled mid-event is more often the connection's doing than the model's. */
  #malformed(cause: unknown): AppError {
    return new AppError('provider_error', `${this.#label} returned an unexpected answer`, { retryable: true, cause });
  }

  /**
   * The text of one streamed event: `{"response":"…","p":"…"}` from Workers AI's own models
   * (`p` is padding that hides token lengths), `{"choices":[{"delta":{"content":"…"}}]}` from
   * models served in OpenAI's format. A final event carries only `usage`.
   */
  #pieceOf(data: string): string | undefined {
    let event: { response?: unknown; error?: unknown; choices?: { delta?: { content?: unknown } }[] };
    try {
      event = JSON.parse(data) as typeof event;
    } catch (cause) {
      throw this.#malformed(cause);
    }
    if (typeof event !== 'object' || event === null) throw this.#malformed(new Error(`event is ${data}`));
    if (event.error !== undefined) {
      throw toAppError(new Error(typeof event.error === 'string' ? event.error : JSON.stringify(event.error)), this.model);
    }
    const piece = typeof event.response === 'string' ? event.response : event.choices?.[0]?.delta?.content;
    return typeof piece === 'string' ? piece : undefined;
  }
}
