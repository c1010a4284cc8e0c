import { z } from 'zod';

/**
 * Every setting of the engine, read from `wrangler.toml` [vars] and secrets, with the
 * defaults of the original engine's configuration. Parsed once per isolate; a bad value
 * throws at startup with a message naming the setting.
 */
/**
 * Fusion defaults per embedder. A semantic model (Workers AI, OpenAI) finds what keywords
 * miss, so both rankings count equally (k = 60, the usual choice). The local embedder is
 * lexical like the keyword index and weaker (SciFact test nDCG@10 0.44 against 0.70): on
 * SciFact's train queries (scripts/tune-fusion.mjs) every weight above 0.02 lowered nDCG@10
 * and 0.02 matched 0 (0.7128). At 0 its list only fills in below every keyword hit (a query
 * with misspelled words or too few matches), and the local index skips it when keyword
 * search alone fills the page.
 */
const FUSION_DEFAULTS = {
  local: { rrfK: 60, vectorWeight: 0 },
  'workers-ai': { rrfK: 60, vectorWeight: 1 },
  openai: { rrfK: 60, vectorWeight: 1 },
} as const;

/**
 * The local index keeps a namespace's vectors and keyword index in one Durable Object's
 * 128 MB (about 3.5 KB a passage with 384-dimensional vectors, README "Memory"): 25,000
 * passages leave room for the rest. Vectorize and D1 have no such per-namespace ceiling.
 */
const QUOTA_DEFAULTS = {
  local: { passages: 25_000 },
  vectorize: { passages: 0 },
} as const;

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const flag = (fallback: boolean) =>
  z
    .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
    .default(fallback)
    .transform((value) => value === true || value === 'true' || value === '1');

