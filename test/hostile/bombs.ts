import { strToU8, zipSync, zlibSync } from 'fflate';

/**
 * The hostile files of test/hostile-files.test.ts (ZIP, DOCX, Markdown) and
 * test/hostile-pdf.test.ts (PDF), generated on demand: no bomb is ever committed. The tests
 * assert what the parsers make of them; scripts/bench-hostile.mjs measures what each costs
 * (time, peak memory) before it is refused, from `BOMBS`.
 *
 * Depends only on fflate and web APIs (no vitest, no cloudflare:*, nothing from src/), so
 * Node can run it once esbuild has bundled it.
 */

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

// =============================================================================================
// PDF

export const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

/** A PDF with these objects (numbered from 1; object 1 is the catalog) and a correct xref table. */
export function pdf(objects: (string | Uint8Array)[]): Uint8Array {
  const parts: Uint8Array[] = [strToU8('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n')];
  let offset = parts[0]!.length;
  const offsets: number[] = [];
  for (const [i, body] of objects.entries()) {
    const object = concat([strToU8(`${i + 1} 0 obj\n`), typeof body === 'string' ? strToU8(body) : body, strToU8('\nendobj\n')]);
    offsets.push(offset);
    parts.push(object);
    offset += object.length;
  }
  const rows = offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  const size = objects.length + 1;
  parts.push(strToU8(`xref\n0 ${size}\n0000000000 65535 f \n${rows}trailer\n<< /Size ${size} /Root 1 0 R >>\nstartxref\n${offset}\n%%EOF\n`));
  return concat(parts);
}

export const stream = (dict: string, data: Uint8Array): Uint8Array =>
  concat([strToU8(`<< ${dict} /Length ${data.length} >>\nstream\n`), data, strToU8('\nendstream')]);

/**
 * The one-page PDF of `onePage` with its font (object 5) inside an object stream (object 6),
 * whose data `objectStream` makes from the object stream's uncompressed text; an xref
 * stream (object 7) indexes it all, as compressed objects require.
 */
export function withObjectStream(content: string, objectStream: (data: Uint8Array) => { filter: string; data: Uint8Array }): Uint8Array {
  const header = '5 0 ';
  const packed = objectStream(strToU8(`${header}${HELVETICA}\n`));
  const objects = new Map<number, Uint8Array>([
    [1, strToU8('<< /Type /Catalog /Pages 2 0 R >>')],
    [2, strToU8('<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>')],
    [3, strToU8('<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>')],
    [4, stream('', strToU8(content))],
    [6, stream(`/Type /ObjStm /N 1 /First ${header.length} ${packed.filter}`, packed.data)],
  ]);
  const parts: Uint8Array[] = [strToU8('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n')];
  const offsets = new Map<number, number>();
  let offset = parts[0]!.length;
  for (const [num, body] of objects) {
    const object = concat([strToU8(`${num} 0 obj\n`), body, strToU8('\nendobj\n')]);
    offsets.set(num, offset);
    parts.push(object);
    offset += object.length;
  }
  // Rows of /W [1 4 2]: type, offset (or object stream), generation (or index).
  const row = (type: number, field: number, index: number): number[] => [type, field >>> 24, (field >>> 16) & 255, (field >>> 8) & 255, field & 255, index >> 8, index & 255];
  const rows = [row(0, 0, 65535)];
  for (let num = 1; num <= 7; num++) rows.push(num === 5 ? row(2, 6, 0) : row(1, num === 7 ? offset : (offsets.get(num) as number), 0));
  parts.push(strToU8('7 0 obj\n'), stream('/Type /XRef /Size 8 /W [1 4 2] /Root 1 0 R', Uint8Array.from(rows.flat())), strToU8('\nendobj\n'));
  parts.push(strToU8(`startxref\n${offset}\n%%EOF\n`));
  return concat(parts);
}

export const text = (s: string, y = 720): string => `BT /F1 12 Tf 72 ${y} Td (${s}) Tj ET\n`;
export const HELVETICA = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>';

/**
 * A one-page PDF: catalog 1, pages 2, page 3, content 4, font 5, then `extra` objects from 6.
 * `resources` is added to the page's resource dictionary.
 */
