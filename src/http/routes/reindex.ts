import { Hono } from 'hono';
import { z } from 'zod';
import { sendIngestMessages } from '../../ingestion/messages';
import { startRebuild } from '../../ingestion/generations';
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
 * Rebuilds one namespace's index (`write`), or every namespace's (`admin`), from the originals
 * in R2 with the current settings, e.g. after a change of chunking or embedding model: a new
 * index generation is built beside the serving one, which keeps answering queries until every
 * document is in the new one (progress in /status). Unchanged chunks are not embedded again
 * when the model is the same. `status=failed` instead replays the failed documents in place.
 */
reindexRoutes.post('/', guard('write'), async (c) => {
  const { services, principal } = c.var;
  const { namespace, status } = validate(ReindexQuery, c.req.query());
  if (namespace === undefined) requireAdmin(principal, 'Re-indexing every namespace');
  else namespaceFor(principal, namespace, services.config);
  await armSweeper(c.env.SWEEPER);
  if (status === 'failed') {
    const ids = await services.documents.allIds(namespace, status);
    await services.documents.markQueued(ids);
    await sendIngestMessages(services.queue, ids);
    return c.json({ queued: ids.length, generations: [] }, 202);
  }
  const namespaces = namespace === undefined ? await services.documents.namespaces() : [namespace];
  const generations: { namespace: string; generation: number; queued: number }[] = [];
  for (const name of namespaces) generations.push({ namespace: name, ...(await startRebuild(services, name)) });
  return c.json({ queued: generations.reduce((n, g) => n + g.queued, 0), generations }, 202);
});

describeRoute({
  method: 'post',
  path: '/v1/reindex',
  summary: "Rebuild a namespace's index (or, for admins, every namespace's) beside the serving one",
  access: 'write',
  query: ReindexQuery,
  responses: {
    202: {
      description: 'Queued: the index generations being built, and the documents each needs.',
      schema: z.object({
        queued: z.number().int(),
        generations: z.array(z.object({ namespace: z.string(), generation: z.number().int(), queued: z.number().int() })),
      }),
    },
  },
});
