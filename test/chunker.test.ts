import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { type Chunk, type ChunkOptions, chunkSections } from '../src/ingestion/chunker';
import { countTokens, splitTokens } from '../src/text/tokens';
import type { Section } from '../src/ingestion/types';

/** mulberry32: seeded, so every run generates the same inputs. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random text mixing words, punctuation, CJK, Thai, emoji, huge words and every kind of gap. */
function randomText(rand: () => number, length: number): string {
  const int = (n: number) => Math.floor(rand() * n);
  const pick = (xs: readonly string[]) => xs[int(xs.length)] ?? '';
  const run = (n: number, base: number, span: number) =>
    String.fromCodePoint(...Array.from({ length: n }, () => base + int(span)));
  const word = () => run(1 + int(10), 97, 26);
  const fragments = [word, word, () => word() + pick([',', '.', '!', '?', ';', '...']), () => String(int(100000)),
    () => run(1 + int(40), 0x4e00, 20000) + pick(['', '。', '，', '！']), // Han
    () => run(2 + int(10), 0x3041, 86), () => run(2 + int(6), 0xac00, 11172), () => run(3 + int(20), 0x0e01, 46), // kana, hangul, Thai
    () => run(30 + int(300), 97, 26), // huge word
    () => pick(['😀', '𝐀𝐁𝐂', '(', ')', '—', '“', '#', 'e.g.', 'café', 'nai\u0308ve', 'zero\u200bwidth'])];
  const gaps = [' ', ' ', ' ', ' ', '  ', '\t', '\n', '\n\n', '\n \n', '\r\n', '\u3000', '\u00a0', ''];
  let text = pick(['', ' ', '\n\n']);
  while (text.length < length) text += (fragments[int(fragments.length)]?.() ?? '') + pick(gaps);
  return text;
}

/**
 * Every property of one chunking, as a list of violations. Sections need distinct pages, which
 * map chunks back to them; each chunk is located in its section with indexOf from the previous
 * chunk's start (overlap) or end (no overlap), so finding it proves it a substring, in order, and
 * (no overlap) disjoint from the one before. With no overlap the first match is the chunk, as only
 * whitespace lies between chunks; with overlap, repetitive text ("####", "|----|") may hold it at
 * several places, and matches sharing more than chunkOverlap tokens with the last chunk are skipped.
 */
function violations(sections: Section[], chunks: Chunk[], { chunkSize, chunkOverlap }: ChunkOptions): string[] {
  const problems: string[] = [];
  let next = 0;
  sections.forEach((section, s) => {
    const text = section.text;
    let [prevStart, prevEnd, covered] = [-1, 0, 0];
    for (let c = chunks[next]; c !== undefined && c.page === section.page; c = chunks[++next]) {
      const where = `section ${s} chunk ${next}`;
      if (c.index !== next) problems.push(`${where}: index ${c.index}`);
      if (JSON.stringify(c.headings) !== JSON.stringify(section.headings)) problems.push(`${where}: headings`);
      if (c.tokens !== countTokens(c.text) || c.tokens > chunkSize) problems.push(`${where}: ${c.tokens} tokens`);
      if (c.text === '' || c.text !== c.text.trim()) problems.push(`${where}: empty or untrimmed`);
      let at = text.indexOf(c.text, chunkOverlap > 0 ? prevStart + 1 : prevEnd);
      while (chunkOverlap > 0 && at >= 0 && at < prevEnd && countTokens(text.slice(at, prevEnd)) > chunkOverlap) {
        at = text.indexOf(c.text, at + 1);
      }
      if (at < 0) {
        problems.push(`${where}: not found after the previous chunk`);
        return;
      }
      const shared = prevStart < 0 ? 1 : at < prevEnd ? countTokens(text.slice(at, prevEnd)) : 0;
      if (chunkOverlap > 0 && (shared < 1 || shared > chunkOverlap)) problems.push(`${where}: overlap ${shared}`);
      if (text.slice(covered, at).trim() !== '') problems.push(`${where}: text before it uncovered`);
      [prevStart, prevEnd, covered] = [at, at + c.text.length, Math.max(covered, at + c.text.length)];
    }
    if (text.slice(covered).trim() !== '') problems.push(`section ${s}: end uncovered`);
  });
  if (next !== chunks.length) problems.push(`chunk ${next} out of section order`);
  return problems.slice(0, 5);
}

