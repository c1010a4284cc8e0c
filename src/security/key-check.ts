import type { ApiKeyRecord } from '../storage/api-keys';
import { sameHash, type Scope } from './api-key';
import { hasScope } from './principal';

export type KeyVerdict = 'valid' | 'unknown' | 'revoked' | 'expired' | 'forbidden';

/**
 * What a key record makes of a presented key (its hash) asking for `scope`: the one rule,
 * applied by the key's RateLimiter and, when that cannot be reached, to the D1 catalog.
 * `record` null is no such key; `revoked` adds a revocation the record may not show yet.
 */
export function checkKey(record: ApiKeyRecord | null, hash: string, scope: Scope, revoked = false): KeyVerdict {
  if (!record || !sameHash(record.hash, hash)) return 'unknown';
  if (record.revokedAt || revoked) return 'revoked';
  if (record.expiresAt && Date.parse(record.expiresAt) <= Date.now()) return 'expired';
  return hasScope(record, scope) ? 'valid' : 'forbidden';
}
