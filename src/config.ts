import { z } from 'zod';

/**
 * Every setting of the engine, read from `wrangler.toml` [vars] and secrets, with the
 * defaults of the original engine's configuration. Parsed once per isolate; a bad value
 * throws at startup with a message naming the setting.
 */
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
    // Embeddings.
    EMBEDDING_PROVIDER: z.enum(['local']).default('local'),
    EMBEDDING_MODEL: z.string().min(1).default('local-hash-v1'),
    EMBEDDING_DIMENSIONS: z.coerce.number().int().min(8).max(1536).default(384),
    EMBEDDING_BATCH_SIZE: z.coerce.number().int().min(1).max(100).default(100),
    // Vector store.
    VECTOR_PROVIDER: z.enum(['local']).default('local'),
    DEFAULT_NAMESPACE: z.string().min(1).max(64).default('default'),
    // Retrieval.
    DEFAULT_TOP_K: z.coerce.number().int().min(1).max(50).default(5),
    /** Candidates each retriever contributes before fusion. */
    RETRIEVAL_CANDIDATES: z.coerce.number().int().min(1).max(100).default(50),
    /** Reciprocal rank fusion constant: score = Σ weight / (RRF_K + rank). */
    RRF_K: z.coerce.number().min(1).default(60),
    VECTOR_WEIGHT: z.coerce.number().min(0).default(1),
    KEYWORD_WEIGHT: z.coerce.number().min(0).default(1),
    // Generation.
    CHAT_PROVIDER: z.enum(['extractive']).default('extractive'),
    LLM_TEMPERATURE: z.coerce.number().min(0).max(2).default(0.1),
    LLM_MAX_TOKENS: positiveInt(1024),
    LLM_TIMEOUT_MS: positiveInt(30_000),
    // Uploads and ingestion.
    MAX_UPLOAD_BYTES: positiveInt(25 * 1024 * 1024),
    MAX_FILES_PER_UPLOAD: positiveInt(100),
    /** Documents processed at once within one queue batch. */
    INGEST_CONCURRENCY: positiveInt(8),
    // Security.
    AUTH_ENABLED: flag(false),
    RATE_LIMIT_PER_MINUTE: positiveInt(60),
    RATE_LIMIT_BURST: positiveInt(20),
  })
  .refine((c) => c.CHUNK_OVERLAP < c.CHUNK_SIZE, {
    message: 'must be smaller than CHUNK_SIZE',
    path: ['CHUNK_OVERLAP'],
  });
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