export const Config = z
  .object({
    // Chunking (tokens).
    CHUNK_SIZE: positiveInt(512),
    CHUNK_OVERLAP: z.coerce.number().int().min(0).default(50),
    // Embeddings. Model and dimensions default per provider (see composition.ts).
    EMBEDDING_PROVIDER: z.enum(['local', 'workers-ai', 'openai']).default('local'),
    EMBEDDING_MODEL: z.string().min(1).optional(),
    /** Vectorize indexes hold at most 1,536 dimensions. */
    EMBEDDING_DIMENSIONS: z.coerce.number().int().min(8).max(1536).optional(),
    /** Texts per embedding request; default the provider's (100 Workers AI, 50 OpenAI). */
    EMBEDDING_BATCH_SIZE: z.coerce.number().int().min(1).max(2048).optional(),
    // Vector store.
    VECTOR_PROVIDER: z.enum(['local', 'vectorize']).default('local'),
    DEFAULT_NAMESPACE: z.string().min(1).max(64).default('default'),
    /**
     * Metadata fields filters may name besides documentId (comma-separated), in both engines. In
     * production each needs a Vectorize metadata index, created by scripts/setup.mjs before any
     * vector: Vectorize matches nothing on a field without one, so filters on others are refused.
     */
    FILTERABLE_FIELDS: z
      .string()
      .default('')
      .transform((list) => list.split(',').map((f) => f.trim()).filter((f) => f && f !== 'documentId')),
    /**
     * The Cloudflare engine's keyword index: passages per shard (a Durable Object). A namespace
     * opens another shard when its shards are full; a query asks them all in parallel.
     */
    KEYWORD_SHARD_SIZE: positiveInt(50_000),
    // Retrieval.
    DEFAULT_TOP_K: z.coerce.number().int().min(1).max(50).default(5),
    /** Candidates each retriever contributes before fusion. */
    RETRIEVAL_CANDIDATES: z.coerce.number().int().min(1).max(100).default(50),
    /**
     * Reciprocal rank fusion: score = Σ weight / (RRF_K + rank). Defaults depend on the
     * embedder (see FUSION_DEFAULTS below).
     */
    RRF_K: z.coerce.number().min(1).optional(),
    VECTOR_WEIGHT: z.coerce.number().min(0).optional(),
    KEYWORD_WEIGHT: z.coerce.number().min(0).default(1),
    // Reranking (after fusion): a cross-encoder rescoring the best candidates.
    RERANK_PROVIDER: z.enum(['none', 'workers-ai']).default('none'),
    RERANK_MODEL: z.string().min(1).default('@cf/baai/bge-reranker-base'),
    RERANK_CANDIDATES: z.coerce.number().int().min(1).max(100).default(20),
    // Generation.
    CHAT_PROVIDER: z.enum(['extractive', 'workers-ai', 'openai']).default('extractive'),
    CHAT_MODEL: z.string().min(1).optional(),
    LLM_TEMPERATURE: z.coerce.number().min(0).max(2).default(0.1),
    LLM_MAX_TOKENS: positiveInt(1024),
    LLM_TIMEOUT_MS: positiveInt(30_000),
    /**
     * Links, images and URLs in answers (src/generation/answer-guard.ts): `strip` defangs them
     * (a rendered answer fetches nothing a document told the model to write), `passages` keeps
     * links spelled out in the passages given, `keep` leaves answers as the model wrote them.
     */
    ANSWER_LINKS: z.enum(['strip', 'passages', 'keep']).default('strip'),
    // Cloud providers: retries (with backoff and Retry-After) and per-call timeouts.
    PROVIDER_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
    EMBEDDING_TIMEOUT_MS: positiveInt(10_000),
    OPENAI_API_KEY: z.string().min(1).optional(),
    OPENAI_BASE_URL: z.url().default('https://api.openai.com/v1'),
    // Uploads and ingestion.
    MAX_UPLOAD_BYTES: positiveInt(25 * 1024 * 1024),
    MAX_FILES_PER_UPLOAD: positiveInt(100),
    /** Documents processed at once within one queue batch. */
    INGEST_CONCURRENCY: positiveInt(8),
    /**
     * A document with more chunks than this is embedded and indexed in slices of at most this
     * many, one queue message each, so no invocation holds more of its chunks and vectors.
     */
    INGEST_SLICE_CHUNKS: positiveInt(1000),
    // Caches (src/cache/): query embeddings by (model, dimensions, SHA-256 of the text);
    // answers of /v1/query and non-streamed chats by (namespace generation, request).
    CACHE_ENABLED: flag(true),
    /** Embeddings of a model never change: kept a day. */
    EMBEDDING_CACHE_TTL_SECONDS: positiveInt(86_400),
    /**
     * An answer is never served after its namespace changes (the generation is in its key);
     * the TTL bounds what else may change it: a deploy, or Vectorize applying a write late.
     */
    RESPONSE_CACHE_TTL_SECONDS: positiveInt(300),
    // Operations.
    /** Structured logs below this level are dropped (debug, info, warn, error). */
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    // Security: API keys (src/security/), rate limits, tenants, browsers.
    /** Off under `npm start`; `wrangler.toml` turns it on in production. */
    AUTH_ENABLED: flag(false),
    /** The first admin key (a Worker secret, or `.dev.vars` under `npm start`). */
    ADMIN_API_KEY: z.string().min(16, 'use at least 16 characters').optional(),
    /** Token bucket per key: refilled at RATE_LIMIT_PER_MINUTE, holding at most RATE_LIMIT_BURST. */
    RATE_LIMIT_PER_MINUTE: positiveInt(60),
    RATE_LIMIT_BURST: positiveInt(20),
    /** With auth off, limit anonymous requests per client IP (CF-Connecting-IP). */
    RATE_LIMIT_ANONYMOUS: flag(false),
    /**
     * When the limiter cannot be reached: `reads-open` lets read-scope requests through
     * and refuses the rest with 503, `open` lets everything through, `closed` refuses all.
     */
    RATE_LIMIT_UNAVAILABLE: z.enum(['reads-open', 'open', 'closed']).default('reads-open'),
    /** /status and /metrics answer without a key (e.g. behind a private network). */
    OPERATIONS_PUBLIC: flag(false),
    /** Origins allowed to call the API from a browser (comma-separated, or *); none by default. */
    CORS_ORIGINS: z
      .string()
      .default('')
      .transform((list) => list.split(',').map((o) => o.trim()).filter(Boolean)),
    /** Per-namespace quotas; 0 means none. QUOTA_PASSAGES defaults per vector index (see QUOTA_DEFAULTS). */
    QUOTA_DOCUMENTS: z.coerce.number().int().min(0).default(0),
    QUOTA_BYTES: z.coerce.number().int().min(0).default(0),
    QUOTA_PASSAGES: z.coerce.number().int().min(0).optional(),
  })
  .refine((c) => c.CHUNK_OVERLAP < c.CHUNK_SIZE, {
    message: 'must be smaller than CHUNK_SIZE',
    path: ['CHUNK_OVERLAP'],
  })
  .refine((c) => c.OPENAI_API_KEY || (c.EMBEDDING_PROVIDER !== 'openai' && c.CHAT_PROVIDER !== 'openai'), {
    message: 'required when EMBEDDING_PROVIDER or CHAT_PROVIDER is "openai" (wrangler secret put OPENAI_API_KEY)',
    path: ['OPENAI_API_KEY'],
  })
  .transform((c) => ({
    ...c,
    RRF_K: c.RRF_K ?? FUSION_DEFAULTS[c.EMBEDDING_PROVIDER].rrfK,
    VECTOR_WEIGHT: c.VECTOR_WEIGHT ?? FUSION_DEFAULTS[c.EMBEDDING_PROVIDER].vectorWeight,
    QUOTA_PASSAGES: c.QUOTA_PASSAGES ?? QUOTA_DEFAULTS[c.VECTOR_PROVIDER].passages,
  }));
export type Config = z.infer<typeof Config>;

const cache = new WeakMap<object, Config>();

/** Parses the settings from the Worker's env, naming every bad setting in the error. */
export function loadConfig(env: object): Config {
  const cached = cache.get(env);
  if (cached) return cached;
  const result = Config.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`Invalid configuration: ${problems.join('; ')}`);
  }
  cache.set(env, result.data);
  return result.data;
}
