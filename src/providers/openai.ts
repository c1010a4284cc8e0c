import { AppError } from '../domain/errors';
import { type ResilienceOptions, resilientCall, retryAfterSeconds } from './resilience';
import { serverSentEvents } from './sse';
import type { ChatMessage, CompletionModel, CompletionOptions, EmbeddingProvider } from '../domain';

export interface OpenAIOptions {
  /** Sent only in the Authorization header; never in a message or log line. */
  apiKey: string;
  /** Default `https://api.openai.com/v1`; any OpenAI-compatible server works. */
  baseUrl?: string;
  model?: string;
  /** Injectable for tests (a service binding) and proxies. */
  fetch?: typeof fetch;
  /** Default: 2 retries, 30 s per attempt (for chat, also the longest silence mid-stream). */
  resilience?: ResilienceOptions;
}

const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
const DEFAULT_RESILIENCE: ResilienceOptions = { retries: 2, timeoutMs: 30_000 };
/** Full output sizes; text-embedding-3 models can be shortened with `dimensions`, ada-002 cannot. */
const EMBEDDING_DIMENSIONS: Record<string, number> = {
  'text-embedding-3-small': 1536,
  'text-embedding-3-large': 3072,
  'text-embedding-ada-002': 1536,
};
/** The one model that refuses the `dimensions` parameter. */
const FIXED_SIZE_MODEL = 'text-embedding-ada-002';
/** https://platform.openai.com/docs/api-reference/embeddings/create: at most 2048 inputs per request. */
const OPENAI_MAX_INPUTS = 2048;

/** Embeddings from OpenAI's `/embeddings`, fetched in requests of `batchSize` texts. */
export class OpenAIEmbedder implements EmbeddingProvider {
  readonly model: string;
  readonly dimensions: number;
  readonly maxBatchSize = OPENAI_MAX_INPUTS;
  readonly #batchSize: number;
  readonly #client: OpenAIClient;

  constructor(options: OpenAIOptions & { dimensions?: number; batchSize?: number }) {
    this.model = options.model ?? 'text-embedding-3-small';
    const full = EMBEDDING_DIMENSIONS[this.model];
    const dimensions = options.dimensions ?? full;
    if (dimensions === undefined) throw misconfigured(`set the embedding dimensions for model ${this.model}`);
    if (full !== undefined && (dimensions > full || (this.model === FIXED_SIZE_MODEL && dimensions !== full))) {
      throw misconfigured(`model ${this.model} cannot produce ${dimensions}-dimensional embeddings`);
    }
    this.dimensions = dimensions;
    this.#batchSize = Math.min(Math.max(1, options.batchSize ?? 50), OPENAI_MAX_INPUTS);
    this.#client = new OpenAIClient(options, 'OpenAI embeddings');
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    if (texts.length > this.maxBatchSize) {
      throw new AppError('internal', `OpenAI embeddings take at most ${this.maxBatchSize} texts per call, got ${texts.length}`);
    }
    const vectors: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += this.#batchSize) {
      vectors.push(...(await this.#embedBatch(texts.slice(start, start + this.#batchSize))));
    }
    return vectors;
  }

  #embedBatch(input: string[]): Promise<Float32Array[]> {
    // base64 is a quarter of the JSON size of float lists and cheap to decode (as OpenAI's SDK does).
    const body: Record<string, unknown> = { model: this.model, input, encoding_format: 'base64' };
    if (this.model !== FIXED_SIZE_MODEL) body.dimensions = this.dimensions;
    return this.#client.call(async (signal) => {
      const text = await (await this.#client.post('/embeddings', body, signal)).text();
      return this.#client.shape(() => parseEmbeddings(JSON.parse(text), input.length, this.dimensions));
    });
  }
}

function parseEmbeddings(json: unknown, count: number, dimensions: number): Float32Array[] {
  const data = (json as { data?: { index?: unknown; embedding?: unknown }[] }).data;
  if (!Array.isArray(data) || data.length !== count) throw new Error(`expected ${count} embeddings`);
  const vectors = new Array<Float32Array>(count);
  for (const item of data) {
    const { index, embedding } = item;
    if (typeof index !== 'number' || !(index >= 0 && index < count) || vectors[index]) throw new Error('bad index');
    const vector = typeof embedding === 'string' ? decodeFloats(embedding) : Float32Array.from(embedding as number[]);
    if (vector.length !== dimensions) {
      throw misconfigured(`OpenAI returned ${vector.length}-dimensional embeddings, expected ${dimensions}`);
    }
    vectors[index] = vector;
  }
  return vectors;
}

