/**
 * Word analysis shared by the local embedder, the keyword query builder and the
 * extractive answerer, so all three agree on what a "term" is.
 */

const STOPWORDS = new Set(
  (
    'a about above after again against all am an and any are as at be because been before being below between both but by ' +
    'can could did do does doing down during each few for from further had has have having he her here hers herself him ' +
    'himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other ' +
    'our ours ourselves out over own same she should so some such than that the their theirs them themselves then there ' +
    'these they this those through to too under until up very was we were what when where which while who whom why will ' +
    'with would you your yours yourself yourselves'
  ).split(' '),
);

/** Letters and digits of any script; scripts written without spaces are split per character below. */
export const WORD = /[\p{L}\p{N}]+/gu;
export const UNSPACED_SCRIPT = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Thai}]/u;

export function isStopword(term: string): boolean {
  return STOPWORDS.has(term);
}

/**
 * Light English stemmer (plural and common inflection suffixes). Deliberately mild:
 * it must map "proteins"/"protein" and "binding"/"binds" together without merging
 * unrelated words; the keyword analyser (keyword-terms.ts) stems with Porter's, more heavily.
 */
export function stem(word: string): string {
  if (word.length <= 3 || !/^[a-z]+$/.test(word)) return word;
  if (word.endsWith('ies') && word.length > 4) return `${word.slice(0, -3)}y`;
  if (word.endsWith('sses')) return word.slice(0, -2);
  if (word.endsWith('ing') && word.length > 5) return word.slice(0, -3);
  if (word.endsWith('ed') && word.length > 4) return word.slice(0, -2);
  if (word.endsWith('s') && !word.endsWith('ss') && !word.endsWith('us') && !word.endsWith('is')) return word.slice(0, -1);
  return word;
}

/**
 * Lower-cased words in order, each run of an unspaced script (CJK, Thai) split into
 * single characters so that such text still yields terms.
 */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const match of text.toLowerCase().matchAll(WORD)) {
    const word = match[0];
    if (UNSPACED_SCRIPT.test(word)) {
      for (const char of word) out.push(char);
    } else {
      out.push(word);
    }
  }
  return out;
}

/** Stemmed words without stopwords: the terms retrieval matches on. */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const word of words(text)) {
    if (!STOPWORDS.has(word)) out.push(stem(word));
  }
  return out;
}
