import { z } from 'zod';
import type { Scope } from '../domain';

/**
 * The API's description, OpenAPI 3.1, built from what each route declares beside its handler
 * (`describeRoute`): the zod schemas that validate its body and query (never restated by hand),
 * its scope, and its answers. Errors and security follow from the scope and the request's kind.
 * `test/openapi.test.ts` validates the document and checks it lists every route of the app.
 */
export interface RouteDoc {
  method: 'get' | 'post' | 'delete';
  /** OpenAPI form: `/v1/documents/{id}`. */
  path: string;
  summary: string;
  description?: string;
  /** Who may call it: a scope, or `public` (no key). `operations`: public when OPERATIONS_PUBLIC. */
  access: Scope | 'public' | 'operations';
  query?: z.ZodObject;
  /** A JSON body, and/or a multipart upload. */
  body?: z.ZodType;
  multipart?: boolean;
  /** Status → what it answers. JSON unless `contentType` says otherwise. */
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
  /** OpenAI's error shape instead of the engine's. */
  openAIErrors?: boolean;
}

const routes: RouteDoc[] = [];

/** Declares a route for the API description (call it next to the route's handler). */
export function describeRoute(doc: RouteDoc): void {
  routes.push(doc);
}

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const ERROR_CODES: Record<number, string> = {
  400: 'The request is malformed or breaks a limit; the message says which and how.',
  401: 'No API key, or an unknown, revoked or expired one.',
  403: 'The key lacks the scope or namespace, or a quota is reached.',
  404: 'No such document or key (one in another namespace looks the same).',
  413: 'The body is larger than allowed.',
  415: 'The body is not JSON (or, for uploads, not multipart or JSON).',
  429: 'Rate limited: retry after `Retry-After` seconds.',
  503: 'Misconfigured or unavailable (an operator problem); `Retry-After` when it is passing.',
};

function errorsFor(doc: RouteDoc): number[] {
  const codes = new Set<number>([503]);
  if (doc.access !== 'public') [401, 403, 429].forEach((c) => codes.add(c));
  if (doc.query || doc.body || doc.multipart) codes.add(400);
  if (doc.body || doc.multipart) [413, 415].forEach((c) => codes.add(c));
  if (doc.path.includes('{')) codes.add(404);
  return [...codes].sort();
}

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const doc of routes) {
    const parameters = [
      ...[...doc.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries(doc.query ? (jsonSchema(doc.query).properties as Record<string, unknown>) ?? {} : {}).map(([name, schema]) => ({
        name,
        in: 'query',
        required: ((jsonSchema(doc.query as z.ZodObject).required as string[] | undefined) ?? []).includes(name),
        schema,
      })),
    ];
    const content: Record<string, unknown> = {};
    if (doc.body) content['application/json'] = { schema: jsonSchema(doc.body) };
    if (doc.multipart) {
      content['multipart/form-data'] = {
        schema: {
          type: 'object',
          properties: {
            file: { type: 'array', items: { type: 'string', contentMediaType: 'application/octet-stream' }, description: 'One or more files (txt, md, pdf, docx).' },
            namespace: { type: 'string' },
            metadata: { type: 'string', description: 'JSON object of string, number or boolean values, for every file.' },
          },
          required: ['file'],
        },
      };
    }
    const responses: Record<string, unknown> = {};
    for (const [status, answer] of Object.entries(doc.responses)) {
      responses[status] = {
        description: answer.description,
        ...(answer.schema || answer.contentType ? { content: { [answer.contentType ?? 'application/json']: { schema: answer.schema ? jsonSchema(answer.schema) : { type: 'string' } } } } : {}),
      };
    }
    for (const status of errorsFor(doc)) {
      responses[String(status)] ??= {
        description: ERROR_CODES[status],
        content: { 'application/json': { schema: { $ref: doc.openAIErrors ? '#/components/schemas/OpenAIError' : '#/components/schemas/Error' } } },
      };
    }
    const scope = doc.access === 'public' ? 'none' : doc.access === 'operations' ? '`read` (none with OPERATIONS_PUBLIC)' : `\`${doc.access}\``;
    (paths[doc.path] ??= {})[doc.method] = {
      summary: doc.summary,
      description: [doc.description, `Scope: ${scope}.`].filter(Boolean).join('\n\n'),
      ...(parameters.length ? { parameters } : {}),
      ...(Object.keys(content).length ? { requestBody: { required: true, content } } : {}),
      responses,
      security: doc.access === 'public' ? [] : doc.access === 'operations' ? [{}, { bearer: [] }, { apiKey: [] }] : [{ bearer: [] }, { apiKey: [] }],
      'x-scope': doc.access,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'RAG engine',
      version: '1',
      description: 'Upload documents, search their passages, and get cited answers. With auth off (the offline default) no key is needed.',
    },
    servers: [{ url: '/' }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer rag_…`' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      schemas: {
        Error: {
          type: 'object',
          properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
          required: ['error'],
        },
        OpenAIError: {
          type: 'object',
          properties: {
            error: {
              type: 'object',
              properties: { message: { type: 'string' }, type: { type: 'string' }, param: { type: ['string', 'null'] }, code: { type: 'string' } },
              required: ['message', 'type', 'code'],
            },
          },
          required: ['error'],
        },
      },
    },
  };
}
