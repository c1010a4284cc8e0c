import { Hono } from 'hono';
import { z } from 'zod';
import { sendIngestMessages } from '../../ingestion/messages';
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
  await sendIngestMessages(services.queue, ids);
  return c.json({ queued: ids.length }, 202);
});
