import type { Context } from 'hono';
import { z } from 'zod';
import type { Config } from '../config';
import { AppError } from '../errors';
import type { SearchRequest } from '../retrieval/search';
import type { Principal } from '../security/principal';
import { namespaceFor } from './tenancy';

/**
 * Reads a JSON body and validates it, answering 400 with what is wrong. Only an
 * `application/json` body is read (415 otherwise): a browser sends that type cross-site only
 * after a CORS preflight, so a form on another site cannot post to the API.
 */
export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  if (!isJson(c.req.header('content-type'))) {
    throw new AppError('unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');
  }
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new AppError('invalid_json', 'The request body is not valid JSON.');
  }
  return validate(schema, body);
}

export function isJson(contentType: string | undefined): boolean {
  return /^application\/json\s*(;|$)/i.test(contentType ?? '');
}

export function validate<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
    throw new AppError('bad_request', problems.join('; '));
  }
  return result.data;
}

const FIELD = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'field names are letters, digits, _ . - (≤ 64)');
const VALUE = z.union([z.string().max(1024), z.number(), z.boolean()]);

export const Namespace = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'a namespace is 1-64 letters, digits, _ or -');

/** Filterable document metadata (kept small: it travels with every vector, ≤ 10 KiB in Vectorize). */
export const Metadata = z
  .record(FIELD, VALUE)
  .refine((m) => Object.keys(m).length <= 32, 'at most 32 metadata fields')
  .refine((m) => !('documentId' in m), '"documentId" is reserved');

/** Vectorize's filter syntax: `{ field: value }` or `{ field: { $eq|$ne: v, $in|$nin: [v…] } }`. */
export const Filter = z.record(
  FIELD,
  z.union([
    VALUE,
    z
      .object({ $eq: VALUE, $ne: VALUE, $in: z.array(VALUE).min(1).max(100), $nin: z.array(VALUE).min(1).max(100) })
      .partial()
      .strict()
      .refine((o) => Object.keys(o).length > 0, 'an operator object needs $eq, $ne, $in or $nin'),
  ]),
);

/** Retrieval fields shared by /v1/query, /v1/chat and /v1/chat/completions. */
export const Retrieval = {
  // Vectorize's limit for matches without metadata; evaluations need Recall@100.
  topK: z.number().int().min(1).max(100).optional(),
  namespace: Namespace.optional(),
  filter: Filter.optional(),
  mode: z.enum(['hybrid', 'vector', 'keyword']).default('hybrid'),
};

/** The search options of a request, with the configured defaults filled in and its namespace checked. */
export function retrievalOptions(
  body: { topK?: number; namespace?: string; filter?: SearchRequest['filter']; mode: SearchRequest['mode'] },
  config: Config,
  principal: Principal,
): Omit<SearchRequest, 'query'> {
  return {
    topK: body.topK ?? config.DEFAULT_TOP_K,
    namespace: namespaceFor(principal, body.namespace, config),
    filter: body.filter,
    mode: body.mode,
  };
}
