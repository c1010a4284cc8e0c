import { deflateSync, strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { UnreadableDocumentError } from '../src/errors';
import { detectType } from '../src/ingestion/detect';
import { parseDocument } from '../src/ingestion/parsers';
import type { DocumentType, ParsedDocument } from '../src/ingestion/types';
import { readZipDirectory } from '../src/ingestion/zip';
import { ZIP_LIMITS } from '../src/limits';

/**
 * Files built to hurt the parsers: ZIP and DOCX bombs, crafted ZIP directories, XML and
 * Markdown that made regular expressions backtrack. Every file is generated here, never
 * committed. Each case logs what it cost; a quadratic regression would run into the test's
 * timeout rather than pass slowly unnoticed.
 */
const MiB = 2 ** 20;

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

const WORD = (body: string) =>
  `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`;
const para = (text: string) => `<w:p><w:r><w:t>${text}</w:t></w:r></w:p>`;
const docx = (documentXml: string, extra: Record<string, Uint8Array> = {}) =>
  zipSync({ '[Content_Types].xml': strToU8('<Types/>'), 'word/document.xml': strToU8(documentXml), ...extra });
/** Stored, not deflated: repetitive XML would otherwise be refused for its compression ratio first. */
const storedDocx = (documentXml: string, extra: Record<string, string> = {}) =>
  zipSync(
    Object.fromEntries(
      Object.entries({ '[Content_Types].xml': '<Types/>', 'word/document.xml': documentXml, ...extra }).map(([name, xml]) => [name, [strToU8(xml), { level: 0 }]]),
    ) as never,
  );

/** Offsets of the central-directory records, by entry name. */
function centralRecords(bytes: Uint8Array): Map<string, number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = new Map<string, number>();
  for (let i = 0; i + 46 <= bytes.length; i++) {
    if (view.getUint32(i, true) !== 0x02014b50) continue;
    found.set(new TextDecoder().decode(bytes.subarray(i + 46, i + 46 + view.getUint16(i + 28, true))), i);
  }
  return found;
}

function endRecord(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = bytes.length - 22; i >= 0; i--) if (view.getUint32(i, true) === 0x06054b50) return i;
  throw new Error('no EOCD');
}

describe('crafted ZIP directories are refused before anything is inflated', () => {
  it('a ZIP64 record claiming 2^40 entries, in a file of a few hundred bytes', async () => {
    const base = docx(WORD(para('hello')));
    const eocd = endRecord(base);
    // [... entries, central directory][ZIP64 EOCD record][ZIP64 locator][EOCD]
    const record = new Uint8Array(56);
    const rv = new DataView(record.buffer);
    rv.setUint32(0, 0x06064b50, true);
    rv.setBigUint64(32, 2n ** 40n, true); // entries
    rv.setBigUint64(40, 46n * 2n ** 40n, true); // directory size
    rv.setBigUint64(48, 0n, true);
    const locator = new Uint8Array(20);
    const lv = new DataView(locator.buffer);
    lv.setUint32(0, 0x07064b50, true);
    lv.setBigUint64(8, BigInt(eocd), true);
    const crafted = new Uint8Array([...base.subarray(0, eocd), ...record, ...locator, ...base.subarray(eocd)]);
    await timed('zip64 2^40 entries', () => {
      expect(() => readZipDirectory(crafted)).toThrow(/entries, more than/);
      expect(detectType(crafted, 'x.zip')).toBeNull(); // an upload answers 415 at once
      expect(detectType(crafted, 'x.docx')).toBe('docx'); // …or fails as damaged, with the reason
    });
    expect(await outcome(crafted, 'docx')).toMatch(/too large or too compressed to read \(1099511627776 entries/);
  });

  it('an entry count the directory cannot hold, offsets past the end, duplicate names', async () => {
    const base = docx(WORD(para('hello')));
    const tooMany = base.slice();
    new DataView(tooMany.buffer).setUint16(endRecord(tooMany) + 10, 4000, true);
    expect(() => readZipDirectory(tooMany)).toThrow(/central directory/);

    const pastEnd = base.slice();
    const at = centralRecords(pastEnd).get('word/document.xml') as number;
    new DataView(pastEnd.buffer).setUint32(at + 42, 0x7fffffff, true);
    expect(() => readZipDirectory(pastEnd)).toThrow(/out of range/);

    const twice = base.slice();
    const records = centralRecords(twice);
    const first = records.get('[Content_Types].xml') as number;
    // Rename "[Content_Types].xml" (19 bytes) to "word/document.xmlXX" … then to a true duplicate.
    twice.set(strToU8('word/document.xml'), first + 46);
    new DataView(twice.buffer).setUint16(first + 28, 17, true);
    expect(() => readZipDirectory(twice)).toThrow(/duplicate entry word\/document\.xml|central directory/);
    for (const bytes of [tooMany, pastEnd]) expect(await outcome(bytes, 'docx')).toMatch(/damaged or incomplete/);
  });

  it('an encrypted entry is refused by name', async () => {
    const bytes = docx(WORD(para('secret')));
    const at = centralRecords(bytes).get('word/document.xml') as number;
    const view = new DataView(bytes.buffer);
    view.setUint16(at + 8, view.getUint16(at + 8, true) | 1, true);
    expect(await outcome(bytes, 'docx')).toMatch(/damaged or incomplete/);
  });
});

describe('DOCX decompression budget, on declared and on actual sizes', () => {
  it('a part that lies about its size stops inflating when it passes what it declared', async () => {
    const zeros = new Uint8Array(64 * MiB); // deflates to ~64 KB
    const bomb = docx(WORD(para('x')), {});
    // Swap in a document.xml that is 64 MiB of zeros but declares 1 KB.
    const lying = zipSync({ 'word/document.xml': [zeros, { level: 9 }] });
    const at = centralRecords(lying).get('word/document.xml') as number;
    new DataView(lying.buffer).setUint32(at + 24, 1024, true);
    const result = await timed('64 MiB behind a 1 KB declaration', () => outcome(lying, 'docx'));
    expect(result).toMatch(/unpacks to more than the 1024 bytes it declares/);
    expect(bomb.length).toBeGreaterThan(0);
  });

  it('a part whose declared ratio is implausible is refused without inflating', async () => {
    const zeros = new Uint8Array(16 * MiB);
    const bytes = zipSync({ 'word/document.xml': [zeros, { level: 9 }] });
    const result = await timed('16 MiB at ~1000:1', () => outcome(bytes, 'docx'));
    expect(result).toMatch(new RegExp(`compression ratio over ${ZIP_LIMITS.maxCompressionRatio}:1`));
  });

  it('one budget across all parts: parts under the budget alone but over it together', async () => {
    const half = strToU8('<w:t>a</w:t>'.repeat(Math.ceil((ZIP_LIMITS.maxInflatedBytes / 2 + MiB) / 12)));
    const bytes = zipSync({ 'word/document.xml': [half, { level: 1 }], 'word/styles.xml': [half.slice(), { level: 1 }] });
    const result = await timed('two parts of 25 MiB', () => outcome(bytes, 'docx'));
    expect(result).toMatch(/would unpack to \d+ bytes, more than 50331648/);
  });

  it('parts it does not read (images, media) are never inflated, whatever they claim', async () => {
    const bytes = docx(WORD(para('The paraffin lamp.')), { 'word/media/image1.png': [new Uint8Array(32 * MiB), { level: 9 }] } as never);
    const result = await timed('docx beside a 32 MiB image bomb', () => outcome(bytes, 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'The paraffin lamp.' }] });
  });
});

