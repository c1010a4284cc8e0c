import { env } from 'cloudflare:workers';
import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { UnreadableDocumentError } from '../src/domain/errors';
import { decodeText, looksLikeText } from '../src/ingestion/decode-text';
import { detectType } from '../src/ingestion/detect';
import { parseDocument } from '../src/ingestion/parsers';
import { bundledCMaps, loadBundledCMap, MissingCMapError } from '../src/ingestion/parsers/cmaps';
import type { DocumentType, ParsedDocument } from '../src/ingestion/types';

/** The shared sample files, served to workerd by the TEST_DATA service binding. */
async function sample(folder: string, name: string): Promise<Uint8Array> {
  const res = await env.TEST_DATA.fetch(`http://data/documents/${folder}/${encodeURIComponent(name)}`);
  expect(res.status, `${folder}/${name}`).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

/** Detects the sample's type from content + name (must be `expected`) and parses it. */
async function parseSample(folder: string, name: string, expected: DocumentType = folder as DocumentType): Promise<ParsedDocument> {
  const bytes = await sample(folder, name);
  expect(detectType(bytes, name)).toBe(expected);
  return parseDocument(bytes, expected);
}

/** Expects the sample to be rejected as unreadable with a reason matching `reason`. */
async function expectUnreadable(folder: string, name: string, reason: RegExp): Promise<void> {
  const error = await parseSample(folder, name).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, name).toBeInstanceOf(UnreadableDocumentError);
  expect((error as Error).message).toMatch(reason);
}

const allText = (doc: ParsedDocument): string => doc.sections.map((s) => s.text).join('\n\n');
const onPage = (doc: ParsedDocument, page: number): string => doc.sections.find((s) => s.page === page)?.text ?? '';
const underHeadings = (doc: ParsedDocument, ...path: string[]): string =>
  doc.sections.find((s) => JSON.stringify(s.headings) === JSON.stringify(path))?.text ?? '';

const PASSWORD = /password-protected/i;
const NO_TEXT = /no extractable text.*OCR/i;