export function onePage(content: Uint8Array | string, { filter = '', resources = '', catalog = '', extra = [] as (string | Uint8Array)[] } = {}): Uint8Array {
  const data = typeof content === 'string' ? strToU8(content) : content;
  return pdf([
    `<< /Type /Catalog /Pages 2 0 R ${catalog} >>`,
    '<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>',
    `<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> ${resources} >> /Contents 4 0 R >>`,
    stream(filter, data),
    HELVETICA,
    ...extra,
  ]);
}

/** A little-endian bit writer: deflate packs bits from the least significant end. */
class Bits {
  readonly bytes: number[] = [];
  private acc = 0;
  private n = 0;
  write(value: number, count: number): void {
    for (let i = 0; i < count; i++) this.bit((value >> i) & 1);
  }
  /** A Huffman code, most significant bit first. */
  code(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) this.bit((value >> i) & 1);
  }
  private bit(b: number): void {
    this.acc |= b << this.n;
    if (++this.n < 8) return;
    this.bytes.push(this.acc);
    this.acc = this.n = 0;
  }
}

/**
 * zlib data that inflates to `prefix` (stored, ≤ 64 KB) and then at least `zeros` zero bytes,
 * at deflate's best ratio (~1,030:1): dynamic-Huffman blocks in which two bits emit 258 zeros.
 * Built directly, one ~16 KB block repeated, so the test never holds the inflated bytes. With
 * `startWithMatch` (and no prefix), the data starts with a back-reference before its start,
 * which zlib rejects and pdf.js's own inflater accepts (reading zeros).
 */
export function deflateBomb(prefix: Uint8Array, zeros: number, { startWithMatch = false } = {}): Uint8Array {
  const K = 4 * 16383 + 1; // matches after a block's literal: K ≡ 1 (mod 4) ends a block on a byte boundary
  const block = (literal: boolean): Uint8Array => {
    const b = new Bits();
    b.write(0, 1); // not the final block
    b.write(2, 2); // dynamic Huffman codes
    b.write(29, 5); // 286 literal/length codes
    b.write(0, 5); // 1 distance code
    b.write(14, 4); // 18 code-length codes, in deflate's order below: 0, 1, 2 and 18 get 2 bits
    for (const sym of [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1]) b.write([0, 1, 2, 18].includes(sym) ? 2 : 0, 3);
    const zeroLengths = (n: number): void => {
      b.code(0b11, 2); // code-length code 18: n zero lengths
      b.write(n - 11, 7);
    };
    // Literal/length code lengths: 0 → 2, 1–255 → 0, 256 (end of block) → 2, 257–284 → 0, 285 (length 258) → 1.
    b.code(0b10, 2);
    zeroLengths(138);
    zeroLengths(117);
    b.code(0b10, 2);
    zeroLengths(28);
    b.code(0b01, 2);
    b.code(0b01, 2); // distance code 0 (distance 1): 1 bit
    // Canonical codes: 285 → 0, literal 0 → 10, end of block → 11; distance 1 → 0.
    if (literal) b.code(0b10, 2);
    for (let i = 0; i < (literal ? K : K + 1); i++) b.code(0b00, 2); // 258 bytes from 1 back
    b.code(0b11, 2);
    if (b.bytes.length * 8 !== 110 + 2 * K) throw new Error('block not byte-aligned');
    return Uint8Array.from(b.bytes);
  };
  const perBlock = 1 + 258 * K;
  const blocks = Math.max(1, Math.ceil(zeros / perBlock));
  const total = blocks * perBlock + (startWithMatch ? 257 : 0);
  // Adler-32 of the output: each zero adds the running sum `a` to `b`.
  let a = 1;
  let b = 0;
  for (const c of prefix) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  b = (b + a * (total % 65521)) % 65521;
  const n = prefix.length;
  const stored = n ? [0x00, n & 255, n >> 8, ~n & 255, (~n >> 8) & 255] : [];
  const rest = block(true);
  const parts = [new Uint8Array([0x78, 0xda, ...stored]), prefix, startWithMatch ? block(false) : rest];
  for (let i = 1; i < blocks; i++) parts.push(rest);
  parts.push(new Uint8Array([0x03, 0x00, (b >> 8) & 255, b & 255, (a >> 8) & 255, a & 255])); // empty final block, Adler-32
  return concat(parts);
}

