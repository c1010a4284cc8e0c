import { Hono } from 'hono';
import type { AppEnv } from '../app-env';

export const operationsRoutes = new Hono<AppEnv>();

/** Liveness: no binding calls and no key, so it stays cheap under load. */
operationsRoutes.get('/health', (c) => c.json({ status: 'ok' }));
