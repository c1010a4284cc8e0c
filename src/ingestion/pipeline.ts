import { type ChunkRecord, type DocumentVersion, type EmbeddingProvider, type IndexedChunk, UnreadableDocumentError } from '../domain';
import type { Services } from '../services';
import type { DocumentRecord } from '../storage/documents';
import { chunkSections } from './chunker';
import { toChunkRecords } from './chunk-records';
import { parseDocument } from './parsers';
import { PassageBudget } from './quotas';

export type IngestOutcome =
  | { status: 'ready'; chunkCount: number; embedded: number; removed: number }
  | { status: 'failed'; reason: string }
  /** The document was deleted before or while it was processed. */
  | { status: 'gone' }
  /** Another delivery holds the document (its lease runs): try again once the lease ends. */
  | { status: 'deferred'; retryAfterSeconds: number }
  /** This claim's lease ran out and another delivery took the document over: its outcome counts. */
  | { status: 'superseded' }
  /** A transient failure (storage, provider): the work may be repeated later. `attempt`: the claim. */
  | { status: 'retry'; error: unknown; attempt?: string };

/**
 * How long a claim holds a document without news from its invocation, which renews it every
 * quarter of that while it works: a claim not renewed for two minutes belongs to an
 * invocation that died (a restart, a crash), and the sweeper or a redelivery takes it over.
 */
export const LEASE_MS = 2 * 60 * 1000;

/** Chunks pending before they are embedded and written: bounds memory when a batch holds big documents. */
const CHUNKS_PER_GROUP = 2000;

interface Prepared {
  document: DocumentRecord;
  /** The claim this ingestion holds the document by. */
  attempt: string;
  records: ChunkRecord[];
}

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
  return toChunkRecords(document, pieces, embedder.model);
}

/** Chunks embedded and staged per step: bounds the vectors held in memory at once. */
const STAGE_SLICE = 500;

/**
 * Embeds what is new and stages every chunk in the search engine, records the chunks in the
 * catalog, activates each document's new version (replacing the one before whole), and marks
 * the documents ready.
 */
