import { Inflate } from 'fflate';
import { ZIP_LIMITS } from '../limits';

/**
 * A ZIP reader that trusts nothing in the file. The central directory is read and checked
 * whole (entry count against the file's size, every offset in range, no duplicate names)
 * before any entry is inflated, and inflation counts what it actually produces, so neither
 * a lying header nor a bomb can make it loop, read past the buffer or allocate more than
 * its budget. (fflate's unzipSync trusts a ZIP64 record's entry count, reads past the end
 * without throwing, and allocates each entry's declared size.)
 */
export class ZipError extends Error {
  override name = 'ZipError';
}

/** Over a decompression budget: the archive may be valid, but it is too big to read here. */
export class ZipTooLargeError extends ZipError {
  override name = 'ZipTooLargeError';
}

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const CENTRAL_HEADER_BYTES = 46;
const MAX_COMMENT = 0xffff;
/** Compressed bytes inflated per step: at deflate's ~1,032:1, at most ~4 MB out per step. */
const INFLATE_STEP = 4096;

/** Reads and validates the central directory; inflates nothing. */
export function readZipDirectory(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = findEndOfDirectory(view);
  let count = view.getUint16(eocd + 10, true);
  let size = view.getUint32(eocd + 12, true);
  let offset = view.getUint32(eocd + 16, true);
  // ZIP64: the real figures are in a record the locator just before the EOCD points to.
  if (eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR) {
    const record = safeNumber(view.getBigUint64(eocd - 12, true));
    if (record + 56 > eocd - 20 || view.getUint32(record, true) !== ZIP64_EOCD) throw new ZipError('bad ZIP64 end record');
    count = safeNumber(view.getBigUint64(record + 32, true));
    size = safeNumber(view.getBigUint64(record + 40, true));
    offset = safeNumber(view.getBigUint64(record + 48, true));
  }
  if (count > ZIP_LIMITS.maxEntries) throw new ZipTooLargeError(`${count} entries, more than ${ZIP_LIMITS.maxEntries}`);
  if (offset + size > eocd || count * CENTRAL_HEADER_BYTES > size) throw new ZipError('central directory out of range');

  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  let at = offset;
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_HEADER_BYTES > offset + size || view.getUint32(at, true) !== CENTRAL) throw new ZipError('bad central directory entry');
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const next = at + CENTRAL_HEADER_BYTES + nameLength + extraLength + commentLength;
    if (next > offset + size) throw new ZipError('central directory entry out of range');
    const entry: ZipEntry = {
      name: new TextDecoder().decode(bytes.subarray(at + CENTRAL_HEADER_BYTES, at + CENTRAL_HEADER_BYTES + nameLength)),
      flags: view.getUint16(at + 8, true),
      method: view.getUint16(at + 10, true),
      compressedSize: view.getUint32(at + 20, true),
      uncompressedSize: view.getUint32(at + 24, true),
      localHeaderOffset: view.getUint32(at + 42, true),
    };
    applyZip64Extra(view, at + CENTRAL_HEADER_BYTES + nameLength, extraLength, entry);
    if (names.has(entry.name)) throw new ZipError(`duplicate entry ${entry.name}`);
    if (entry.localHeaderOffset + 30 + entry.compressedSize > offset) throw new ZipError(`entry ${entry.name} out of range`);
    names.add(entry.name);
    entries.push(entry);
    at = next;
  }
  return entries;
}

/**
 * Inflates the named entries, refusing any whose declared size or ratio is implausible and
 * stopping as soon as the actual output passes its declared size or the shared budget.
 */
export function inflateEntries(bytes: Uint8Array, entries: ZipEntry[], budget = ZIP_LIMITS.maxInflatedBytes): Map<string, Uint8Array> {
  const declared = entries.reduce((sum, e) => sum + e.uncompressedSize, 0);
  if (declared > budget) throw new ZipTooLargeError(`would unpack to ${declared} bytes, more than ${budget}`);
  const out = new Map<string, Uint8Array>();
  for (const entry of entries) {
    if (entry.flags & 1) throw new ZipError(`entry ${entry.name} is encrypted`);
    if (entry.uncompressedSize > Math.max(1, entry.compressedSize) * ZIP_LIMITS.maxCompressionRatio) {
      throw new ZipTooLargeError(`entry ${entry.name} claims a compression ratio over ${ZIP_LIMITS.maxCompressionRatio}:1`);
    }
    out.set(entry.name, inflateEntry(bytes, entry));
  }
  return out;
}

function inflateEntry(bytes: Uint8Array, entry: ZipEntry): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localHeaderOffset;
  if (view.getUint32(at, true) !== LOCAL) throw new ZipError(`bad local header for ${entry.name}`);
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  if (start + entry.compressedSize > bytes.byteLength) throw new ZipError(`entry ${entry.name} out of range`);
  const data = bytes.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.uncompressedSize) throw new ZipError(`stored entry ${entry.name} has two sizes`);
    return data.slice();
  }
  if (entry.method !== 8) throw new ZipError(`entry ${entry.name} uses compression method ${entry.method}`);
  const result = new Uint8Array(entry.uncompressedSize);
  let written = 0;
  const inflate = new Inflate((chunk) => {
    if (written + chunk.length > result.length) throw new ZipTooLargeError(`entry ${entry.name} unpacks to more than the ${result.length} bytes it declares`);
    result.set(chunk, written);
    written += chunk.length;
  });
  for (let i = 0; i < data.length; i += INFLATE_STEP) inflate.push(data.subarray(i, i + INFLATE_STEP), i + INFLATE_STEP >= data.length);
  if (data.length === 0) inflate.push(data, true);
  if (written !== result.length) throw new ZipError(`entry ${entry.name} unpacks to ${written} bytes, not the ${result.length} it declares`);
  return result;
}

/** The end-of-central-directory record is in the last 22 + 65,535 bytes (its comment may be that long). */
function findEndOfDirectory(view: DataView): number {
  const last = view.byteLength - 22;
  for (let at = last; at >= 0 && at >= last - MAX_COMMENT; at--) {
    if (view.getUint32(at, true) === EOCD) return at;
  }
  throw new ZipError('no end of central directory');
}

/** Sizes and offsets of 0xFFFFFFFF live in the ZIP64 extra field (id 1), in this order. */
function applyZip64Extra(view: DataView, start: number, length: number, entry: ZipEntry): void {
  const fields = (['uncompressedSize', 'compressedSize', 'localHeaderOffset'] as const).filter((f) => entry[f] === 0xffffffff);
  if (fields.length === 0) return;
  for (let at = start; at + 4 <= start + length; ) {
    const id = view.getUint16(at, true);
    const size = view.getUint16(at + 2, true);
    if (id === 1) {
      fields.forEach((field, i) => {
        if (at + 4 + 8 * (i + 1) > start + length) throw new ZipError('bad ZIP64 extra field');
        entry[field] = safeNumber(view.getBigUint64(at + 4 + 8 * i, true));
      });
      return;
    }
    at += 4 + size;
  }
  throw new ZipError('missing ZIP64 extra field');
}

function safeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError('ZIP64 value out of range');
  return Number(value);
}
