import { Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../domain/errors';
import { generateApiKey, SCOPES } from '../../security/api-key';
import type { ApiKeyRecord } from '../../storage/api-keys';
import type { AppEnv } from '../app-env';
import { guard } from '../guard';
import { Namespace, readJson } from '../validation';
import { describeRoute } from '../openapi';

const NewKey = z
  .object({
    name: z.string().trim().min(1).max(100).optional(),
    scopes: z.array(z.enum(SCOPES as ['read', 'write', 'admin'])).min(1).max(3),
    /** The namespaces the key may use; omitted or null for all. */
    namespaces: z.array(Namespace).min(1).max(100).nullable().optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    rateLimit: z
      .object({ perMinute: z.number().int().min(1).max(1_000_000), burst: z.number().int().min(1).max(100_000) })
      .partial()
      .strict()
      .optional(),
  })
  .strict()
  .refine((k) => !(k.scopes.includes('admin') && k.namespaces), {
    message: 'namespaces: an admin key works across every namespace, so it cannot be confined to some',
    path: ['namespaces'],
  })
  .refine((k) => k.expiresAt === undefined || Date.parse(k.expiresAt) > Date.now(), {
    message: 'must be in the future',
    path: ['expiresAt'],
  });

/** A key as listings show it: never the key, nor its hash. */
function presentKey(key: ApiKeyRecord) {
  return {
    id: key.id,
    name: key.name,
    scopes: key.scopes,
    namespaces: key.namespaces,
    rateLimit: key.rateLimit,
    expiresAt: key.expiresAt,
    createdAt: key.createdAt,
    revokedAt: key.revokedAt,
  };
}

/** API keys, for admins: create (the key is shown once), list, revoke. */
export const keyRoutes = new Hono<AppEnv>();

keyRoutes.post('/', guard('admin'), async (c) => {
  const { services } = c.var;
  const body = await readJson(c, NewKey);
  const { id, key, hash } = await generateApiKey();
  const record: ApiKeyRecord = {
    id,
    name: body.name ?? null,
    hash,
    scopes: [...new Set(body.scopes)],
    namespaces: body.namespaces ? [...new Set(body.namespaces)] : null,
    rateLimit: body.rateLimit && Object.keys(body.rateLimit).length ? body.rateLimit : null,
    expiresAt: body.expiresAt ? new Date(body.expiresAt).toISOString() : null,
    createdAt: new Date().toISOString(),
    revokedAt: null,
  };
  await services.keys.create(record);
  return c.json({ ...presentKey(record), key }, 201);
});

keyRoutes.get('/', guard('admin'), async (c) => {
  const includeRevoked = c.req.query('revoked') === 'true';
  const keys = await c.var.services.keys.list({ includeRevoked });
  return c.json({ keys: keys.map(presentKey) });
});

keyRoutes.delete('/:id', guard('admin'), async (c) => {
  const id = c.req.param('id');
  if (!/^[0-9a-f]{12}$/.test(id)) throw new AppError('not_found', 'No API key with this id.');
  if (!(await c.var.services.access.revoke(id))) throw new AppError('not_found', 'No API key with this id.');
  return c.json({ id, revoked: true });
});

const KeyView = z.object({
  id: z.string(),
  name: z.string().nullable(),
  scopes: z.array(z.enum(['read', 'write', 'admin'])),
  namespaces: z.array(z.string()).nullable(),
  rateLimit: z.object({ perMinute: z.number().optional(), burst: z.number().optional() }).nullable(),
  expiresAt: z.string().nullable(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});

describeRoute({
  method: 'post',
  path: '/v1/keys',
  summary: 'Create an API key (shown once)',
  access: 'admin',
  body: NewKey,
  responses: { 201: { description: 'The key, with its secret `key`: store it now.', schema: KeyView.extend({ key: z.string() }) } },
});
describeRoute({
  method: 'get',
  path: '/v1/keys',
  summary: 'List API keys (never their secrets)',
  access: 'admin',
  query: z.object({ revoked: z.enum(['true', 'false']).optional() }),
  responses: { 200: { description: 'The keys.', schema: z.object({ keys: z.array(KeyView) }) } },
});
describeRoute({
  method: 'delete',
  path: '/v1/keys/{id}',
  summary: 'Revoke an API key, at once everywhere',
  access: 'admin',
  responses: { 200: { description: 'Revoked.', schema: z.object({ id: z.string(), revoked: z.literal(true) }) } },
});
