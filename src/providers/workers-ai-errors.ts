import { AppError, type ErrorCode } from '../domain/errors';
import type { ResilienceOptions } from './resilience';

/**
 * The part of the Workers AI binding (`env.AI`, type `Ai`) the adapters use. `Ai` itself
 * satisfies it, and so does the test fake; `run` resolves to JSON, or to a
 * `ReadableStream` of server-sent events when the inputs say `stream: true`.
 */
export interface AiRunner {
  run(model: string, inputs: Record<string, unknown>, options?: { signal?: AbortSignal }): Promise<unknown>;
}

/** When the composition root passes none: as for OpenAI, 2 retries and 30 s per attempt. */
export const WORKERS_AI_DEFAULT_RESILIENCE: ResilienceOptions = { retries: 2, timeoutMs: 30_000 };

/** Source of every code below: https://developers.cloudflare.com/workers-ai/platform/errors/ */
export const WORKERS_AI_ERRORS_DOC = 'https://developers.cloudflare.com/workers-ai/platform/errors/';

type Kind = 'capacity' | 'daily-limit' | 'timeout' | 'bad-input' | 'not-set-up';

/**
 * Workers AI's internal error codes, as the binding puts them in the thrown error's message
 * (`AiError: 3040: Capacity temporarily exceeded…`, `InferenceUpstreamError: ERROR 5007: …`).
 * Codes not listed here, and errors without a code, are the service's own failures: retryable.
 */
const CODES: Record<number, Kind> = {
  3040: 'capacity', // 429 Out of capacity: no more data centers to forward the request to
  3036: 'daily-limit', // 429 Account limited: the daily free allocation of neurons is used up
  4006: 'daily-limit', // the same message under the code the binding has been seen to use
  3007: 'timeout', // 408 Request timeout
  3008: 'timeout', // 408 Request was aborted
  3003: 'bad-input', // 400 Request is missing headers or body
  3006: 'bad-input', // 413 Request is too large
  5004: 'bad-input', // 400 Invalid data type for base64 input
  5006: 'bad-input', // input fails the model's schema ("oneOf at '/' not met…"), seen in practice
  5007: 'not-set-up', // 400 No such model ${model} or task
  3042: 'not-set-up', // 404 The model name is invalid
  5005: 'not-set-up', // 405 The model does not support LoRA inference
  5019: 'not-set-up', // 405 Deprecated SDK version
  3039: 'not-set-up', // 400 Finetune is missing required files
  5016: 'not-set-up', // 403 The account has not agreed to the model's terms
  5018: 'not-set-up', // 403 The account is not allowed to access this model
  3041: 'not-set-up', // 403 The account is not allowed to access this model
  3023: 'not-set-up', // 403 Service unavailable for account
};

/** The first known `NNNN:` code in an error (a leading request id or status is skipped). */
export function workersAiErrorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'number' && code in CODES) return code;
  for (const match of messageOf(error).matchAll(/\b(\d{4})\s*:/g)) {
    const parsed = Number(match[1]);
    if (parsed in CODES) return parsed;
  }
  return undefined;
}

/**
 * Turns whatever `env.AI.run` threw into an `AppError` whose `retryable` says whether the same
 * call can succeed later. Its message is shown to API clients, so it names the situation, not
 * the backend's text (kept as `cause`, which reaches the logs). Aborts pass through untouched:
 * they are the caller's own timeout, which `resilientCall` reports as `provider_timeout`.
 */
export function toAppError(error: unknown, model: string, now: () => number = Date.now): unknown {
  if (error instanceof AppError || isAbort(error)) return error;
  const message = messageOf(error);
  const code = workersAiErrorCode(error);
  const fail = (appCode: ErrorCode, text: string, retryable: boolean, retryAfterSeconds?: number) =>
    new AppError(appCode, text, { retryable, retryAfterSeconds, cause: error });

  // wrangler dev and the vitest pool have no Workers AI (see /work/shared/DESIGN.md).
  if (/needs to be run remotely/i.test(message)) {
    return fail('misconfigured', 'Workers AI does not run locally: use the local providers offline.', false);
  }
  switch (code === undefined ? undefined : CODES[code]) {
    case 'capacity':
      return fail('rate_limited', `Workers AI is over capacity for ${model}; try again shortly.`, true);
    case 'daily-limit':
      // "All limits reset daily at 00:00 UTC" (https://developers.cloudflare.com/workers-ai/platform/pricing/).
      return fail('rate_limited', 'The Workers AI daily allocation is used up.', true, secondsToUtcMidnight(now()));
    case 'timeout':
      return fail('provider_timeout', `Workers AI timed out running ${model}.`, true);
    case 'bad-input':
      return fail('bad_request', `Workers AI refused the input for ${model} (error ${code}).`, false);
    case 'not-set-up':
      return fail('misconfigured', `Workers AI cannot run ${model} for this account (error ${code}).`, false);
    default:
      return fail('provider_error', `Workers AI failed running ${model}.`, true);
  }
}

function secondsToUtcMidnight(nowMs: number): number {
  const midnight = new Date(nowMs);
  midnight.setUTCHours(24, 0, 0, 0);
  return Math.max(1, Math.ceil((midnight.getTime() - nowMs) / 1000));
}

function isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'AbortError' || name === 'TimeoutError';
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}