describe('XML scanned in linear time', () => {
  it('a 10 MB part of unclosed tags', async () => {
    const bytes = storedDocx(WORD(`${para('Before.')}${'<a'.repeat(5 * MiB)}`));
    const result = await timed('10 MB of "<a"', () => outcome(bytes, 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'Before.' }] });
  });

  it('10 MB of unclosed styles, and a tag with 10 MB of attributes', async () => {
    const styles = `<w:styles>${'<w:style w:styleId="H">'.repeat(400_000)}</w:styles>`;
    const bytes = storedDocx(WORD(`<w:p a="${'x'.repeat(10 * MiB)}"><w:r><w:t>Kept.</w:t></w:r></w:p>`), { 'word/styles.xml': styles });
    const result = await timed('unclosed styles + huge attribute', () => outcome(bytes, 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'Kept.' }] });
  });

  it('an entity bomb is not expanded', async () => {
    const laughs = Array.from({ length: 10 }, (_, i) => `<!ENTITY l${i + 1} "${`&l${i};`.repeat(10)}">`).join('');
    const xml = `<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY l0 "lol">${laughs}]>${WORD(para('Laugh &l10; and &amp; stay small.'))}`;
    const result = await timed('billion laughs', () => outcome(docx(xml), 'docx'));
    expect(result).toMatchObject({ sections: [{ text: 'Laugh &l10; and & stay small.' }] });
  });
});

describe('Markdown scanned in linear time', () => {
  it('a 1 MB heading line: "# a", a million spaces, "b"', async () => {
    const bytes = strToU8(`# a${' '.repeat(MiB)}b\n\nThe body of the section.`);
    const result = await timed('1 MB heading line', () => outcome(bytes, 'md'));
    // The heading is cut at the cap before its blanks are collapsed, so it keeps only "a".
    expect(result).toMatchObject({ title: 'a', sections: [{ text: expect.stringContaining('The body'), headings: ['a'] }] });
  });

  it('headings full of link, image and HTML openers are cut to the heading cap', async () => {
    for (const filler of ['![', '[', '<', '#', ':a', '`']) {
      const bytes = strToU8(`## ${filler.repeat(MiB / filler.length)}\n\nText under it.\n\n---\n${'='.repeat(MiB)}\n`);
      const result = await timed(`1 MB heading of "${filler}"`, () => outcome(bytes, 'md'));
      expect(result).not.toBeTypeOf('string');
      for (const section of (result as ParsedDocument).sections) {
        for (const heading of section.headings ?? []) expect(heading.length).toBeLessThanOrEqual(300);
      }
    }
  });

  it('an unclosed front matter and a 1 MB fence line', async () => {
    const bytes = strToU8(`---\ntitle: x\n${'a: b\n'.repeat(200_000)}\n${'`'.repeat(MiB)}\ncode\n`);
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
