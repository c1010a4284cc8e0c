import type { Config } from '../config';
import { AppError } from '../domain/errors';
import { metrics } from '../observability/metrics';
import type { ApiKeyRecord, ApiKeyStore } from '../storage/api-keys';
import { apiKeyId, hashApiKey, sameSecret, type Scope } from './api-key';
import { checkKey, type KeyVerdict } from './key-check';
import { ADMIN, ANONYMOUS, PUBLIC, type Principal } from './principal';
import type { AuthorizeResult, LimitView, RateLimiter } from './rate-limiter';
import type { BucketPolicy } from './token-bucket';

export interface AccessRequest {
  /** The key the client sent, if any. */
  credential: string | null;
  /** CF-Connecting-IP, for anonymous limits. */
  clientIp: string | null;
  scope: Scope;
  /** Tokens this request takes from its bucket. */
  cost: number;
  /** The route answers without a key (OPERATIONS_PUBLIC). */
  open?: boolean;
}

export interface Admission {
  principal: Principal;
  /** The bucket that was charged; null when none was (auth off without limits, or the limiter was down). */
  limit: LimitView | null;
}

/** What to do when `lockedOut`: said by every /v1 route (503) and by /status. */
export const LOCKED_OUT =
  'Authentication is on but no key can be used: set the ADMIN_API_KEY secret (`wrangler secret put ADMIN_API_KEY`, or .dev.vars under `npm start`), or set AUTH_ENABLED=false.';

/** Why a key was refused, by verdict (see key-check.ts). */
const REFUSALS = {
  unknown: 'This API key is not valid.',
  revoked: 'This API key has been revoked.',
  expired: 'This API key has expired: ask an admin for a new one.',
} as const;

const WWW_AUTHENTICATE = { 'WWW-Authenticate': 'Bearer realm="rag-engine"' };
/** How long a client should wait when the limiter is unreachable. */
const UNAVAILABLE_RETRY_SECONDS = 5;

/**
 * Decides whether a request may proceed: authenticates its key, checks the scope and
 * charges the rate limit, in at most one Durable Object call (the key's RateLimiter holds
 * both its record and its bucket). Throws the AppError to answer with otherwise.
 */
export class AccessControl {
  readonly #config: Config;
  readonly #limiters: DurableObjectNamespace<RateLimiter>;
  readonly #keys: ApiKeyStore;

  constructor(config: Config, limiters: DurableObjectNamespace<RateLimiter>, keys: ApiKeyStore) {
    this.#config = config;
    this.#limiters = limiters;
    this.#keys = keys;
  }

  get defaults(): BucketPolicy {
    return { perMinute: this.#config.RATE_LIMIT_PER_MINUTE, burst: this.#config.RATE_LIMIT_BURST };
  }

  async admit(request: AccessRequest): Promise<Admission> {
    const config = this.#config;
    if (!config.AUTH_ENABLED) {
      if (!config.RATE_LIMIT_ANONYMOUS || !request.clientIp) return { principal: ANONYMOUS, limit: null };
      return this.#charged(ANONYMOUS, request, () => this.#stub(`ip:${request.clientIp}`).charge({ cost: request.cost, policy: this.defaults }));
    }
    const { credential } = request;
    if (!credential) {
      if (request.open) return { principal: PUBLIC, limit: null };
      return this.#unauthenticated(request, 'Send an API key as "Authorization: Bearer <key>" or "X-API-Key: <key>".');
    }
    if (config.ADMIN_API_KEY && (await sameSecret(credential, config.ADMIN_API_KEY))) {
      return this.#charged(ADMIN, request, () => this.#stub('admin').charge({ cost: request.cost, policy: this.defaults }));
    }
    const keyId = apiKeyId(credential);
    if (!keyId) return this.#refuse('unknown', request);
    const hash = await hashApiKey(credential);
    let result: AuthorizeResult;
    try {
      result = await this.#stub(`key:${keyId}`).authorize({ keyId, hash, scope: request.scope, cost: request.cost, defaults: this.defaults });
    } catch (error) {
      return this.#withoutLimiter(error, request, await this.#checkInCatalog(keyId, hash, request));
    }
    if (result.outcome !== 'checked') return this.#refuse(result.outcome, request);
    return this.#limited({ principal: { keyId: result.key.id, scopes: result.key.scopes, namespaces: result.key.namespaces }, limit: result.limit });
  }

  /** Auth is on, yet no key could ever pass: no admin secret and no usable key (never open by accident). */
  async lockedOut(): Promise<boolean> {
    const { AUTH_ENABLED, ADMIN_API_KEY } = this.#config;
    return AUTH_ENABLED && !ADMIN_API_KEY && !(await this.#keys.anyUsable(new Date().toISOString()));
  }

  /** Revokes a key in its limiter first (which refuses it at once), then in the catalog. */
  async revoke(keyId: string): Promise<boolean> {
    const at = new Date().toISOString();
    await this.#stub(`key:${keyId}`).revoke(at);
    return this.#keys.revoke(keyId, at);
  }

  #stub(name: string): DurableObjectStub<RateLimiter> {
    return this.#limiters.get(this.#limiters.idFromName(name));
  }

  async #charged(principal: Principal, request: AccessRequest, charge: () => Promise<LimitView>): Promise<Admission> {
    let limit: LimitView;
    try {
      limit = await charge();
    } catch (error) {
      return this.#withoutLimiter(error, request, principal);
    }
    return this.#limited({ principal, limit });
  }

