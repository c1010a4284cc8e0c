import { DurableObject } from 'cloudflare:workers';
import { type ApiKeyRecord, ApiKeyStore } from '../storage/api-keys';
import type { Scope } from './api-key';
import { checkKey, type KeyVerdict } from './key-check';
import { type BucketPolicy, type BucketState, takeTokens } from './token-bucket';

/** A bucket's state as the response headers show it. */
export interface LimitView {
  policy: BucketPolicy;
  admitted: boolean;
  remaining: number;
  resetSeconds: number;
  /** When refused: seconds until the cost fits (null: never, it exceeds the burst). */
  retryAfterSeconds: number | null;
}

export interface KeyGrant {
  id: string;
  scopes: Scope[];
  namespaces: string[] | null;
}

export interface AuthorizeRequest {
  keyId: string;
  /** SHA-256 of the key the client sent. */
  hash: string;
  scope: Scope;
  cost: number;
  defaults: BucketPolicy;
}

export type AuthorizeResult =
  | { outcome: Exclude<KeyVerdict, 'valid'> }
  | { outcome: 'checked'; key: KeyGrant; limit: LimitView };

const RECORD = 'record';
const REVOKED = 'revoked';
const BUCKET = 'bucket';

/**
 * One token bucket, and for an API key its record, in one Durable Object per key (or per
 * client IP, or for the admin secret). Keeping the record beside the bucket makes checking a
 * key and charging it one call. A Durable Object runs one request at a time and every step
 * after the record is loaded is synchronous (SQLite-backed `storage.kv`), so N concurrent
 * requests against B tokens admit exactly B, and the bucket survives restarts. There is no
 * cache elsewhere: revoking a key here refuses its next request in every isolate.
 */
export class RateLimiter extends DurableObject<Env> {
  #record: ApiKeyRecord | null = null;
  #loading: Promise<ApiKeyRecord | null> | null = null;

  /** Checks a key (hash, revocation, expiry, scope) and, if it passes, charges its bucket. */
  async authorize(request: AuthorizeRequest): Promise<AuthorizeResult> {
    const record = await this.#load(request.keyId);
    const verdict = checkKey(record, request.hash, request.scope, this.ctx.storage.kv.get(REVOKED) !== undefined);
    if (verdict !== 'valid') return { outcome: verdict };
    const { id, scopes, namespaces, rateLimit } = record as ApiKeyRecord; // 'valid' means a record
    const key = { id, scopes, namespaces };
    const policy = { ...request.defaults, ...rateLimit };
    return { outcome: 'checked', key, limit: this.charge({ cost: request.cost, policy }) };
  }

  /** Takes `cost` tokens if the bucket holds them. */
  charge({ cost, policy }: { cost: number; policy: BucketPolicy }): LimitView {
    const previous = this.ctx.storage.kv.get<BucketState>(BUCKET);
    const decision = takeTokens(previous, policy, cost, Date.now());
    if (decision.admitted || !previous) this.ctx.storage.kv.put(BUCKET, decision.state);
    const { admitted, remaining, resetSeconds, retryAfterSeconds } = decision;
    return { policy, admitted, remaining, resetSeconds, retryAfterSeconds };
  }

  /** Refuses this key from now on, whatever the catalog says or will say. */
  revoke(at: string): void {
    this.ctx.storage.kv.put(REVOKED, at);
    if (this.#record) this.#record = { ...this.#record, revokedAt: this.#record.revokedAt ?? at };
  }

  /** The key's record: from this object's storage, or once from the D1 catalog. */
  async #load(keyId: string): Promise<ApiKeyRecord | null> {
    if (this.#record) return this.#record;
    const stored = this.ctx.storage.kv.get<ApiKeyRecord>(RECORD);
    if (stored) return (this.#record = stored);
    // Concurrent first requests share one catalog read; an unknown key is not remembered,
    // so a key created later under the same id is found.
    this.#loading ??= new ApiKeyStore(this.env.DB)
      .get(keyId)
      .then((record) => {
        if (record) this.ctx.storage.kv.put(RECORD, record), (this.#record = record);
        return record;
      })
      .finally(() => (this.#loading = null));
    return this.#loading;
  }
}
