import type { Context, MiddlewareHandler } from 'hono';
import type { Scope } from '../security/api-key';
import { type AccessRequest, rateLimitHeaders } from '../security/access';
import type { AppEnv } from './app-env';

/** Tokens a request takes from its key's bucket: a chat runs a model, a query does not. */
export const ROUTE_COST = { default: 1, chat: 5, perUploadedFile: 1 } as const;

export interface GuardOptions {
  cost?: number;
  /** Answer without a key when this returns true (OPERATIONS_PUBLIC); a key sent is still checked. */
  open?: (c: Context<AppEnv>) => boolean;
}

/**
 * Authenticates the request, checks that its key has `scope`, and charges `cost` tokens,
 * before the handler runs and before any body is read. Sets `principal` and, when a bucket
 * was charged, the RateLimit headers.
 */
export function guard(scope: Scope, options: GuardOptions = {}): MiddlewareHandler<AppEnv> {
  return async function guardRoute(c, next) {
    const request = accessRequest(c, scope, options.cost ?? ROUTE_COST.default);
    const { principal, limit } = await c.var.services.access.admit({ ...request, open: options.open?.(c) ?? false });
    c.set('principal', principal);
    c.set('rateLimit', limit);
    await next();
    // The latest charge's view (see chargeMore); a refusal already carries its own.
    const latest = c.get('rateLimit');
    if (latest && !c.res.headers.has('RateLimit')) {
      for (const [name, value] of Object.entries(rateLimitHeaders(latest))) c.res.headers.set(name, value);
    }
  };
}

/**
 * Charges the rest of a request whose cost is known only from its body (an upload of several
 * files): a second limiter call, made only then.
 */
export async function chargeMore(c: Context<AppEnv>, scope: Scope, extra: number): Promise<void> {
  if (extra <= 0) return;
  const { limit } = await c.var.services.access.admit(accessRequest(c, scope, extra));
  if (limit) c.set('rateLimit', limit);
}

function accessRequest(c: Context<AppEnv>, scope: Scope, cost: number): AccessRequest {
  return { credential: credentialOf(c), clientIp: c.req.header('cf-connecting-ip') ?? null, scope, cost };
}

/** `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
function credentialOf(c: Context): string | null {
  const authorization = c.req.header('authorization');
  const bearer = authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  return bearer ?? c.req.header('x-api-key')?.trim() ?? null;
}
