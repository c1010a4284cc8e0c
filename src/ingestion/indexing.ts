import type { ChunkRecord, DocumentVersion, EmbeddingProvider, IndexedChunk } from '../domain';
import type { Services } from '../services';
import type { DocumentRecord } from '../storage/documents';

/**
 * Indexing claimed documents' chunks: what to embed, staging them in the search engine, and
 * publishing each document's version (catalog rows, activation, ready). Shared by documents
 * ingested in their batch (pipeline.ts) and those ingested in slices (slices.ts).
 */

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
  | { status: 'retry'; error: unknown; attempt?: string }
  /** A large document was parsed into `slices`, each now queued (slices.ts). */
  | { status: 'sliced'; slices: number }
  /** One slice of a large document is in; `done` of `total`. */
  | { status: 'slice'; done: number; total: number };

/** A claimed document, parsed and chunked. */
export interface Prepared {
  document: DocumentRecord;
  /** The claim this ingestion holds the document by. */
  attempt: string;
  records: ChunkRecord[];
}

/** Chunks embedded and staged per step: bounds the vectors held in memory at once. */
const STAGE_SLICE = 500;

/** What indexing one document's chunks involves: which to embed, which of its stored ones are stale. */
export interface Plan {
  document: DocumentRecord;
  attempt: string;
  records: ChunkRecord[];
  /** Chunks without a vector of the current model in the catalog: embedded now. */
  embedded: number;
  /** Stored chunk ids the new version no longer has. */
  stale: string[];
  reuse: (id: string) => boolean;
}

/**
 * Embeds what is new and stages every chunk of the plans in the search engine, a bounded
 * number at a time. Returns, by document, the chunks the catalog thought embedded that had to
 * be embedded again.
 */
export async function stageChunks(services: Services, plans: Plan[]): Promise<Map<string, number>> {
  const { embedder, engine } = services;
  const all = plans.flatMap((plan) => plan.records.map((record) => ({ plan, record })));
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
  return embeddedNow;
}

/** A document's staged version, ready to be made its searchable one. */
export interface Publication {
  document: DocumentRecord;
  attempt: string;
  /** Every chunk of the version (all staged). */
  chunkIds: string[];
  /** Chunk rows to write to the catalog now (those not written yet). */
  rows: ChunkRecord[];
  /** Chunk rows of earlier versions to remove. */
  stale: string[];
  /** Chunks embedded anew for this version (for the outcome). */
  embedded: number;
}

/**
 * Records the documents' chunks in the catalog, activates their versions and marks them ready,
 * for the claims that still hold their documents. `takeBack`: when marking ready fails, a
 * document never ready before is taken out of the indexes (its retry starts afresh); a sliced
 * document keeps what its slices staged instead, and its last slice is retried.
 */
export async function publish(services: Services, items: Publication[], { takeBack = true } = {}): Promise<Map<string, IngestOutcome>> {
  const { engine, chunks, embedder } = services;
  // Only claims that still hold their document record and activate it: one taken over (its lease
  // ran out while this ran) or deleted meanwhile must not replace what the newer claim activates.
  const holding = await services.documents.holding(new Map(items.map((p) => [p.document.id, p.attempt])));
  const outcomes = new Map<string, IngestOutcome>();
  for (const item of items.filter((p) => !holding.has(p.document.id))) {
    if (await services.documents.get(item.document.id)) outcomes.set(item.document.id, { status: 'superseded' });
    else {
      await removeFromIndexes(services, item.document);
      outcomes.set(item.document.id, { status: 'gone' });
    }
  }
  const held = items.filter((p) => holding.has(p.document.id));
  if (held.length === 0) return outcomes;
  await chunks.write(
    held.flatMap((p) => p.rows),
    held.flatMap((p) => p.stale.map((id) => ({ id, documentId: p.document.id }))),
  );
  const versions = new Map<string, DocumentVersion[]>();
  for (const { document, chunkIds } of held) {
    versions.set(document.namespace, [...(versions.get(document.namespace) ?? []), { documentId: document.id, chunkIds }]);
  }
  for (const [namespace, list] of versions) await engine.activate(namespace, list);

  let ready: Set<string>;
  try {
    // An asynchronous engine applies writes in order: the group's last write covers all its documents.
    ready = await services.documents.markReady(
      held.map((p) => ({ id: p.document.id, attempt: p.attempt, chunkCount: p.chunkIds.length, embeddingModel: embedder.model })),
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
      for (const { document } of after === null || !takeBack ? [] : held) {
        if (document.indexedAt === null) await removeFromIndexes(services, document).catch((cause) => console.error('ingest: could not take back', document.id, cause));
      }
      throw error;
    }
    ready = new Set(landed.map((p) => p.document.id));
  }
  for (const item of held) {
    if (ready.has(item.document.id)) {
      outcomes.set(item.document.id, { status: 'ready', chunkCount: item.chunkIds.length, embedded: item.embedded, removed: item.stale.length });
    } else if (await services.documents.get(item.document.id)) {
      // Still there, so another delivery took it over after this claim's lease ran out: what
      // that one activates (last) is the document's version; this outcome is dropped.
      outcomes.set(item.document.id, { status: 'superseded' });
    } else {
      // Deleted while we worked: take back what we wrote. The engine showed it from `activate`
      // until now, after the delete had bumped the generation: bump it again.
      await removeFromIndexes(services, item.document);
      await services.documents.bumpGeneration(item.document.namespace);
      outcomes.set(item.document.id, { status: 'gone' });
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
