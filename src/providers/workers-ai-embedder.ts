import { AppError } from '../domain/errors';
import { truncateToTokens } from '../text/tokens';
import { type ResilienceOptions, resilientCall } from './resilience';
import type { EmbeddingProvider } from '../domain';
import { type AiRunner, toAppError, WORKERS_AI_DEFAULT_RESILIENCE } from './workers-ai-errors';

/**
 * Embedding models Workers AI hosts: output size and input window in tokens. Each model's page
 * states both, e.g. https://developers.cloudflare.com/workers-ai/models/bge-base-en-v1.5/
 * ("Maximum Input Tokens 512", "Output Dimensions 768"). bge-m3's 8,192-token window is from its
 * model card (https://huggingface.co/BAAI/bge-m3).
 */
export const KNOWN_EMBEDDING_MODELS: Readonly<Record<string, { dimensions: number; maxInputTokens: number }>> = {
  '@cf/baai/bge-small-en-v1.5': { dimensions: 384, maxInputTokens: 512 },
  '@cf/baai/bge-base-en-v1.5': { dimensions: 768, maxInputTokens: 512 },
  '@cf/baai/bge-large-en-v1.5': { dimensions: 1024, maxInputTokens: 512 },
  '@cf/baai/bge-m3': { dimensions: 1024, maxInputTokens: 8192 },
};

export const DEFAULT_EMBEDDING_MODEL = '@cf/baai/bge-base-en-v1.5';

/**
 * Texts per `env.AI.run` call. Workers AI refuses more than 100 (see /work/shared/DESIGN.md,
 * "Platform limits", and https://github.com/cloudflare/cloudflare-docs/issues/11316); the
 * per-minute limits are at https://developers.cloudflare.com/workers-ai/platform/limits/.
 */
export const WORKERS_AI_MAX_EMBEDDING_BATCH = 100;

/** A BERT tokenizer adds [CLS] and [SEP] to every input, and they count against the window. */
const SPECIAL_TOKENS = 2;

export interface WorkersAIEmbedderOptions {
  /** Default `@cf/baai/bge-base-en-v1.5`. */
  model?: string;
  /** Required for a model not in KNOWN_EMBEDDING_MODELS; must match it for one that is. */
  dimensions?: number;
  /** Input window in tokens: the known model's, else 512. */
  maxInputTokens?: number;
  /** At most WORKERS_AI_MAX_EMBEDDING_BATCH (the default). */
  maxBatchSize?: number;
  resilience?: ResilienceOptions;
}

/** Embeddings from Workers AI's bge models through the `AI` binding. */
export class WorkersAIEmbedder implements EmbeddingProvider {
  readonly model: string;
  readonly dimensions: number;
  readonly maxBatchSize: number;
  readonly #ai: AiRunner;
  readonly #maxInputTokens: number;
  readonly #resilience: ResilienceOptions;

  constructor(ai: AiRunner, options: WorkersAIEmbedderOptions = {}) {
    this.#ai = ai;
    this.model = options.model ?? DEFAULT_EMBEDDING_MODEL;
    const known = KNOWN_EMBEDDING_MODELS[this.model];
    const dimensions = options.dimensions ?? known?.dimensions;
    if (dimensions === undefined) {
      throw new AppError('misconfigured', `EMBEDDING_DIMENSIONS must be set for ${this.model}, an embedding model this engine does not know.`);
    }
    if (known && dimensions !== known.dimensions) {
      throw new AppError('misconfigured', `${this.model} makes ${known.dimensions}-dimensional vectors, not ${dimensions}: fix EMBEDDING_DIMENSIONS.`);
    }
    this.dimensions = dimensions;
    this.maxBatchSize = Math.min(options.maxBatchSize ?? WORKERS_AI_MAX_EMBEDDING_BATCH, WORKERS_AI_MAX_EMBEDDING_BATCH);
    this.#maxInputTokens = (options.maxInputTokens ?? known?.maxInputTokens ?? 512) - SPECIAL_TOKENS;
    this.#resilience = options.resilience ?? WORKERS_AI_DEFAULT_RESILIENCE;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    if (texts.length > this.maxBatchSize) {
      // The caller batches by maxBatchSize; more is a bug, and Workers AI would refuse it anyway.
      throw new AppError('internal', `Workers AI embeddings take at most ${this.maxBatchSize} texts per call, got ${texts.length}.`);
    }
    // bge truncates an over-long input silently (its tail never reaches the vector) or, for some
    // inputs, the call fails. A chunk fits the window, but the headings embedded with it, or a
    // long query, may not: cut here, at a word, so what is kept is known and the call succeeds.
    const text = texts.map((t) => truncateToTokens(t, this.#maxInputTokens));
    const output = await resilientCall(
      `workers-ai embed ${this.model}`,
      (signal) => this.#ai.run(this.model, { text }, { signal }).catch((error: unknown) => {
        throw toAppError(error, this.model);
      }),
      this.#resilience,
    );
    return this.#vectors(output, texts.length);
  }

  /** Checks `{ shape: [n, dims], data: number[][] }` before anything is stored from it. */
  #vectors(output: unknown, count: number): Float32Array[] {
    const { shape, data } = (output ?? {}) as { shape?: unknown; data?: unknown };
    if (!Array.isArray(data) || data.length !== count) {
      throw malformed(this.model, `expected ${count} vectors, got ${Array.isArray(data) ? data.length : typeof data}`);
    }
    if (Array.isArray(shape) && (shape[0] !== count || shape[1] !== data[0]?.length)) {
      throw malformed(this.model, `shape ${JSON.stringify(shape)} does not match the data`);
    }
    return data.map((row: unknown, i) => {
      if (!Array.isArray(row)) throw malformed(this.model, `vector ${i} is not an array`);
      if (row.length !== this.dimensions) {
        throw new AppError('misconfigured', `${this.model} returned ${row.length}-dimensional vectors; EMBEDDING_DIMENSIONS is ${this.dimensions}.`);
      }
      if (!row.every((v) => typeof v === 'number' && Number.isFinite(v))) throw malformed(this.model, `vector ${i} has a non-number`);
      return Float32Array.from(row as number[]);
    });
  }
}

/** Not retried: a service that answers the same call malformed will most likely do it again. */
function malformed(model: string, detail: string): AppError {
  return new AppError('provider_error', `Workers AI returned a malformed embedding response for ${model}: ${detail}.`);
}
