import { describe, expect, it } from 'vitest';
import { DEFAULT_KEYWORD_PARAMS, KeywordIndex } from '../src/engines/keyword-index';
import { keywordTerms } from '../src/text/keyword-terms';
import { rng } from './support';

/** An index over `rows` (row number → [text, context]). */
function indexOf(rows: Record<number, [string, string]>, index = new KeywordIndex()): KeywordIndex {
  for (const [row, [text, context]] of Object.entries(rows)) index.add(Number(row), text, context);
  return index;
}

/** Hits by score (to 6 digits), then row: the order of equal scores is not specified. */
const canonical = (hits: { row: number; score: number }[]) =>
  [...hits].sort((x, y) => Number(y.score.toFixed(6)) - Number(x.score.toFixed(6)) || x.row - y.row);

const rowsOf = (hits: { row: number }[]) => hits.map((hit) => hit.row);

/** Pseudo-relevance feedback as the Durable Object uses it: 3 rows, 20 terms, 0.7 for the query. */
const FEEDBACK = { rows: 3, terms: 20, originalWeight: 0.7 };

describe('keywordTerms', () => {
  it('maps inflections to one Porter stem', () => {
    expect(keywordTerms('Proteins binding')).toEqual(['protein', 'bind']);
    expect(keywordTerms('protein binds')).toEqual(['protein', 'bind']);
    expect(keywordTerms('Running runs')).toEqual(['run', 'run']);
  });

  it('drops stopwords and keeps the rest in order', () => {
    expect(keywordTerms('The cell and the membrane of it')).toEqual(['cell', 'membran']);
    expect(keywordTerms('the of and is to')).toEqual([]);
  });

  it('splits a run of CJK characters into overlapping pairs; a lone character stays whole', () => {
    expect(keywordTerms('東京タワー')).toEqual(['東京', '京タ', 'タワ', 'ワー']);
    expect(keywordTerms('机器学习')).toEqual(['机器', '器学', '学习']);
    expect(keywordTerms('東')).toEqual(['東']);
    // Latin words beside a CJK run are still stemmed on their own.
    expect(keywordTerms('proteins 東京')).toEqual(['protein', '東京']);
  });
});

