/**
 * A token bucket: `burst` tokens at most, refilled continuously at `perMinute` a minute.
 * A request costing `cost` tokens is admitted when the bucket holds that many. Pure: the
 * rate-limiter Durable Object keeps the state and calls this one request at a time, which
 * is what makes it exact under concurrency.
 */
export interface BucketPolicy {
  perMinute: number;
  burst: number;
}

export interface BucketState {
  tokens: number;
  /** Epoch milliseconds of `tokens`. */
  at: number;
}

export interface BucketDecision {
  admitted: boolean;
  state: BucketState;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** When refused: seconds until `cost` tokens are there (null: never, the cost exceeds the burst). */
  retryAfterSeconds: number | null;
}

export function takeTokens(previous: BucketState | undefined, policy: BucketPolicy, cost: number, now: number): BucketDecision {
  const perMs = policy.perMinute / 60_000;
  const elapsed = previous ? Math.max(0, now - previous.at) : 0;
  const available = previous ? Math.min(policy.burst, previous.tokens + elapsed * perMs) : policy.burst;
  const admitted = cost <= available;
  const tokens = admitted ? available - cost : available;
  const state = { tokens, at: now };
  return {
    admitted,
    state,
    remaining: Math.floor(tokens),
    resetSeconds: Math.ceil((policy.burst - tokens) / perMs / 1000),
    retryAfterSeconds: admitted ? 0 : cost > policy.burst ? null : Math.max(1, Math.ceil((cost - tokens) / perMs / 1000)),
  };
}