/** OpenAI's base64 embeddings are little-endian float32, as is every host Workers run on. */
function decodeFloats(base64: string): Float32Array {
  const binary = atob(base64);
  if (binary.length % 4 !== 0) throw new Error('base64 embedding is not whole float32s');
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

/**
 * Context windows in tokens, prompt and answer together, as each model's page states them:
 * https://platform.openai.com/docs/models/gpt-4o-mini and /gpt-4o (128,000), /gpt-4.1,
 * /gpt-4.1-mini and /gpt-4.1-nano (1,047,576), /gpt-4-turbo (128,000), /gpt-4 (8,192),
 * /gpt-3.5-turbo (16,385). A dated snapshot (`gpt-4o-mini-2024-07-18`) has its model's window.
 */
export const OPENAI_CONTEXT_WINDOWS: Readonly<Record<string, number>> = {
  'gpt-4o-mini': 128_000,
  'gpt-4o': 128_000,
  'gpt-4.1': 1_047_576,
  'gpt-4.1-mini': 1_047_576,
  'gpt-4.1-nano': 1_047_576,
  'gpt-4-turbo': 128_000,
  'gpt-4': 8_192,
  'gpt-3.5-turbo': 16_385,
};
/**
 * For a model not listed above: OPENAI_BASE_URL may name any OpenAI-compatible server, whose
 * model may be small, so assume the window any current instruct model has.
 */
const FALLBACK_CONTEXT_WINDOW = 8_000;

/** The window of `model`, or of the longest listed name it is a snapshot of. */
function contextWindowOf(model: string): number {
  const family = Object.keys(OPENAI_CONTEXT_WINDOWS)
    .filter((name) => model === name || model.startsWith(`${name}-`))
    .sort((a, b) => b.length - a.length)[0];
  return family === undefined ? FALLBACK_CONTEXT_WINDOW : (OPENAI_CONTEXT_WINDOWS[family] as number);
}

export interface OpenAIChatOptions extends OpenAIOptions {
  /** Default 0.1: answers should quote the passages, not improvise. */
  temperature?: number;
  /** Longest answer in tokens (default 1024). */
  maxTokens?: number;
  /** The model's context window when it is not in OPENAI_CONTEXT_WINDOWS. */
  contextWindow?: number;
}

/** Completions from `/chat/completions`, streamed. */
export class OpenAIChatModel implements CompletionModel {
  readonly model: string;
  readonly contextWindow: number;
  readonly maxTokens: number;
  readonly #client: OpenAIClient;
  readonly #temperature: number;

  constructor(options: OpenAIChatOptions) {
    this.model = options.model ?? 'gpt-4o-mini';
    this.contextWindow = options.contextWindow ?? contextWindowOf(this.model);
    this.maxTokens = options.maxTokens ?? 1024;
    this.#temperature = options.temperature ?? 0.1;
    this.#client = new OpenAIClient(options, 'OpenAI chat');
  }

  async *complete(messages: ChatMessage[], options: CompletionOptions = {}): AsyncIterable<string> {
    const maxTokens = Math.min(options.maxTokens ?? this.maxTokens, this.maxTokens);
    const body = { model: this.model, messages, stream: true, temperature: options.temperature ?? this.#temperature, max_tokens: maxTokens };
    const label = this.#client.label;
    // Retries cover the wait for the headers only: once pieces are out, a retry would repeat them.
    const response = await this.#client.call((signal) => this.#client.post('/chat/completions', body, signal));
    if (!response.body) throw this.#client.malformed(new Error('no body'));
    let answered = false;
    for await (const { data } of serverSentEvents(response.body, { label, stallTimeoutMs: this.#client.timeoutMs })) {
      if (data === '[DONE]') {
        // No text is no answer (not "nothing found", which generation/ says itself): asking again may get one.
        if (!answered) throw new AppError('provider_error', `${label} returned an empty answer`, { retryable: true });
        return;
      }
      const chunk = this.#client.shape(() => JSON.parse(data)) as {
        error?: { message?: string };
        choices?: { delta?: { content?: unknown } }[];
      } | null;
      if (typeof chunk !== 'object' || chunk === null) throw this.#client.malformed(new Error(`event is ${data}`));
      if (chunk.error) {
        throw new AppError('provider_error', this.#client.redact(`${label} failed mid-answer: ${chunk.error.message}`), { retryable: true });
      }
      const piece = chunk.choices?.[0]?.delta?.content;
      if (typeof piece === 'string' && piece) {
        answered ||= piece.trim() !== '';
        yield piece;
      }
    }
    throw new AppError('provider_error', `${label} stream ended before the answer was complete`, { retryable: true });
  }
}

/** What both adapters share: the request, the mapping of OpenAI's errors, and redaction. */
class OpenAIClient {
  readonly label: string;
  readonly timeoutMs: number;
  readonly #options: OpenAIOptions;
  readonly #resilience: ResilienceOptions;
  readonly #fetch: typeof fetch;

  constructor(options: OpenAIOptions, label: string) {
    if (!options.apiKey) throw misconfigured('the OpenAI API key (OPENAI_API_KEY) is not set');
    this.label = label;
    this.#options = options;
    this.#resilience = options.resilience ?? DEFAULT_RESILIENCE;
    this.timeoutMs = this.#resilience.timeoutMs;
    // Bound: workerd throws "Illegal invocation" for a detached global fetch.
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  call<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return resilientCall(this.label, run, this.#resilience);
  }

  async post(path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const url = `${(this.#options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '')}${path}`;
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.#options.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new AppError('provider_error', `${this.label}: could not reach ${new URL(url).host}`, { retryable: true, cause: error });
    }
    if (!response.ok) throw await this.#httpError(response);
    return response;
  }

  /** Parses with `parse`; anything it throws that is not an AppError means OpenAI answered garbage. */
  shape<T>(parse: () => T): T {
    try {
      return parse();
    } catch (error) {
      throw error instanceof AppError ? error : this.malformed(error);
    }
  }

  malformed(cause: unknown): AppError {
    return new AppError('provider_error', `${this.label} returned an unexpected answer`, { retryable: true, cause });
  }

  /** OpenAI echoes parts of a bad key in its messages; nothing key-like is passed on. */
  redact(text: string): string {
    return text.replaceAll(this.#options.apiKey, '[redacted]').replace(/\bsk-[\w*-]{6,}/g, 'sk-[redacted]');
  }

  async #httpError(response: Response): Promise<AppError> {
    const { status } = response;
    const body = (await response.json().catch(() => undefined)) as { error?: { message?: unknown; code?: unknown } } | undefined;
    const detail = typeof body?.error?.message === 'string' ? this.redact(body.error.message) : undefined;
    const label = this.label;
    if (status === 401 || status === 403) {
      return misconfigured(`${label}: the OpenAI API key is missing or invalid, or lacks access (HTTP ${status})`);
    }
    if (status === 404) return misconfigured(`${label}: ${detail ?? 'not found (check the base URL and model)'}`);
    if (status === 429 && body?.error?.code === 'insufficient_quota') {
      return new AppError('rate_limited', `${label}: the OpenAI account is out of quota; check its plan and billing`);
    }
    const retryAfter = retryAfterSeconds(response.headers);
    if (status === 429) {
      return new AppError('rate_limited', `${label} is rate limited (HTTP 429)`, { retryable: true, retryAfterSeconds: retryAfter });
    }
    const retryable = status === 408 || status === 409 || status >= 500;
    const message = retryable ? `${label} answered HTTP ${status}` : `${label} refused the request (HTTP ${status})`;
    return new AppError('provider_error', detail ? `${message}: ${detail}` : message, {
      retryable,
      retryAfterSeconds: retryable ? retryAfter : undefined,
    });
  }
}

function misconfigured(message: string): AppError {
  return new AppError('misconfigured', message);
}
