/**
 * Every bound on the work a client can make the engine do, in one place. Each is checked
 * before the work it bounds, and going over one ends in a 4xx answer or a `failed` document
 * with a reason a person can act on, never a stalled or crashed Worker. A Worker has 128 MB
 * and the CPU budget of wrangler.toml's `limits.cpu_ms`; these keep one document well inside.
 */
const MiB = 1024 * 1024;

/** ZIP containers (DOCX): read from the central directory before anything is inflated. */
export const ZIP_LIMITS = {
  /** Entries in the central directory; a Word document has a few dozen. */
  maxEntries: 5_000,
  /** Uncompressed bytes inflated across all the parts read from one file, declared and actual. */
  maxInflatedBytes: 48 * MiB,
  /** Uncompressed ÷ compressed size of one entry; deflate tops out near 1,032:1, real XML near 100:1. */
  maxCompressionRatio: 250,
} as const;

/** Markdown and WordprocessingML text. */
export const TEXT_LIMITS = {
  /** A heading's characters (and so a chunk's heading path): longer ones are cut here. */
  maxHeadingChars: 300,
} as const;
