import { looksLikeText } from './decode-text';
import type { DocumentType } from './types';
import { readZipDirectory } from './zip';

/**
 * Decides what an upload is. The content decides first and the file name second; the
 * client's content-type is never trusted on its own, since browsers guess it from the name.
 * Returns null for anything the engine cannot read (images, spreadsheets, binaries).
 */
export function detectType(bytes: Uint8Array, filename?: string): DocumentType | null {
  if (isPdf(bytes)) return 'pdf';
  if (isZip(bytes)) {
    const hasBody = zipHasEntry(bytes, 'word/document.xml');
    // A damaged .docx (say, a broken-off upload) still goes to the DOCX parser, which
    // can tell the person what is wrong; any other zip is not something we read.
    if (hasBody === 'corrupt') return filename && /\.docx$/i.test(filename.trim()) ? 'docx' : null;
    return hasBody ? 'docx' : null;
  }
  if (!looksLikeText(bytes)) return null;
  return filename && /\.(md|markdown|mdx)$/i.test(filename.trim()) ? 'md' : 'txt';
}

const PDF_MAGIC = [0x25, 0x50, 0x44, 0x46, 0x2d]; // "%PDF-"

/** pdf.js (like Acrobat) accepts junk before the header, so look within the first 1 KB. */
function isPdf(bytes: Uint8Array): boolean {
  const end = Math.min(bytes.length, 1024) - PDF_MAGIC.length;
  for (let i = 0; i <= end; i++) {
    if (PDF_MAGIC.every((b, j) => bytes[i + j] === b)) return true;
  }
  return false;
}

function isZip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04; // "PK\3\4"
}

/**
 * Reads only the zip's central directory, validated and bounded (see zip.ts), so an upload
 * request never inflates anything and a crafted directory cannot make it loop.
 */
function zipHasEntry(bytes: Uint8Array, name: string): boolean | 'corrupt' {
  try {
    return readZipDirectory(bytes).some((entry) => entry.name === name);
  } catch {
    return 'corrupt';
  }
}