describe('KeywordIndex', () => {
  it('matches inflections of the query words', () => {
    const index = indexOf({
      0: ['The protein binds DNA at the promoter.', 'Transcription'],
      1: ['Lipids form the membrane.', 'Cell biology'],
      2: ['A bound ligand was observed.', 'Assays'],
    });
    expect(rowsOf(index.search('proteins binding', 10))).toEqual([0]);
    expect(rowsOf(index.search('binding', 10))).toEqual([0]);
    expect(rowsOf(index.search('PROTEINS', 10))).toEqual([0]);
  });

  it('ignores stopwords, in rows and in queries', () => {
    const index = indexOf({
      0: ['the the the of and it is', 'the'],
      1: ['cell membrane potential', 'Physiology'],
      2: ['membrane proteins of the cell', 'Physiology'],
    });
    expect(index.search('the and of', 10)).toEqual([]);
    // Row 0 has only stopwords: a query with "the" does not reach it, and scores as without "the".
    const withStopwords = index.search('the cell', 10);
    expect(rowsOf(withStopwords).sort()).toEqual([1, 2]);
    expect(withStopwords).toEqual(index.search('cell', 10));
  });

  it('weights a term in the context (title, headings) above the same term in the text', () => {
    const rows: Record<number, [string, string]> = {
      0: ['kinase assay results recorded', 'protocol summary'], // the term in the text
      1: ['enzyme assay results recorded', 'kinase summary'], // the term in the context: same lengths
    };
    const hits = indexOf(rows).search('kinase', 10);
    expect(rowsOf(hits)).toEqual([1, 0]);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score * 1.2);
    // With the context weighted like the text, the two rows tie: the order above is the weight's doing.
    const flat = indexOf(rows, new KeywordIndex({ ...DEFAULT_KEYWORD_PARAMS, contextWeight: 1 })).search('kinase', 10);
    expect(rowsOf(flat).sort()).toEqual([0, 1]);
    expect(flat[0]!.score).toBeCloseTo(flat[1]!.score, 6);
  });

  it('ranks a rare term above a common one (idf)', () => {
    const rows: Record<number, [string, string]> = {};
    for (let i = 0; i < 6; i++) rows[i] = [`common filler${i}a filler${i}b`, 'notes'];
    rows[6] = ['rare fillerxa fillerxb', 'notes']; // same length, and the highest row number
    const hits = indexOf(rows).search('common rare', 10);
    expect(hits).toHaveLength(7);
    expect(hits[0]!.row).toBe(6);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score * 3);
    // Every row with the common term scores the same.
    for (const hit of hits.slice(1)) expect(hit.score).toBeCloseTo(hits[1]!.score, 6);
  });

  it('returns at most `limit` rows, best first', () => {
    const index = indexOf({
      0: ['salmon', 'fish'],
      1: ['salmon salmon salmon', 'fish'],
      2: ['salmon river trout lake pike perch', 'fish'],
      3: ['trout', 'fish'],
    });
    const hits = index.search('salmon', 2);
    expect(rowsOf(hits)).toEqual([1, 0]);
    expect(index.search('salmon', 0)).toEqual([]);
  });

  it('restricts results to the allowed rows', () => {
    const rows: Record<number, [string, string]> = {};
    for (let i = 0; i < 10; i++) rows[i] = [`salmon ${'run '.repeat(i)}`, 'fish'];
    const index = indexOf(rows);
    expect(index.search('salmon', 100)).toHaveLength(10);
    const even = index.search('salmon', 100, (row) => row % 2 === 0);
    expect(rowsOf(even).sort((a, b) => a - b)).toEqual([0, 2, 4, 6, 8]);
    expect(index.search('salmon', 100, () => false)).toEqual([]);
    // `limit` counts allowed rows only.
    expect(rowsOf(index.search('salmon', 2, (row) => row >= 7))).toEqual([7, 8]);
  });

  it('forgets a removed row', () => {
    const index = indexOf({
      0: ['walrus tusks are ivory', 'Arctic mammals'],
      1: ['narwhal tusks are teeth', 'Arctic mammals'],
      2: ['penguins cannot fly', 'Antarctic birds'],
    });
    expect(index.size).toBe(3);
    expect(rowsOf(index.search('tusks', 10)).sort()).toEqual([0, 1]);
    index.remove(1);
    expect(index.size).toBe(2);
    expect(index.has(1)).toBe(false);
    expect(index.search('narwhal', 10)).toEqual([]);
    expect(rowsOf(index.search('tusks', 10))).toEqual([0]);
    index.remove(1); // already gone: no change
    index.remove(99); // never there
    expect(index.size).toBe(2);
    expect(rowsOf(index.search('penguins', 10))).toEqual([2]);
  });

  it('matches only the new text of a row removed and added again, scoring it as a fresh index would', () => {
    const index = indexOf({
      5: ['walrus tusks ivory', 'Arctic'],
      6: ['penguin colonies nest on ice', 'Antarctic'],
    });
    index.remove(5);
    index.add(5, 'penguin chicks huddle', 'Antarctic');
    expect(index.size).toBe(2);
    expect(index.search('walrus', 10)).toEqual([]);
    expect(index.search('ivory arctic', 10)).toEqual([]);
    expect(rowsOf(index.search('chicks', 10))).toEqual([5]);
    const fresh = indexOf({ 5: ['penguin chicks huddle', 'Antarctic'], 6: ['penguin colonies nest on ice', 'Antarctic'] });
    const got = index.search('penguin ice chicks', 10);
    const expected = fresh.search('penguin ice chicks', 10);
    expect(rowsOf(got)).toEqual(rowsOf(expected));
    got.forEach((hit, i) => expect(hit.score).toBeCloseTo(expected[i]!.score, 6));

    // Added again without a remove in between: the new text replaces the old.
    index.add(6, 'seals haul out', 'Antarctic');
    expect(index.size).toBe(2);
    expect(index.search('colonies', 10)).toEqual([]);
    expect(rowsOf(index.search('seals', 10))).toEqual([6]);
  });

  it('compacts after many removals without changing the results for the remaining rows', () => {
    const random = rng(11);
    const vocabulary = Array.from({ length: 400 }, (_, i) => `term${i}x`);
    const texts = Array.from({ length: 3000 }, () => Array.from({ length: 12 }, () => vocabulary[Math.floor(random() * 400)]!).join(' '));
    const contexts = texts.map((_, i) => `title${i % 50}x`);
    const index = new KeywordIndex();
    texts.forEach((text, row) => index.add(row, text, contexts[row]!));
    const memoryBefore = index.memory();

    const removed = new Set<number>();
    for (let row = 0; row < 3000; row += 3) removed.add(row);
    for (let row = 1; row < 3000; row += 6) removed.add(row); // 1500 rows, ≈ 16,000 postings
    for (const row of removed) index.remove(row);
    expect(index.size).toBe(3000 - removed.size);
    // Compaction drops the removed rows' postings: without it the lists keep every entry.
    expect(index.memory()).toBeLessThan(memoryBefore);
    // ≈ 19,500 entries died; a compaction (past 10,000 dead) purged most of them.
    expect((index as unknown as { deadEntries: number }).deadEntries).toBeLessThan(10_000);

    const fresh = new KeywordIndex();
    texts.forEach((text, row) => removed.has(row) || fresh.add(row, text, contexts[row]!));
    for (let q = 0; q < 20; q++) {
      const query = `${vocabulary[Math.floor(random() * 400)]} ${vocabulary[Math.floor(random() * 400)]} title${q}x`;
      // Every match (no cut-off among equal scores), in a canonical order.
      const got = canonical(index.search(query, 3000));
      const expected = canonical(fresh.search(query, 3000));
      expect(got.length).toBeGreaterThan(10);
      expect(rowsOf(got)).toEqual(rowsOf(expected));
      got.forEach((hit, i) => expect(hit.score).toBeCloseTo(expected[i]!.score, 6));
      for (const hit of got) expect(removed.has(hit.row)).toBe(false);
    }
  });

  it('re-adds rows with new text without purging the postings each time, matching only the new text', () => {
    const random = rng(5);
    const vocabulary = Array.from({ length: 300 }, (_, i) => `word${i}x`);
    const texts = Array.from({ length: 2000 }, () => Array.from({ length: 20 }, () => vocabulary[Math.floor(random() * 300)]!).join(' '));
    const index = new KeywordIndex();
    texts.forEach((text, row) => index.add(row, text, 'title'));
    // Rows 0–99 get a marker word; re-publishing unchanged rows 100–199 changes nothing.
    for (let row = 0; row < 100; row++) texts[row] = `${texts[row]} fresh${row % 7}y`;
    for (let row = 0; row < 200; row++) index.add(row, texts[row]!, 'title');
    // Old postings wait for a compaction instead of triggering one per row.
    expect((index as unknown as { deadEntries: number }).deadEntries).toBeGreaterThan(0);
    expect(index.size).toBe(2000);

    const fresh = new KeywordIndex();
    texts.forEach((text, row) => fresh.add(row, text, 'title'));
    for (const query of ['fresh3y', `${vocabulary[7]} ${vocabulary[42]}`, `fresh1y ${vocabulary[99]}`]) {
      const got = canonical(index.search(query, 2000));
      const expected = canonical(fresh.search(query, 2000));
      expect(got.length).toBeGreaterThan(5);
      expect(rowsOf(got)).toEqual(rowsOf(expected));
      got.forEach((hit, i) => expect(hit.score).toBeCloseTo(expected[i]!.score, 6));
    }
  });

  it('finds CJK phrases by character pairs, not by shared single characters', () => {
    const index = indexOf({
      0: ['東京タワーは東京の名所です', '観光'],
      1: ['東の空と京の都', '観光'], // 東 and 京, never side by side
      2: ['机器学习是人工智能的一个分支', '计算机'],
      3: ['机场的器材和学校的习题', '杂项'], // 机 器 学 习, never side by side
    });
    expect(rowsOf(index.search('東京', 10))).toEqual([0]);
    expect(rowsOf(index.search('机器学习', 10))).toEqual([2]);
    expect(rowsOf(index.search('東京タワー', 10))).toEqual([0]);
  });

  describe('searchExpanded (pseudo-relevance feedback)', () => {
    const rows: Record<number, [string, string]> = {
      0: ['zebrafish heart regeneration follows cardiomyocyte proliferation after injury', 'Cardiac repair'],
      1: ['zebrafish regrow fins, and heart regeneration needs cardiomyocyte proliferation', 'Cardiac repair'],
      2: ['in zebrafish cardiomyocyte proliferation restores the heart after injury', 'Cardiac repair'],
      3: ['volcanic basalt columns form as thick lava cools slowly', 'Geology'],
      4: ['parliament debated the tax reform until midnight', 'Politics'],
      5: ['sourdough bread rises with wild yeast and lactobacilli', 'Baking'],
      6: ['mouse heart regeneration through cardiomyocyte proliferation after injury', 'Cardiac repair'], // no "zebrafish"
      7: ['glaciers carve fjords over many thousands of years', 'Geology'],
      8: ['the orchestra tuned to a concert pitch of 440 hertz', 'Music'],
    };
    const index = indexOf(rows);
    const textOf = (list: number[]) => list.map((row) => `${rows[row]![1]}\n${rows[row]![0]}`);

    it('finds a relevant row that shares no query term but shares the top rows’ vocabulary', () => {
      expect(rowsOf(index.search('zebrafish', 10)).sort()).toEqual([0, 1, 2]);
      const expanded = index.searchExpanded('zebrafish', 10, FEEDBACK, textOf);
      const ranked = rowsOf(expanded);
      expect(ranked).toContain(6);
      // The rows with the query term stay first; the expansion brings the related row next,
      // and none of the unrelated ones.
      expect(ranked.slice(0, 3).sort()).toEqual([0, 1, 2]);
      expect(ranked[3]).toBe(6);
      for (const unrelated of [3, 4, 5, 7, 8]) expect(ranked).not.toContain(unrelated);
    });

    it('keeps the top hit of an unambiguous query', () => {
      for (const query of ['basalt lava', 'sourdough yeast', 'fjords']) {
        const plain = index.search(query, 5);
        const expanded = index.searchExpanded(query, 5, FEEDBACK, textOf);
        expect(plain.length).toBeGreaterThan(0);
        expect(expanded[0]!.row).toBe(plain[0]!.row);
      }
      expect(index.searchExpanded('nothing matches this', 5, FEEDBACK, textOf)).toEqual([]);
    });

    it('applies `allowed` to the feedback and the results', () => {
      const expanded = index.searchExpanded('zebrafish', 10, FEEDBACK, textOf, (row) => row !== 6 && row !== 0);
      expect(rowsOf(expanded).sort()).toEqual([1, 2]);
    });
  });
});
