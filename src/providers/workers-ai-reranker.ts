import { AppError } from '../domain/errors';
import { countTokens, truncateToTokens } from '../text/tokens';
import { type ResilienceOptions, resilientCall } from './resilience';
import type { Reranker } from '../domain';
import { type AiRunner, toAppError, WORKERS_AI_DEFAULT_RESILIENCE } from './workers-ai-errors';

/** https://developers.cloudflare.com/workers-ai/models/bge-reranker-base/ */
export const DEFAULT_RERANK_MODEL = '@cf/baai/bge-reranker-base';

/**
 * Passages per call. The model page states no limit; this is the embedding models' 100-text
 * limit (see WORKERS_AI_MAX_EMBEDDING_BATCH), and more than the fused candidates a query reranks.
 */
export const WORKERS_AI_MAX_RERANK_BATCH = 100;

/**
 * bge-reranker-base is a BERT cross-encoder: the query and one passage share one 512-token
 * input ([CLS] query [SEP] passage [SEP]). The query keeps at most a quarter of it.
 */
const PAIR_TOKENS = 512 - 3;
const MAX_QUERY_TOKENS = 128;

export interface WorkersAIRerankerOptions {
  model?: string;
  resilience?: ResilienceOptions;
}

/** Relevance scores from Workers AI's bge reranker, in the order the passages were given. */
export class WorkersAIReranker implements Reranker {
  readonly model: string;
  readonly maxBatchSize = WORKERS_AI_MAX_RERANK_BATCH;
  readonly #ai: AiRunner;
  readonly #resilience: ResilienceOptions;

  constructor(ai: AiRunner, options: WorkersAIRerankerOptions = {}) {
    this.#ai = ai;
    this.model = options.model ?? DEFAULT_RERANK_MODEL;
    this.#resilience = options.resilience ?? WORKERS_AI_DEFAULT_RESILIENCE;
  }

  async score(query: string, texts: string[]): Promise<number[]> {
    if (texts.length === 0) return [];
    if (texts.length > this.maxBatchSize) {
      throw new AppError('internal', `Workers AI reranking takes at most ${this.maxBatchSize} passages per call, got ${texts.length}.`);
    }
    // Cut here rather than let the model cut: a passage's tail past the window is never read.
    const shortQuery = truncateToTokens(query, MAX_QUERY_TOKENS);
    const room = PAIR_TOKENS - countTokens(shortQuery);
    const inputs = {
      query: shortQuery,
      contexts: texts.map((text) => ({ text: truncateToTokens(text, room) })),
      // The response lists only the top_k best; ask for all of them.
      top_k: texts.length,
    };
    const output = await resilientCall(
      `workers-ai rerank ${this.model}`,
      (signal) => this.#ai.run(this.model, inputs, { signal }).catch((error: unknown) => {
        throw toAppError(error, this.model);
      }),
      this.#resilience,
    );
    return this.#inInputOrder(output, texts.length);
  }

  /** `{ response: [{ id, score }] }`, best first, ids indexing the contexts: back to input order. */
  #inInputOrder(output: unknown, count: number): number[] {
    const response = (output as { response?: unknown } | null)?.response;
    if (!Array.isArray(response)) throw this.#malformed('no response list');
    const scores = new Array<number | undefined>(count).fill(undefined);
    for (const item of response as { id?: unknown; score?: unknown }[]) {
      const { id, score } = item ?? {};
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= count || scores[id] !== undefined) {
        throw this.#malformed(`bad id ${JSON.stringify(id)}`);
      }
      if (typeof score !== 'number' || !Number.isFinite(score)) throw this.#malformed(`bad score for ${id}`);
      scores[id] = score;
    }
    const missing = scores.findIndex((s) => s === undefined);
    if (missing >= 0) throw this.#malformed(`no score for passage ${missing}`);
    return scores as number[];
  }

  /** Not retried: a service that answers the same call malformed will most likely do it again. */
  #malformed(detail: string): AppError {
    return new AppError('provider_error', `Workers AI returned a malformed rerank response for ${this.model}: ${detail}.`);
  }
}