const FLATE = '/Filter /FlateDecode';

/** 20,000 pages in a two-level page tree: 100 /Pages nodes of 200 tiny pages each, all sharing one content stream. */
export function manyPagesPdf(): Uint8Array {
  const objects: string[] = ['<< /Type /Catalog /Pages 2 0 R >>'];
  const nodes = Array.from({ length: 100 }, (_, i) => 4 + i);
  objects.push(`<< /Type /Pages /Kids [${nodes.map((n) => `${n} 0 R`).join(' ')}] /Count 20000 /MediaBox [0 0 200 200] >>`);
  objects.push(`<< /Length ${text('page').length} >>\nstream\n${text('page')}\nendstream`);
  let next = 4 + nodes.length;
  const pages: string[] = [];
  for (const node of nodes) {
    const kids = Array.from({ length: 200 }, () => next++);
    objects.push(`<< /Type /Pages /Parent 2 0 R /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count 200 >>`);
    for (let k = 0; k < kids.length; k++) pages.push(`<< /Type /Page /Parent ${node} 0 R /Contents 3 0 R >>`);
  }
  return pdf([...objects, ...pages]);
}

/** zlib data inflating to a line of text and then over 1 GiB of zeros (~1 MB on the wire). */
export const contentStreamBomb = (line = 'Hello from the bomb'): Uint8Array => deflateBomb(strToU8(text(line)), GiB);

/** A one-page PDF whose content stream is `data` under FlateDecode. */
export const flatePagePdf = (data: Uint8Array): Uint8Array => onePage(data, { filter: FLATE });

/** A one-page PDF whose content stream inflates to over 1 GiB. */
export const contentStreamBombPdf = (line?: string): Uint8Array => flatePagePdf(contentStreamBomb(line));

/** A content-stream bomb that zlib rejects (a back-reference before the start), which pdf.js would inflate itself. */
export const zlibInvalidBombPdf = (): Uint8Array => flatePagePdf(deflateBomb(new Uint8Array(0), GiB, { startWithMatch: true }));

/** A content-stream bomb nested in two Flate filters. */
export const doubleFlateBombPdf = (): Uint8Array =>
  onePage(zlibSync(deflateBomb(strToU8(text('Hello from inside')), GiB)), { filter: '/Filter [/FlateDecode /FlateDecode]' });

