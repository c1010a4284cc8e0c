import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import { CircuitBreaker, MAX_RETRY_AFTER_MS, type ResilienceOptions, resilientCall } from '../src/providers/resilience';
import { caught } from './support';

/** Options whose sleeps are recorded instead of waited, with a fixed jitter. */
function recorded(overrides: Partial<ResilienceOptions> = {}) {
  const delays: number[] = [];
  const options: ResilienceOptions = {
    retries: 3,
    timeoutMs: 1_000,
    random: () => 0.5,
    sleep: async (ms) => void delays.push(ms),
    ...overrides,
  };
  return { delays, options };
}

/** A call that fails with the given errors in turn, then answers 'ok'. */
function failing(...errors: unknown[]) {
  let calls = 0;
  const call = async (_signal: AbortSignal) => {
    const error = errors[calls++];
    if (error !== undefined) throw error;
    return 'ok';
  };
  return { call, calls: () => calls };
}

const transient = () => new AppError('provider_error', 'HTTP 503', { retryable: true });
const badRequest = () => new AppError('provider_error', 'HTTP 400: bad input');
const never = () => new Promise<never>(() => {});


describe('resilientCall', () => {
  it('returns the first answer and hands the call an AbortSignal', async () => {
    let seen: AbortSignal | undefined;
    const result = await resilientCall('svc', async (signal) => ((seen = signal), 42), recorded().options);
    expect(result).toBe(42);
    expect(seen).toBeInstanceOf(AbortSignal);
    expect(seen?.aborted).toBe(false);
  });

  it('retries retryable errors with exponential backoff and full jitter', async () => {
    const { delays, options } = recorded();
    const { call, calls } = failing(transient(), transient(), transient());
    expect(await resilientCall('svc', call, options)).toBe('ok');
    expect(calls()).toBe(4);
    // random() * min(max, 250 * 2^attempt) with random() = 0.5
    expect(delays).toEqual([125, 250, 500]);
  });

  it('caps each backoff step at maxDelayMs and jitters from zero', async () => {
    const { delays, options } = recorded({ retries: 5, baseDelayMs: 1_000, maxDelayMs: 3_000, random: () => 1 });
    await resilientCall('svc', failing(...Array.from({ length: 5 }, transient)).call, options);
    expect(delays).toEqual([1_000, 2_000, 3_000, 3_000, 3_000]);
    const zero = recorded({ random: () => 0 });
    await resilientCall('svc', failing(transient()).call, zero.options);
    expect(zero.delays).toEqual([0]);
  });

  it('gives up after `retries` retries with the last error', async () => {
    const { delays, options } = recorded({ retries: 2 });
    const last = new AppError('provider_error', 'the third', { retryable: true });
    const { call, calls } = failing(transient(), transient(), last, transient());
    expect(await caught(resilientCall('svc', call, options))).toBe(last);
    expect(calls()).toBe(3);
    expect(delays).toHaveLength(2);
  });

  it('throws non-retryable errors at once', async () => {
    const { delays, options } = recorded();
    const error = badRequest();
    const { call, calls } = failing(error);
    expect(await caught(resilientCall('svc', call, options))).toBe(error);
    expect(calls()).toBe(1);
    expect(delays).toEqual([]);
  });

  it('wraps other errors as a non-retryable provider_error naming the label', async () => {
    const bug = new TypeError('x is undefined');
    const { call, calls } = failing(bug);
    const error = await caught(resilientCall('OpenAI chat', call, recorded().options));
    expect(error).toMatchObject({ code: 'provider_error', message: 'OpenAI chat failed', retryable: false, status: 502 });
    expect(error.cause).toBe(bug);
    expect(calls()).toBe(1);
  });

  it('waits at least the Retry-After, even when the jitter is shorter', async () => {
    const { delays, options } = recorded({ random: () => 0 });
    const limited = new AppError('rate_limited', 'HTTP 429', { retryable: true, retryAfterSeconds: 2 });
    expect(await resilientCall('svc', failing(limited).call, options)).toBe('ok');
    expect(delays).toEqual([2_000]);
    // A longer jitter wins over a short Retry-After.
    const long = recorded({ baseDelayMs: 4_000, random: () => 1 });
    const brief = new AppError('rate_limited', 'HTTP 429', { retryable: true, retryAfterSeconds: 0.5 });
    await resilientCall('svc', failing(brief).call, long.options);
    expect(long.delays).toEqual([4_000]);
  });

  it('gives up at once when Retry-After is longer than it will wait', async () => {
    const { delays, options } = recorded();
    const limited = new AppError('rate_limited', 'HTTP 429', {
      retryable: true,
      retryAfterSeconds: MAX_RETRY_AFTER_MS / 1000 + 1,
    });
    const { call, calls } = failing(limited);
    expect(await caught(resilientCall('svc', call, options))).toBe(limited);
    expect(calls()).toBe(1);
    expect(delays).toEqual([]);
  });

  it('times out an attempt that never answers, aborts its signal, and retries it', async () => {
    const { delays, options } = recorded({ retries: 1, timeoutMs: 30 });
    const signals: AbortSignal[] = [];
    const started = Date.now();
    const error = await caught(resilientCall('Slow API', (signal) => (signals.push(signal), never()), options));
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(error).toMatchObject({ code: 'provider_timeout', status: 504, retryable: true });
    expect(error.message).toBe('Slow API did not answer within 30 ms');
    expect(signals).toHaveLength(2);
    for (const signal of signals) {
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toMatchObject({ code: 'provider_timeout' });
    }
    expect(delays).toHaveLength(1);
  });

  it('lets a slow first attempt time out and a prompt retry answer', async () => {
    let calls = 0;
    const call = (_signal: AbortSignal) => (++calls === 1 ? never() : Promise.resolve('second'));
    expect(await resilientCall('svc', call, recorded({ timeoutMs: 20 }).options)).toBe('second');
  });
});

