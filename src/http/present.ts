import { z } from 'zod';
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
    progress: d.slices,
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

/**
 * What the API answers, as schemas for its description (openapi.ts). The present* functions
 * above build these shapes.
 */
export const DocumentView = z.object({
  id: z.string(),
  namespace: z.string(),
  title: z.string(),
  filename: z.string().nullable(),
  type: z.enum(['txt', 'md', 'pdf', 'docx']),
  size: z.number().int(),
  metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  status: z.enum(['queued', 'processing', 'ready', 'failed']),
  error: z.string().nullable().describe('Why it failed, or a note while it is retried.'),
  chunkCount: z.number().int(),
  progress: z
    .object({ total: z.number().int(), done: z.number().int() })
    .nullable()
    .describe('While a large document is indexed in slices: how many slices it has and how many are in.'),
  createdAt: z.string(),
  updatedAt: z.string(),
  indexedAt: z.string().nullable(),
  searchable: z.boolean().describe('Ready, and (with Vectorize) its vectors applied.'),
});

export const PassageView = z.object({
  number: z.number().int().describe('Its number in an answer: [1] is the first passage.'),
  id: z.string(),
  documentId: z.string(),
  title: z.string(),
  text: z.string(),
  score: z.number(),
  position: z.object({ index: z.number().int(), page: z.number().int().nullable(), headings: z.array(z.string()).nullable() }),
});

export const CitationView = z.object({
  number: z.number().int(),
  passageId: z.string(),
  documentId: z.string(),
  title: z.string(),
  page: z.number().int().nullable(),
  headings: z.array(z.string()).nullable(),
});
