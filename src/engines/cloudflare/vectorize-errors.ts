import { AppError } from '../../domain/errors';

/** The start of every message about a refused request (shared with vectorize.ts). */
export const BAD = 'Vector index: ';

/**
 * Vectorize error codes, as the binding puts them in messages (`VECTOR_QUERY_ERROR (code = 40006):
 * invalid query vector, expected 768 dimensions, and got 384 dimensions`). There is no published
 * list; these were reported by users of the service. Unlisted codes are treated as transient.
 */
const BAD_INPUT_CODES: Record<number, string> = {
  40007: 'too many ids in one call',
  40008: 'id too long',
  40023: 'unparseable vectors (e.g. NaN values)',
  40025: 'topK too large',
  40026: 'malformed query options',
};
/** The index has another dimension than the vectors sent: the operator's to fix (EMBEDDING_DIMENSIONS, or a new index). */
const WRONG_DIMENSIONS: Record<number, string> = { 40006: 'wrong query vector dimensions', 40010: 'wrong vector dimensions' };
const RATE_LIMITED = 40041; // "Too Many Requests"

/** Turns what the binding threw into an `AppError` (messages reach API clients; the original is the cause). */
export function mapVectorizeError(error: unknown, op: string): AppError {
  if (error instanceof AppError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = Number(/\(code\s*=\s*(\d+)\)/.exec(message)?.[1] ?? NaN);
  const fail = (appCode: 'bad_request' | 'rate_limited' | 'provider_error' | 'misconfigured', text: string, retryable: boolean) =>
    new AppError(appCode, text, { retryable, cause: error });
  if (/needs to be run remotely/i.test(message)) {
    return fail('misconfigured', 'Vectorize does not run locally: use VECTOR_PROVIDER=local offline.', false);
  }
  if (code in WRONG_DIMENSIONS) {
    const detail = message.replace(/^.*?\(code\s*=\s*\d+\):\s*/, '');
    return fail('misconfigured', `Vectorize refused the ${op}: ${detail}. The index and the embedding model disagree on dimensions: see /status.`, false);
  }
  if (code in BAD_INPUT_CODES) {
    // Vectorize's own text explains the input problem (sizes, limits), and holds no secrets.
    const detail = message.replace(/^.*?\(code\s*=\s*\d+\):\s*/, '');
    return fail('bad_request', `${BAD}Vectorize refused the ${op} (${BAD_INPUT_CODES[code]}): ${detail}`, false);
  }
  if (code === RATE_LIMITED) return fail('rate_limited', `Vectorize is rate limiting ${op} calls; try again shortly.`, true);
  return fail('provider_error', `Vectorize ${op} failed${Number.isNaN(code) ? '' : ` (code ${code})`}.`, true);
}
