import { AppError, type ChunkRecord } from '../domain';
import type { Services } from '../services';
import type { DocumentRecord } from '../storage/documents';
import { sendAll, type SliceMessage } from './messages';
import { type IngestOutcome, publish, removeFromIndexes, stageChunks } from './indexing';

/**
 * Large documents in slices. A document with more chunks than INGEST_SLICE_CHUNKS is parsed
 * and chunked once, by the claim that holds it; its chunk records are written to R2 as slices
 * of at most that many, and each slice is one queue message (on the queue for large documents).
 * A slice embeds what the search engine does not hold yet and stages it (unsearchable), so no
 * invocation holds more than one slice's chunks and vectors, and a slice delivered again
 * repeats no work. The slice that completes the set activates the whole
 * version and marks the document ready: it becomes searchable only with every slice in, and a
 * ready document's previous version serves until then.
 *
 * The claim's lease is renewed by every slice, and outlasts the wait between them
 * (SLICE_LEASE_MS): when slices stop coming (their messages lost in a restart), the lease runs
 * out and the sweeper re-queues the document, whose next claim parses it again and reuses
 * every chunk the stopped slices embedded.
 */

/** Slice objects live under this prefix of the originals bucket: never an original (R2 events skip it). */
export const SLICE_PREFIX = 'ingest-slices/';

/** How long a sliced document's claim lasts without news from one of its slices, queued ones included. */
export const SLICE_LEASE_MS = 10 * 60 * 1000;

/** How often a slice at work renews its claim's lease. */
const RENEW_EVERY_MS = 30_000;

const sliceKey = (documentId: string, attempt: string, slice: number) => `${SLICE_PREFIX}${documentId}/${attempt}/${slice}.json`;

/** Whether a parsed document is ingested in slices rather than in its batch. */
export function needsSlices(services: Services, records: ChunkRecord[]): boolean {
  return records.length > services.config.INGEST_SLICE_CHUNKS;
}

/**
 * Writes a parsed document's chunk records to R2 as slices and sends one message per slice.
 * Called by the claim (`attempt`) that parsed it; a claim taken over meanwhile sends nothing.
 */
export async function startSlices(services: Services, document: DocumentRecord, attempt: string, records: ChunkRecord[]): Promise<IngestOutcome> {
  const size = services.config.INGEST_SLICE_CHUNKS;
  const total = Math.ceil(records.length / size);
  for (let slice = 0; slice < total; slice++) {
    await services.originals.put(sliceKey(document.id, attempt, slice), JSON.stringify(records.slice(slice * size, (slice + 1) * size)));
  }
  if (!(await services.slices.start(document.id, attempt, total, SLICE_LEASE_MS))) {
    // Taken over or deleted meanwhile: no slice of this claim will ever be read.
    await forgetAttempt(services, document.id, attempt);
    return (await services.documents.get(document.id)) ? { status: 'superseded' } : { status: 'gone' };
  }
  // Each slice is indexed into the generation this claim parsed for.
  const generation = services.chunks.generation;
  const messages = Array.from({ length: total }, (_, slice) => ({ body: { type: 'slice' as const, documentId: document.id, attempt, slice, generation } }));
  await sendAll(services.largeQueue ?? services.queue, messages);
  return { status: 'sliced', slices: total };
}

