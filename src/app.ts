import { Hono } from 'hono';
import { AppError } from './domain/errors';
import type { AppEnv } from './http/app-env';
import { limitBody } from './http/body-limit';
import { corsForConfiguredOrigins, securityHeaders } from './http/browser-safety';
import { observeRequests } from './http/observe';
import { chatCompletionsRoutes } from './http/routes/chat-completions';
import { documentRoutes } from './http/routes/documents';
import { keyRoutes } from './http/routes/keys';
import { metricsRoutes } from './http/routes/metrics';
import { operationsRoutes } from './http/routes/operations';
import { recoverRoutes } from './http/routes/recover';
import { reindexRoutes } from './http/routes/reindex';
import { retrievalRoutes } from './http/routes/retrieval';
import { statusRoutes } from './http/routes/status';
import { getServices } from './composition';

/** Bodies of the JSON endpoints (queries, chats); uploads have their own, larger limit. */
const JSON_BODY_LIMIT = 1024 * 1024;

export const app = new Hono<AppEnv>();

app.use(securityHeaders());
app.use(async (c, next) => {
  c.set('services', getServices(c.env));
  await next();
});
app.use(observeRequests());
app.use(corsForConfiguredOrigins());

app.route('/', operationsRoutes);
app.route('/', statusRoutes);
app.route('/metrics', metricsRoutes);
app.route('/v1/documents', documentRoutes);
app.route('/v1/reindex', reindexRoutes);
app.route('/v1/recover', recoverRoutes);
app.use('/v1/keys', limitBody(JSON_BODY_LIMIT));
app.route('/v1/keys', keyRoutes);
app.use('/v1/query', limitBody(JSON_BODY_LIMIT));
app.use('/v1/chat', limitBody(JSON_BODY_LIMIT));
app.use('/v1/chat/completions', limitBody(JSON_BODY_LIMIT));
app.route('/v1/chat/completions', chatCompletionsRoutes);
app.route('/v1', retrievalRoutes);

app.notFound((c) => c.json({ error: { code: 'not_found', message: `No route for ${c.req.method} ${c.req.path}.` } }, 404));

app.onError((error, c) => {
  if (error instanceof AppError) {
    if (error.status >= 500) console.error(error);
    const headers: Record<string, string> = { ...error.headers };
    if (error.retryAfterSeconds !== undefined && (error.status === 429 || error.status === 503)) {
      headers['Retry-After'] = String(Math.max(1, Math.ceil(error.retryAfterSeconds)));
    }
    return c.json({ error: { code: error.code, message: error.message } }, error.status as 400, headers);
  }
  console.error('unhandled error', c.req.method, c.req.path, error);
  return c.json({ error: { code: 'internal', message: 'Internal error.' } }, 500);
});
