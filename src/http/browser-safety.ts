import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv } from './app-env';

/** For any HTML the Worker serves: nothing from elsewhere, no framing, no plugins. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * Headers every response carries: `nosniff` (a JSON answer is never run as a script), no
 * caching of API answers by browsers or proxies (they depend on the key that asked), and a
 * strict Content-Security-Policy on HTML.
 */
export function securityHeaders(): MiddlewareHandler<AppEnv> {
  return async function setSecurityHeaders(c, next) {
    await next();
    const headers = c.res.headers;
    headers.set('X-Content-Type-Options', 'nosniff');
    if (!headers.has('Cache-Control')) headers.set('Cache-Control', 'no-store');
    if (headers.get('Content-Type')?.startsWith('text/html')) {
      headers.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
      headers.set('X-Frame-Options', 'DENY');
    }
  };
}

/**
 * CORS for the origins in CORS_ORIGINS (none by default: browsers on other sites get no
 * access). Preflights are answered for the headers the API reads, and the rate-limit and
 * request-id headers are exposed to scripts.
 */
export function corsForConfiguredOrigins(): MiddlewareHandler<AppEnv> {
  return async function corsIfConfigured(c, next) {
    const origins = c.var.services.config.CORS_ORIGINS;
    if (origins.length === 0) return next();
    return cors({
      origin: origins.includes('*') ? '*' : origins,
      allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      allowHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'X-Request-Id'],
      exposeHeaders: ['RateLimit', 'RateLimit-Policy', 'Retry-After', 'X-Request-Id', 'X-Cache'],
      maxAge: 600,
    })(c, next);
  };
}
