import { UnreadableDocumentError } from '../domain/errors';
import { REQUEST_LIMITS } from '../limits';
import { type IndexedPassage, isPassageIndex, type VectorRecord } from '../domain/types';
import type { Services } from '../services';
import type { ChunkRecord } from '../storage/chunks';
import type { DocumentRecord } from '../storage/documents';
import { sha256Hex } from '../text/hash';
import { type Chunk, chunkSections } from './chunker';
import { parseDocument } from './parsers';
import { PassageBudget } from './quotas';

export type IngestOutcome =
  | { status: 'ready'; chunkCount: number; embedded: number; removed: number }
  | { status: 'failed'; reason: string }
  /** The document was deleted before or while it was processed. */
  | { status: 'gone' }
  /** A transient failure (storage, provider): the work may be repeated later. */
  | { status: 'retry'; error: unknown };

/** Vectorize accepts at most 1,000 vectors per upsert from a Worker. */
const MAX_VECTORS_PER_UPSERT = 1000;
/** Chunks pending before they are embedded and written: bounds memory when a batch holds big documents. */
const CHUNKS_PER_GROUP = 2000;

interface Prepared {
  document: DocumentRecord;
  records: ChunkRecord[];
}

/**
 * Ingests documents from their originals in R2: parse → chunk → embed → index. Batch-first:
 * the catalog, vector index and keyword index see a few calls per batch, not per document,
 * since every binding call costs more than the work of a small document.
 *
 * Idempotent: chunk ids derive from the document id and the chunk's content, so a
 * repeated message rewrites the same rows and embeds nothing it embedded before; changed
 * chunking or a new model re-embeds only what changed. Vectors are written before chunk
 * rows, and a document becomes visible to search only when marked ready, so a crash
 * part-way leaves nothing a query can return. An unreadable document ends `failed` with
 * its reason and nothing of it in any index.
 */
