import { AppError } from '../domain/errors';
import type { DocumentMetadata } from '../domain';
import type { Services } from '../services';
import type { DocumentStatus } from '../domain';
import type { NewDocument } from '../storage/documents';
import { sha256Hex } from '../text/hash';
import { detectType } from './detect';
import { sendIngestMessages } from './messages';
import { checkUploadQuotas } from './quotas';
import { API_UPLOAD_PREFIX } from './r2-events';
import { manifestKey, writeManifest } from './recovery';

export interface UploadFile {
  bytes: Uint8Array;
  filename?: string;
  title?: string;
  /** Overrides the request's shared metadata for this file. */
  metadata?: DocumentMetadata;
}

export interface AcceptedDocument {
  id: string;
  title: string;
  status: DocumentStatus;
  /** True when these exact bytes were already uploaded to this namespace. */
  duplicate: boolean;
}

/**
 * Stores uploaded files in R2, records them as `queued` and enqueues their ingestion.
 * A document's id is the hash of its namespace and bytes, so uploading the same file
 * again returns the existing document instead of creating a second one (a failed one
 * is queued again). Every file is checked before anything is stored: one unsupported
 * file rejects the whole request, and nothing of it is kept.
 */
export async function acceptUploads(
  services: Services,
  files: UploadFile[],
  options: { namespace: string; metadata: DocumentMetadata },
): Promise<AcceptedDocument[]> {
  const prepared = await Promise.all(
    files.map(async (file) => {
      const type = detectType(file.bytes, file.filename);
      if (!type) {
        throw new AppError(
          'unsupported_media_type',
          `${file.filename ? `"${file.filename}"` : 'The upload'} is not a supported document: send text, Markdown, PDF or DOCX.`,
        );
      }
      const id = (await sha256Hex(concat(`${options.namespace}\u0000`, file.bytes))).slice(0, 32);
      const document: NewDocument = {
        id,
        namespace: options.namespace,
        title: file.title?.trim() || file.filename || 'Untitled',
        filename: file.filename ?? null,
        type,
        size: file.bytes.byteLength,
        r2Key: `${API_UPLOAD_PREFIX}${options.namespace}/${id}`,
        metadata: file.metadata ?? options.metadata,
      };
      return { document, bytes: file.bytes };
    }),
  );

  const existing = await services.documents.getMany(prepared.map((p) => p.document.id));
  const fresh = new Map<string, (typeof prepared)[number]>();
  for (const item of prepared) {
    const known = existing.get(item.document.id);
    if (!known || known.status === 'failed') fresh.set(item.document.id, item);
  }

  await checkUploadQuotas(services, options.namespace, {
    documents: [...fresh.values()].filter((item) => !existing.has(item.document.id)).length,
    bytes: [...fresh.values()].reduce((sum, item) => sum + (existing.has(item.document.id) ? 0 : item.document.size), 0),
  });
  const created = [...fresh.values()].filter((item) => !existing.has(item.document.id)).map((item) => item.document);
  // Each step undoes what the upload stored before it fails, so a failure leaves nothing half-stored.
  await step(services, 'storage', created, async () => {
    // Settled, not raced: the cleanup must not run while a put is still landing.
    const puts = await Promise.allSettled(
      [...fresh.values()].flatMap(({ document, bytes }) => [
        services.originals.put(document.r2Key, bytes, {
          customMetadata: { documentId: document.id, filename: document.filename ?? '', namespace: document.namespace },
        }),
        // What recovery needs to restore the row from R2 alone (recovery.ts).
        writeManifest(services, document),
      ]),
    );
    const failed = puts.find((put) => put.status === 'rejected');
    if (failed) throw failed.reason;
  });
  await step(services, 'catalog', created, () => services.documents.enqueue([...fresh.values()].map((item) => item.document)));
  await step(services, 'queue', created, () => sendIngestMessages(services.queue, [...fresh.keys()]), async () => {
    await services.documents.deleteMany(created.map((d) => d.id));
    // Failed documents uploaded again go back to failed, with why.
    for (const item of fresh.values()) {
      if (existing.has(item.document.id)) await services.documents.markFailed(item.document.id, 'The upload could not be queued for ingestion; upload it again.');
    }
  });

  return prepared.map(({ document }) => {
    const known = existing.get(document.id);
    const requeued = fresh.has(document.id);
    return {
      id: document.id,
      title: requeued ? document.title : (known?.title ?? document.title),
      status: requeued ? 'queued' : (known?.status ?? 'queued'),
      duplicate: Boolean(known),
    };
  });
}

/**
 * Runs one step of an upload. If it fails: `undo` (catalog rows), then the originals and
 * manifests of the documents the upload created, then a 503 the client may retry. Cleanup
 * that fails too is logged: what it leaves is an original without a row, which
 * `POST /v1/recover` would restore as the document the client meant to upload.
 */
async function step(services: Services, what: string, created: NewDocument[], work: () => Promise<unknown>, undo?: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    try {
      await undo?.();
      if (created.length) await services.originals.delete(created.flatMap((d) => [d.r2Key, manifestKey(d.r2Key)]));
    } catch (cleanup) {
      console.error('upload: could not undo a failed upload', cleanup);
    }
    if (error instanceof AppError && error.status < 500) throw error;
    console.error(`upload: ${what} failed`, error);
    throw new AppError('unavailable', `The ${what} is unavailable; nothing of this upload was kept. Try again in a few seconds.`, {
      retryable: true,
      retryAfterSeconds: 5,
      cause: error,
    });
  }
}

function concat(prefix: string, bytes: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(prefix);
  const out = new Uint8Array(head.byteLength + bytes.byteLength);
  out.set(head);
  out.set(bytes, head.byteLength);
  return out;
}
