import { UnreadableDocumentError } from '../../domain/errors';
import { TEXT_LIMITS, ZIP_LIMITS } from '../../limits';
import { decodeText } from '../decode-text';
import type { ParsedDocument, Section } from '../types';
import { inflateEntries, readZipDirectory, ZipTooLargeError } from '../zip';

/** The only parts we read; everything else (images, themes) is never inflated. */
const PARTS = new Set(['word/document.xml', 'word/footnotes.xml', 'word/endnotes.xml', 'word/styles.xml']);
export const NO_TEXT = 'The document contains no text. Check that you uploaded the right file.';

interface Block {
  text: string;
  style?: string;
  /** Heading level from the paragraph's own outline level, which overrides its style. */
  outline?: number;
}

/** DOCX: paragraphs and table rows as text; headings start sections; notes come last. */
export function parseDocx(bytes: Uint8Array): ParsedDocument {
  const parts = unzipParts(bytes);
  const body = parts.get('word/document.xml');
  if (body === undefined) throw new UnreadableDocumentError('The file is a zip archive but not a Word document (it has no word/document.xml).');
  const levels = headingLevels(parts.get('word/styles.xml') ?? '');
  const sections: Section[] = [];
  const path: { level: number; text: string }[] = [];
  let current: string[] = [];
  let title: string | undefined;
  const flush = (): void => {
    if (current.length) sections.push({ text: current.join('\n\n'), headings: path.map((h) => h.text) });
    current = [];
  };
  for (const block of readBlocks(body)) {
    const level = block.outline ?? (block.style === undefined ? undefined : levels.get(block.style));
    if (level !== undefined) {
      flush();
      while (path.length && (path.at(-1)?.level ?? 0) >= level) path.pop();
      path.push({ level, text: block.text.slice(0, TEXT_LIMITS.maxHeadingChars) });
      if (level === 0) title ??= block.text;
    }
    current.push(block.text);
  }
  flush();
  const notes = ['word/footnotes.xml', 'word/endnotes.xml'].flatMap((name) => readBlocks(parts.get(name) ?? ''));
  if (notes.length) sections.push({ text: notes.map((b) => b.text).join('\n\n'), headings: ['Notes'] });
  if (sections.length === 0) throw new UnreadableDocumentError(NO_TEXT);
  return title ? { sections, title } : { sections };
}

function unzipParts(bytes: Uint8Array): Map<string, string> {
  // An OLE2 container is a legacy .doc, or a .docx that Office encrypted with a password.
  if (bytes[0] === 0xd0 && bytes[1] === 0xcf && bytes[2] === 0x11 && bytes[3] === 0xe0) {
    throw new UnreadableDocumentError('This is a legacy .doc file or a password-protected document. Save it as .docx without a password and upload it again.');
  }
  try {
    const wanted = readZipDirectory(bytes).filter((entry) => PARTS.has(entry.name));
    const parts = inflateEntries(bytes, wanted);
    return new Map([...parts].map(([name, data]) => [name, decodeText(data)]));
  } catch (error) {
    if (error instanceof ZipTooLargeError) {
      throw new UnreadableDocumentError(
        `The document is too large or too compressed to read (${error.message}; the limit is ${ZIP_LIMITS.maxInflatedBytes / 2 ** 20} MB of text and markup). Split it into smaller documents and upload those.`,
        { cause: error },
      );
    }
    throw new UnreadableDocumentError('The file is not a valid .docx: its zip archive is damaged or incomplete. Save it again from Word and upload it.', { cause: error });
  }
}

/** Style id → heading level (0 = Title), via the style's name ("heading 1") or outline level. */
function headingLevels(stylesXml: string): Map<string, number> {
  const levels = new Map<string, number>([['Title', 0]]);
  for (let n = 1; n <= 9; n++) levels.set(`Heading${n}`, n);
  for (const [attrs, inner] of styleElements(stylesXml)) {
    const id = attr(attrs, 'w:styleId');
    const name = attr(/<w:name\b([^>]*)\/?>/.exec(inner)?.[1] ?? '', 'w:val')?.trim().toLowerCase();
    const outline = attr(/<w:outlineLvl\b([^>]*)\/?>/.exec(inner)?.[1] ?? '', 'w:val');
    if (!id || !name) continue;
    if (name === 'title') levels.set(id, 0);
    else if (/^heading [1-9]$/.test(name)) levels.set(id, Number(name.slice(8)));
    else if (outline && Number(outline) < 9) levels.set(id, Number(outline) + 1);
  }
  return levels;
}

/**
 * `<w:style …>…</w:style>` elements as [attributes, content], found with indexOf so that an
 * unclosed one ends the scan instead of making every later `<w:style` rescan to the end.
 */
