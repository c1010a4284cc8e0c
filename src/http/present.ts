import type { DocumentRecord } from '../storage/documents';

/**
 * A document as the API shows it (storage keys stay internal). `searchable` says whether
 * queries can find it yet: a ready document's vectors may still be pending in an
 * asynchronous index (Vectorize applies writes within seconds to minutes).
 */
export function presentDocument(d: DocumentRecord, searchable = d.status === 'ready') {
  return {
    id: d.id,
    namespace: d.namespace,
    title: d.title,
    filename: d.filename,
    type: d.type,
    size: d.size,
    metadata: d.metadata,
    status: d.status,
    error: d.error,
    chunkCount: d.chunkCount,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    indexedAt: d.indexedAt,
    searchable,
  };
}