describe('PDF samples', () => {
  // [file, page count, [page, phrase checked with pdftotext]...]
  const textPdfs: [string, number, [number, string][]][] = [
    ['pdfjs__tracemonkey.pdf', 14, [[1, 'Trace-based Just-in-Time Type Specialization for Dynamic'], [14, 'LuaJIT roadmap 2008']]],
    ['pdfminer__naacl06-shinyama.pdf', 8, [[1, 'Preemptive Information Extraction using Unrestricted Relation Discovery']]],
    ['pypdf__Seige_of_Vicksburg_Sample_OCR.pdf', 6, [[1, 'Johnston is coming with fifty'], [6, 'THE SIEGE OF VICKSBURG']]],
    ['sample-files__google-doc-document.pdf', 1, [[1, 'Beautiful is better than ugly.']]],
    ['sample-files__multicolumn.pdf', 3, [[1, 'Two-Column Document with Lorem Ipsum'], [3, 'Table 1: EU Countries Information']]],
    ['sample-files__pdflatex-4-pages.pdf', 4, [[1, 'Hello, here is some text without a meaning.'], [4, 'should match the language']]],
    ['unstructured__copy-protected.pdf', 2, [[1, 'LayoutParser: A Unified Toolkit for Deep'], [2, 'scene text detection']]],
    ['unstructured__layout-parser-paper-fast.pdf', 2, [[1, 'Document Image Analysis'], [2, 'Z. Shen et al.']]],
    ['unstructured__multi-column-2p.pdf', 2, [[1, 'Dense Passage Retrieval for Open-Domain Question Answering'], [2, 'ICT pretraining is computationally intensive']]],
  ];
  for (const [name, pages, phrases] of textPdfs) {
    it(`reads ${name}: one section per page, with page numbers`, async () => {
      const doc = await parseSample('pdf', name);
      expect(doc.sections.map((s) => s.page)).toEqual(Array.from({ length: pages }, (_, i) => i + 1));
      for (const [page, phrase] of phrases) expect(onPage(doc, page)).toContain(phrase);
      // No control characters (unmapped glyphs come out of pdf.js as NULs) and no runs of spaces.
      expect(allText(doc)).not.toMatch(/[\0-\x08]| {2}/);
    });
  }

  it('rejoins words hyphenated at line ends and keeps real hyphens', async () => {
    const doc = await parseSample('pdf', 'pdfminer__naacl06-shinyama.pdf');
    // The PDF sets "Ex-" / "isting IE systems" on two lines (pdftotext: "Ex- isting").
    expect(onPage(doc, 1)).toContain('Existing IE systems');
    expect(onPage(doc, 1)).not.toContain('Ex-\nisting');
    expect(onPage(doc, 8)).toContain('between mid-\nSep. and Nov.'); // capital after the hyphen: kept
  });

  it('takes the title from the metadata, but not a placeholder such as a file name', async () => {
    expect((await parseSample('pdf', 'sample-files__google-doc-document.pdf')).title).toBe('PDF Example Document');
    expect((await parseSample('pdf', 'pypdf__Seige_of_Vicksburg_Sample_OCR.pdf')).title).toBeUndefined(); // "Binder1.pdf"
    expect((await parseSample('pdf', 'unstructured__multi-column-2p.pdf')).title).toBeUndefined(); // empty Title
  });

  it('opens PDFs encrypted with an empty user password', async () => {
    const doc = await parseSample('pdf', 'unstructured__copy-protected.pdf');
    expect(onPage(doc, 1)).toContain('Zejiang Shen');
  });

  it('leaves the caller’s bytes intact (pdf.js would detach the buffer it is given)', async () => {
    const bytes = await sample('pdf', 'sample-files__google-doc-document.pdf');
    await parseDocument(bytes, 'pdf');
    expect(bytes.byteLength).toBe(80100);
    expect(detectType(bytes, 'x.pdf')).toBe('pdf');
  });

  for (const name of ['pdfminer__aes-256.pdf', 'sample-files__libreoffice-writer-password.pdf', 'unstructured__password.pdf']) {
    it(`rejects password-protected ${name}`, () => expectUnreadable('pdf', name, PASSWORD));
  }
  for (const name of ['ocrmypdf__linn.pdf', 'unstructured__loremipsum-flat.pdf']) {
    it(`rejects image-only ${name}, asking for OCR`, () => expectUnreadable('pdf', name, NO_TEXT));
  }
  it('rejects the malformed ocrmypdf__invalid.pdf (header and EOF marker only)', () =>
    expectUnreadable('pdf', 'ocrmypdf__invalid.pdf', /not a valid PDF or is damaged/i));
  it('rejects the truncated tracemonkey PDF before parsing it', () =>
    expectUnreadable('pdf', 'pdfjs__tracemonkey__TRUNCATED-first-508157-bytes.pdf', /truncated.*upload the complete file/i));
  it('rejects bytes that are not a PDF at all', async () => {
    const error = await parseDocument(strToU8('hello\n%%EOF\n'), 'pdf').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreadableDocumentError);
    expect((error as Error).message).toMatch(/not a valid PDF/);
  });
});

describe('CJK PDFs (non-embedded Adobe-Japan1 fonts need the bundled pdf.js character maps)', () => {
  it('pdfminer__jo.pdf (vertical text) yields the Japanese poem', async () => {
    const bytes = await sample('pdf', 'pdfminer__jo.pdf');
    expect(detectType(bytes, 'pdfminer__jo.pdf')).toBe('pdf');
    const doc = await parseDocument(bytes, 'pdf');
    expect(doc.sections.map((s) => s.page)).toEqual([1]);
    // Phrases checked with pdftotext, which gives the same 880 characters.
    for (const phrase of ['わたくしといふ現象は', '因果交流電燈の', 'そのとほりの心象スケッチです']) expect(onPage(doc, 1)).toContain(phrase);
    expect(onPage(doc, 1).replace(/\s/g, '')).toHaveLength(880); // every glyph is mapped
  });

  it('pdfminer__kampo.pdf (empty user password, vertical text) yields the Japanese gazette text', async () => {
    const doc = await parseSample('pdf', 'pdfminer__kampo.pdf');
    const text = onPage(doc, 1);
    for (const phrase of ['第二条第一項の表', '歩行者は', '道路を横断してはならないこと', '普通自転車']) expect(text).toContain(phrase);
    // Its Ryumin and GothicBBB text is most of the page; the embedded font alone gave ~14 characters.
    expect(text.match(/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/gu)?.length).toBeGreaterThan(2000);
    expect(text).not.toMatch(/[\0-\x08\x0b-\x1f\x7f-\x9f]/); // one glyph of its embedded font maps to U+009E
  });

  it('a character map that cannot be loaded fails the PDF, naming the map, instead of indexing the rest', async () => {
    const none = { packed: true, load: async (name: string): Promise<Uint8Array> => Promise.reject(new Error(`no ${name}`)) };
    for (const name of ['pdfminer__jo.pdf', 'pdfminer__kampo.pdf']) {
      const error = await parseDocument(await sample('pdf', name), 'pdf', { cMaps: none }).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(UnreadableDocumentError);
      expect((error as Error).message).toMatch(/CJK character encoding.*character map Adobe-Japan1-UCS2\)/);
    }
  });
});

