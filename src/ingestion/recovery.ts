import { z } from 'zod';
import type { Services } from '../services';
import type { NewDocument } from '../storage/documents';
import { sendIngestMessages } from './messages';
import { detectType } from './detect';
import { API_UPLOAD_PREFIX, applyR2Event } from './r2-events';

/**
 * R2 is the source of truth: beside each original uploaded through the API lies its manifest
 * (`<key>.json`), the document's catalog row without its state. With the catalog lost, the
 * originals and manifests alone rebuild it: `recoverPage` restores the rows of a page of the
 * bucket that the catalog lacks and queues their ingestion, which rebuilds every index.
 */
const MANIFEST_SUFFIX = '.json';
export const manifestKey = (r2Key: string) => `${r2Key}${MANIFEST_SUFFIX}`;

const Manifest = z.object({
  id: z.string().min(1),
  namespace: z.string().min(1),
  title: z.string(),
  filename: z.string().nullable(),
  type: z.enum(['txt', 'md', 'pdf', 'docx']),
  size: z.number().int().min(0),
  metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
});

/** Writes a document's manifest beside its original (upload, and a re-upload that changes it). */
export async function writeManifest(services: Services, document: NewDocument): Promise<void> {
  const { r2Key: _key, ...manifest } = document;
  await services.originals.put(manifestKey(document.r2Key), JSON.stringify(manifest), { httpMetadata: { contentType: 'application/json' } });
}

/** Objects listed per page: R2 lists at most 1,000. */
const PAGE = 200;

export interface RecoveryPage {
  /** Originals seen on this page. */
  scanned: number;
  /** Documents the catalog lacked, restored and queued. */
  restored: number;
  /** Uploads without a readable manifest (from before manifests): restored from their object's custom metadata, without title or metadata. */
  withoutManifest: number;
  /** Where the next page starts; null after the last. */
  cursor: string | null;
}

/**
 * Restores the catalog rows of one page of the bucket. Uploads come back with their id,
 * namespace, title and metadata from their manifest (uploads from before manifests, from the
 * id, namespace and file name kept in the object's custom metadata); objects put straight
 * into the bucket come back as their R2 create event would make them. Rows the catalog still
 * has are left alone, so running it on an intact catalog changes nothing.
 */
export async function recoverPage(services: Services, cursor?: string): Promise<RecoveryPage> {
  const listing = await services.originals.list({ cursor, limit: PAGE, include: ['customMetadata'] });
  const originals = listing.objects.filter((object) => !object.key.endsWith(MANIFEST_SUFFIX));
  const uploads = originals.filter((object) => object.key.startsWith(API_UPLOAD_PREFIX));
  let withoutManifest = 0;
  const rows = await Promise.all(
    uploads.map(async (object) => {
      const manifest = await readManifest(services, object.key);
      if (manifest) return { ...manifest, r2Key: object.key };
      withoutManifest++;
      return fromCustomMetadata(services, object);
    }),
  );
  const found = rows.filter((row): row is NewDocument => row !== null);
  const known = await services.documents.getMany(found.map((row) => row.id));
  const restored = found.filter((row) => !known.has(row.id));
  await services.documents.enqueue(restored);
  const queued = restored.map((row) => row.id);
  let restoredOthers = 0;

  // Objects put into the bucket by other tools: as their create event would have it.
  for (const object of originals.filter((o) => !o.key.startsWith(API_UPLOAD_PREFIX))) {
    if (await services.documents.findByR2Key(object.key)) continue;
    const event = { account: '', action: 'PutObject', bucket: '', object: { key: object.key, size: object.size }, eventTime: new Date().toISOString() };
    const id = await applyR2Event(services, event);
    if (id) queued.push(id);
    restoredOthers++;
  }
  await sendIngestMessages(services.queue, queued);
  return { scanned: originals.length, restored: restored.length + restoredOthers, withoutManifest, cursor: listing.truncated ? listing.cursor : null };
}

/** An upload's row from what its object says of itself (id, namespace, file name, bytes); null if it says nothing. */
async function fromCustomMetadata(services: Services, object: R2Object): Promise<NewDocument | null> {
  const { documentId, namespace, filename } = object.customMetadata ?? {};
  if (!documentId || !namespace) return null;
  const body = await services.originals.get(object.key);
  if (!body) return null;
  const type = detectType(new Uint8Array(await body.arrayBuffer()), filename || undefined) ?? 'txt';
  return { id: documentId, namespace, title: filename || 'Untitled', filename: filename || null, type, size: object.size, r2Key: object.key, metadata: {} };
}

async function readManifest(services: Services, r2Key: string): Promise<z.infer<typeof Manifest> | null> {
  const object = await services.originals.get(manifestKey(r2Key));
  if (!object) return null;
  try {
    const parsed = Manifest.safeParse(JSON.parse(await object.text()));
    return parsed.success ? parsed.data : null;
  } catch {
    return null; // not JSON: as if it were missing
  }
}