export async function ingestDocuments(services: Services, ids: string[]): Promise<Map<string, IngestOutcome>> {
  const outcomes = new Map<string, IngestOutcome>();
  const found = await services.documents.getMany(ids);
  const claimed = await services.documents.markProcessing([...found.keys()]);
  for (const id of ids) if (!claimed.has(id)) outcomes.set(id, { status: 'gone' });

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
      for (const { document } of group) outcomes.set(document.id, { status: 'retry', error });
    }
  };
  const documents = [...claimed].map((id) => found.get(id) as DocumentRecord);
  const budget = new PassageBudget(services.config.QUOTA_PASSAGES, services.chunks);
  const concurrency = services.config.INGEST_CONCURRENCY;
  for (let i = 0; i < documents.length; i += concurrency) {
    await Promise.all(
      documents.slice(i, i + concurrency).map(async (document) => {
        try {
          const records = await prepare(services, document);
          await budget.reserve(document.namespace, records.length, document.chunkCount);
          pending.push({ document, records });
          pendingChunks += records.length;
        } catch (error) {
          if (error instanceof UnreadableDocumentError) unreadable.push({ document, reason: error.message });
          else outcomes.set(document.id, { status: 'retry', error });
        }
      }),
    );
    if (pendingChunks >= CHUNKS_PER_GROUP) await flush();
  }
  if (pending.length) await flush();

  for (const { document, reason } of unreadable) {
    try {
      await removeFromIndexes(services, document);
      await services.documents.markFailed(document.id, reason);
      outcomes.set(document.id, { status: 'failed', reason });
    } catch (error) {
      outcomes.set(document.id, { status: 'retry', error });
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

/** Embeds what is new, writes vectors then rows, removes what is stale, marks documents ready. */
async function index(services: Services, group: Prepared[]): Promise<Map<string, IngestOutcome>> {
  const { embedder, vectors, chunks } = services;
  const embeddedBefore = await chunks.embeddedModels(group.map((p) => p.document.id));
  const plans = group.map(({ document, records }) => {
    const before = embeddedBefore.get(document.id) ?? new Map<string, string>();
    const wanted = new Set(records.map((r) => r.id));
    return {
      document,
      records,
      toEmbed: records.filter((r) => before.get(r.id) !== embedder.model),
      stale: [...before.keys()].filter((id) => !wanted.has(id)),
    };
  });

  const pending = new Map<string, VectorRecord[]>();
  const flush = async (namespace: string) => {
    const batch = pending.get(namespace) ?? [];
    pending.delete(namespace);
    if (batch.length) await vectors.upsert(namespace, batch);
  };
  const toEmbed = plans.flatMap((plan) => plan.toEmbed.map((record) => ({ record, plan })));
  // The embedder splits a call into requests of its configured size itself; half an
  // upsert's worth per call keeps every flushed upsert within the 1,000-vector limit.
  const batchSize = Math.min(embedder.maxBatchSize, MAX_VECTORS_PER_UPSERT / 2);
  for (let i = 0; i < toEmbed.length; i += batchSize) {
    const slice = toEmbed.slice(i, i + batchSize);
    const embeddings = await embedder.embed(slice.map(({ record }) => `${record.context}\n${record.text}`));
    slice.forEach(({ record, plan }, j) => {
      const list = pending.get(plan.document.namespace) ?? [];
      list.push({ id: record.id, values: embeddings[j] as Float32Array, metadata: { ...plan.document.metadata, documentId: plan.document.id } });
      pending.set(plan.document.namespace, list);
    });
    for (const [namespace, list] of pending) if (list.length >= MAX_VECTORS_PER_UPSERT - batchSize) await flush(namespace);
  }
  for (const namespace of [...pending.keys()]) await flush(namespace);

  await chunks.write(
    plans.flatMap((p) => p.records),
    plans.flatMap((p) => p.stale.map((id) => ({ id, documentId: p.document.id }))),
  );
  for (const plan of plans) await deleteVectors(services, plan.document.namespace, plan.stale);
  await publish(services, plans);

  // Vectorize applies writes in order: the group's last write covers all its documents.
  let ready: Set<string>;
  try {
    ready = await services.documents.markReady(
      plans.map((p) => ({ id: p.document.id, chunkCount: p.records.length, embeddingModel: embedder.model })),
      vectors.lastWrite?.() ?? null,
    );
  } catch (error) {
    // Not ready, so not searchable while the retry is pending.
    await unpublish(services, plans).catch((cause) => console.error('ingest: could not unpublish after a failure', cause));
    throw error;
  }
  const outcomes = new Map<string, IngestOutcome>();
  for (const plan of plans) {
    if (ready.has(plan.document.id)) {
      outcomes.set(plan.document.id, { status: 'ready', chunkCount: plan.records.length, embedded: plan.toEmbed.length, removed: plan.stale.length });
    } else {
      // Deleted while we worked: take back what we wrote. The local index showed it from
      // `publish` until now, after the delete had bumped the generation: bump it again.
      await removeFromIndexes(services, plan.document);
      if (isPassageIndex(services.vectors)) await services.documents.bumpGeneration(plan.document.namespace);
      outcomes.set(plan.document.id, { status: 'gone' });
    }
  }
  return outcomes;
}

/** Text published per call: documents are published whole unless one alone exceeds this. */
const PUBLISH_BYTES = 8 * 2 ** 20;

/**
 * Makes the group's chunks searchable in an index that keeps passages (the local one), a
 * call per namespace, each document in one call (so it never shows in part) unless it is
 * larger than PUBLISH_BYTES of text on its own. With Vectorize, marking ready does this.
 */
async function publish(services: Services, plans: { document: DocumentRecord; records: ChunkRecord[] }[]) {
  const index = services.vectors;
  if (!isPassageIndex(index)) return;
  const calls = new Map<string, { passages: IndexedPassage[]; bytes: number }[]>();
  for (const { document, records } of plans) {
    const list = calls.get(document.namespace) ?? [];
    calls.set(document.namespace, list);
    const size = records.reduce((sum, r) => sum + r.text.length, 0);
    let call = list.at(-1);
    // A new call rather than a document split across two.
    if (!call || (call.bytes > 0 && call.bytes + size > PUBLISH_BYTES)) list.push((call = { passages: [], bytes: 0 }));
    for (const record of records) {
      if (call.bytes >= PUBLISH_BYTES) list.push((call = { passages: [], bytes: 0 }));
      call.passages.push({
        id: record.id,
        documentId: document.id,
        title: document.title,
        text: record.text,
        context: record.context,
        position: record.position,
        page: record.page ?? null,
        headings: record.headings?.length ? record.headings : null,
      });
      call.bytes += record.text.length;
    }
  }
  for (const [namespace, list] of calls) for (const { passages } of list) await index.publish(namespace, passages);
}

async function unpublish(services: Services, plans: { document: DocumentRecord; records: ChunkRecord[] }[]) {
  const index = services.vectors;
  if (!isPassageIndex(index)) return;
  for (const { document, records } of plans) await index.unpublish(document.namespace, records.map((r) => r.id));
}

/** Removes every chunk row, keyword entry and vector of a document. */
export async function removeFromIndexes(services: Services, document: Pick<DocumentRecord, 'id' | 'namespace'>) {
  const ids = await services.chunks.ids(document.id);
  // Vectors first: a vector without its chunk row is never returned, the reverse could be.
  await deleteVectors(services, document.namespace, ids);
  await services.chunks.deleteDocumentChunks(document.id);
}

async function deleteVectors(services: Services, namespace: string, ids: string[]) {
  for (let i = 0; i < ids.length; i += MAX_VECTORS_PER_UPSERT) {
    await services.vectors.deleteByIds(namespace, ids.slice(i, i + MAX_VECTORS_PER_UPSERT));
  }
}

async function toChunkRecords(document: DocumentRecord, pieces: Chunk[], model: string): Promise<ChunkRecord[]> {
  const contexts = pieces.map((piece) => chunkContext(document.title, piece.headings ?? []));
  const hashes = await Promise.all(pieces.map((piece, i) => sha256Hex(`${contexts[i]}\n${piece.text}`)));
  const seen = new Map<string, number>();
  return pieces.map((piece, i) => {
    // Document id (32 hex) + content hash (24 hex) + a counter for repeated text: ≤ 64 bytes.
    const base = `${document.id}:${(hashes[i] as string).slice(0, 24)}`;
    const repeat = seen.get(base) ?? 0;
    seen.set(base, repeat + 1);
    return {
      id: repeat === 0 ? base : `${base}:${repeat}`,
      documentId: document.id,
      namespace: document.namespace,
      position: piece.index,
      text: piece.text,
      context: contexts[i] as string,
      page: piece.page,
      headings: piece.headings,
      tokens: piece.tokens,
      embeddingModel: model,
    };
  });
}

const CONTEXT_SEPARATOR = ' › ';

/** `text` cut to at most `max` characters (an ellipsis included), never inside a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max - 1);
  if (end > 0 && /[\ud800-\udbff]/.test(text[end - 1] as string)) end--;
  return `${text.slice(0, end)}…`;
}

/**
 * A chunk's context, "title › heading › subheading", stored, embedded and keyword-indexed with
 * every chunk of a document, so at most REQUEST_LIMITS.maxContextChars. When the whole path is
 * longer, the title (cut to its own cap) and the innermost headings that fit are kept, with "…"
 * for the ones left out: the nearest heading says most about a chunk.
 */
export function chunkContext(title: string, headings: readonly string[], max: number = REQUEST_LIMITS.maxContextChars): string {
  const full = [title, ...headings].join(CONTEXT_SEPARATOR);
  if (full.length <= max) return full;
  const head = cut(title, Math.min(REQUEST_LIMITS.maxTitleChars, Math.floor(max / 2)));
  const kept: string[] = [];
  let size = head.length + 2 * CONTEXT_SEPARATOR.length + 1; // title › … › (kept)
  for (let i = headings.length - 1; i >= 0; i--) {
    const heading = headings[i] as string;
    const room = max - size - (kept.length ? CONTEXT_SEPARATOR.length : 0);
    if (heading.length > room) {
      // The innermost heading is kept in part rather than left out.
      if (kept.length === 0 && room > 1) kept.unshift(cut(heading, room));
      break;
    }
    kept.unshift(heading);
    size += heading.length + (kept.length > 1 ? CONTEXT_SEPARATOR.length : 0);
  }
  const parts = kept.length === headings.length ? [head, ...kept] : [head, '…', ...kept];
  return cut(parts.join(CONTEXT_SEPARATOR), max);
}