describe('bundled pdf.js character maps', () => {
  /** The map a binary CMap is based on (`usecmap`): pdf.js loads it too. See pdf.js BinaryCMapReader. */
  function baseCMap(data: Uint8Array): string | undefined {
    let at = 1; // after the header byte
    const num = (): number => {
      let n = 0;
      let byte: number;
      do n = n * 128 + ((byte = data[at++] ?? 0) & 0x7f);
      while (byte & 0x80);
      return n;
    };
    while (at < data.length && (data[at] ?? 0) >> 5 === 7) {
      const kind = (data[at++] ?? 0) & 0x1f; // metadata: 0 comment, 1 usecmap
      const name = String.fromCharCode(...Array.from({ length: num() }, num));
      if (kind === 1) return name;
    }
    return undefined;
  }

  it('loads every bundled map as fresh bytes, together with the map it is based on', async () => {
    const names = bundledCMaps();
    expect(names).toEqual(expect.arrayContaining(['Adobe-Japan1-UCS2.bcmap', 'Adobe-GB1-UCS2.bcmap', 'Adobe-CNS1-UCS2.bcmap', 'Adobe-Korea1-UCS2.bcmap', 'UniJIS-UCS2-H.bcmap']));
    for (const name of names) {
      const data = await loadBundledCMap(name);
      expect(data, name).toBeInstanceOf(Uint8Array);
      expect(data.byteLength, name).toBeGreaterThan(0);
      const base = baseCMap(data);
      if (base) expect(names, `${name} is based on ${base}`).toContain(`${base}.bcmap`);
    }
    const a = await loadBundledCMap('Adobe-Japan1-UCS2.bcmap');
    a.fill(0);
    expect((await loadBundledCMap('Adobe-Japan1-UCS2.bcmap')).some((b) => b !== 0)).toBe(true);
  });

  it('throws a clear error for a map that is not bundled', async () => {
    const error = await loadBundledCMap('UniJIS-UTF16-H.bcmap').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingCMapError);
    expect((error as Error).message).toMatch(/character map UniJIS-UTF16-H\.bcmap is not bundled/);
    await expect(loadBundledCMap('toString')).rejects.toThrow(MissingCMapError);
  });
});

