/**
 * Token estimates, for the windows of the models (the embedder's 512 tokens, a chat model's
 * context). No WordPiece vocabulary is available offline, so this approximates what a bge/BERT
 * tokenizer sees:
 *  - a run of letters/digits is ceil(length / 6) tokens (long words split into pieces),
 *  - each punctuation, symbol or other non-space character is 1 token,
 *  - each character of a script written without spaces (CJK, kana, hangul, Thai, ...) is
 *    1 token, as BERT splits CJK per character and has few multi-character pieces for them.
 * Lengths are in code points, so the count is additive: cutting a text at a run boundary,
 * or a letter run every 6 code points, never changes the total (the chunker relies on it).
 */

/** Scripts written without spaces between words. */
const UNSPACED = ['Han', 'Hiragana', 'Katakana', 'Hangul', 'Bopomofo', 'Yi', 'Thai', 'Lao', 'Khmer', 'Myanmar']
  .map((script) => `\\p{Script=${script}}`)
  .join('');

/**
 * One match per run, whitespace skipped. Group 1: unspaced-script run (1 per code point).
 * Group 2: letters/digits/marks of other scripts, written as "not P, S, Z, C" because the
 * `u` flag cannot subtract a script from \p{L}. Otherwise: a punctuation/symbol run, control
 * and format characters included, so every non-space character counts (the chunker drops
 * zero-token pieces as whitespace).
 */
const RUN = new RegExp(String.raw`([${UNSPACED}]+)|([^\s\p{P}\p{S}\p{Z}\p{C}${UNSPACED}]+)|[^\s\p{L}\p{N}\p{M}]+`, 'gu');

/** Letters per estimated word piece. */
const PIECE = 6;

const SURROGATE = /[\uD800-\uDFFF]/;

/** Code points in text[start, end); `astral` false means each code unit is one. */
function codePoints(text: string, start: number, end: number, astral: boolean): number {
  let n = end - start;
  if (!astral) return n;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) n--; // a low surrogate is the second half of one code point
  }
  return n;
}

/** Estimated model tokens in `text`. One regex pass; allocates one match per run, not per character. */
export function countTokens(text: string): number {
  return countTokensUpTo(text, Infinity);
}

/**
 * countTokens, but stops reading once the count exceeds `limit` and returns some number
 * above it: the chunker asks "does this fit?" of whole sections without reading megabytes.
 */
export function countTokensUpTo(text: string, limit: number): number {
  // One native scan for surrogates lets the usual text skip a per-character loop over runs.
  const astral = SURROGATE.test(text);
  let n = 0;
  RUN.lastIndex = 0;
  for (let m = RUN.exec(text); m !== null && n <= limit; m = RUN.exec(text)) {
    const cp = codePoints(text, m.index, m.index + m[0].length, astral);
    n += m[2] !== undefined ? Math.ceil(cp / PIECE) : cp;
  }
  return n;
}

/**
 * Cuts `text` into pieces of exactly one estimated token each and reports their
 * [start, end) offsets in order; whitespace between pieces is left out. The chunker's
 * last resort for text with no usable separator (CJK without punctuation, huge words).
 */
export function splitTokens(text: string, onPiece: (start: number, end: number) => void): void {
  // A private regex: onPiece may call countTokens, which would reset the shared one's lastIndex.
  const run = new RegExp(RUN);
  for (let m = run.exec(text); m !== null; m = run.exec(text)) {
    const end = m.index + m[0].length;
    const perPiece = m[2] !== undefined ? PIECE : 1;
    let start = m.index;
    while (start < end) {
      let stop = start;
      for (let k = 0; k < perPiece && stop < end; k++) {
        const c = text.charCodeAt(stop);
        // Never cut a surrogate pair in half: step over both halves of an astral character.
        stop += c >= 0xd800 && c <= 0xdbff && stop + 1 < end ? 2 : 1;
      }
      onPiece(start, stop);
      start = stop;
    }
  }
}

/**
 * The longest prefix of `text` within `maxTokens` estimated tokens, cut after a whole word; in a
 * first "word" longer than the budget (CJK text, a huge identifier), after the last token that fits.
 */
export function truncateToTokens(text: string, maxTokens: number): string {
  if (countTokens(text) <= maxTokens) return text;
  let used = 0;
  let end = 0;
  for (const word of text.matchAll(/\S+/g)) {
    // Whitespace ends every token run, so per-word counts add up to the whole.
    used += countTokens(word[0]);
    if (used > maxTokens) break;
    end = word.index + word[0].length;
  }
  if (end > 0) return text.slice(0, end);
  let pieces = 0;
  splitTokens(text, (_start, stop) => {
    if (++pieces <= maxTokens) end = stop;
  });
  return text.slice(0, end);
}
