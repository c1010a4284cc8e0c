import { Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../domain/errors';
import { sendIngestMessages } from '../../ingestion/messages';
import { deleteDocument } from '../../ingestion/generations';
import { servingScope } from '../../retrieval/generations';
import { API_UPLOAD_PREFIX } from '../../ingestion/r2-events';
import { manifestKey } from '../../ingestion/recovery';
import { acceptUploads, type UploadFile } from '../../ingestion/upload';
import { atMost } from '../../ingestion/metadata-rules';
import { armSweeper } from '../../sweeper';
import type { AppEnv } from '../app-env';
import { limitBody } from '../body-limit';
import { chargeMore, guard, ROUTE_COST } from '../guard';
import { presentDocument } from '../present';
import { listingNamespace, namespaceFor, visibleDocument } from '../tenancy';
import { REQUEST_LIMITS as L } from '../../limits';
import { Filename, Metadata, Namespace, readJson, Title, validate } from '../validation';
import { describeRoute } from '../openapi';
import { DocumentView, PassageView } from '../present';

const TextDocument = z.object({
  text: z.string().refine((t) => t.trim().length > 0, 'text must not be empty'),
  title: Title.optional(),
  filename: Filename.optional(),
  metadata: Metadata.optional(),
});

/** The files or documents one upload may carry: the MAX_FILES_PER_UPLOAD setting. */
const tooManyFiles = (max: number) => `${atMost(max, 'files or documents')} per upload (MAX_FILES_PER_UPLOAD)`;

/**
 * One text, or many at once (bulk loads: one request, one catalog write, one queue batch), at
 * most `maxDocuments` of them (zod refuses a longer list before looking at its items). Built
 * per upload, since the cap is a setting: a few microseconds beside the upload's own work.
 */
function textUpload(maxDocuments: number) {
  return z.union([
    TextDocument.extend({ namespace: Namespace.optional() }),
    z.object({ documents: z.array(TextDocument).min(1).max(maxDocuments, tooManyFiles(maxDocuments)), namespace: Namespace.optional() }),
  ]);
}

const ListQuery = z.object({
  status: z.enum(['queued', 'processing', 'ready', 'failed']).optional(),
  namespace: Namespace.optional(),
  limit: z.coerce.number().int().min(1).max(L.maxPageSize, atMost(L.maxPageSize, 'documents a page')).default(20),
  cursor: z.coerce.number().int().positive().optional(),
});

export const documentRoutes = new Hono<AppEnv>();

documentRoutes.post(
  '/',
  guard('write', { cost: ROUTE_COST.perUploadedFile }),
  (c, next) => limitBody(c.var.services.config.MAX_UPLOAD_BYTES)(c, next),
  async (c) => {
    const { services, principal } = c.var;
    // Whatever this upload queues, the sweeper sees to it that it does not stay queued.
    await armSweeper(c.env.SWEEPER);
    const contentType = c.req.header('content-type') ?? '';
    let files: UploadFile[];
    let namespace: string | undefined;
    let metadata: Record<string, string | number | boolean> = {};

    const maxFiles = services.config.MAX_FILES_PER_UPLOAD;
    if (contentType.startsWith('multipart/form-data')) {
      const form = await c.req.formData().catch(() => {
        throw new AppError('bad_request', 'The multipart body could not be read.');
      });
      const parts = [...form.values()].filter((value): value is File => typeof value !== 'string');
      // Counted and named before any file is read.
      if (parts.length > maxFiles) throw new AppError('bad_request', `files: ${tooManyFiles(maxFiles)}.`);
      const names = parts.map((part, i) => (part.name ? validate(Filename, part.name, parts.length === 1 ? 'filename' : `files.${i}.filename`) : undefined));
      const title = form.get('title');
      const checkedTitle = typeof title === 'string' ? validate(Title, title, 'title') : undefined;
      const ns = form.get('namespace');
      if (typeof ns === 'string') namespace = validate(Namespace, ns, 'namespace');
      const meta = form.get('metadata');
      if (typeof meta === 'string') metadata = validate(Metadata, parseJsonField(meta), 'metadata');
      files = [];
      for (const [i, part] of parts.entries()) files.push({ bytes: new Uint8Array(await part.arrayBuffer()), filename: names[i] });
      if (checkedTitle && files.length === 1 && files[0]) files[0].title = checkedTitle;
    } else if (contentType.startsWith('application/json')) {
      const body = await readJson(c, textUpload(maxFiles));
      const texts = 'documents' in body ? body.documents : [body];
      files = texts.map((t) => ({
        bytes: new TextEncoder().encode(t.text),
        filename: t.filename,
        title: t.title,
        metadata: t.metadata,
      }));
      namespace = body.namespace;
    } else {
      throw new AppError(
        'unsupported_media_type',
        'Send files as multipart/form-data, or JSON { "text": "…" } as application/json.',
      );
    }

    if (files.length === 0) throw new AppError('bad_request', 'The multipart body contains no file.');
    const target = namespaceFor(principal, namespace, services.config);
    await chargeMore(c, 'write', (files.length - 1) * ROUTE_COST.perUploadedFile);
    const documents = await acceptUploads(services, files, { namespace: target, metadata });
    return c.json({ documents }, 202);
  },
);

documentRoutes.get('/', guard('read'), async (c) => {
  const { services, principal } = c.var;
  const query = validate(ListQuery, c.req.query());
  const page = await services.documents.list({ ...query, namespace: listingNamespace(principal, query.namespace, services.config) });
  return c.json({ documents: page.documents.map((d) => presentDocument(d)), nextCursor: page.nextCursor });
});

documentRoutes.get('/:id', guard('read'), async (c) => {
  const { engine } = c.var.services;
  const document = await visibleDocument(c, c.req.param('id'));
  const write = document.status === 'ready' ? document.vectorWrite : null;
  const searchable = write ? await engine.isApplied(write) : document.status === 'ready';
  return c.json(presentDocument(document, searchable));
});

const PassagePage = z.object({
  from: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(100, atMost(100, 'passages a page')).default(20),
});

/** A document's searchable passages in order, a page at a time: its text as search sees it. */
documentRoutes.get('/:id/passages', guard('read'), async (c) => {
  const document = await visibleDocument(c, c.req.param('id'));
  const page = validate(PassagePage, c.req.query());
  const { engine } = await servingScope(c.var.services, document.namespace);
  const passages = await engine.documentPassages(document.namespace, document.id, page);
  return c.json({
    id: document.id,
    passages: passages.map((p) => ({ id: p.id, text: p.text, position: { index: p.position, page: p.page, headings: p.headings } })),
    nextFrom: passages.length === page.limit ? page.from + page.limit : null,
  });
});

documentRoutes.delete('/:id', guard('write'), async (c) => {
  const { services } = c.var;
  const document = await visibleDocument(c, c.req.param('id'));
  // Index entries and the row first, then the original: a failure part-way leaves a
  // document that is still listed and can be deleted again, never an orphan.
  await deleteDocument(services, document);
  await services.originals.delete(document.r2Key.startsWith(API_UPLOAD_PREFIX) ? [document.r2Key, manifestKey(document.r2Key)] : document.r2Key);
  return c.json({ id: document.id, deleted: true });
});

documentRoutes.post('/:id/reindex', guard('write'), async (c) => {
  const { services } = c.var;
  const document = await visibleDocument(c, c.req.param('id'));
  await services.documents.markQueued([document.id]);
  await sendIngestMessages(services.queue, [document.id]);
  return c.json({ id: document.id, status: 'queued' }, 202);
});

function parseJsonField(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError('bad_request', 'metadata: not valid JSON.');
  }
}

