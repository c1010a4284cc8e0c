import { UnreadableDocumentError } from '../errors';
import type { Services } from '../services';
import type { ChunkRecord } from '../storage/chunks';
import type { DocumentRecord } from '../storage/documents';
import { sha256Hex } from '../text/hash';
import { type Chunk, chunkSections } from './chunker';
import { parseDocument } from './parsers';

export type IngestOutcome =
  | { status: 'ready'; chunkCount: number; embedded: number; removed: number }
  | { status: 'failed'; reason: string }
  /** The document was deleted before or while it was processed. */
  | { status: 'gone' };

/** Vectorize accepts at most 1,000 vectors per upsert from a Worker. */
const MAX_VECTORS_PER_UPSERT = 1000;

/**
 * Ingests one document from its original in R2: parse → chunk → embed → index.
 *
 * Idempotent: chunk ids derive from the document id and the chunk's content, so a
 * repeated message rewrites the same rows and embeds nothing it embedded before; a
 * changed chunking or model re-embeds only what changed. Vectors are written before the
 * chunk rows and the document becomes visible to search only when marked ready, so a
 * crash half-way leaves nothing that a query can return. An unreadable document ends
 * `failed` with the reason and with nothing of it in any index; any other error is
 * thrown for the queue to retry.
 */
export async function ingestDocument(services: Services, documentId: string): Promise<IngestOutcome> {
  const { documents, chunks: chunkStore, vectors, embedder, config } = services;
  const document = await documents.get(documentId);
  if (!document || !(await documents.markProcessing(documentId))) return { status: 'gone' };

  try {
    const object = await services.originals.get(document.r2Key);
    if (!object) throw new UnreadableDocumentError('The original file is missing from storage; upload the document again.');
    const parsed = await parseDocument(new Uint8Array(await object.arrayBuffer()), document.type);
    const pieces = chunkSections(parsed.sections, { chunkSize: config.CHUNK_SIZE, chunkOverlap: config.CHUNK_OVERLAP });
    if (pieces.length === 0) throw new UnreadableDocumentError('The document contains no text to index.');

    const records = await toChunkRecords(document, pieces, embedder.model);
    const embeddedBefore = await chunkStore.embeddedModels(documentId);
    const wanted = new Set(records.map((r) => r.id));
    const stale = [...embeddedBefore.keys()].filter((id) => !wanted.has(id));
    const toEmbed = records.filter((r) => embeddedBefore.get(r.id) !== embedder.model);

    const batchSize = Math.min(config.EMBEDDING_BATCH_SIZE, embedder.maxBatchSize, MAX_VECTORS_PER_UPSERT);
    for (let i = 0; i < toEmbed.length; i += batchSize) {
      const batch = toEmbed.slice(i, i + batchSize);
      const embeddings = await embedder.embed(batch.map(embeddingText));
      await vectors.upsert(
        document.namespace,
        batch.map((record, j) => ({
          id: record.id,
          values: embeddings[j] as Float32Array,
          metadata: { ...document.metadata, documentId },
        })),
      );
    }
    await chunkStore.replaceDocumentChunks(documentId, records, stale);
    await deleteVectors(services, document.namespace, stale);

    if (!(await documents.markReady(documentId, records.length, embedder.model))) {
      await removeFromIndexes(services, document);
      return { status: 'gone' };
    }
    return { status: 'ready', chunkCount: records.length, embedded: toEmbed.length, removed: stale.length };
  } catch (error) {
    if (!(error instanceof UnreadableDocumentError)) throw error;
    await removeFromIndexes(services, document);
    await documents.markFailed(documentId, error.message);
    return { status: 'failed', reason: error.message };
  }
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

/** What the embedder sees: the chunk with its title and headings, so context counts. */
function embeddingText(record: ChunkRecord): string {
  return `${record.context}\n${record.text}`;
}

async function toChunkRecords(document: DocumentRecord, pieces: Chunk[], model: string): Promise<ChunkRecord[]> {
  const contexts = pieces.map((piece) => [document.title, ...(piece.headings ?? [])].join(' › '));
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
