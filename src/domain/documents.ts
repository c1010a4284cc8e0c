/** Documents, their chunks and the passages search returns; the scopes API keys grant. */

/** What an API key may do: read (search, ask), write (upload, delete), admin (keys, every namespace). */
export type Scope = 'read' | 'write' | 'admin';

/** The file formats the engine reads. */
export type DocumentType = 'txt' | 'md' | 'pdf' | 'docx';

export type DocumentStatus = 'queued' | 'processing' | 'ready' | 'failed';

/** Metadata values a document carries for filtering (Vectorize accepts the same kinds). */
export type MetadataValue = string | number | boolean;
export type DocumentMetadata = Record<string, MetadataValue>;

/**
 * A queue message: a document to (re)ingest from its original in R2, or one slice of a large
 * document whose claim (`attempt`) parsed it into slices (src/ingestion/slices.ts), into the
 * serving index generation of its namespace or the one `generation` names; or a retired
 * generation to remove.
 */
export type IngestRequest =
  | { type: 'ingest'; documentId: string; generation?: number }
  | { type: 'slice'; documentId: string; attempt: string; slice: number; generation?: number }
  | { type: 'retire'; namespace: string; generation: number };

/** A chunk as ingestion produces it: its text, where it sits in its document, which model embeds it. */
export interface ChunkRecord {
  /** Document id + hash of context and text (≤ 64 bytes, Vectorize's limit). */
  id: string;
  documentId: string;
  namespace: string;
  position: number;
  text: string;
  /** Title and heading path: indexed with the text, shown as the passage's context. */
  context: string;
  page?: number;
  headings?: string[];
  tokens: number;
  embeddingModel: string;
}

/** A chunk of a searchable document, with the document's title: what retrieval returns. */
export interface StoredPassage {
  id: string;
  documentId: string;
  title: string;
  text: string;
  position: number;
  page: number | null;
  headings: string[] | null;
}

export interface ScoredPassage extends StoredPassage {
  /**
   * Fused score in hybrid mode, cosine similarity in vector mode, BM25F in keyword mode;
   * the reranker's relevance score when reranking is on.
   */
  score: number;
}
