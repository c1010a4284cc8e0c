import { z } from 'zod';
import type { Services } from '../services';
import { sha256Hex } from '../text/hash';
import { detectType } from './detect';
import { metadataProblems } from './metadata-rules';
import { deleteDocument } from './generations';
import { SLICE_PREFIX } from './slices';

/**
 * An R2 event notification, as Cloudflare delivers it to the queue
 * (https://developers.cloudflare.com/r2/buckets/event-notifications/#message-format).
 */
export const R2EventMessage = z.object({
  account: z.string(),
  action: z.string(),
  bucket: z.string(),
  object: z.object({ key: z.string().min(1), size: z.number().optional(), eTag: z.string().optional() }),
  eventTime: z.string(),
});
export type R2EventMessage = z.infer<typeof R2EventMessage>;

const CREATE_ACTIONS = new Set(['PutObject', 'CopyObject', 'CompleteMultipartUpload']);
const DELETE_ACTIONS = new Set(['DeleteObject', 'LifecycleDeletion']);

/** Where the API stores uploads; their events are echoes of uploads it already queued. */
export const API_UPLOAD_PREFIX = 'originals/';

/**
 * Applies an R2 event for an object put into the bucket by any tool (wrangler, S3 clients,
 * the dashboard). A created object becomes (or refreshes) the document tracked by its key,
 * whose id derives from the key, so a changed object re-embeds only its changed chunks; a
 * deleted object removes its document. Returns the id of a document to ingest now, if any.
 */
export async function applyR2Event(services: Services, event: R2EventMessage): Promise<string | null> {
  const key = event.object.key;
  if (key.startsWith(API_UPLOAD_PREFIX) || key.startsWith(SLICE_PREFIX)) return null;
  if (DELETE_ACTIONS.has(event.action)) {
    const document = await services.documents.findByR2Key(key);
    if (document) await deleteDocument(services, document);
    return null;
  }
  if (!CREATE_ACTIONS.has(event.action)) return null;

  const object = await services.originals.head(key);
  if (!object) return null; // deleted again before we got here; its delete event follows
  const { MAX_UPLOAD_BYTES: limit, DEFAULT_NAMESPACE: namespace } = services.config;
  const filename = key.split('/').pop() || key;
  const body = object.size > limit ? null : await services.originals.get(key);
  const type = body ? detectType(new Uint8Array(await body.arrayBuffer()), filename) : null;
  const id = await documentIdForKey(namespace, key);
  // The object's custom metadata (R2's customMetadata, S3's x-amz-meta-* headers) is the
  // document's metadata, under the API's rules; values are text, as S3 and R2 keep them.
  const metadata = object.customMetadata ?? {};
  const problems = metadataProblems(metadata).map((p) => (p.path.length ? `${p.path.join('.')}: ${p.message}` : p.message));
  await services.documents.enqueue([
    // A document that cannot be read still gets a row (with a nominal type, never parsed),
    // so the reason shows in the API.
    { id, namespace, title: filename, filename, type: type ?? 'txt', size: object.size, r2Key: key, metadata: problems.length ? {} : metadata },
  ]);
  if (type && problems.length === 0) return id;
  await services.documents.markFailed(
    id,
    problems.length
      ? `The custom metadata of "${filename}" cannot be used (${problems.slice(0, 3).join('; ')}): fix it and put the object again.`
      : body
        ? `"${filename}" is not a supported document: put text, Markdown, PDF or DOCX files in the bucket.`
        : `"${filename}" is larger than MAX_UPLOAD_BYTES (${limit} bytes).`,
  );
  return null;
}

/** Documents that arrived through the bucket are identified by their key, not their bytes. */
async function documentIdForKey(namespace: string, key: string): Promise<string> {
  return (await sha256Hex(`r2\u0000${namespace}\u0000${key}`)).slice(0, 32);
}