describe('DOCX samples', () => {
  it('mammoth__footnotes.docx: notes become a final section, referenced from the text', async () => {
    const doc = await parseSample('docx', 'mammoth__footnotes.docx');
    expect(doc.sections[0]?.text).toBe('Ouch[1].[2]');
    expect(doc.sections.at(-1)).toEqual({ text: '[1] A tachyon walks into a bar.\n\n[2] Fin.', headings: ['Notes'] });
  });

  it('python-docx__blk-paras-and-tables.docx: paragraphs around (nested) tables', async () => {
    const text = allText(await parseSample('docx', 'python-docx__blk-paras-and-tables.docx'));
    expect(text).toContain('Lorem ipsum dolor sit amet, consectetur adipiscing elit.');
    expect(text).toContain('Text before Table; Between Text after'); // a table inside a cell
    expect(text).toContain('Donec semper facilisis metus finibus malesuada.');
  });

  it('python-docx__par-hlink-frags.docx: hyperlink text is kept', async () => {
    const text = allText(await parseSample('docx', 'python-docx__par-hlink-frags.docx'));
    expect(text).toContain('Three with link to https://foo.com.\n\nFour with link to https://foo.com?q=bar.');
  });

  it('unstructured__category-level.docx: Heading 1/2 styles give heading paths', async () => {
    const doc = await parseSample('docx', 'unstructured__category-level.docx');
    expect(doc.sections.map((s) => s.headings)).toEqual([[], ['A Heading 1'], ['A Heading 1', 'A Heading 2'], ['Another Heading 1']]);
    expect(doc.sections[0]?.text).toMatch(/^Call me Ishmael\./);
    expect(underHeadings(doc, 'A Heading 1', 'A Heading 2')).toMatch(/^A Heading 2\n\nThis is my substitute for pistol and ball\./);
  });

  it('unstructured__contains-pictures.docx: numeric and named XML entities are decoded', async () => {
    const text = allText(await parseSample('docx', 'unstructured__contains-pictures.docx'));
    expect(text).toContain('Some paragraph text that runs “through” the floating picture');
    expect(text).toContain('An inline picture appears here><and this text follows it on the same line.');
  });

  it('unstructured__docx-hdrftr.docx: headers and footers are not body text', async () => {
    expect(allText(await parseSample('docx', 'unstructured__docx-hdrftr.docx'))).toBe('Main document');
  });

  it('unstructured__docx-tables.docx: a table row is one line, cells joined by " | "', async () => {
    const text = allText(await parseSample('docx', 'unstructured__docx-tables.docx'));
    expect(text).toContain('Simple uniform table\n\nHeader Col 1 | Header Col 2\nLorem ipsum | A link example');
    expect(text).toContain('a | >b< | c\nd | e | f; g&t | h | i\nj | k | l');
  });

  it('unstructured__eng_spa_mult.docx: Spanish text with accents', async () => {
    expect(allText(await parseSample('docx', 'unstructured__eng_spa_mult.docx'))).toContain('dotados como están de razón y conciencia');
  });

  it('unstructured__handbook-1p.docx: tabs inside runs', async () => {
    const text = allText(await parseSample('docx', 'unstructured__handbook-1p.docx'));
    expect(text).toContain('A.\tPURPOSE');
    expect(text).toContain('The United States Trustee appoints and supervises standing trustees');
  });

  it('unstructured__page-breaks.docx: tab, line breaks and no-break hyphen', async () => {
    const text = allText(await parseSample('docx', 'unstructured__page-breaks.docx'));
    expect(text).toContain('First page, tab here:\tfollowed by line-break here:\nhere:\nand here:\nno-break hyphen here:-and hard page-break here>>');
    expect(text).toContain('<<producing two page-breaks to get from page-3 to page-5.');
  });

  it('unstructured__simple.docx: a Heading1 paragraph opens a section', async () => {
    const doc = await parseSample('docx', 'unstructured__simple.docx');
    expect(doc.sections[0]?.headings).toEqual(['These are a few of my favorite things:']);
    expect(doc.sections[0]?.text).toContain('Hockey');
  });

  it('rejects the empty mammoth__empty.docx', () => expectUnreadable('docx', 'mammoth__empty.docx', /contains no text/));
});