const Accepted = z.object({
  documents: z.array(z.object({ id: z.string(), title: z.string(), status: DocumentView.shape.status, duplicate: z.boolean() })),
});

describeRoute({
  method: 'post',
  path: '/v1/documents',
  summary: 'Upload documents',
  description: 'Files as multipart (`file`, repeated), or texts as JSON (one, or `documents` for many). Each is stored in R2 and queued for ingestion; an identical re-upload is the same document.',
  access: 'write',
  multipart: true,
  body: textUpload(100),
  responses: { 202: { description: 'Accepted: queued for ingestion.', schema: Accepted } },
});
describeRoute({
  method: 'get',
  path: '/v1/documents',
  summary: 'List documents, newest first',
  access: 'read',
  query: ListQuery,
  responses: { 200: { description: 'A page of documents.', schema: z.object({ documents: z.array(DocumentView), nextCursor: z.string().nullable() }) } },
});
describeRoute({
  method: 'get',
  path: '/v1/documents/{id}',
  summary: 'A document and its status',
  access: 'read',
  responses: { 200: { description: 'The document.', schema: DocumentView } },
});
describeRoute({
  method: 'delete',
  path: '/v1/documents/{id}',
  summary: 'Delete a document everywhere',
  access: 'write',
  responses: { 200: { description: 'Deleted.', schema: z.object({ id: z.string(), deleted: z.literal(true) }) } },
});
describeRoute({
  method: 'post',
  path: '/v1/documents/{id}/reindex',
  summary: 'Re-ingest a document from its original',
  access: 'write',
  responses: { 202: { description: 'Queued.', schema: z.object({ id: z.string(), status: z.literal('queued') }).passthrough() } },
});
describeRoute({
  method: 'get',
  path: '/v1/documents/{id}/passages',
  summary: "A document's passages in order",
  access: 'read',
  query: PassagePage,
  responses: {
    200: {
      description: 'A page of its passages; `nextFrom` continues, null after the last.',
      schema: z.object({
        id: z.string(),
        passages: z.array(z.object({ id: z.string(), text: z.string(), position: PassageView.shape.position })),
        nextFrom: z.number().int().nullable(),
      }),
    },
  },
});
