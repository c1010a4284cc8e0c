import { Hono } from 'hono';
import { z } from 'zod';
import { recoverPage } from '../../ingestion/recovery';
import { armSweeper } from '../../sweeper';
import type { AppEnv } from '../app-env';
import { guard } from '../guard';
import { validate } from '../validation';
import { describeRoute } from '../openapi';

export const recoverRoutes = new Hono<AppEnv>();

/**
 * Rebuilds the catalog from R2 (admin): restores the rows of one page of the bucket that the
 * catalog lacks and queues their ingestion. Call again with the returned `cursor` until it is
 * null (`node scripts/recover.mjs` does). An intact catalog is left as it is.
 */
recoverRoutes.post('/', guard('admin'), async (c) => {
  await armSweeper(c.env.SWEEPER);
  const { cursor } = validate(z.object({ cursor: z.string().min(1).max(1024).optional() }), c.req.query());
  return c.json(await recoverPage(c.var.services, cursor), 202);
});

describeRoute({
  method: 'post',
  path: '/v1/recover',
  summary: 'Rebuild the catalog from R2, a page at a time',
  access: 'admin',
  query: z.object({ cursor: z.string().optional() }),
  responses: {
    202: {
      description: 'One page done; call again with `cursor` until it is null.',
      schema: z.object({ scanned: z.number().int(), restored: z.number().int(), withoutManifest: z.number().int(), cursor: z.string().nullable() }),
    },
  },
});