const chunkTexts = (text: string, chunkSize: number, chunkOverlap: number) =>
  chunkSections([{ text }], { chunkSize, chunkOverlap }).map((c) => c.text);

const fetchText = async (path: string) => (await env.TEST_DATA.fetch(`http://data/${path}`)).text();

describe('countTokens', () => {
  it('estimates WordPiece-like counts', () => {
    const cases: [string, number][] = [
      ['', 0], [' \n\t\u3000', 0], ['hello', 1], ['Hello, world!', 4], ['abcdef', 1], ['abcdefg', 2],
      ['internationalization', 4], ['2024-01-15', 5], ['...', 3], ['a\u200bb', 3], ['日本語のテキスト', 8],
      ['한국어', 3], ['ภาษาไทย', 7], ['abc中文def', 4], ['a😀b', 3], ['𝐀𝐁𝐂', 1], ['café nai\u0308ve', 2],
      ['x'.repeat(10_000), 1667],
    ];
    for (const [text, tokens] of cases) expect(countTokens(text), text.slice(0, 20)).toBe(tokens);
  });

  it('splitTokens cuts text into one-token pieces that cover every non-space character', () => {
    const text = randomText(prng(7), 20_000);
    const pieces: string[] = [];
    let end = 0;
    splitTokens(text, (s, e) => {
      expect(text.slice(end, s).trim()).toBe('');
      pieces.push(text.slice(s, (end = e)));
    });
    expect(pieces.every((p) => countTokens(p) === 1)).toBe(true);
    expect(pieces.length).toBe(countTokens(text));
  });
});

