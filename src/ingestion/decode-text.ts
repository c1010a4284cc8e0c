/**
 * Bytes → string for plain-text uploads. Clients send all sorts of encodings and rarely say
 * which, so the bytes decide: a BOM if present, then the NUL pattern of BOM-less UTF-16, then
 * strict UTF-8, and windows-1252 (a superset of Latin-1) as the last resort, which never fails.
 */

type Utf16 = 'utf-16le' | 'utf-16be';

/** How many leading bytes the sniffers look at: enough to judge, cheap on large files. */
const SAMPLE = 8192;

/** Which UTF-16 flavour a BOM announces, if any. */
function utf16Bom(bytes: Uint8Array): Utf16 | null {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return 'utf-16le';
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return 'utf-16be';
  return null;
}

/**
 * BOM-less UTF-16 of mostly Latin-script text has a zero high byte in nearly every code unit:
 * "Hi" is 48 00 69 00 in LE. Zeros at odd offsets → LE, at even offsets → BE. Text in other
 * scripts has no such pattern and is not recognised (it then decodes as windows-1252 garbage).
 */
export function sniffUtf16(bytes: Uint8Array): Utf16 | null {
  const n = Math.min(bytes.length, SAMPLE) & ~1;
  if (n < 4) return null;
  let zeroEven = 0;
  let zeroOdd = 0;
  for (let i = 0; i < n; i += 2) {
    if (bytes[i] === 0) zeroEven++;
    if (bytes[i + 1] === 0) zeroOdd++;
  }
  const units = n / 2;
  if (zeroOdd >= units * 0.4 && zeroEven <= units * 0.05) return 'utf-16le';
  if (zeroEven >= units * 0.4 && zeroOdd <= units * 0.05) return 'utf-16be';
  return null;
}

/**
 * Whether the bytes are plausibly text rather than a binary format: UTF-16 (BOM or NUL
 * pattern), or no NUL byte and hardly any C0 control characters in the sample.
 * Tab, LF, CR, form feed and ESC (ANSI colours in logs) count as text.
 */
export function looksLikeText(bytes: Uint8Array): boolean {
  if (utf16Bom(bytes) || sniffUtf16(bytes)) return true;
  const n = Math.min(bytes.length, SAMPLE);
  let controls = 0;
  for (let i = 0; i < n; i++) {
    const b = bytes[i] ?? 0;
    if (b === 0) return false;
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0c && b !== 0x0d && b !== 0x1b) || b === 0x7f) controls++;
  }
  return controls <= Math.max(2, n / 100);
}

function decodeUtf16(bytes: Uint8Array, flavour: Utf16): string {
  // Swap BE pairs by hand: not every runtime's TextDecoder supports 'utf-16be'.
  let le = bytes;
  if (flavour === 'utf-16be') {
    le = new Uint8Array(bytes.length & ~1);
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      le[i] = bytes[i + 1] ?? 0;
      le[i + 1] = bytes[i] ?? 0;
    }
  }
  return new TextDecoder('utf-16le').decode(le);
}

function decodeUnmarked(bytes: Uint8Array): string {
  const utf16 = sniffUtf16(bytes);
  if (utf16) return decodeUtf16(bytes, utf16);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    // Not valid UTF-8: an 8-bit legacy encoding. windows-1252 is what "Latin-1" files
    // almost always really are (curly quotes at 0x93/0x94), and it maps every byte.
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

/** Decodes text bytes to a string with LF line ends, without BOM or NUL characters. */
export function decodeText(bytes: Uint8Array): string {
  let text: string;
  const bom = utf16Bom(bytes);
  if (bom) text = decodeUtf16(bytes.subarray(2), bom);
  else if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    // The BOM declares UTF-8, so stray invalid bytes become U+FFFD instead of a re-guess.
    text = new TextDecoder('utf-8').decode(bytes.subarray(3));
  } else text = decodeUnmarked(bytes);
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n').replace(/\0/g, '');
}
