import type { ChunkRecord } from '../domain';
import { REQUEST_LIMITS } from '../limits';
import type { DocumentRecord } from '../storage/documents';
import { sha256Hex } from '../text/hash';
import type { Chunk } from './chunker';

const HASH_GROUP = 256;

/**
 * A document's chunks as records: ids from the document and the chunk's content (and the index
 * generation after the first: a vector index holds one vector per id, and two generations of a
 * namespace may share one), and each chunk's context.
 */
export async function toChunkRecords(document: DocumentRecord, pieces: Chunk[], model: string, generation = 0): Promise<ChunkRecord[]> {
  const salt = generation === 0 ? '' : `\n${generation}`;
  const contexts = pieces.map((piece) => chunkContext(document.title, piece.headings ?? []));
  // Hashed a group at a time: all at once, a 25 MiB text's 18,000 chunks held ~90 MB of pending digests.
  const hashes: string[] = [];
  for (let i = 0; i < pieces.length; i += HASH_GROUP) {
    const group = pieces.slice(i, i + HASH_GROUP);
    hashes.push(...(await Promise.all(group.map((piece, j) => sha256Hex(`${contexts[i + j]}\n${piece.text}${salt}`)))));
  }
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