describe('chunkSections', () => {
  it('rejects impossible options', () => {
    const bad = [[0, 0], [10, 10], [10, 11], [10, -1], [1.5, 0], [10, 0.5], [Number.NaN, 0]] as const;
    for (const [chunkSize, chunkOverlap] of bad) {
      expect(() => chunkSections([{ text: 'a' }], { chunkSize, chunkOverlap })).toThrow(RangeError);
    }
  });

  it('splits a paragraph at sentences, then words, with the expected overlap', () => {
    const text = 'The quick brown fox jumps over the lazy dog. It was not amused! Was it? Nobody knows.';
    const first = 'The quick brown fox jumps over the lazy dog.';
    expect(chunkTexts(text, 10, 0)).toEqual([first, 'It was not amused! Was it?', 'Nobody knows.']);
    expect(chunkTexts(text, 10, 3)).toEqual([first, 'lazy dog. It was not amused!', 'not amused! Was it? Nobody knows.']);
  });

  it('keeps paragraphs whole, and chunks an oversized one on its own unless the chunk before is tiny', () => {
    const paragraphs = 'First paragraph here.\n\nSecond one is here.\n\nThird.';
    expect(chunkTexts(paragraphs, 8, 0)).toEqual(['First paragraph here.', 'Second one is here.\n\nThird.']);
    const oversized = 'Intro words.\n\nOne two three four five six seven eight nine ten.';
    expect(chunkTexts(oversized, 8, 0)).toEqual(['Intro words.', 'One two three four five six seven eight', 'nine ten.']);
    // "Intro words." (3 tokens) alone would be wholly repeated as the next chunk's overlap, so it is kept.
    expect(chunkTexts(oversized, 8, 3)).toEqual([
      'Intro words.\n\nOne two three four five',
      'three four five six seven eight nine',
      'seven eight nine ten.',
    ]);
  });

  it('splits CJK at 。 and then per character', () => {
    const text = '人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以弟兄关系的精神相对待。';
    const first = '人人生而自由，在尊严和权利上一律平等。';
    expect(chunkTexts(text, 20, 0)).toEqual([first, '他们赋有理性和良心，并应以弟兄关系的精神', '相对待。']);
    expect(chunkTexts(text, 20, 2)).toEqual([first, '等。他们赋有理性和良心，并应以弟兄关系的', '系的精神相对待。']);
    // No punctuation at all: exactly 100 characters a chunk.
    const han = String.fromCodePoint(...Array.from({ length: 5000 }, (_, i) => 0x4e00 + ((i * 7919) % 20000)));
    expect(chunkTexts(han, 100, 0)).toEqual(Array.from({ length: 50 }, (_, i) => han.slice(i * 100, i * 100 + 100)));
  });

  it('skips empty sections and keeps page, headings and a document-wide index', () => {
    const sections: Section[] = [
      { text: ' \n ', page: 1 },
      { text: 'Alpha beta.', page: 2, headings: ['A'] },
      { text: '', page: 3 },
      { text: 'Gamma.', page: 4, headings: ['A', 'B'] },
    ];
    expect(chunkSections(sections, { chunkSize: 512, chunkOverlap: 50 })).toEqual([
      { text: 'Alpha beta.', index: 0, page: 2, headings: ['A'], tokens: 3 },
      { text: 'Gamma.', index: 1, page: 4, headings: ['A', 'B'], tokens: 2 },
    ]);
  });

  it('splits a 10,000-character word', () => {
    const rand = prng(42);
    const word = String.fromCharCode(...Array.from({ length: 10_000 }, () => 97 + Math.floor(rand() * 26)));
    const sections = [{ text: `Before ${word} after.`, page: 1 }];
    const chunks = chunkSections(sections, { chunkSize: 512, chunkOverlap: 50 });
    expect(chunks.map((c) => c.tokens)).toEqual([512, 512, 512, 284]);
    expect(violations(sections, chunks, { chunkSize: 512, chunkOverlap: 50 })).toEqual([]);
  });

  it('holds every property over 400 generated documents', () => {
    const rand = prng(1234);
    const sizes = [1, 2, 3, 4, 7, 10, 16, 33, 64, 128, 512];
    for (let run = 0; run < 400; run++) {
      const chunkSize = sizes[Math.floor(rand() * sizes.length)] ?? 1;
      const options = { chunkSize, chunkOverlap: rand() < 0.3 ? 0 : Math.floor(rand() * chunkSize) };
      const sections = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, i): Section => ({
        text: rand() < 0.15 ? ['', '  \n\t '][i % 2] ?? '' : randomText(rand, Math.floor(rand() * 3000)),
        page: i + 1,
        ...(rand() < 0.5 ? { headings: ['Doc', `H${i}`] } : {}),
      }));
      const chunks = chunkSections(sections, options);
      expect(violations(sections, chunks, options), `run ${run} ${JSON.stringify(options)}`).toEqual([]);
    }
  });

  it('holds every property on real Markdown and multi-script text', async () => {
    const files = [
      'documents/md/mammoth.js__README.md',
      'documents/md/OCRmyPDF__docs_advanced.md',
      'documents/txt/unstructured__UDHR_first_article_all.txt',
    ];
    const texts = await Promise.all(files.map(fetchText));
    const sections = texts.map((text, i): Section => ({ text, page: i + 1, headings: [files[i] ?? ''] }));
    // CJK and Thai lines of the UDHR, whitespace removed: long runs with no spaces at all.
    const unspacedLines = (texts[2] ?? '').split('\n').filter((l) => /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Thai}]/u.test(l));
    const unspaced = unspacedLines.join('').replace(/\s/g, '');
    sections.push({ text: unspaced, page: 4 });
    const sizes = [[512, 50], [128, 16], [32, 0], [16, 15], [3, 1]] as const;
    for (const options of sizes.map(([chunkSize, chunkOverlap]): ChunkOptions => ({ chunkSize, chunkOverlap }))) {
      const chunks = chunkSections(sections, options);
      expect(violations(sections, chunks, options), JSON.stringify(options)).toEqual([]);
      expect(chunks.filter((c) => c.page === 4).length).toBeGreaterThan(countTokens(unspaced) / options.chunkSize);
    }
  });

  it('chunks ~3 MB of SciFact abstracts with default options', async () => {
    let text = '';
    for (const line of (await fetchText('scifact/corpus.jsonl')).split('\n')) {
      if (text.length > 3_000_000) break;
      const doc = JSON.parse(line) as { title: string; text: string };
      text += `${doc.title}\n\n${doc.text}\n\n`;
    }
    const sections = [{ text, page: 1 }];
    const options = { chunkSize: 512, chunkOverlap: 50 };
    const started = performance.now();
    const chunks = chunkSections(sections, options);
    await env.TEST_DATA.fetch('http://data/SOURCES.md'); // workerd's clock only advances across I/O
    console.log(`chunked ${text.length} chars into ${chunks.length} chunks in ≤ ${Math.round(performance.now() - started)} ms`);
    expect(violations(sections, chunks, options)).toEqual([]);
    expect(chunks.reduce((sum, c) => sum + c.tokens, 0) / chunks.length).toBeGreaterThan(256);
  });
});
