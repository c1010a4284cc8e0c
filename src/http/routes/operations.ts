import { Hono } from 'hono';
import type { AppEnv } from '../app-env';
import { z } from 'zod';
import { describeRoute } from '../openapi';

export const operationsRoutes = new Hono<AppEnv>();

/** Liveness: no binding calls and no key, so it stays cheap under load. */
operationsRoutes.get('/health', (c) => c.json({ status: 'ok' }));

describeRoute({
  method: 'get',
  path: '/health',
  summary: 'Liveness',
  access: 'public',
  responses: { 200: { description: 'The Worker runs.', schema: z.object({ status: z.literal('ok') }) } },
});