describe('DOCX structure and failures', () => {
  const W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"';
  const para = (text: string, style?: string): string =>
    `<w:p>${style ? `<w:pPr><w:pStyle w:val="${style}"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>` : ''}<w:r><w:t xml:space="preserve">${text}</w:t></w:r></w:p>`;
  const docx = (body: string, styles?: string): Uint8Array =>
    zipSync({
      '[Content_Types].xml': strToU8('<Types/>'),
      'word/document.xml': strToU8(`<?xml version="1.0"?><w:document ${W}><w:body>${body}</w:body></w:document>`),
      ...(styles ? { 'word/styles.xml': strToU8(`<w:styles ${W}>${styles}</w:styles>`) } : {}),
      'word/media/image1.png': new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]),
    });
  const reason = async (bytes: Uint8Array): Promise<string> => {
    const error = await parseDocument(bytes, 'docx').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreadableDocumentError);
    return (error as Error).message;
  };

  it('resolves localized style ids through styles.xml names, and takes Title as the title', async () => {
    const styles =
      '<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>' +
      '<w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>' +
      '<w:style w:type="paragraph" w:styleId="Kapitel"><w:name w:val="Kapitel"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style>';
    const bytes = docx(para('Handbuch', 'Titel') + para('Einleitung', 'berschrift1') + para('Text &amp; mehr &#x263A; &#9731;') + para('Details', 'Kapitel') + para('Mehr'), styles);
    expect(detectType(bytes, 'upload.bin')).toBe('docx');
    const doc = await parseDocument(bytes, 'docx');
    expect(doc.title).toBe('Handbuch');
    expect(doc.sections).toEqual([
      { text: 'Handbuch', headings: ['Handbuch'] },
      { text: 'Einleitung\n\nText & mehr ☺ ☃', headings: ['Handbuch', 'Einleitung'] },
      { text: 'Details\n\nMehr', headings: ['Handbuch', 'Einleitung', 'Details'] },
    ]);
  });

  it('reads text-box content once, not also from its mc:Fallback copy', async () => {
    const box = (t: string): string => `<w:txbxContent>${para(t)}</w:txbxContent>`;
    const body = `<w:p><w:r><mc:AlternateContent><mc:Choice>${box('In the box')}</mc:Choice><mc:Fallback>${box('In the box')}</mc:Fallback></mc:AlternateContent></w:r></w:p>`;
    expect(allText(await parseDocument(docx(body), 'docx'))).toBe('In the box');
  });

  it('refuses a part that declares more than the decompression budget (zip bomb)', async () => {
    const bytes = docx(para('small'));
    // Patch the central-directory record of word/document.xml to declare 60 MB.
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < bytes.length - 46; i++) {
      if (view.getUint32(i, true) !== 0x02014b50) continue;
      const name = new TextDecoder().decode(bytes.subarray(i + 46, i + 46 + view.getUint16(i + 28, true)));
      if (name === 'word/document.xml') view.setUint32(i + 24, 60 * 1024 * 1024, true);
    }
    expect(await reason(bytes)).toMatch(/too large or too compressed to read \(would unpack to 62914\d+ bytes, more than 50331648; the limit is 48 MB/);
  });

  it('rejects a damaged zip, a zip without a document, and a legacy .doc', async () => {
    const whole = await sample('docx', 'unstructured__simple.docx');
    const half = whole.slice(0, whole.length / 2);
    expect(detectType(half, 'report.docx')).toBe('docx'); // so the person hears what is wrong
    expect(detectType(half, 'report.zip')).toBeNull();
    expect(await reason(half)).toMatch(/damaged or incomplete/);
    expect(await reason(strToU8('plain text'))).toMatch(/not a valid \.docx/);
    expect(await reason(zipSync({ 'xl/workbook.xml': strToU8('<workbook/>') }))).toMatch(/not a Word document/);
    expect(await reason(new Uint8Array([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]))).toMatch(/legacy \.doc.*password/);
  });
});

