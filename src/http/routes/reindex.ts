import { Hono } from 'hono';
import { z } from 'zod';
import type { AppEnv } from '../app-env';
import { Namespace, validate } from '../validation';

export const reindexRoutes = new Hono<AppEnv>();

/**
 * Re-ingests every document (or one namespace's) from its original in R2, e.g. after a
 * change of chunking or embedding model. Unchanged chunks keep their vectors.
 */
reindexRoutes.post('/', async (c) => {
  const { services } = c.var;
  const { namespace } = validate(z.object({ namespace: Namespace.optional() }), c.req.query());
  const ids = await services.documents.allIds(namespace);
  await services.documents.markQueued(ids);
  for (let i = 0; i < ids.length; i += 100) {
    await services.queue.sendBatch(ids.slice(i, i + 100).map((documentId) => ({ body: { type: 'ingest', documentId } })));
  }
  return c.json({ queued: ids.length }, 202);
});
