import type { Passage } from '../retrieval/search';
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

/** A passage as the API shows it, numbered from 1 as answers cite it. */
export function presentPassage(p: Passage, index: number) {
  return {
    number: index + 1,
    id: p.id,
    documentId: p.documentId,
    title: p.title,
    text: p.text,
    score: p.score,
    position: { index: p.position, page: p.page, headings: p.headings },
  };
}