/** Five pages, each a content stream of ~16.9 MB of zeros after a line of text. */
export function fivePagesOfZerosPdf(): Uint8Array {
  const content = deflateBomb(strToU8(text('A page of mostly nothing')), 1);
  return pdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${[4, 5, 6, 7, 8].map((n) => `${n} 0 R`).join(' ')}] /Count 5 /MediaBox [0 0 612 792] >>`,
    HELVETICA,
    ...[4, 5, 6, 7, 8].map((n) => `<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents ${n + 5} 0 R >>`),
    ...[4, 5, 6, 7, 8].map(() => stream(FLATE, content)),
  ]);
}

/** A content stream inflating to over 1 GiB behind a TIFF predictor (which pdf.js decodes itself, synchronously). */
export const predictorBombPdf = (): Uint8Array =>
  onePage(deflateBomb(strToU8(text('Hello from the predictor')), GiB), {
    filter: `${FLATE} /DecodeParms << /Predictor 2 /Colors 1 /BitsPerComponent 8 /Columns 1 >>`,
  });

/** The page's font inside an object stream inflating to over 1 GiB. */
export const objectStreamBombPdf = (): Uint8Array =>
  withObjectStream(text('Text in Helvetica'), (data) => ({ filter: FLATE, data: deflateBomb(data, GiB) }));

/** The same, with an ordinary object stream. */
export const objectStreamPdf = (): Uint8Array => withObjectStream(text('Text in Helvetica'), (data) => ({ filter: FLATE, data: zlibSync(data) }));

/** XMP metadata inflating to over 1 GiB, beside a page of text. */
export function xmpBombPdf(): Uint8Array {
  const xmp = deflateBomb(strToU8('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'), GiB);
  return onePage(text('Text beside the metadata'), { catalog: '/Metadata 6 0 R', extra: [stream(`/Type /Metadata /Subtype /XML ${FLATE}`, xmp)] });
}

/** 100,000 × 100,000 RGB (30 GB declared), its data a 1 GB bomb: inflating it would trip the stream cap. */
const hugeImage = (): Uint8Array =>
  stream(`/Type /XObject /Subtype /Image /Width 100000 /Height 100000 /ColorSpace /DeviceRGB /BitsPerComponent 8 ${FLATE}`, deflateBomb(new Uint8Array(0), GiB));

/** A huge declared image drawn beside a line of text. */
export const hugeImageWithTextPdf = (): Uint8Array =>
  onePage(`${text('Text beside a huge image')}q 500 0 0 500 50 50 cm /Im1 Do Q\n`, { resources: '/XObject << /Im1 6 0 R >>', extra: [hugeImage()] });

/** A huge declared image alone on its page (no text). */
export const hugeImageAlonePdf = (): Uint8Array =>
  onePage('q 500 0 0 500 50 50 cm /Im1 Do Q\n', { resources: '/XObject << /Im1 6 0 R >>', extra: [hugeImage()] });

/** A 20 MB PDF that is not a bomb: a 21.6 MB uncompressed grey image beside a line of text. */
export function largeImagePdf(): Uint8Array {
  const pixels = new Uint8Array(2_000 * 3_600 * 3).fill(0x80);
  const image = stream('/Type /XObject /Subtype /Image /Width 2000 /Height 3600 /ColorSpace /DeviceRGB /BitsPerComponent 8', pixels);
  return onePage(`${text('Text beside a photo')}q 400 0 0 680 100 50 cm /Im1 Do Q\n`, { resources: '/XObject << /Im1 6 0 R >>', extra: [image] });
}

/** Three pages of 1,800 characters (40 lines of 44, which fit on the page: pdf.js drops glyphs outside it). */
export function threeTextPagesPdf(): Uint8Array {
  const lines = Array.from({ length: 40 }, () => '(All work and no play makes Jack a dull boy.) Tj 0 -12 Td').join('\n');
  const page = strToU8(`BT /F1 10 Tf 72 750 Td\n${lines}\nET\n`);
  return pdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 3 /MediaBox [0 0 612 792] >>',
    HELVETICA,
    ...[4, 5, 6].map((n) => `<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents ${n + 3} 0 R >>`),
    ...[4, 5, 6].map(() => stream('', page)),
  ]);
}

/**
 * Two pages of 12.5 million characters each: 12,500 lines of 1,000 characters in a 1-point
 * font on pages tall enough to hold them (12.5 MB of content, under the stream cap); both
 * pages draw the same content stream.
 */
export function twoHugeTextPagesPdf(): Uint8Array {
  const line = `(${'x'.repeat(1_000)}) Tj 0 -1 Td\n`;
  const content = strToU8(`BT /F1 1 Tf 10 12510 Td\n${line.repeat(12_500)}ET\n`);
  return pdf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 /MediaBox [0 0 600 12520] >>',
    '<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>',
    stream(FLATE, zlibSync(content, { level: 1 })),
    HELVETICA,
    '<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>',
  ]);
}

/** Document JavaScript (/OpenAction /JS and a /Names script) that would set `globalThis.__hostilePdfRan`. */
export function javascriptPdf(): Uint8Array {
  const script = '(globalThis.__hostilePdfRan = true; app.alert\\("pwned"\\);)';
  return onePage(text('Text next to a script'), {
    catalog: `/OpenAction << /S /JavaScript /JS ${script} >> /Names << /JavaScript << /Names [(x) 6 0 R] >> >>`,
    extra: [`<< /S /JavaScript /JS ${script} >>`],
  });
}

/** A page tree whose /Kids points back at its parent. */
export const kidsLoopPdf = (): Uint8Array =>
  pdf(['<< /Type /Catalog /Pages 2 0 R >>', '<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>', '<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>']);

/** A page tree nested 5,000 deep, with one page of text at the bottom. */
export function deepPageTreePdf(depth = 5_000): Uint8Array {
  const objects: (string | Uint8Array)[] = ['<< /Type /Catalog /Pages 2 0 R >>'];
  for (let n = 2; n < depth + 2; n++) objects.push(`<< /Type /Pages ${n > 2 ? `/Parent ${n - 1} 0 R ` : ''}/Kids [${n + 1} 0 R] /Count 1 /MediaBox [0 0 612 792] >>`);
  objects.push(`<< /Type /Page /Parent ${depth + 1} 0 R /Resources << /Font << /F1 ${depth + 3} 0 R >> >> /Contents ${depth + 4} 0 R >>`);
  objects.push(HELVETICA, stream('', strToU8(text('At the bottom of the tree'))));
  return pdf(objects);
}

/** A form XObject that draws itself, drawn by a page of text. */
export function selfDrawingFormPdf(): Uint8Array {
  const form = stream('/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /Fm1 6 0 R >> /Font << /F1 5 0 R >> >>', strToU8(`${text('In the form', 700)}/Fm1 Do\n`));
  return onePage(`${text('On the page')}/Fm1 Do\n`, { resources: '/XObject << /Fm1 6 0 R >>', extra: [form] });
}

// =============================================================================================
// ZIP and DOCX

export const WORD = (body: string): string =>
  `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`;
export const para = (text: string): string => `<w:p><w:r><w:t>${text}</w:t></w:r></w:p>`;
export const docx = (documentXml: string, extra: Record<string, Uint8Array> = {}): Uint8Array =>
  zipSync({ '[Content_Types].xml': strToU8('<Types/>'), 'word/document.xml': strToU8(documentXml), ...extra });
/** Stored, not deflated: repetitive XML would otherwise be refused for its compression ratio first. */
export const storedDocx = (documentXml: string, extra: Record<string, string> = {}): Uint8Array =>
  zipSync(
    Object.fromEntries(
      Object.entries({ '[Content_Types].xml': '<Types/>', 'word/document.xml': documentXml, ...extra }).map(([name, xml]) => [name, [strToU8(xml), { level: 0 }]]),
    ) as never,
  );

/** Offsets of the central-directory records, by entry name. */
export function centralRecords(bytes: Uint8Array): Map<string, number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = new Map<string, number>();
  for (let i = 0; i + 46 <= bytes.length; i++) {
    if (view.getUint32(i, true) !== 0x02014b50) continue;
    found.set(new TextDecoder().decode(bytes.subarray(i + 46, i + 46 + view.getUint16(i + 28, true))), i);
  }
  return found;
}

export function endRecord(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = bytes.length - 22; i >= 0; i--) if (view.getUint32(i, true) === 0x06054b50) return i;
  throw new Error('no EOCD');
}

/** A DOCX with a ZIP64 end record claiming 2^40 entries, in a file of a few hundred bytes. */
export function zip64EntriesDocx(): Uint8Array {
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
  return new Uint8Array([...base.subarray(0, eocd), ...record, ...locator, ...base.subarray(eocd)]);
}

/** A DOCX whose end record claims 4,000 entries, more than its central directory can hold. */
export function tooManyEntriesDocx(): Uint8Array {
  const bytes = docx(WORD(para('hello')));
  new DataView(bytes.buffer).setUint16(endRecord(bytes) + 10, 4000, true);
  return bytes;
}

/** A DOCX whose document.xml record points past the end of the file. */
export function offsetPastEndDocx(): Uint8Array {
  const bytes = docx(WORD(para('hello')));
  const at = centralRecords(bytes).get('word/document.xml') as number;
  new DataView(bytes.buffer).setUint32(at + 42, 0x7fffffff, true);
  return bytes;
}

/** A DOCX whose central directory names word/document.xml twice. */
export function duplicateNameDocx(): Uint8Array {
  const bytes = docx(WORD(para('hello')));
  const first = centralRecords(bytes).get('[Content_Types].xml') as number;
  // Rename "[Content_Types].xml" (19 bytes) to "word/document.xmlXX" … then to a true duplicate.
  bytes.set(strToU8('word/document.xml'), first + 46);
  new DataView(bytes.buffer).setUint16(first + 28, 17, true);
  return bytes;
}

/** A DOCX whose document.xml is flagged encrypted. */
export function encryptedEntryDocx(): Uint8Array {
  const bytes = docx(WORD(para('secret')));
  const at = centralRecords(bytes).get('word/document.xml') as number;
  const view = new DataView(bytes.buffer);
  view.setUint16(at + 8, view.getUint16(at + 8, true) | 1, true);
  return bytes;
}

/** A document.xml of 64 MiB of zeros (~64 KB deflated) whose directory record declares 1 KB. */
export function lyingSizeDocx(): Uint8Array {
  const lying = zipSync({ 'word/document.xml': [new Uint8Array(64 * MiB), { level: 9 }] });
  const at = centralRecords(lying).get('word/document.xml') as number;
  new DataView(lying.buffer).setUint32(at + 24, 1024, true);
  return lying;
}

/** A document.xml of 16 MiB of zeros, deflated at ~1,000:1 (and declared so). */
export const ratioBombDocx = (): Uint8Array => zipSync({ 'word/document.xml': [new Uint8Array(16 * MiB), { level: 9 }] });

/**
 * Two parts each a little over half of `maxInflatedBytes` (under the budget alone, over it
 * together), at an ordinary compression ratio. The default is ZIP_LIMITS.maxInflatedBytes
 * (src/limits.ts), repeated here so that this module imports nothing from src/.
 */
export function twoPartsOverBudgetDocx(maxInflatedBytes = 48 * MiB): Uint8Array {
  const half = strToU8('<w:t>a</w:t>'.repeat(Math.ceil((maxInflatedBytes / 2 + MiB) / 12)));
  return zipSync({ 'word/document.xml': [half, { level: 1 }], 'word/styles.xml': [half.slice(), { level: 1 }] });
}

/** A small DOCX beside a 32 MiB image bomb (a part the parser never reads). */
export const mediaBombDocx = (): Uint8Array =>
  docx(WORD(para('The paraffin lamp.')), { 'word/media/image1.png': [new Uint8Array(32 * MiB), { level: 9 }] } as never);

/** A 10 MB document.xml of unclosed tags ("<a" × 5 Mi, stored) after one paragraph. */
export const unclosedTagsDocx = (): Uint8Array => storedDocx(WORD(`${para('Before.')}${'<a'.repeat(5 * MiB)}`));

/** 10 MB of unclosed styles, and a paragraph tag with 10 MB of attributes (stored). */
export function unclosedStylesDocx(): Uint8Array {
  const styles = `<w:styles>${'<w:style w:styleId="H">'.repeat(400_000)}</w:styles>`;
  return storedDocx(WORD(`<w:p a="${'x'.repeat(10 * MiB)}"><w:r><w:t>Kept.</w:t></w:r></w:p>`), { 'word/styles.xml': styles });
}

/** Billion laughs: ten levels of ten entity references in the DOCTYPE, used in the text. */
export function entityBombDocx(): Uint8Array {
  const laughs = Array.from({ length: 10 }, (_, i) => `<!ENTITY l${i + 1} "${`&l${i};`.repeat(10)}">`).join('');
  return docx(`<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY l0 "lol">${laughs}]>${WORD(para('Laugh &l10; and &amp; stay small.'))}`);
}

// =============================================================================================
// Markdown

/** A 1 MB heading line: "# a", a million spaces, "b". */
export const longHeadingLineMd = (): Uint8Array => strToU8(`# a${' '.repeat(MiB)}b\n\nThe body of the section.`);