/** Indexes one slice of a document; the last one in activates the document's version. */
export async function ingestSlice(services: Services, { documentId, attempt, slice }: SliceMessage): Promise<IngestOutcome> {
  const state = await services.slices.state(documentId, attempt, slice);
  const document = state?.holding ? await services.documents.get(documentId) : null;
  if (state === null || (state.holding && document === null)) {
    // Deleted: the delete removed its index entries; what is left is its slices.
    await forgetSlices(services, documentId);
    return { status: 'gone' };
  }
  // Another claim took the document over (or this one already finished it): its outcome counts.
  if (!state.holding || document === null) return { status: 'superseded' };

  let embedded = 0;
  if (!state.done) {
    const records = await readSlice(services, documentId, attempt, slice);
    const claims = new Map([[documentId, attempt]]);
    const heartbeat = setInterval(() => {
      services.documents.renew(claims, SLICE_LEASE_MS).catch((error) => console.error('ingest: could not renew the claim of', documentId, error));
    }, RENEW_EVERY_MS);
    try {
      // Every chunk is staged without a vector first: the engine keeps those it holds (the
      // previous version's, or this slice's from a run that died) and names the rest, which
      // are embedded. Catalog rows are written by the last slice, just before activation.
      const plan = { document, attempt, records, embedded: 0, stale: [], reuse: () => true };
      embedded = (await stageChunks(services, [plan])).get(documentId) ?? 0;
    } finally {
      clearInterval(heartbeat);
    }
  }
  // Recorded once: a slice delivered again (its first run died after this) only renews the lease.
  const progress = await services.slices.complete(documentId, attempt, slice, embedded, SLICE_LEASE_MS);
  if (progress === null) {
    const now = await services.documents.get(documentId);
    // Another claim holds it: what that one activates is the document's version.
    if (now && now.status !== 'failed') return { status: 'superseded' };
    // Deleted, or failed for good by another slice, while this one staged: take back what it wrote.
    await removeFromIndexes(services, document);
    await forgetSlices(services, documentId);
    return now ? { status: 'superseded' } : { status: 'gone' };
  }
  if (progress.done < progress.total) return { status: 'slice', done: progress.done, total: progress.total };
  return finish(services, document, attempt, progress.total, progress.embedded);
}

/** Activates a document whose slices are all in, and marks it ready; then its slices go. */
async function finish(services: Services, document: DocumentRecord, attempt: string, total: number, embedded: number): Promise<IngestOutcome> {
  const stored = (await services.chunks.embeddedModels([document.id])).get(document.id) ?? new Map<string, string>();
  // The version's catalog rows, a slice at a time (as an unsliced document's, right before activation).
  const chunkIds: string[] = [];
  for (let slice = 0; slice < total; slice++) {
    const records = await readSlice(services, document.id, attempt, slice);
    await services.chunks.write(records, []);
    for (const record of records) chunkIds.push(record.id);
  }
  const wanted = new Set(chunkIds);
  const stale = [...stored.keys()].filter((id) => !wanted.has(id));
  // Marking ready may fail after the activation: the slice is retried and finishes again,
  // with everything still staged (nothing is taken back, unlike a document in one piece).
  const outcomes = await publish(services, [{ document, attempt, chunkIds, rows: [], stale, embedded }], { takeBack: false });
  const outcome = outcomes.get(document.id) as IngestOutcome;
  if (outcome.status === 'ready' || outcome.status === 'gone') await forgetSlices(services, document.id);
  return outcome;
}

async function readSlice(services: Services, documentId: string, attempt: string, slice: number): Promise<ChunkRecord[]> {
  const object = await services.originals.get(sliceKey(documentId, attempt, slice));
  // Only a finished or abandoned claim's slices are removed; this one's lost slice is retried,
  // and after its last attempt the document fails with this reason.
  if (!object) throw new AppError('unavailable', `Slice ${slice + 1} of the document is missing from storage; re-index the document.`, { retryable: true });
  return (await object.json()) as ChunkRecord[];
}

/**
 * Removes a document's slice objects and records (every claim's): once it is ready, failed or
 * deleted. Best effort: a leftover slice is never read again, as no claim names it.
 */
export async function forgetSlices(services: Services, documentId: string): Promise<void> {
  try {
    await deletePrefix(services, `${SLICE_PREFIX}${documentId}/`);
    await services.slices.forget(documentId);
  } catch (error) {
    console.error('ingest: could not remove the slices of', documentId, error);
  }
}

/** Removes the slice objects of one claim (best effort). */
async function forgetAttempt(services: Services, documentId: string, attempt: string): Promise<void> {
  await deletePrefix(services, `${SLICE_PREFIX}${documentId}/${attempt}/`).catch((error) => console.error('ingest: could not remove the slices of', documentId, error));
}

async function deletePrefix(services: Services, prefix: string): Promise<void> {
  let cursor: string | undefined;
  do {
    const listed = await services.originals.list({ prefix, cursor });
    if (listed.objects.length) await services.originals.delete(listed.objects.map((o) => o.key));
    cursor = listed.truncated ? listed.cursor : undefined;
  } while (cursor);
}