  #limited(admission: { principal: Principal; limit: LimitView }): Admission {
    const { limit } = admission;
    if (limit.admitted) return admission;
    metrics.inc('rag_rate_limited_requests_total', { kind: admission.principal.keyId ? 'key' : 'ip' });
    if (limit.retryAfterSeconds === null) {
      throw new AppError(
        'rate_limited',
        `This request costs more than this key's burst of ${limit.policy.burst}: send less per request, or ask an admin for a higher burst.`,
        { headers: rateLimitHeaders(limit) },
      );
    }
    throw new AppError('rate_limited', `Rate limit reached: ${limit.policy.perMinute} a minute, bursts of ${limit.policy.burst}.`, {
      retryAfterSeconds: limit.retryAfterSeconds,
      headers: rateLimitHeaders(limit),
    });
  }

  /**
   * The limiter could not be reached. The key was checked against the catalog instead (so a
   * revoked key stays refused); RATE_LIMIT_UNAVAILABLE says whether to go on unthrottled.
   */
  #withoutLimiter(error: unknown, request: AccessRequest, principal: Principal): Admission {
    const mode = this.#config.RATE_LIMIT_UNAVAILABLE;
    const through = mode === 'open' || (mode === 'reads-open' && request.scope === 'read');
    console.error(
      JSON.stringify({ level: 'error', msg: 'rate limiter unreachable', key: principal.keyId, scope: request.scope, decision: through ? 'admitted' : 'refused', error: String(error) }),
    );
    if (through) return { principal, limit: null };
    throw new AppError('unavailable', 'The rate limiter is unavailable; try again shortly.', { retryAfterSeconds: UNAVAILABLE_RETRY_SECONDS });
  }

  async #checkInCatalog(keyId: string, hash: string, request: AccessRequest): Promise<Principal> {
    const record = await this.#keys.get(keyId);
    const verdict = checkKey(record, hash, request.scope);
    if (verdict !== 'valid') return this.#refuse(verdict, request);
    const { id, scopes, namespaces } = record as ApiKeyRecord; // 'valid' means a record
    return { keyId: id, scopes, namespaces };
  }

  /** The answer to a key that did not pass: 403 for a missing scope, 401 (see #unauthenticated) otherwise. */
  async #refuse(verdict: Exclude<KeyVerdict, 'valid'>, request: AccessRequest): Promise<never> {
    if (verdict === 'forbidden') throw new AppError('forbidden', `This API key lacks the "${request.scope}" scope this request needs.`);
    return this.#unauthenticated(request, REFUSALS[verdict]);
  }

  /**
   * 401, unless no key could ever pass: then the deployment is misconfigured (503), never
   * open. Failed attempts are charged to the client's IP (the limiter's only work on this
   * path), so guessing keys, or making the engine look up made-up ones, is throttled too.
   */
  async #unauthenticated(request: AccessRequest, message: string): Promise<never> {
    if (await this.lockedOut()) throw new AppError('misconfigured', LOCKED_OUT);
    if (request.clientIp) {
      const limit = await this.#stub(`failed-auth:${request.clientIp}`)
        .charge({ cost: 1, policy: this.defaults })
        .catch(() => null);
      if (limit && !limit.admitted) {
        metrics.inc('rag_rate_limited_requests_total', { kind: 'failed_auth' });
        throw new AppError('rate_limited', 'Too many requests without a valid API key from this address.', {
          retryAfterSeconds: limit.retryAfterSeconds ?? undefined,
          headers: { ...rateLimitHeaders(limit), ...WWW_AUTHENTICATE },
        });
      }
    }
    throw new AppError('unauthorized', message, { headers: WWW_AUTHENTICATE });
  }
}


/** IETF httpapi rate-limit headers (draft-ietf-httpapi-ratelimit-headers): quota over the window a full bucket refills in. */
export function rateLimitHeaders(limit: LimitView): Record<string, string> {
  const window = Math.max(1, Math.round((limit.policy.burst / limit.policy.perMinute) * 60));
  return {
    'RateLimit-Policy': `"burst";q=${limit.policy.burst};w=${window}`,
    RateLimit: `"burst";r=${limit.remaining};t=${limit.resetSeconds}`,
  };
}
