import { deflateSync, strToU8 } from 'fflate';
import { describe, expect, it } from 'vitest';
import { UnreadableDocumentError } from '../src/domain/errors';
import { detectType } from '../src/ingestion/detect';
import { parseDocument } from '../src/ingestion/parsers';
import type { DocumentType, ParsedDocument } from '../src/ingestion/types';
import { readZipDirectory } from '../src/ingestion/zip';
import { ZIP_LIMITS } from '../src/limits';
import {
  docx,
  duplicateNameDocx,
  encryptedEntryDocx,
  entityBombDocx,
  HEADING_FILLERS,
  headingOfMd,
  longHeadingLineMd,
  lyingSizeDocx,
  mediaBombDocx,
  offsetPastEndDocx,
  para,
  ratioBombDocx,
  tooManyEntriesDocx,
  twoPartsOverBudgetDocx,
  unclosedFrontMatterMd,
  unclosedStylesDocx,
  unclosedTagsDocx,
  WORD,
  zip64EntriesDocx,
} from './hostile/bombs';

/**
 * Files built to hurt the parsers: ZIP and DOCX bombs, crafted ZIP directories, XML and
 * Markdown that made regular expressions backtrack. Every file is generated, never committed,
 * by ./hostile/bombs.ts (scripts/bench-hostile.mjs measures their time and memory). Each case
 * logs what it cost; a quadratic regression would run into the test's timeout rather than pass
 * slowly unnoticed.
 */
async function timed<T>(label: string, work: () => Promise<T> | T): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    console.log(`[hostile-files] ${label}: ${(performance.now() - started).toFixed(0)} ms`);
  }
}

/** Parses and returns the outcome: the parsed document, or the reason it failed. */
async function outcome(bytes: Uint8Array, type: DocumentType): Promise<ParsedDocument | string> {
  try {
    return await parseDocument(bytes, type);
  } catch (error) {
    if (error instanceof UnreadableDocumentError) return error.message;
    throw error;
  }
}

describe('crafted ZIP directories are refused before anything is inflated', () => {
  it('a ZIP64 record claiming 2^40 entries, in a file of a few hundred bytes', async () => {
    const crafted = zip64EntriesDocx();
    await timed('zip64 2^40 entries', () => {
      expect(() => readZipDirectory(crafted)).toThrow(/entries, more than/);
      expect(detectType(crafted, 'x.zip')).toBeNull(); // an upload answers 415 at once
      expect(detectType(crafted, 'x.docx')).toBe('docx'); // …or fails as damaged, with the reason
    });
    expect(await outcome(crafted, 'docx')).toMatch(/too large or too compressed to read \(1099511627776 entries/);
  });

  it('an entry count the directory cannot hold, offsets past the end, duplicate names', async () => {
    const tooMany = tooManyEntriesDocx();
    expect(() => readZipDirectory(tooMany)).toThrow(/central directory/);

    const pastEnd = offsetPastEndDocx();
    expect(() => readZipDirectory(pastEnd)).toThrow(/out of range/);

    const twice = duplicateNameDocx();
    expect(() => readZipDirectory(twice)).toThrow(/duplicate entry word\/document\.xml|central directory/);
    for (const bytes of [tooMany, pastEnd]) expect(await outcome(bytes, 'docx')).toMatch(/damaged or incomplete/);
  });

  it('an encrypted entry is refused by name', async () => {
    const bytes = encryptedEntryDocx();
    expect(await outcome(bytes, 'docx')).toMatch(/damaged or incomplete/);
  });
});

describe('DOCX decompression budget, on declared and on actual sizes', () => {
  it('a part that lies about its size stops inflating when it passes what it declared', async () => {
    const bomb = docx(WORD(para('x')), {});
    // A document.xml that is 64 MiB of zeros (deflated to ~64 KB) but declares 1 KB.
    const lying = lyingSizeDocx();
    const result = await timed('64 MiB behind a 1 KB declaration', () => outcome(lying, 'docx'));
    expect(result).toMatch(/unpacks to more than the 1024 bytes it declares/);
    expect(bomb.length).toBeGreaterThan(0);
  });

  it('a part whose declared ratio is implausible is refused without inflating', async () => {
    const bytes = ratioBombDocx();
    const result = await timed('16 MiB at ~1000:1', () => outcome(bytes, 'docx'));
    expect(result).toMatch(new RegExp(`compression ratio over ${ZIP_LIMITS.maxCompressionRatio}:1`));
  });

  it('one budget across all parts: parts under the budget alone but over it together', async () => {
    const bytes = twoPartsOverBudgetDocx(ZIP_LIMITS.maxInflatedBytes);
    const result = await timed('two parts of 25 MiB', () => outcome(bytes, 'docx'));
    expect(result).toMatch(/would unpack to \d+ bytes, more than 50331648/);
  });

  it('parts it does not read (images, media) are never inflated, whatever they claim', async () => {
    const bytes = mediaBombDocx();
    const result = await timed('docx beside a 32 MiB image bomb', () => outcome(bytes, 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'The paraffin lamp.' }] });
  });
});

describe('XML scanned in linear time', () => {
  it('a 10 MB part of unclosed tags', async () => {
    const bytes = unclosedTagsDocx();
    const result = await timed('10 MB of "<a"', () => outcome(bytes, 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'Before.' }] });
  });

  it('10 MB of unclosed styles, and a tag with 10 MB of attributes', async () => {
    const bytes = unclosedStylesDocx();
    const result = await timed('unclosed styles + huge attribute', () => outcome(bytes, 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'Kept.' }] });
  });

  it('an entity bomb is not expanded', async () => {
    const result = await timed('billion laughs', () => outcome(entityBombDocx(), 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'Laugh &l10; and & stay small.' }] });
  });
});

describe('Markdown scanned in linear time', () => {
  it('a 1 MB heading line: "# a", a million spaces, "b"', async () => {
    const bytes = longHeadingLineMd();
    const result = await timed('1 MB heading line', () => outcome(bytes, 'md'));
    // The heading is cut at the cap before its blanks are collapsed, so it keeps only "a".
    expect(result).toMatchObject({ title: 'a', sections: [{ text: expect.stringContaining('The body'), headings: ['a'] }] });
  });

  it('headings full of link, image and HTML openers are cut to the heading cap', async () => {
    for (const filler of HEADING_FILLERS) {
      const bytes = headingOfMd(filler);
      const result = await timed(`1 MB heading of "${filler}"`, () => outcome(bytes, 'md'));
      expect(result).not.toBeTypeOf('string');
      for (const section of (result as ParsedDocument).sections) {
        for (const heading of section.headings ?? []) expect(heading.length).toBeLessThanOrEqual(300);
      }
    }
  });

  it('an unclosed front matter and a 1 MB fence line', async () => {
    const bytes = unclosedFrontMatterMd();
    const result = await timed('unclosed front matter + fence', () => outcome(bytes, 'md'));
    expect(result).not.toBeTypeOf('string');
  });
});

describe('types come from content, whatever the name or content type says', () => {
  it('a ZIP named .pdf, a PDF named .docx, text named .docx, an executable named .txt', () => {
    const zip = docx(WORD(para('x')));
    expect(detectType(zip, 'report.pdf')).toBe('docx');
    expect(detectType(strToU8('%PDF-1.7\n'), 'report.docx')).toBe('pdf');
    expect(detectType(strToU8('plain words'), 'report.docx')).toBe('txt');
    expect(detectType(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3e, 0]), 'notes.txt')).toBeNull();
    expect(detectType(deflateSync(new Uint8Array(1000)), 'notes.md')).toBeNull();
  });
});
