export type { DocumentType } from '../domain';

/**
 * A run of text with the place it came from. Parsers return sections; the chunker never
 * joins two sections into one chunk, so a chunk's page or heading is always exact.
 */
export interface Section {
  text: string;
  /** 1-based page number (PDF). */
  page?: number;
  /** Heading path, outermost first, e.g. ["Install", "From source"] (Markdown, DOCX). */
  headings?: string[];
}

export interface ParsedDocument {
  sections: Section[];
  /** A title found in the document itself (PDF metadata, first heading), if any. */
  title?: string;
}