function* styleElements(xml: string): Generator<[string, string]> {
  for (let at = xml.indexOf('<w:style'); at !== -1; at = xml.indexOf('<w:style', at + 1)) {
    const next = xml[at + 8];
    if (next !== ' ' && next !== '>' && next !== '\t' && next !== '\n' && next !== '\r') continue; // <w:styles>, <w:styleId>…
    const openEnd = xml.indexOf('>', at);
    const close = openEnd === -1 ? -1 : xml.indexOf('</w:style>', openEnd);
    if (close === -1) return;
    yield [xml.slice(at + 8, openEnd), xml.slice(openEnd + 1, close)];
    at = close;
  }
}

/**
 * Walks WordprocessingML tag by tag. Paragraphs can nest (text boxes inside a paragraph) and
 * tables can nest (a table in a cell), so both are stacks. Table rows become single lines.
 */
function readBlocks(xml: string): Block[] {
  const blocks: Block[] = [];
  const paragraphs: Block[] = [];
  const tables: { rows: string[]; row: string[]; cell: string[] }[] = [];
  let inText = false;
  let skipDepth = 0; // inside mc:Fallback (a duplicate of mc:Choice) or moved-away text
  let note: { id: string; first: boolean; kind: string } | undefined;
  const emit = (text: string, block?: Block): void => {
    const table = tables.at(-1);
    if (table) table.cell.push(text);
    else blocks.push({ ...block, text });
  };
  // A tag's attributes cannot contain `<`: with `[^>]*?` a `<` never closed made each later
  // `<` rescan to the end of the part (quadratic); here a stray `<` is skipped at once.
  for (const [, close, tag = '', attrs = '', selfClose, text] of xml.matchAll(/<(\/?)([\w:.-]+)([^<>]*?)(\/?)>|([^<]+)/g)) {
    const p = paragraphs.at(-1);
    if (text !== undefined) {
      if (inText && p && !skipDepth) p.text += decodeEntities(text);
      continue;
    }
    if (tag === 'mc:Fallback' || tag === 'w:moveFrom') {
      if (!selfClose) skipDepth += close ? -1 : 1;
      continue;
    }
    if (skipDepth) continue;
    if (close) {
      if (tag === 'w:t') inText = false;
      else if (tag === 'w:p' && p) {
        paragraphs.pop();
        let line = p.text.trim();
        if (line && note?.first) [line, note.first] = [`[${note.kind}${note.id}] ${line}`, false];
        if (line) emit(line, p);
      } else if (tag === 'w:tc') tables.at(-1)?.row.push(tables.at(-1)?.cell.splice(0).join(' ') ?? '');
      else if (tag === 'w:tr') {
        const table = tables.at(-1);
        if (table?.row.some((c) => c)) table.rows.push(table.row.join(' | ').trimEnd());
        table?.row.splice(0);
      } else if (tag === 'w:tbl') {
        const rows = tables.pop()?.rows ?? [];
        if (rows.length) emit(rows.join(tables.length ? '; ' : '\n')); // nested: stay on the row's line
      } else if (tag === 'w:footnote' || tag === 'w:endnote') note = undefined;
      continue;
    }
    if (tag === 'w:p' && !selfClose) paragraphs.push({ text: '' });
    else if (tag === 'w:t' && !selfClose) inText = true;
    else if (tag === 'w:tbl') tables.push({ rows: [], row: [], cell: [] });
    else if (tag === 'w:footnote' || tag === 'w:endnote') {
      // Separator "notes" carry a w:type; real ones are labelled like their references.
      const id = attr(attrs, 'w:id');
      note = id && !attr(attrs, 'w:type') ? { id, first: true, kind: tag === 'w:endnote' ? 'e' : '' } : undefined;
    } else if (p) {
      if (tag === 'w:pStyle') p.style = attr(attrs, 'w:val');
      else if (tag === 'w:outlineLvl' && Number(attr(attrs, 'w:val')) < 9) p.outline = Number(attr(attrs, 'w:val')) + 1;
      // (A w:tab in a paragraph's tab-stop list would add a leading tab, which trim() removes.)
      else if (RUN_CHARS[tag] !== undefined) p.text += RUN_CHARS[tag];
      else if (tag === 'w:footnoteReference') p.text += `[${attr(attrs, 'w:id')}]`;
      else if (tag === 'w:endnoteReference') p.text += `[e${attr(attrs, 'w:id')}]`;
    }
  }
  return blocks;
}

/** Run content that stands for characters. */
const RUN_CHARS: Record<string, string> = { 'w:tab': '\t', 'w:br': '\n', 'w:cr': '\n', 'w:noBreakHyphen': '-' };

function attr(attrs: string, name: string): string | undefined {
  return new RegExp(`(?:^|\\s)${name}=(?:"([^"]*)"|'([^']*)')`).exec(attrs)?.slice(1).find((v) => v !== undefined);
}

const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] !== '#') return NAMED[ref] ?? whole;
    const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}