async function index(services: Services, group: Prepared[]): Promise<Map<string, IngestOutcome>> {
  const { embedder, engine, chunks } = services;
  const embeddedBefore = await chunks.embeddedModels(group.map((p) => p.document.id));
  const plans = group.map(({ document, attempt, records }) => {
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

  const all = plans.flatMap((plan) => plan.records.map((record) => ({ plan, record })));
  /** Chunks the catalog thought embedded that had to be embedded again, by document. */
  const embeddedNow = new Map<string, number>();
  for (let i = 0; i < all.length; i += STAGE_SLICE) {
    const slice = all.slice(i, i + STAGE_SLICE);
    const toEmbed = slice.filter(({ plan, record }) => !plan.reuse(record.id));
    const vectors = await embedAll(embedder, toEmbed.map(({ record }) => `${record.context}\n${record.text}`));
    const vectorOf = new Map(toEmbed.map(({ record }, j) => [record.id, vectors[j] as Float32Array]));
    const byNamespace = new Map<string, IndexedChunk[]>();
    for (const { plan, record } of slice) {
      const { document } = plan;
      const list = byNamespace.get(document.namespace) ?? [];
      byNamespace.set(document.namespace, list);
      list.push({
        id: record.id,
        documentId: document.id,
        title: document.title,
        text: record.text,
        context: record.context,
        position: record.position,
        page: record.page ?? null,
        headings: record.headings?.length ? record.headings : null,
        metadata: document.metadata,
        vector: vectorOf.get(record.id) ?? null,
      });
    }
    for (const [namespace, staged] of byNamespace) {
      const missing = new Set(await engine.stage(namespace, staged));
      if (missing.size === 0) continue;
      // The catalog says embedded but the engine holds no vector (e.g. the engine was switched): embed them now.
      const again = staged.filter((chunk) => missing.has(chunk.id));
      const vectors = await embedAll(embedder, again.map((chunk) => `${chunk.context}\n${chunk.text}`));
      await engine.stage(namespace, again.map((chunk, j) => ({ ...chunk, vector: vectors[j] as Float32Array })));
      for (const chunk of again) embeddedNow.set(chunk.documentId, (embeddedNow.get(chunk.documentId) ?? 0) + 1);
    }
  }

  // Only claims that still hold their document record and activate it: one taken over (its lease
  // ran out while this ran) or deleted meanwhile must not replace what the newer claim activates.
  const holding = await services.documents.holding(new Map(plans.map((p) => [p.document.id, p.attempt])));
  const outcomes = new Map<string, IngestOutcome>();
  for (const plan of plans.filter((p) => !holding.has(p.document.id))) {
    if (await services.documents.get(plan.document.id)) outcomes.set(plan.document.id, { status: 'superseded' });
    else {
      await removeFromIndexes(services, plan.document);
      outcomes.set(plan.document.id, { status: 'gone' });
    }
  }
  const held = plans.filter((p) => holding.has(p.document.id));
  if (held.length === 0) return outcomes;
  await chunks.write(
    held.flatMap((p) => p.records),
    held.flatMap((p) => p.stale.map((id) => ({ id, documentId: p.document.id }))),
  );
  const versions = new Map<string, DocumentVersion[]>();
  for (const { document, records } of held) {
    versions.set(document.namespace, [...(versions.get(document.namespace) ?? []), { documentId: document.id, chunkIds: records.map((r) => r.id) }]);
  }
  for (const [namespace, list] of versions) await engine.activate(namespace, list);

  let ready: Set<string>;
  try {
    // An asynchronous engine applies writes in order: the group's last write covers all its documents.
    ready = await services.documents.markReady(
      held.map((p) => ({ id: p.document.id, attempt: p.attempt, chunkCount: p.records.length, embeddingModel: embedder.model })),
      engine.lastWrite(),
    );
  } catch (error) {
    // The write may have committed before the error (its answer lost): documents ready since
    // this attempt read them are ready, and what was activated for them stays.
    const after = await services.documents.getMany(held.map((p) => p.document.id)).catch(() => null);
    const landed = held.filter((p) => {
      const now = after?.get(p.document.id);
      return now?.status === 'ready' && now.indexedAt !== p.document.indexedAt;
    });
    if (after === null || landed.length === 0) {
      // A document never ready before must not stay searchable while the retry is pending; its
      // catalog rows go too, so the retry embeds and stages it afresh. (When the catalog cannot
      // even be read, nothing is taken back: the write may have landed, and the retry repairs.)
      for (const { document } of after === null ? [] : held) {
        if (document.indexedAt === null) await removeFromIndexes(services, document).catch((cause) => console.error('ingest: could not take back', document.id, cause));
      }
      throw error;
    }
    ready = new Set(landed.map((p) => p.document.id));
  }
  for (const plan of held) {
    if (ready.has(plan.document.id)) {
      const embedded = plan.embedded + (embeddedNow.get(plan.document.id) ?? 0);
      outcomes.set(plan.document.id, { status: 'ready', chunkCount: plan.records.length, embedded, removed: plan.stale.length });
    } else if (await services.documents.get(plan.document.id)) {
      // Still there, so another delivery took it over after this claim's lease ran out: what
      // that one activates (last) is the document's version; this outcome is dropped.
      outcomes.set(plan.document.id, { status: 'superseded' });
    } else {
      // Deleted while we worked: take back what we wrote. The engine showed it from `activate`
      // until now, after the delete had bumped the generation: bump it again.
      await removeFromIndexes(services, plan.document);
      await services.documents.bumpGeneration(plan.document.namespace);
      outcomes.set(plan.document.id, { status: 'gone' });
    }
  }
  return outcomes;
}

/** Embeds texts in calls of at most the embedder's batch size, in order. */
async function embedAll(embedder: EmbeddingProvider, texts: string[]): Promise<Float32Array[]> {
  const vectors: Float32Array[] = [];
  for (let i = 0; i < texts.length; i += embedder.maxBatchSize) vectors.push(...(await embedder.embed(texts.slice(i, i + embedder.maxBatchSize))));
  return vectors;
}

/** Removes a document from the search engine, then its chunk rows from the catalog. */
export async function removeFromIndexes(services: Services, document: Pick<DocumentRecord, 'id' | 'namespace'>) {
  await services.engine.remove(document.namespace, document.id);
  await services.chunks.deleteDocumentChunks(document.id);
}
