import { UnreadableDocumentError } from '../../domain/errors';
import { TEXT_LIMITS } from '../../limits';
import { decodeText } from '../decode-text';
import type { ParsedDocument, Section } from '../types';
import { EMPTY_FILE } from './text';

/** The opening of an ATX heading; the rest of the line is taken apart by `atxHeading` in linear time. */
const ATX_OPEN = /^ {0,3}(#{1,6})(?=[ \t]|$)/;
const SETEXT_UNDERLINE = /^ {0,3}(=+|-+)[ \t]*$/;
const FENCE = /^ *(`{3,}|~{3,})/;
/** Lines that cannot be the text of a setext heading (the underline is then an <hr> or a list). */
const NOT_PARAGRAPH = /^\s*$|^ {4}|^ {0,3}([-+*>|]|\d+[.)]|#{1,6}(\s|$)|<|`{3}|~{3})/;

/**
 * Markdown: one section per heading, so every chunk knows its heading path. The Markdown
 * itself stays in the text (it reads fine and keeps code intact); only front matter goes.
 */
export function parseMarkdown(bytes: Uint8Array): ParsedDocument {
  const lines = stripFrontMatter(decodeText(bytes)).split('\n');
  const sections: Section[] = [];
  const path: { level: number; text: string }[] = [];
  let title: string | undefined;
  let current: string[] = [];
  let fence: string | null = null;

  const flush = (upTo: number): void => {
    const text = current.slice(0, upTo).join('\n').trim();
    if (text) sections.push({ text, headings: path.map((h) => h.text).filter(Boolean) });
    current = current.slice(upTo);
  };
  const startHeading = (level: number, raw: string, linesInHeading: number): void => {
    flush(current.length - linesInHeading); // the heading line(s) open the new section
    while (path.length && (path.at(-1)?.level ?? 0) >= level) path.pop();
    const text = cleanHeading(raw);
    path.push({ level, text });
    if (level === 1 && title === undefined && text) title = text;
  };

  for (const line of lines) {
    const previous = current.at(-1);
    current.push(line);
    // Inside a fenced code block `#` starts a shell comment, not a heading.
    if (fence !== null) {
      if (line.trim().startsWith(fence) && /^[`~]+$/.test(line.trim())) fence = null;
      continue;
    }
    const open = FENCE.exec(line);
    if (open?.[1]) {
      fence = open[1];
      continue;
    }
    const atx = atxHeading(line);
    if (atx) {
      startHeading(atx.level, atx.text, 1);
      continue;
    }
    const underline = SETEXT_UNDERLINE.exec(line);
    if (underline?.[1] && previous !== undefined && !NOT_PARAGRAPH.test(previous) && !isHeading(previous)) {
      startHeading(underline[1].startsWith('=') ? 1 : 2, previous.trim(), 2);
    }
  }
  flush(current.length);
  if (sections.length === 0) throw new UnreadableDocumentError(EMPTY_FILE);
  return title ? { sections, title } : { sections };
}

/**
 * `# Title #` → level 1, "Title". A regular expression with a lazy text group and an optional
 * closing sequence backtracks quadratically on a long line (`# a`, a million spaces, `b`
 * stalled the consumer for minutes), so the closing `#`s and blanks are trimmed by hand.
 */
function atxHeading(line: string): { level: number; text: string } | null {
  const open = ATX_OPEN.exec(line);
  if (!open?.[1]) return null;
  let text = line.slice(open[0].length).trim();
  let end = text.length;
  while (end > 0 && text[end - 1] === '#') end--;
  // A closing sequence needs a blank before it (or is all there is); `C#` keeps its `#`.
  if (end < text.length && (end === 0 || text[end - 1] === ' ' || text[end - 1] === '\t')) text = text.slice(0, end).trimEnd();
  return { level: open[1].length, text };
}

/** Was this line already taken as a heading (so a following `---` is a rule, not an underline)? */
function isHeading(line: string): boolean {
  return atxHeading(line) !== null || SETEXT_UNDERLINE.test(line);
}

/** YAML front matter (`---` … `---` or `...` at the very top) is metadata, not content. */
function stripFrontMatter(text: string): string {
  const match = /^---[ \t]*\n[\s\S]*?\n(?:---|\.\.\.)[ \t]*(?:\n|$)/.exec(text);
  return match ? text.slice(match[0].length) : text;
}

/**
 * Heading text without Markdown syntax: badges, link targets, code ticks, emphasis, emoji
 * codes. Cut to TEXT_LIMITS.maxHeadingChars first: every chunk of the section repeats its
 * heading path, and the patterns below rescan from each `[` or `<`.
 */
function cleanHeading(raw: string): string {
  return raw
    .slice(0, TEXT_LIMITS.maxHeadingChars * 4)
    .replace(/!\[[^\]]*\]\([^)]*\)/g, '') // images and badges
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // [text](url) → text
    .replace(/<[^>]+>/g, '') // inline HTML such as anchors
    .replace(/(^|\s):[a-z0-9_+-]+:(?=\s|$)/g, '$1') // :emoji: shortcodes
    .replace(/[`*]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, TEXT_LIMITS.maxHeadingChars);
}
