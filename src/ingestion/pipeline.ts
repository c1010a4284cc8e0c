import { type ChunkRecord, UnreadableDocumentError } from '../domain';
import type { Services } from '../services';
import type { DocumentRecord } from '../storage/documents';
import { chunkSections } from './chunker';
import { toChunkRecords } from './chunk-records';
import { type IngestOutcome, type Plan, type Prepared, publish, removeFromIndexes, stageChunks } from './indexing';
import { parseDocument } from './parsers';
import { PassageBudget } from './quotas';
import { needsSlices, startSlices } from './slices';

/**
 * How long a claim holds a document without news from its invocation, which renews it every
 * quarter of that while it works: a claim not renewed for two minutes belongs to an
 * invocation that died (a restart, a crash), and the sweeper or a redelivery takes it over.
 */
export const LEASE_MS = 2 * 60 * 1000;

/** Chunks pending before they are embedded and written: bounds memory when a batch holds big documents. */
const CHUNKS_PER_GROUP = 2000;

/**
 * Ingests documents from their originals in R2: parse → chunk → embed → index. Batch-first:
 * the catalog, vector index and keyword index see a few calls per batch, not per document,
 * since every binding call costs more than the work of a small document.
 *
 * Idempotent: chunk ids derive from the document id and the chunk's content, so a
 * repeated message rewrites the same rows and embeds nothing it embedded before; changed
 * chunking or a new model re-embeds only what changed. A document's chunks are staged in the
 * search engine, unsearchable, then its version is activated whole, so a crash part-way leaves
 * nothing a query can return, and a re-ingested document's previous version serves until the
 * new one replaces it. An unreadable document ends `failed` with its reason and nothing of it
 * in any index.
 */
export async function ingestDocuments(services: Services, ids: string[]): Promise<Map<string, IngestOutcome>> {
  const outcomes = new Map<string, IngestOutcome>();
  const { claimed, held } = await services.documents.claim(ids, LEASE_MS);
  for (const id of ids) {
    const until = held.get(id);
    if (until !== undefined) outcomes.set(id, { status: 'deferred', retryAfterSeconds: Math.max(1, Math.ceil((until - Date.now()) / 1000)) });
    else if (!claimed.has(id)) outcomes.set(id, { status: 'gone' });
  }
  const found = await services.documents.getMany([...claimed.keys()]);
  // The claims' leases are renewed while this invocation works on them.
  const heartbeat = setInterval(() => {
    services.documents.renew(claimed, LEASE_MS).catch((error) => console.error('ingest: could not renew claims', error));
  }, LEASE_MS / 4);
  try {
    return await ingestClaimed(services, claimed, found, outcomes);
  } finally {
    clearInterval(heartbeat);
  }
}

