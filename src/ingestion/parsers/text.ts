import { UnreadableDocumentError } from '../../domain/errors';
import { decodeText } from '../decode-text';
import type { ParsedDocument } from '../types';

export const EMPTY_FILE = 'The file is empty: it contains no text. Check that you uploaded the right file.';

/** Plain text: the whole file is one section; the chunker does the splitting. */
export function parseText(bytes: Uint8Array): ParsedDocument {
  const text = decodeText(bytes).trim();
  if (!text) throw new UnreadableDocumentError(EMPTY_FILE);
  return { sections: [{ text }] };
}
