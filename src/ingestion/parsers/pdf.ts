import { type getDocumentProxy, getResolvedPDFJS } from 'unpdf';
import { UnreadableDocumentError } from '../../domain/errors';
import { PDF_LIMITS } from '../../limits';
import type { ParsedDocument, Section } from '../types';
import { loadBundledCMap } from './cmaps';
import { type InflationBudget, inflationBudgets, installGuards, type PdfLimits } from './pdf-inflation';

type PdfDocument = Awaited<ReturnType<typeof getDocumentProxy>>;

export interface PdfOptions {
  /**
   * Character maps for pdf.js, by file name; by default the ones bundled in ./cmaps.ts. pdf.js
   * needs them for text in non-embedded CJK fonts (e.g. Adobe-Japan1, as in Japanese LaTeX
   * output) and in fonts encoded with a predefined CMap. `packed`: the binary `cmaps/*.bcmap`
   * files of pdfjs-dist (true; pdf.js asks for `NAME.bcmap`) or plain-text CMap files (false;
   * it asks for `NAME`). `load` throws for a map it does not have: the PDF then fails with
   * MISSING_CMAP, since the text in the fonts that need that map would be lost.
   */
  cMaps?: { packed: boolean; load: (filename: string) => Promise<Uint8Array> };
  /** Overrides of PDF_LIMITS (tests use small ones). */
  limits?: Partial<PdfLimits>;
}

export type { PdfLimits };

export const TRUNCATED =
  'The PDF is truncated: it has no end-of-file marker, so the upload probably broke off. Upload the complete file again.';
export const PASSWORD =
  'The PDF is password-protected. Remove the password (for example, print it to a new PDF) and upload it again.';
export const NO_TEXT =
  'The PDF has no extractable text: it looks scanned or image-only. Run OCR on it first (for example with OCRmyPDF) and upload the result.';
export const NO_UNICODE =
  'The PDF has text, but its fonts do not say which characters they draw (common with CJK fonts that are not embedded), so no text could be extracted. Re-export it with embedded fonts, or OCR it.';
export const MISSING_CMAP = (names: string[]): string =>
  `The PDF uses a CJK character encoding this server cannot decode (pdf.js character map ${names.join(', ')}), so its text in those fonts would be lost. Re-export it with embedded fonts that map to Unicode (for example, print it to a new PDF), or OCR it.`;
export const CORRUPT = 'The file is not a valid PDF or is damaged. Re-export it from the original program and upload it again.';
export const TOO_MANY_PAGES = (pages: number, max: number): string =>
  `The PDF has ${count(pages)} pages, more than ${count(max)}: split the file and upload the parts.`;
export const TOO_MUCH_TEXT = (max: number, page: number): string =>
  `The PDF has more than ${count(max)} characters of text (reached on page ${count(page)}), more than one document may hold: split the file and upload the parts.`;
export const STREAM_TOO_LARGE = (max: number): string =>
  `The PDF has a compressed stream that unpacks to more than ${megabytes(max)}, which is how damaged or malicious files ("decompression bombs") look. Re-export it from the original program (or print it to a new PDF) and upload that.`;
export const INFLATES_TOO_MUCH = (max: number, page: number): string =>
  `The PDF's compressed content unpacks to more than ${megabytes(max)}${page > 0 ? ` (reached on page ${count(page)})` : ''}, more than one document may: split the file and upload the parts, or print it to a new PDF if it is mostly drawings.`;
export const BROTLI =
  'The PDF uses Brotli compression (new in PDF 2.0), which this server does not read. Save it again with standard compression (for example, print it to a new PDF) and upload that.';
export const TOO_SLOW = (ms: number, page: number, pages: number): string =>
  `Reading the PDF took more than ${count(ms / 1000)} seconds (stopped at page ${count(page)} of ${count(pages)}): split the file and upload the parts.`;

const count = (n: number): string => n.toLocaleString('en-US');
const megabytes = (bytes: number): string => `${count(Math.round(bytes / (1024 * 1024)))} MB`;

/** PDF: one section per page that has text, so every chunk can cite its page. */
export async function parsePdf(bytes: Uint8Array, options: PdfOptions = {}): Promise<ParsedDocument> {
  // Checked before parsing: pdf.js reconstructs broken files, and half a file would be
  // indexed as if it were the whole document.
  if (!endsWithEofMarker(bytes)) throw new UnreadableDocumentError(TRUNCATED);
  const limits: PdfLimits = { ...PDF_LIMITS, ...options.limits };
  installGuards();
  const budget: InflationBudget = { limits, total: 0, exceeded: null, damaged: 0 };
  // pdf.js does its work in promise callbacks of this call, so the guards find `budget` there.
  return inflationBudgets.run(budget, () => readPdf(bytes, options, budget));
}