/** The ingestion of the documents this invocation claimed (see ingestDocuments). */
async function ingestClaimed(
  services: Services,
  claimed: Map<string, string>,
  found: Map<string, DocumentRecord>,
  outcomes: Map<string, IngestOutcome>,
): Promise<Map<string, IngestOutcome>> {
  const attemptOf = (id: string) => claimed.get(id) as string;

  // Documents are read and parsed a few at a time and indexed whenever enough chunks are
  // pending, so a batch of large documents never holds all their chunks in memory at once.
  const unreadable: { document: DocumentRecord; reason: string }[] = [];
  let pending: Prepared[] = [];
  let pendingChunks = 0;
  const flush = async () => {
    const group = pending;
    (pending = []), (pendingChunks = 0);
    try {
      for (const [id, outcome] of await index(services, group)) outcomes.set(id, outcome);
    } catch (error) {
      if (group.length === 1) {
        outcomes.set(group[0]!.document.id, { status: 'retry', error, attempt: attemptOf(group[0]!.document.id) });
        return;
      }
      // One document (a provider refusing its text, say) fails the group's shared calls: each
      // is indexed again alone, so only the one at fault gets the failure.
      for (const one of group) {
        try {
          for (const [id, outcome] of await index(services, [one])) outcomes.set(id, outcome);
        } catch (alone) {
          outcomes.set(one.document.id, { status: 'retry', error: alone, attempt: attemptOf(one.document.id) });
        }
      }
    }
  };
  const documents = [...claimed.keys()].flatMap((id) => found.get(id) ?? []);
  const budget = new PassageBudget(services.config.QUOTA_PASSAGES, services.chunks);
  const concurrency = services.config.INGEST_CONCURRENCY;
  for (let i = 0; i < documents.length; i += concurrency) {
    await Promise.all(
      documents.slice(i, i + concurrency).map(async (document) => {
        try {
          const records = await prepare(services, document);
          await budget.reserve(document.namespace, records.length, document.chunkCount);
          // A document of many chunks goes on in slices, one message each, whatever its batch.
          if (needsSlices(services, records)) {
            outcomes.set(document.id, await startSlices(services, document, attemptOf(document.id), records));
            return;
          }
          pending.push({ document, attempt: attemptOf(document.id), records });
          pendingChunks += records.length;
        } catch (error) {
          if (error instanceof UnreadableDocumentError) unreadable.push({ document, reason: error.message });
          else outcomes.set(document.id, { status: 'retry', error, attempt: attemptOf(document.id) });
        }
      }),
    );
    if (pendingChunks >= CHUNKS_PER_GROUP) await flush();
  }
  if (pending.length) await flush();

  for (const { document, reason } of unreadable) {
    try {
      // A ready document whose original became unreadable keeps serving its previous version.
      const attempt = attemptOf(document.id);
      const kept = await services.documents.keepPreviousVersion(document.id, `Re-indexing failed: ${reason} The previous version is still searchable.`, attempt);
      if (!kept) {
        await removeFromIndexes(services, document);
        await services.documents.markFailed(document.id, reason, attempt);
      }
      outcomes.set(document.id, { status: 'failed', reason });
    } catch (error) {
      outcomes.set(document.id, { status: 'retry', error, attempt: attemptOf(document.id) });
    }
  }
  return outcomes;
}

/** Reads, parses and chunks one document; throws UnreadableDocumentError for bad input. */
async function prepare(services: Services, document: DocumentRecord): Promise<ChunkRecord[]> {
  const { config, embedder } = services;
  const object = await services.originals.get(document.r2Key);
  if (!object) throw new UnreadableDocumentError('The original file is missing from storage; upload the document again.');
  const parsed = await parseDocument(new Uint8Array(await object.arrayBuffer()), document.type);
  const pieces = chunkSections(parsed.sections, { chunkSize: config.CHUNK_SIZE, chunkOverlap: config.CHUNK_OVERLAP });
  if (pieces.length === 0) throw new UnreadableDocumentError('The document contains no text to index.');
  return toChunkRecords(document, pieces, embedder.model, services.chunks.generation);
}

/** Plans the indexing of documents' chunks against what the catalog holds. */
async function planIndexing(services: Services, group: Prepared[]): Promise<Plan[]> {
  const { embedder, chunks } = services;
  const embeddedBefore = await chunks.embeddedModels(group.map((p) => p.document.id));
  return group.map(({ document, attempt, records }) => {
    const before = embeddedBefore.get(document.id) ?? new Map<string, string>();
    const wanted = new Set(records.map((r) => r.id));
    return {
      document,
      attempt,
      records,
      embedded: records.filter((r) => before.get(r.id) !== embedder.model).length,
      stale: [...before.keys()].filter((id) => !wanted.has(id)),
      reuse: (id: string) => before.get(id) === embedder.model,
    };
  });
}

/**
 * Embeds what is new and stages every chunk in the search engine, records the chunks in the
 * catalog, activates each document's new version (replacing the one before whole), and marks
 * the documents ready.
 */
async function index(services: Services, group: Prepared[]): Promise<Map<string, IngestOutcome>> {
  const plans = await planIndexing(services, group);
  const embeddedNow = await stageChunks(services, plans);
  return publish(
    services,
    plans.map((plan) => ({
      document: plan.document,
      attempt: plan.attempt,
      chunkIds: plan.records.map((r) => r.id),
      rows: plan.records,
      stale: plan.stale,
      embedded: plan.embedded + (embeddedNow.get(plan.document.id) ?? 0),
    })),
  );
}
