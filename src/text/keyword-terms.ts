import { stemmer } from 'stemmer';
import { isStopword, UNSPACED_SCRIPT, WORD } from './analyze';

/**
 * The keyword analyser of both search engines: the local engine's in-memory index and the
 * Cloudflare engine's keyword shards (which store these terms) index and query the same terms.
 */

const copy = (s: string) => (s.length >= 13 ? [...s].join('') : s);

/** Terms by word, remembered: a corpus repeats its vocabulary, and stemming is most of the cost of indexing. */
const termOf = new Map<string, string>();

/**
 * Index terms: lower-cased words without stopwords, Porter-stemmed; a run of a script written
 * without spaces (CJK, Thai) becomes its overlapping character pairs, which match far more
 * selectively than single characters.
 */
export function keywordTerms(text: string): string[] {
  const out: string[] = [];
  for (const word of text.toLowerCase().match(WORD) ?? []) {
    const known = termOf.get(word);
    if (known !== undefined) {
      if (known) out.push(known);
    } else if (UNSPACED_SCRIPT.test(word)) {
      const chars = [...word];
      if (chars.length === 1) out.push(word);
      for (let i = 0; i + 1 < chars.length; i++) out.push(chars[i]! + chars[i + 1]!);
    } else {
      // '' marks a stopword. A term is copied out of the text it came from: V8 may keep a long
      // word as a slice of its whole text, which would stay in memory as long as the term.
      const term = isStopword(word) ? '' : copy(/^[a-z]+$/.test(word) ? stemmer(word) : word);
      if (termOf.size >= 200_000) termOf.clear();
      termOf.set(word, term);
      if (term) out.push(term);
    }
  }
  return out;
}
