import { AppError } from '../domain/errors';
import { metrics } from '../observability/metrics';

/**
 * Retries, timeouts and a circuit breaker for calls to remote providers (OpenAI, Workers
 * AI, Vectorize). Every cloud adapter wraps each request in `resilientCall`, and turns its
 * backend's failures into `AppError`s first: `retryable` decides whether a retry may help.
 */
export interface ResilienceOptions {
  /** Extra attempts after the first, for retryable errors only. */
  retries: number;
  /** Per attempt: the attempt's signal fires and it fails with `provider_timeout`. */
  timeoutMs: number;
  /** First backoff step (default 250 ms); doubles each attempt, with full jitter. */
  baseDelayMs?: number;
  /** Largest backoff step (default 8 s). */
  maxDelayMs?: number;
  /** Shared by every call to one backend, so that an outage fails fast. */
  breaker?: CircuitBreaker;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const DEFAULT_BASE_DELAY_MS = 250;
const DEFAULT_MAX_DELAY_MS = 8_000;
/**
 * Longest Retry-After we wait for inside one call. A backend asking for more is better
 * answered by failing now, retryably, so the queue (or the client) comes back later
 * instead of holding a Worker invocation open.
 */
export const MAX_RETRY_AFTER_MS = 60_000;

/**
 * Runs `call` with a timeout per attempt, retrying retryable `AppError`s with exponential
 * backoff and full jitter (or at least the backend's Retry-After). Non-retryable errors
 * are thrown at once; anything that is not an `AppError` becomes a non-retryable
 * `provider_error` (a bug or an unmapped failure, which retrying would only repeat).
 *
 * @example
 * const vectors = await resilientCall('OpenAI embeddings', (signal) => post(body, signal), { retries: 3, timeoutMs: 30_000 });
 */
export async function resilientCall<T>(
  label: string,
  call: (signal: AbortSignal) => Promise<T>,
  options: ResilienceOptions,
): Promise<T> {
  const started = Date.now();
  const record = (outcome: 'ok' | 'error') => {
    metrics.inc('rag_provider_calls_total', { provider: label, outcome });
    metrics.observe('rag_provider_call_duration_seconds', { provider: label }, (Date.now() - started) / 1000);
  };
  try {
    const result = await callWithRetries(label, call, options);
    record('ok');
    return result;
  } catch (error) {
    record('error');
    throw error;
  }
}

async function callWithRetries<T>(label: string, call: (signal: AbortSignal) => Promise<T>, options: ResilienceOptions): Promise<T> {
  const { breaker, retries } = options;
  const sleep = options.sleep ?? defaultSleep;
  breaker?.admit(label);
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await attemptWithTimeout(label, call, options.timeoutMs);
      breaker?.recordSuccess();
      return result;
    } catch (error) {
      if (!(error instanceof AppError)) {
        breaker?.recordFailure();
        throw new AppError('provider_error', `${label} failed`, { cause: error });
      }
      if (!error.retryable) {
        // The backend answered (a 400, a bad key): it is up, so this is no reason to open.
        breaker?.recordSuccess();
        throw error;
      }
      const delay = backoff(error, attempt, options);
      if (attempt >= retries || delay === undefined) {
        breaker?.recordFailure();
        throw error;
      }
      metrics.inc('rag_provider_retries_total', { provider: label });
      await sleep(delay);
    }
  }
}

/** The wait before the next attempt, or undefined when the backend asks for too long a wait. */
function backoff(error: AppError, attempt: number, options: ResilienceOptions): number | undefined {
  const base = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const jittered = (options.random ?? Math.random)() * Math.min(max, base * 2 ** attempt);
  if (error.retryAfterSeconds === undefined) return jittered;
  const retryAfterMs = error.retryAfterSeconds * 1000;
  if (retryAfterMs > MAX_RETRY_AFTER_MS) return undefined;
  return Math.max(jittered, retryAfterMs);
}

function attemptWithTimeout<T>(label: string, call: (signal: AbortSignal) => Promise<T>, timeoutMs: number): Promise<T> {
  const controller = new AbortController();
  let timer!: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new AppError('provider_timeout', `${label} did not answer within ${formatMs(timeoutMs)}`, {
        retryable: true,
      });
      // Reject before aborting, so the race settles with the timeout, not the call's AbortError.
      reject(error);
      controller.abort(error);
    }, timeoutMs);
  });
  // A call that ignores its signal still loses the race.
  const running = (async () => call(controller.signal))();
  return Promise.race([running, timeout]).finally(() => clearTimeout(timer));
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/**
 * The wait an HTTP backend asks for: OpenAI's `retry-after-ms`, else `Retry-After` in
 * seconds or as an HTTP date (RFC 9110 §10.2.3). Undefined when absent or unreadable.
 */
export function retryAfterSeconds(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms') || NaN);
  if (ms >= 0) return ms / 1000;
  const value = headers.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failed calls (after their retries) that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long an open circuit fails fast before letting one trial call through (default 30 s). */
  cooldownMs?: number;
  now?: () => number;
}

/**
 * Stops calling a backend that keeps failing: after `failureThreshold` consecutive failed
 * calls it opens and calls fail fast for `cooldownMs`; then one trial call goes through
 * (half-open) — success closes it, failure opens it again. Only retryable failures
 * (timeouts, 5xx, 429, unreachable) and unexpected errors count; a client error (400,
 * 401) proves the backend is up and resets the count.
 * State lives in the isolate, so each Worker instance learns of an outage on its own.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #now: () => number;
  #failures = 0;
  #openedAt: number | undefined;
  #trialInFlight = false;

  constructor(options: CircuitBreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? 5;
    this.#cooldownMs = options.cooldownMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  get state(): CircuitState {
    if (this.#openedAt === undefined) return 'closed';
    return this.#now() - this.#openedAt >= this.#cooldownMs ? 'half-open' : 'open';
  }

  /** Lets a call through, or throws a retryable `provider_error` saying when to come back. */
  admit(label: string): void {
    const state = this.state;
    if (state === 'closed') return;
    if (state === 'half-open' && !this.#trialInFlight) {
      this.#trialInFlight = true;
      return;
    }
    const remainingMs = Math.max(0, (this.#openedAt ?? 0) + this.#cooldownMs - this.#now());
    const retryAfterSeconds = Math.max(1, Math.ceil(remainingMs / 1000));
    throw new AppError('provider_error', `${label} is unavailable (circuit open); retry in ${retryAfterSeconds} s`, {
      retryable: true,
      retryAfterSeconds,
    });
  }

  recordSuccess(): void {
    this.#failures = 0;
    this.#openedAt = undefined;
    this.#trialInFlight = false;
  }

  recordFailure(): void {
    this.#failures++;
    if (this.#trialInFlight || this.#failures >= this.#threshold) this.#openedAt = this.#now();
    this.#trialInFlight = false;
  }
}
