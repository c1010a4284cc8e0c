import type { DocumentType, ParsedDocument } from '../types';
import { parseDocx } from './docx';
import { parseMarkdown } from './markdown';
import { type PdfOptions, parsePdf } from './pdf';
import { parseText } from './text';

export type { PdfOptions } from './pdf';

/**
 * Turns an upload's bytes into text sections. Any document that cannot be read (empty,
 * encrypted, image-only, damaged) fails with UnreadableDocumentError, whose message is
 * shown to the user as the reason; nothing else is thrown for bad input.
 */
export async function parseDocument(bytes: Uint8Array, type: DocumentType, options: PdfOptions = {}): Promise<ParsedDocument> {
  switch (type) {
    case 'txt':
      return parseText(bytes);
    case 'md':
      return parseMarkdown(bytes);
    case 'pdf':
      return parsePdf(bytes, options);
    case 'docx':
      return parseDocx(bytes);
  }
}
