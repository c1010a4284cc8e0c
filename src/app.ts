import { Hono } from 'hono';
import type { AppEnv } from './http/app-env';
import { JSON_BODY_LIMIT, limitBody } from './http/body-limit';
import { engineError } from './http/errors';
import { corsForConfiguredOrigins, securityHeaders } from './http/browser-safety';
import { observeRequests } from './http/observe';
import { openAIRoutes } from './http/routes/openai-compatible';
import { documentRoutes } from './http/routes/documents';
import { keyRoutes } from './http/routes/keys';
import { mcpRoutes } from './http/routes/mcp';
import { metricsRoutes } from './http/routes/metrics';
import { operationsRoutes } from './http/routes/operations';
import { recoverRoutes } from './http/routes/recover';
import { referenceRoutes } from './http/routes/reference';
import { reindexRoutes } from './http/routes/reindex';
import { retrievalRoutes } from './http/routes/retrieval';
import { statusRoutes } from './http/routes/status';
import { getServices } from './composition';


export const app = new Hono<AppEnv>();

app.use(securityHeaders());
app.use(async (c, next) => {
  c.set('services', getServices(c.env));
  await next();
});
app.use(observeRequests());
app.use(corsForConfiguredOrigins());

app.route('/', operationsRoutes);
app.route('/', referenceRoutes);
app.route('/', statusRoutes);
app.route('/metrics', metricsRoutes);
app.route('/v1/documents', documentRoutes);
app.route('/v1/reindex', reindexRoutes);
app.route('/v1/recover', recoverRoutes);
app.route('/mcp', mcpRoutes);
app.use('/v1/keys', limitBody(JSON_BODY_LIMIT));
app.route('/v1/keys', keyRoutes);
app.use('/v1/query', limitBody(JSON_BODY_LIMIT));
app.use('/v1/chat', limitBody(JSON_BODY_LIMIT));
app.route('/v1', openAIRoutes);
app.route('/v1', retrievalRoutes);

app.notFound((c) => c.json({ error: { code: 'not_found', message: `No route for ${c.req.method} ${c.req.path}.` } }, 404));

app.onError(engineError);
