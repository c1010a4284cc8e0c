import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { flushMetricsIfDue } from '../observability/flush';
import { metrics } from '../observability/metrics';
import type { AppEnv } from './app-env';

/** A client's request id is kept when it is short and plain; anything else gets a fresh one. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Per request: an id (returned as X-Request-Id, and taken from the client when it sends
 * one), one JSON log line (id, method, route, status, latency, key id), and the request
 * counters and latency histogram, flushed off the request path.
 */
export function observeRequests(): MiddlewareHandler<AppEnv> {
  return async function observeRequest(c, next) {
    const started = Date.now();
    const sent = c.req.header('x-request-id');
    const requestId = sent && CLIENT_REQUEST_ID.test(sent) ? sent : crypto.randomUUID();
    c.set('requestId', requestId);
    await next();
    c.res.headers.set('X-Request-Id', requestId);

    const ms = Date.now() - started;
    const route = routeOf(c);
    const status = c.res.status;
    metrics.inc('rag_http_requests_total', { route, method: c.req.method, status: String(status) });
    metrics.observe('rag_http_request_duration_seconds', { route }, ms / 1000);
    const { services } = c.var;
    services.log[status >= 500 ? 'error' : 'info']('request', {
      requestId,
      method: c.req.method,
      route,
      path: c.req.path,
      status,
      ms,
      key: c.get('principal')?.keyId ?? null,
    });
    await flushMetricsIfDue(c.env.METRICS);
  };
}

/** The route pattern that answered (`/v1/documents/:id`), so ids do not multiply the series. */
function routeOf(c: Context<AppEnv>): string {
  const path = routePath(c, -1);
  return path === '*' || path === '/*' ? 'unmatched' : path;
}