/** Openers that made heading regular expressions backtrack: link, image, HTML, #, a key, code. */
export const HEADING_FILLERS = ['![', '[', '<', '#', ':a', '`'] as const;

/** A 1 MB heading of `filler`, then a 1 MB setext underline. */
export const headingOfMd = (filler: string): Uint8Array => strToU8(`## ${filler.repeat(MiB / filler.length)}\n\nText under it.\n\n---\n${'='.repeat(MiB)}\n`);

/** An unclosed front matter of 200,000 lines and a 1 MB fence line. */
export const unclosedFrontMatterMd = (): Uint8Array => strToU8(`---\ntitle: x\n${'a: b\n'.repeat(200_000)}\n${'`'.repeat(MiB)}\ncode\n`);

// =============================================================================================
// The list

export interface Bomb {
  name: string;
  type: 'pdf' | 'docx' | 'md' | 'txt';
  make: () => Uint8Array | Promise<Uint8Array>;
}

/**
 * Every hostile document the two test files parse, under the default limits (the tests run
 * the five-page one with a lowered budget, and the three text pages only with lowered budgets,
 * so they are not here; nor are the sample PDFs, which are not generated). Names follow the
 * tests' log labels.
 */
export const BOMBS: Bomb[] = [
  // PDF (test/hostile-pdf.test.ts)
  { name: '20,000 pages', type: 'pdf', make: manyPagesPdf },
  { name: 'content stream inflating to 1.08 GB', type: 'pdf', make: () => contentStreamBombPdf() },
  { name: 'zlib-invalid bomb', type: 'pdf', make: zlibInvalidBombPdf },
  { name: 'double-Flate bomb', type: 'pdf', make: doubleFlateBombPdf },
  { name: '5 × 16.9 MB of content (default limits)', type: 'pdf', make: fivePagesOfZerosPdf },
  { name: 'Flate + TIFF predictor content inflating to 1.08 GB', type: 'pdf', make: predictorBombPdf },
  { name: 'object stream inflating to 1.08 GB', type: 'pdf', make: objectStreamBombPdf },
  { name: 'object stream (normal)', type: 'pdf', make: objectStreamPdf },
  { name: 'XMP metadata inflating to 1.08 GB', type: 'pdf', make: xmpBombPdf },
  { name: '100,000 × 100,000 image with text', type: 'pdf', make: hugeImageWithTextPdf },
  { name: '100,000 × 100,000 image alone', type: 'pdf', make: hugeImageAlonePdf },
  { name: '20 MB PDF, uncompressed image', type: 'pdf', make: largeImagePdf },
  { name: '2 pages of 12.5 M characters', type: 'pdf', make: twoHugeTextPagesPdf },
  { name: 'OpenAction JavaScript', type: 'pdf', make: javascriptPdf },
  { name: 'page tree loop (/Kids → parent)', type: 'pdf', make: kidsLoopPdf },
  { name: 'page tree 5,000 deep', type: 'pdf', make: () => deepPageTreePdf() },
  { name: 'self-drawing form', type: 'pdf', make: selfDrawingFormPdf },
  // ZIP and DOCX (test/hostile-files.test.ts)
  { name: 'zip64 2^40 entries', type: 'docx', make: zip64EntriesDocx },
  { name: 'entry count over the directory', type: 'docx', make: tooManyEntriesDocx },
  { name: 'entry offset past the end', type: 'docx', make: offsetPastEndDocx },
  { name: 'duplicate entry name', type: 'docx', make: duplicateNameDocx },
  { name: 'encrypted entry', type: 'docx', make: encryptedEntryDocx },
  { name: '64 MiB behind a 1 KB declaration', type: 'docx', make: lyingSizeDocx },
  { name: '16 MiB at ~1000:1', type: 'docx', make: ratioBombDocx },
  { name: 'two parts of 25 MiB', type: 'docx', make: () => twoPartsOverBudgetDocx() },
  { name: 'docx beside a 32 MiB image bomb', type: 'docx', make: mediaBombDocx },
  { name: '10 MB of "<a" (stored)', type: 'docx', make: unclosedTagsDocx },
  { name: 'unclosed styles + huge attribute', type: 'docx', make: unclosedStylesDocx },
  { name: 'billion laughs', type: 'docx', make: entityBombDocx },
  // Markdown (test/hostile-files.test.ts)
  { name: '1 MB heading line', type: 'md', make: longHeadingLineMd },
  ...HEADING_FILLERS.map((filler): Bomb => ({ name: `1 MB heading of "${filler}"`, type: 'md', make: () => headingOfMd(filler) })),
  { name: 'unclosed front matter + fence', type: 'md', make: unclosedFrontMatterMd },
];