async function readPdf(bytes: Uint8Array, options: PdfOptions, budget: InflationBudget): Promise<ParsedDocument> {
  const { limits } = budget;
  const started = Date.now();
  const cMaps = options.cMaps ?? { packed: true, load: loadBundledCMap };
  // pdf.js only logs a CMap it cannot load and drops the text of the fonts that need it.
  const missingCMaps = new Set<string>();
  const load = (filename: string): Promise<Uint8Array> =>
    cMaps.load(filename).catch((error: unknown) => {
      missingCMaps.add(filename.replace(/\.bcmap$/, ''));
      throw error;
    });
  const { getDocument } = await getResolvedPDFJS();
  const task = getDocument({
    data: bytes.slice(), // pdf.js transfers (detaches) the buffer it is given
    verbosity: 0, // errors only: font warnings are noise in the logs
    useSystemFonts: true,
    disableFontFace: true,
    BinaryDataFactory: cMapFactory(load),
    cMapPacked: cMaps.packed,
    useWorkerFetch: false,
    // Text needs no pixels: images are dropped before decoding (only the operator lists of
    // hasTextObjects would decode any), and no image codec (wasm, ImageDecoder,
    // OffscreenCanvas) is set up. Recoverable errors stay recoverable (stopAtErrors: false):
    // one broken operator should not cost a page's text, nor a dropped image fail it.
    maxImageSize: limits.maxImagePixels,
    isOffscreenCanvasSupported: false,
    isImageDecoderSupported: false,
    useWasm: false,
    enableXfa: false,
    stopAtErrors: false,
    // pdf.js 6 has no `isEvalSupported`: it no longer compiles PDF functions with eval. Document
    // JavaScript never runs either: only a viewer with a scripting sandbox executes it.
  });
  let currentPage = 0;
  try {
    const pdf = await task.promise;
    if (pdf.numPages > limits.maxPages) throw new UnreadableDocumentError(TOO_MANY_PAGES(pdf.numPages, limits.maxPages));
    const sections: Section[] = [];
    const text = { chars: 0 };
    let failedPages = 0;
    for (let page = 1; page <= pdf.numPages; page++) {
      currentPage = page;
      if (page > 1) await checkTime(started, limits, page, pdf.numPages);
      // One bad page (a broken content stream) should not cost the rest of the document.
      const pageText = await readPage(pdf, page, text, limits).catch((error: unknown) => {
        if (error instanceof UnreadableDocumentError) throw error;
        failedPages++;
        return '';
      });
      checkInflation(budget, page);
      if (pageText) sections.push({ text: pageText, page });
    }
    if (missingCMaps.size > 0) throw new UnreadableDocumentError(MISSING_CMAP([...missingCMaps]));
    if (sections.length === 0) {
      if (failedPages > 0 || budget.damaged > 0) throw new UnreadableDocumentError(CORRUPT);
      const textObjects = await hasTextObjects(pdf);
      checkInflation(budget, pdf.numPages);
      throw new UnreadableDocumentError(textObjects ? NO_UNICODE : NO_TEXT);
    }
    const title = await metadataTitle(pdf);
    checkInflation(budget, pdf.numPages);
    return title ? { sections, title } : { sections };
  } catch (error) {
    checkInflation(budget, currentPage); // a guard's RangeError, as pdf.js passed it on
    throw asUnreadable(error);
  } finally {
    // PDFDocumentProxy has no destroy() in this pdf.js; the loading task owns the worker side.
    await task.destroy().catch(() => undefined);
  }
}

/** Pages read between trips through the event loop (see checkTime); a trip costs ~1 ms here. */
const PAGES_PER_CLOCK_REFRESH = 10;

/**
 * Fails the document once it has taken longer than `maxParseMs`, checked before each page.
 * Deployed, Date.now() does not advance while code runs (a Spectre mitigation: it is the time
 * at which the event loop last polled for I/O), and reading pages is pure computation whose
 * promise hops never return to the event loop. So every few pages a zero-delay timer makes
 * that trip, which by workerd's design brings the clock up to date (not verified on a
 * deployment). In local workerd (wrangler dev, vitest) the clock runs during computation too:
 * measured, a busy loop and each pdf.js page move it. A single page is not interrupted; the
 * text and stream budgets bound it.
 */
