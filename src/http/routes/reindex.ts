import { Hono } from 'hono';
import { z } from 'zod';
import { sendIngestMessages } from '../../ingestion/messages';
import { armSweeper } from '../../sweeper';
import type { AppEnv } from '../app-env';
import { guard } from '../guard';
import { namespaceFor, requireAdmin } from '../tenancy';
import { Namespace, validate } from '../validation';
import { describeRoute } from '../openapi';

export const reindexRoutes = new Hono<AppEnv>();

/** `status=failed` replays only the failed documents (those dead-lettered among them). */
const ReindexQuery = z.object({ namespace: Namespace.optional(), status: z.enum(['failed']).optional() });

/**
 * Re-ingests one namespace's documents (`write`), or every document (`admin`), from the
 * originals in R2, e.g. after a change of chunking or embedding model. Unchanged chunks keep
 * their vectors.
 */
reindexRoutes.post('/', guard('write'), async (c) => {
  const { services, principal } = c.var;
  const { namespace, status } = validate(ReindexQuery, c.req.query());
  if (namespace === undefined) requireAdmin(principal, 'Re-indexing every namespace');
  else namespaceFor(principal, namespace, services.config);
  await armSweeper(c.env.SWEEPER);
  const ids = await services.documents.allIds(namespace, status);
  await services.documents.markQueued(ids);
  await sendIngestMessages(services.queue, ids);
  return c.json({ queued: ids.length }, 202);
});

describeRoute({
  method: 'post',
  path: '/v1/reindex',
  summary: "Re-ingest a namespace's documents (or, for admins, every document)",
  access: 'write',
  query: ReindexQuery,
  responses: { 202: { description: 'Queued.', schema: z.object({ queued: z.number().int() }) } },
});
