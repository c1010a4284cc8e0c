import { AppError } from '../domain/errors';

/**
 * Errors thrown inside the engines' Durable Objects cross Workers RPC as plain Errors with the
 * same message. Each caller error starts with its index's prefix, and a misconfiguration with
 * MISCONFIGURED, so the calling side restores its kind (a client's 400, an operator's 503).
 */
export const VECTOR_INDEX_ERROR = 'Vector index: ';
export const KEYWORD_INDEX_ERROR = 'Keyword index: ';
/** A vector of another dimension than the index's: the embedder and index disagree, which is the operator's to fix. */
export const MISCONFIGURED = 'Search engine misconfigured: ';

/**
 * Runs a call to one of the engines' Durable Objects, restoring the kind of the errors it throws.
 * The platform's own errors say whether the call may be repeated (`retryable`, `overloaded`: an
 * object over its request rate, a reset, an object moved): those become a 503 with Retry-After,
 * and a retry of the queue message, rather than an internal error.
 */
export async function callIndex<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Error && !(err instanceof AppError)) {
      if (err.message.startsWith(VECTOR_INDEX_ERROR) || err.message.startsWith(KEYWORD_INDEX_ERROR)) {
        throw new AppError('bad_request', err.message, { cause: err });
      }
      if (err.message.startsWith(MISCONFIGURED)) throw new AppError('misconfigured', err.message, { cause: err });
      const platform = err as Error & { retryable?: boolean; overloaded?: boolean };
      if (platform.retryable || platform.overloaded) {
        const why = platform.overloaded ? 'is overloaded' : 'could not be reached';
        throw new AppError('unavailable', `The search index ${why}; retry shortly.`, { retryable: true, retryAfterSeconds: platform.overloaded ? 5 : 1, cause: err });
      }
    }
    throw err;
  }
}
