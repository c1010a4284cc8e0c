import { type getDocumentProxy, getResolvedPDFJS } from 'unpdf';
import { UnreadableDocumentError } from '../../errors';
import type { ParsedDocument, Section } from '../types';
import { loadBundledCMap } from './cmaps';

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
}

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

/** PDF: one section per page that has text, so every chunk can cite its page. */
export async function parsePdf(bytes: Uint8Array, options: PdfOptions = {}): Promise<ParsedDocument> {
  // Checked before parsing: pdf.js reconstructs broken files, and half a file would be
  // indexed as if it were the whole document.
  if (!endsWithEofMarker(bytes)) throw new UnreadableDocumentError(TRUNCATED);
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
  });
  try {
    const pdf = await task.promise;
    const sections: Section[] = [];
    let failedPages = 0;
    for (let page = 1; page <= pdf.numPages; page++) {
      // One bad page (a broken content stream) should not cost the rest of the document.
      const text = await pageText(pdf, page).catch(() => {
        failedPages++;
        return '';
      });
      if (text) sections.push({ text, page });
    }
    if (missingCMaps.size > 0) throw new UnreadableDocumentError(MISSING_CMAP([...missingCMaps]));
    if (sections.length === 0) {
      if (failedPages > 0) throw new UnreadableDocumentError(CORRUPT);
      throw new UnreadableDocumentError((await hasTextObjects(pdf)) ? NO_UNICODE : NO_TEXT);
    }
    const title = await metadataTitle(pdf);
    return title ? { sections, title } : { sections };
  } catch (error) {
    throw asUnreadable(error);
  } finally {
    // PDFDocumentProxy has no destroy() in this pdf.js; the loading task owns the worker side.
    await task.destroy().catch(() => undefined);
  }
}

function endsWithEofMarker(bytes: Uint8Array): boolean {
  // Decoding as UTF-8 is lossy for binary bytes, but the ASCII marker survives intact.
  const tail = new TextDecoder().decode(bytes.subarray(Math.max(0, bytes.length - 1024)));
  return tail.includes('%%EOF');
}

async function pageText(pdf: PdfDocument, pageNumber: number): Promise<string> {
  const page = await pdf.getPage(pageNumber);
  const content = await page.getTextContent();
  let text = '';
  for (const item of content.items) if ('str' in item) text += item.str + (item.hasEOL ? '\n' : '');
  page.cleanup();
  return tidy(text);
}

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