describe('CircuitBreaker', () => {
  function clock() {
    let now = 1_000_000;
    return { now: () => now, advance: (ms: number) => void (now += ms) };
  }

  it('opens after failureThreshold failed calls and then fails fast without calling', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 30_000, now: time.now });
    const { options } = recorded({ retries: 0, breaker });
    let calls = 0;
    const down = async () => {
      calls++;
      throw transient();
    };
    for (let i = 0; i < 3; i++) await caught(resilientCall('Embeddings', down, options));
    expect(breaker.state).toBe('open');
    expect(calls).toBe(3);

    time.advance(10_000);
    const error = await caught(resilientCall('Embeddings', down, options));
    expect(calls).toBe(3);
    expect(error).toMatchObject({ code: 'provider_error', retryable: true, retryAfterSeconds: 20 });
    expect(error.message).toBe('Embeddings is unavailable (circuit open); retry in 20 s');
  });

  it('counts a call once, after its retries', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2 });
    const { options } = recorded({ retries: 2, breaker });
    const first = failing(transient(), transient(), transient());
    await caught(resilientCall('svc', first.call, options));
    expect(first.calls()).toBe(3);
    expect(breaker.state).toBe('closed');
    await caught(resilientCall('svc', failing(transient(), transient(), transient()).call, options));
    expect(breaker.state).toBe('open');
  });

  it('resets the count on success: only consecutive failures open it', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2 });
    const { options } = recorded({ retries: 0, breaker });
    await caught(resilientCall('svc', failing(transient()).call, options));
    await resilientCall('svc', failing().call, options);
    await caught(resilientCall('svc', failing(transient()).call, options));
    expect(breaker.state).toBe('closed');
  });

  it('half-opens after the cooldown: one trial call, and success closes it', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 5_000, now: time.now });
    const { options } = recorded({ retries: 0, breaker });
    await caught(resilientCall('svc', failing(transient()).call, options));
    expect(breaker.state).toBe('open');
    time.advance(5_000);
    expect(breaker.state).toBe('half-open');

    let release: (value: string) => void = () => {};
    const trial = resilientCall('svc', () => new Promise<string>((resolve) => (release = resolve)), options);
    // While the trial is out, everyone else still fails fast.
    const meanwhile = await caught(resilientCall('svc', failing().call, options));
    expect(meanwhile.message).toContain('circuit open');
    release('back');
    expect(await trial).toBe('back');
    expect(breaker.state).toBe('closed');
    expect(await resilientCall('svc', failing().call, options)).toBe('ok');
  });

  it('re-opens for another cooldown when the trial call fails', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 5_000, now: time.now });
    const { options } = recorded({ retries: 0, breaker });
    for (let i = 0; i < 2; i++) await caught(resilientCall('svc', failing(transient()).call, options));
    time.advance(5_000);
    const trial = failing(transient());
    await caught(resilientCall('svc', trial.call, options));
    expect(trial.calls()).toBe(1);
    expect(breaker.state).toBe('open');
    const error = await caught(resilientCall('svc', failing().call, options));
    expect(error.retryAfterSeconds).toBe(5);
    time.advance(5_000);
    expect(await resilientCall('svc', failing().call, options)).toBe('ok');
  });

  it('is not tripped by non-retryable client errors', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2 });
    const { options } = recorded({ retries: 3, breaker });
    for (let i = 0; i < 10; i++) {
      const { call, calls } = failing(badRequest());
      await caught(resilientCall('svc', call, options));
      expect(calls()).toBe(1);
    }
    expect(breaker.state).toBe('closed');
  });

  it('counts timeouts and unexpected errors as failures', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 2 });
    const { options } = recorded({ retries: 0, timeoutMs: 10, breaker });
    await caught(resilientCall('svc', never, options));
    await caught(resilientCall('svc', failing(new TypeError('Network connection lost')).call, options));
    expect(breaker.state).toBe('open');
  });
});
