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

/**
 * What one API request may carry: every field a client controls, checked at the HTTP layer
 * (src/http/validation.ts) before any work, so the local engine and Vectorize/D1 refuse the same
 * requests with the same 400 naming the cap. Body sizes are the routes' (413): 1 MiB for JSON
 * endpoints, MAX_UPLOAD_BYTES for uploads; files per upload is the MAX_FILES_PER_UPLOAD setting.
 */
export const REQUEST_LIMITS = {
  /** A document's title: shown with every passage and put in every chunk's context; one line. */
  maxTitleChars: 512,
  /** A file name once its directories are stripped: what common file systems allow (255). */
  maxFilenameChars: 255,
  /** A chunk's context (title › headings): stored, embedded and keyword-indexed with every chunk. */
  maxContextChars: 1_000,
  /** Metadata fields per document: each is a column a filter may scan in the local index. */
  maxMetadataFields: 32,
  /** A namespace (ASCII letters, digits, _ and -): Vectorize's limit (64 bytes). */
  maxNamespaceChars: 64,
  /** A metadata key or filter field name (letters, digits, _ and -; Vectorize allows up to 512). */
  maxFieldNameChars: 64,
  /** A string metadata value: metadata is for filtering, not content. */
  maxMetadataValueChars: 1_024,
  /** A document's metadata as compact UTF-8 JSON: Vectorize takes 10 KiB per vector, `documentId` included; 2 KiB spare. */
  maxMetadataBytes: 8 * 1024,
  /** Fields in a filter: Vectorize filters only on fields with a metadata index, and an index has at most 10. */
  maxFilterFields: 10,
  /**
   * Values in a filter, all operators together ($eq/$ne: one each, $in/$nin: one per item). With
   * lists bound as one JSON parameter, a D1 keyword query binds ≤ 2 + 2 per field and operator
   * (≤ 82 of D1's 100) whatever the count; this bounds the work per candidate.
   */
  maxFilterValues: 100,
  /** A string filter value in UTF-8: a Vectorize string index holds only a value's first 64 bytes. */
  maxFilterStringBytes: 64,
  /** A filter as compact JSON, each `field: value` counted as `field: { $eq: value }`: Vectorize's limit (2 KiB). */
  maxFilterBytes: 2_048,
  /** Passages a query returns: Vectorize's topK without values or full metadata. */
  maxTopK: 100,
  /** A search query (/v1/query, /v1/chat `query`): it becomes an embedding input and a keyword query over its words. */
  maxQueryChars: 4_096,
  /** Messages in a chat (/v1/chat, /v1/chat/completions). */
  maxChatMessages: 50,
  /** One message's text (parts of an OpenAI content array together); the last user message is also the search query. */
  maxMessageChars: 16_384,
  /** All messages' text together: the history goes to the model whole, beside the passages (≈ 8k tokens). */
  maxChatChars: 32_768,
  /** Parts of one OpenAI-style content array. */
  maxContentParts: 64,
  /** Short identifiers a client sends that the engine only echoes or ignores (`model`, a content part's `type`). */
  maxLabelChars: 256,
  /** Documents per page of GET /v1/documents. */
  maxPageSize: 100,
} as const;

/**
 * PDF (pdf.js, src/ingestion/parsers/pdf.ts). pdf.js holds a whole decompressed stream in
 * memory, so the stream and inflation bounds are what keep a hostile file from exhausting the
 * isolate; pages, text and time bound the rest of the work.
 */
export const PDF_LIMITS = {
  /** Pages, as the page tree declares them, checked before any page is read. */
  maxPages: 2_000,
  /**
   * Characters of text extracted across all pages (counted as pdf.js yields them, so one page
   * cannot overshoot by much). A 1,000-page book is 2–6 million (2,000–6,000 a page). Measured
   * (scripts/bench-hostile.mjs), pdf.js holding 20 million took +150 MiB, more than a Worker
   * has; 8 million keeps a document's text and pdf.js's items near 60 MiB.
   */
  maxTextChars: 8_000_000,
  /**
   * Bytes one stream may decode to: a page's content, a form, a font, an object stream,
   * metadata. pdf.js holds a stream whole, and briefly a second copy, beside the upload and
   * its copy (2 × 25 MiB), so this keeps a document well inside 128 MB. Legitimate streams
   * are far smaller; the largest are whole (unsubset) CJK fonts, 8–16 MB.
   */
  maxStreamBytes: 16 * MiB,
  /**
   * Bytes inflated across one document, every stream counted each time pdf.js reads it: a
   * bound on the work that needs no clock. pdfjs__tracemonkey.pdf inflates 1.5 MB for 14
   * pages (~110 KB a page, so ~220 MB for 2,000 such pages), and content that shows text
   * costs pdf.js about half a second a MB here: 256 MB is about the time budget's worth.
   */
  maxInflatedBytes: 256 * MiB,
  /**
   * Wall-clock time to read one document, checked between pages: 1,000 pages of a paper like
   * pdfjs__tracemonkey.pdf take ~30 s here. Deployed, the clock moves only on I/O, so the
   * parser passes through the event loop (a zero-delay timer) every few pages.
   */
  maxParseMs: 120_000,
  /**
   * Pixels of an image pdf.js may decode (its `maxImageSize`): larger ones are dropped before
   * decoding. Text extraction needs no pixels, so none are decoded.
   */
  maxImagePixels: 0,
} as const;