async function checkTime(started: number, limits: PdfLimits, page: number, pages: number): Promise<void> {
  if (page % PAGES_PER_CLOCK_REFRESH === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  if (Date.now() - started > limits.maxParseMs) throw new UnreadableDocumentError(TOO_SLOW(limits.maxParseMs, page, pages));
}

function endsWithEofMarker(bytes: Uint8Array): boolean {
  // Decoding as UTF-8 is lossy for binary bytes, but the ASCII marker survives intact.
  const tail = new TextDecoder().decode(bytes.subarray(Math.max(0, bytes.length - 1024)));
  return tail.includes('%%EOF');
}

/**
 * A page's text, read as pdf.js yields it (about 100 items at a time) and counted against
 * `maxTextChars` as it comes: over the budget, pdf.js is told to stop and the document fails.
 */
async function readPage(pdf: PdfDocument, pageNumber: number, read: { chars: number }, limits: PdfLimits): Promise<string> {
  const page = await pdf.getPage(pageNumber);
  const reader = (page.streamTextContent() as ReadableStream<TextContentChunk>).getReader();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const item of value.items) {
        if (!('str' in item)) continue;
        text += item.str + (item.hasEOL ? '\n' : '');
        read.chars += item.str.length + 1; // + 1: an item costs work even when empty
      }
      if (read.chars > limits.maxTextChars) {
        // pdf.js requires an Error: given anything else, it keeps delivering to the cancelled stream.
        await reader.cancel(new Error('text budget exceeded')).catch(() => undefined);
        throw new UnreadableDocumentError(TOO_MUCH_TEXT(limits.maxTextChars, pageNumber));
      }
    }
  } finally {
    reader.releaseLock();
    page.cleanup();
  }
  return tidy(text);
}

type TextContentChunk = Awaited<ReturnType<Awaited<ReturnType<PdfDocument['getPage']>>['getTextContent']>>;

/** Chinese and Japanese (not Korean) put no spaces between words: a line break there is layout. */
const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\u3000-\\u303f\\u30fc\\ufe10-\\ufe1f\\ufe30-\\ufe4f\\uff01-\\uff60';
const CJK_LINE_BREAK = new RegExp(`(?<=[${CJK}])\\n(?=[${CJK}])`, 'gu');

/** Undo the typesetting: rejoin words hyphenated at line ends, collapse spacing. */
function tidy(text: string): string {
  return text
    .replace(/[\0-\x08\x0b\x0e-\x1f\x7f-\x9f]/g, '') // glyphs without a Unicode value come out as NULs (or C1 controls)
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/(\p{L})-\n(?=\p{Ll})/gu, '$1') // "exam-\nple" → "example"; "Jean-\nLuc" stays
    .replace(CJK_LINE_BREAK, '') // also rejoins vertical text, which pdf.js gives a glyph per line
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/**
 * Tells "no text drawn at all" (a scan) from "text drawn in fonts we cannot decode". Only runs
 * when nothing was extracted, and only on the first pages, since it evaluates images too.
 */
async function hasTextObjects(pdf: PdfDocument): Promise<boolean> {
  const { OPS } = await getResolvedPDFJS();
  for (let n = 1; n <= Math.min(pdf.numPages, 3); n++) {
    const ops = await (await pdf.getPage(n)).getOperatorList().catch(() => null);
    if (ops?.fnArray.includes(OPS.beginText)) return true;
  }
  return false;
}

/** The Info dictionary's Title, unless it is a placeholder such as a file name. */
async function metadataTitle(pdf: PdfDocument): Promise<string | undefined> {
  const { info } = await pdf.getMetadata().catch(() => ({ info: undefined }));
  const raw = info && 'Title' in info ? info.Title : undefined;
  if (typeof raw !== 'string') return undefined;
  const title = raw.replace(/^Microsoft Word - /, '').replace(/\s+/g, ' ').trim();
  if (!title || /\.(pdf|docx?|rtf|odt|jpe?g|png|tiff?)$/i.test(title) || /^untitled$/i.test(title)) return undefined;
  return title;
}

function cMapFactory(load: (filename: string) => Promise<Uint8Array>) {
  return class {
    async fetch({ kind, filename }: { kind: string; filename: string }): Promise<Uint8Array> {
      if (kind !== 'cMapUrl') throw new Error(`No ${kind} data is bundled.`); // pdf.js falls back
      return load(filename);
    }
  };
}

/** Maps pdf.js exceptions (told apart by name: the classes live in the lazily loaded bundle). */
function asUnreadable(error: unknown): UnreadableDocumentError {
  if (error instanceof UnreadableDocumentError) return error;
  const name = error instanceof Error ? error.name : '';
  if (name === 'PasswordException') return new UnreadableDocumentError(PASSWORD, { cause: error });
  const detail = error instanceof Error && name !== 'InvalidPDFException' ? ` (${error.message})` : '';
  return new UnreadableDocumentError(CORRUPT + detail, { cause: error });
}

function checkInflation(budget: InflationBudget, page: number): void {
  if (budget.exceeded === 'stream') throw new UnreadableDocumentError(STREAM_TOO_LARGE(budget.limits.maxStreamBytes));
  if (budget.exceeded === 'total') throw new UnreadableDocumentError(INFLATES_TOO_MUCH(budget.limits.maxInflatedBytes, page));
  if (budget.exceeded === 'brotli') throw new UnreadableDocumentError(BROTLI);
}