describe('Markdown samples', () => {
  it('mammoth.js__README.md: nested ATX headings give the heading path', async () => {
    const doc = await parseSample('md', 'mammoth.js__README.md');
    expect(doc.title).toBe('Mammoth .docx to HTML converter');
    const images = underHeadings(doc, 'Mammoth .docx to HTML converter', 'Usage', 'CLI', 'Images');
    expect(images).toMatch(/^#### Images\n\nBy default, images are included inline in the output HTML\./);
    expect(underHeadings(doc, 'Mammoth .docx to HTML converter', 'Installation')).toBe('## Installation\n\n    npm install mammoth');
  });

  it('OCRmyPDF__README.md: "#" comments in fenced code are not headings', async () => {
    const doc = await parseSample('md', 'OCRmyPDF__README.md');
    expect(doc.title).toBeUndefined(); // no H1, only an HTML logo
    expect(underHeadings(doc, 'Languages')).toContain('# Debian/Ubuntu users');
    expect(doc.sections.some((s) => s.headings?.some((h) => h.includes('users')))).toBe(false);
    expect(doc.sections.map((s) => s.headings?.[0])).toContain('Feature demo');
    expect(underHeadings(doc, 'Feature demo')).toContain('# Add an OCR layer and require PDF/A');
  });

  it('OCRmyPDF__docs_advanced.md: three levels deep', async () => {
    const doc = await parseSample('md', 'OCRmyPDF__docs_advanced.md');
    expect(doc.title).toBe('Advanced features');
    expect(underHeadings(doc, 'Advanced features', 'Control of OCR options', 'When OCR is skipped')).toContain(
      'If a page in a PDF seems to have text, by default OCRmyPDF will exit',
    );
    // A level-2 heading closes the level-3 one before it.
    expect(underHeadings(doc, 'Advanced features', 'Choosing a PDF rasterizer')).toContain('OCRmyPDF supports two PDF rast');
  });

  it('pdf.js__README.md: badges are stripped from heading text', async () => {
    const doc = await parseSample('md', 'pdf.js__README.md');
    expect(doc.title).toBe('PDF.js');
    expect(underHeadings(doc, 'PDF.js', 'Getting Started', 'Browser Extensions', 'Firefox')).toContain('PDF.js is built into version 19+ of Firefox.');
  });

  it('pdfminer.six__README.md: setext headings (=== and ---)', async () => {
    const doc = await parseSample('md', 'pdfminer.six__README.md');
    expect(doc.title).toBe('pdfminer.six');
    expect(doc.sections.map((s) => s.headings)).toEqual([
      ['pdfminer.six'],
      ['pdfminer.six', 'Features'],
      ['pdfminer.six', 'How to use'],
      ['pdfminer.six', 'Contributing'],
      ['pdfminer.six', 'Acknowledgement'],
    ]);
    expect(underHeadings(doc, 'pdfminer.six', 'Features')).toContain('* Written entirely in Python.');
  });

  it('unstructured__README.md: :emoji: codes are dropped from headings; HTML preamble kept', async () => {
    const doc = await parseSample('md', 'unstructured__README.md');
    expect(doc.sections[0]?.headings).toEqual([]);
    expect(underHeadings(doc, 'Quick Start', 'Installing the library')).toContain('Use the following instructions to get up and running');
  });

  it('unstructured__codeblock.md: code blocks stay whole inside their section', async () => {
    const doc = await parseSample('md', 'unstructured__codeblock.md');
    expect(doc.sections.map((s) => s.headings)).toEqual([['HTML Example'], ['XML Example']]);
    expect(underHeadings(doc, 'XML Example')).toContain('<to>Tove</to>');
  });

  it('unstructured__eng_spa_mult.md and simple-table.md: no headings, one section', async () => {
    const prose = await parseSample('md', 'unstructured__eng_spa_mult.md');
    expect(prose.sections).toHaveLength(1);
    expect(prose.sections[0]?.text).toContain('Todos los seres humanos nacen libres e iguales en dignidad y derechos');
    const table = await parseSample('md', 'unstructured__simple-table.md');
    expect(table.sections).toEqual([{ text: 'Item | Price | # In stock\n---|---|---\nJuicy Apples | 1.99 | 739\nBananas | 1.89 | 6', headings: [] }]);
  });

  it('drops YAML front matter; --- after a blank line is a rule, not a heading', async () => {
    const md = '---\ntitle: x\ntags: [a]\n---\nIntro\n\n---\n\nSetext\n======\nBody\n\n## Sub\n```\n# not a heading\n```\n';
    const doc = await parseDocument(strToU8(md), 'md');
    expect(doc.title).toBe('Setext');
    expect(doc.sections).toEqual([
      { text: 'Intro\n\n---', headings: [] },
      { text: 'Setext\n======\nBody', headings: ['Setext'] },
      { text: '## Sub\n```\n# not a heading\n```', headings: ['Setext', 'Sub'] },
    ]);
  });

  it('rejects an empty or whitespace-only Markdown file', async () => {
    await expect(parseDocument(strToU8(' \n\n\t\n'), 'md')).rejects.toThrow(/empty/);
    await expect(parseDocument(strToU8('---\na: 1\n---\n'), 'md')).rejects.toBeInstanceOf(UnreadableDocumentError);
  });
});

describe('text samples', () => {
  const phrases: [string, string[]][] = [
    ['ocrmypdf__linn.txt', ['The LinnSequencer is a state—of—the-art composition and performance tool']],
    ['unstructured__UDHR_first_article_all.txt', ['人人生而自由,在尊严和权利上一律平等', 'すべての人間は、生まれながらにして自由であり', 'Όλοι οι άνθρωποι γεννιούνται ελεύθεροι']],
    ['unstructured__book-war-and-peace-1p.txt', ['"Well, Prince, so Genoa and Lucca are now just family estates of the\nBuonapartes.']],
    ['unstructured__eng_spa_mult.txt', ['Todos los seres humanos nacen libres e iguales en dignidad y derechos']],
  ];
  for (const [name, expected] of phrases) {
    it(`reads ${name} as one section`, async () => {
      const doc = await parseSample('txt', name);
      expect(doc.sections).toHaveLength(1);
      for (const phrase of expected) expect(doc.sections[0]?.text).toContain(phrase);
    });
  }
  it('rejects the 0-byte unstructured__empty.txt', () => expectUnreadable('txt', 'unstructured__empty.txt', /empty.*no text/i));
});

describe('decodeText', () => {
  const utf16 = (text: string, bigEndian: boolean): number[] =>
    [...text].flatMap((c) => {
      const code = c.charCodeAt(0);
      return bigEndian ? [code >> 8, code & 0xff] : [code & 0xff, code >> 8];
    });

  it('strips a UTF-8 BOM', () => {
    expect(decodeText(new Uint8Array([0xef, 0xbb, 0xbf, ...strToU8('naïve')]))).toBe('naïve');
  });
  it('decodes UTF-16LE and UTF-16BE with a BOM', () => {
    expect(decodeText(new Uint8Array([0xff, 0xfe, ...utf16('Grüße\r\n€', false)]))).toBe('Grüße\n€');
    expect(decodeText(new Uint8Array([0xfe, 0xff, ...utf16('Grüße\r\n€', true)]))).toBe('Grüße\n€');
  });
  it('recognises BOM-less UTF-16 by its NUL pattern', () => {
    const text = 'Plain words in UTF-16, no byte order mark.';
    expect(decodeText(new Uint8Array(utf16(text, false)))).toBe(text);
    expect(decodeText(new Uint8Array(utf16(text, true)))).toBe(text);
  });
  it('falls back to windows-1252 when the bytes are not UTF-8', () => {
    expect(decodeText(new Uint8Array([0x63, 0x61, 0x66, 0xe9]))).toBe('café');
    expect(decodeText(new Uint8Array([0x93, 0x68, 0x69, 0x94]))).toBe('“hi”');
  });
  it('prefers strict UTF-8, normalises line ends and drops NULs', () => {
    expect(decodeText(strToU8('café'))).toBe('café');
    expect(decodeText(strToU8('a\r\nb\rc\n\0d'))).toBe('a\nb\nc\nd');
  });
});

describe('detectType', () => {
  const pdfHead = strToU8('%PDF-1.7\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n');
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]);

  it('finds a PDF by its magic, whatever the name', () => {
    expect(detectType(pdfHead, 'notes.txt')).toBe('pdf');
    expect(detectType(pdfHead)).toBe('pdf');
    expect(detectType(new Uint8Array([...strToU8('junk before the header\n'), ...pdfHead]), 'x')).toBe('pdf');
    expect(detectType(new Uint8Array([...new Uint8Array(2000).fill(0x20), ...pdfHead]), 'x.pdf')).toBe('txt'); // past 1 KB
  });
  it('returns null for binary content with a text name', () => {
    expect(detectType(png, 'notes.txt')).toBeNull();
    expect(detectType(png, 'README.md')).toBeNull();
    expect(looksLikeText(png)).toBe(false);
  });
  it('accepts only zips that hold word/document.xml', () => {
    expect(detectType(zipSync({ 'xl/workbook.xml': strToU8('<workbook/>') }), 'book.xlsx')).toBeNull();
    expect(detectType(zipSync({ 'xl/workbook.xml': strToU8('<workbook/>') }), 'book.docx')).toBeNull();
    expect(detectType(zipSync({ 'word/document.xml': strToU8('<w:document/>') }), 'blob')).toBe('docx');
  });
  it('tells Markdown from plain text by name', () => {
    const text = strToU8('# Title\n\nbody\n');
    expect(detectType(text, 'README.MD')).toBe('md');
    expect(detectType(text, 'notes.markdown')).toBe('md');
    expect(detectType(text, 'page.mdx')).toBe('md');
    expect(detectType(text, 'notes.txt')).toBe('txt');
    expect(detectType(text, 'readme.md.txt')).toBe('txt');
    expect(detectType(text)).toBe('txt');
  });
  it('treats empty files and UTF-16 text as text', () => {
    expect(detectType(new Uint8Array(0), 'empty.txt')).toBe('txt');
    expect(detectType(new Uint8Array([0x48, 0, 0x69, 0, 0x21, 0, 0x0a, 0]), 'hi.txt')).toBe('txt');
  });
});
