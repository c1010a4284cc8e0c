import { countTokens, countTokensUpTo, splitTokens } from '../text/tokens';
import type { Section } from './types';

/** Sizes in estimated model tokens (see tokens.ts). */
export interface ChunkOptions {
  chunkSize: number;
  chunkOverlap: number;
}

export interface Chunk {
  /** Trimmed, otherwise exactly as in the section: always a substring of the section's text. */
  text: string;
  /** 0-based position in the document. */
  index: number;
  page?: number;
  headings?: string[];
  /** countTokens(text). */
  tokens: number;
}

/**
 * Separators, coarsest first; a cut falls after the match, so whitespace stays with the piece
 * before it and is trimmed off chunk edges. After words, the last resort is single tokens.
 */
const SEPARATORS: readonly RegExp[] = [
  /\n[^\S\n]*\n\s*/g, // paragraphs: a blank line, possibly holding spaces
  /\n\s*/g, // lines
  // Sentences: . ! ? before a space or the end (the lookbehind makes a run of dots start one
  // match, not one per dot, so "......" stays linear); 。！？ need no space, as CJK uses none.
  /(?<![.!?])[.!?]+(?=\s|$)\s*|[。！？]+\s*/g,
  /\s+/g, // words
];

/** text[start, end) of a section, worth `tokens` tokens. */
interface Piece {
  start: number;
  end: number;
  tokens: number;
}

/** Receives pieces in order; `flush` ends the current chunk before the next piece. */
interface Sink {
  add(start: number, end: number, tokens: number): void;
  flush(): void;
}

/** Splits sections into chunks of at most chunkSize tokens; a chunk never spans two sections. */
export function chunkSections(sections: Section[], options: ChunkOptions): Chunk[] {
  const { chunkSize, chunkOverlap } = options;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`chunkSize must be an integer ≥ 1, got ${chunkSize}`);
  if (!Number.isInteger(chunkOverlap) || chunkOverlap < 0 || chunkOverlap >= chunkSize) {
    throw new RangeError(`chunkOverlap must be an integer in [0, chunkSize), got ${chunkOverlap}`);
  }
  const chunks: Chunk[] = [];
  for (const section of sections) chunkSection(section, chunkSize, chunkOverlap, chunks);
  return chunks;
}

function chunkSection(section: Section, size: number, overlap: number, out: Chunk[]): void {
  const text = section.text;
  // The pieces of the chunk being built and their running token total (never recounted);
  // the first `carried` of them were carried over from the previous chunk.
  let window: Piece[] = [];
  let total = 0;
  let carried = 0;

  const emit = (): void => {
    const start = window[0]?.start ?? 0;
    const end = window[window.length - 1]?.end ?? 0;
    const chunk: Chunk = { text: text.slice(start, end).trim(), index: out.length, tokens: total };
    if (section.page !== undefined) chunk.page = section.page;
    if (section.headings !== undefined) chunk.headings = [...section.headings];
    out.push(chunk);
  };

  // Starts the next chunk with the trailing whole pieces of the last one, up to `overlap` tokens.
  const carryOver = (): void => {
    let keep = window.length;
    let kept = 0;
    for (let p = window[keep - 1]; p !== undefined && kept + p.tokens <= overlap; p = window[--keep - 1]) kept += p.tokens;
    const last = window[window.length - 1];
    if (kept === 0 && overlap > 0 && last !== undefined) {
      // Even the last piece is too big: carry a finer-grained tail of it, so chunks always overlap.
      window = [tail(text, last, overlap)];
    } else {
      window.splice(0, keep);
    }
    total = window.reduce((sum, p) => sum + p.tokens, 0);
    carried = window.length;
  };

  const sink: Sink = {
    flush() {
      // A chunk no bigger than an overlap would be wholly repeated by the next: keep growing it.
      if (total <= overlap) return;
      emit();
      carryOver();
    },
    add(start, end, tokens) {
      if (tokens === 0) return; // whitespace only
      if (total + tokens > size) this.flush(); // total > size - tokens ≥ overlap: never a no-op
      window.push({ start, end, tokens });
      total += tokens;
    },
  };

  const budget = size - overlap;
  split(text, 0, text.length, countTokensUpTo(text, budget), 0, budget, sink);
  if (window.length > carried) emit();
}

/**
 * Hands text[start, end) to the sink whole if it fits the budget, else cuts it at the coarsest
 * separator present (from `level` on) and recurses into the parts. As in LangChain's splitter,
 * an oversized paragraph, line or sentence is chunked on its own: chunks break before and after
 * it, so they end at the coarsest boundaries available (an oversized word is no such unit: its
 * pieces join the words around it). Pieces get at most size - overlap tokens, so a carry plus
 * the next piece always fit. `tokens` is exact within the budget (counting stops above it).
 * Counts add up across cuts, which fall at whitespace or after punctuation, never inside a
 * letter run: so a chunk's running total is its exact count.
 */
function split(text: string, start: number, end: number, tokens: number, level: number, budget: number, sink: Sink): void {
  if (tokens <= budget) return sink.add(start, end, tokens);
  const apart = level < SEPARATORS.length;
  if (apart) sink.flush();
  const slice = text.slice(start, end); // regexes run on the slice so no search scans past `end`
  const cuts: number[] = [];
  for (; level < SEPARATORS.length && cuts.length === 0; level++) {
    const separator = SEPARATORS[level] as RegExp;
    separator.lastIndex = 0;
    for (let m = separator.exec(slice); m !== null; m = separator.exec(slice)) {
      const cut = m.index + m[0].length;
      if (cut < slice.length) cuts.push(cut);
    }
  }
  if (cuts.length === 0) splitTokens(slice, (s, e) => sink.add(start + s, start + e, 1)); // no separator left
  else cuts.push(slice.length);
  for (let k = 0, from = 0; k < cuts.length; from = cuts[k++] as number) {
    const cut = cuts[k] as number;
    split(text, start + from, start + cut, countTokensUpTo(slice.slice(from, cut), budget), level, budget, sink);
  }
  if (apart) sink.flush();
}

/**
 * The tail of `piece` worth at most `max` (≥ 1) tokens, fewer than the piece holds: its trailing
 * whole words, or if even the last word is bigger, that word's last `max` single-token pieces.
 */
function tail(text: string, piece: Piece, max: number): Piece {
  const words = [...text.slice(piece.start, piece.end).matchAll(/\S+/g)];
  let start = piece.end;
  let tokens = 0;
  for (let k = words.length - 1; k >= 0; k--) {
    const word = words[k] as RegExpExecArray;
    const wordTokens = countTokens(word[0]);
    if (tokens + wordTokens > max) {
      if (tokens > 0) break;
      const starts: number[] = [];
      splitTokens(word[0], (s) => starts.push(s));
      return { start: piece.start + word.index + (starts[starts.length - max] ?? 0), end: piece.end, tokens: max };
    }
    tokens += wordTokens;
    start = piece.start + word.index;
  }
  return { start, end: piece.end, tokens };
}
