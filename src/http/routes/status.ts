import { z } from 'zod';
import { Hono } from 'hono';
import type { Config } from '../../config';
import { providerCircuits } from '../../composition';
import type { CircuitState } from '../../providers/resilience';
import { currentSettings, sameSettings, scopeTo } from '../../retrieval/generations';
import { LOCKED_OUT } from '../../security/access';
import { hasScope } from '../../security/principal';
import type { Services } from '../../services';
import type { BuildProgress, Generation } from '../../storage/generations';
import type { AppEnv } from '../app-env';
import { guard } from '../guard';
import { describeRoute } from '../openapi';

/** Each dependency check's deadline: a hung binding makes its component `timed out`, not /status hang. */
export const STATUS_CHECK_TIMEOUT_MS = 2_000;

/** A key /status asks R2 for; it never exists (and is outside `originals/`, which R2 events skip anyway). */
const R2_PROBE_KEY = '.status-probe/absent';

/**
 * `ok`: checked and working. `error`: checked and failing (or timed out). `configured`: a billed
 * cloud provider that /status does not call (its circuit breaker says what recent real calls
 * found). `unchecked`: no way to check without side effects (the Queue producer).
 */
export type ComponentStatus = 'ok' | 'error' | 'configured' | 'unchecked';

export interface Component {
  status: ComponentStatus;
  /** Time the check took, when it called something. */
  latencyMs?: number;
  error?: string;
  [detail: string]: unknown;
}

export type EngineStatus = 'ready' | 'degraded' | 'misconfigured' | 'unavailable';

/** Without these the engine cannot answer or ingest: one failing makes /status 503. */
const REQUIRED = ['d1', 'r2', 'searchEngine'] as const;

export const statusRoutes = new Hono<AppEnv>();

/**
 * Readiness. Every dependency is checked in parallel, each within STATUS_CHECK_TIMEOUT_MS.
 * Any key (or anyone, with OPERATIONS_PUBLIC) learns `{ status, auth }`; admins (everyone
 * with auth off) also get each component, counts, the embedding in use and a configuration
 * summary — never a secret's value. 503 when a required component fails or is misconfigured.
 */
statusRoutes.get('/status', guard('read', { open: (c) => c.var.services.config.OPERATIONS_PUBLIC }), async (c) => {
  const { services, principal } = c.var;
  const admin = hasScope(principal, 'admin');
  const [components, authProblem, counts] = await Promise.all([
    checkComponents(services),
    checkWayIn(services),
    admin ? countContents(services) : null,
  ]);

  const problems: string[] = [];
  const misconfigured = authProblem !== null || components.searchEngine.misconfigured === true;
  if (authProblem) problems.push(`auth: ${authProblem}`);
  for (const [name, component] of Object.entries(components)) {
    if (component.status === 'error') problems.push(`${name}: ${component.error}`);
  }
  const status: EngineStatus = misconfigured
    ? 'misconfigured'
    : REQUIRED.some((name) => components[name].status === 'error')
      ? 'unavailable'
      : Object.values(components).some((component) => component.status === 'error')
        ? 'degraded'
        : 'ready';
  const code = status === 'misconfigured' || status === 'unavailable' ? 503 : 200;
  const summary = { status, auth: services.config.AUTH_ENABLED ? 'on' : 'off' };
  if (!admin || !counts) return c.json(summary, code);

  delete components.searchEngine.misconfigured;
  const body = {
    ...summary,
    ...(problems.length > 0 && { problems }),
    ...(counts.warnings.length > 0 && { warnings: counts.warnings }),
    checkedAt: new Date().toISOString(),
    components,
    documents: counts.documents,
    chunks: counts.chunks,
    embedding: counts.embedding,
    config: configSummary(services),
  };
  return c.json(JSON.parse(redact(JSON.stringify(body), services.config)) as typeof body, code);
});

type Components = Record<(typeof REQUIRED)[number] | 'queue' | 'embedding' | 'chat', Component> & { reranker?: Component };

async function checkComponents(services: Services): Promise<Components> {
  const { config } = services;
  const circuits = providerCircuits(config);
  const [d1, r2, searchEngine] = await Promise.all([
    timed(async () => {
      await services.db.prepare('SELECT 1 AS ok').first();
      return {};
    }),
    timed(async () => {
      await services.originals.head(R2_PROBE_KEY);
      return {};
    }),
    checkSearchEngine(services, circuits.vectors),
  ]);
  const components: Components = {
    d1,
    r2,
    queue: services.queue
      ? {
          status: 'unchecked',
          note: 'A Queue producer has no check that does not send a message, and /status sends none; the INGEST_QUEUE binding is present. Documents stuck in "queued" mean the queue or its consumer is not working.',
        }
      : { status: 'error', error: 'the INGEST_QUEUE binding is missing: uploads cannot be queued' },
    searchEngine,
    embedding: provider(config.EMBEDDING_PROVIDER, 'local', circuits.embedding, {
      model: services.embedder.model,
      dimensions: services.embedder.dimensions,
    }),
    chat: provider(config.CHAT_PROVIDER, 'extractive', circuits.chat, { model: services.chat.model }),
  };
  if (services.reranker) components.reranker = provider(config.RERANK_PROVIDER, 'none', circuits.reranker, { model: services.reranker.model });
  return components;
}

/**
 * The search engine, for the default namespace: its passages and vectors, and whether its
 * vectors' dimension matches the embedder's (a mismatch is a misconfiguration).
 */
async function checkSearchEngine(services: Services, circuit: CircuitState | undefined): Promise<Component> {
  const namespace = services.config.DEFAULT_NAMESPACE;
  const result = await timed(async () => {
    // The catalog says which generation serves; when D1 fails (its own component), generation 0 is checked.
    const [serving, building] = await Promise.all([
      services.generations.serving([namespace]).catch(() => null),
      services.generations.progress(namespace).catch(() => null),
    ]);
    const { engine } = scopeTo(services, serving?.get(namespace) ?? null);
    const [counts, mismatch] = await Promise.all([engine.count(namespace), engine.misconfiguration(namespace)]);
    return { mismatch, counts, generation: serving ? indexGeneration(services, serving.get(namespace) ?? null, building) : undefined };
  });
  const { mismatch, counts, generation, ...outcome } = result;
  const { engine } = services;
  const component: Component = {
    ...outcome,
    engine: engine.name,
    dimensions: engine.dimensions,
    ...(generation !== undefined && { generation }),
    ...(counts !== undefined && {
      passages: { namespace, count: counts.passages },
      vectors: counts.vectorScope === 'namespace' ? { scope: 'namespace', namespace, count: counts.vectors } : { scope: 'index', count: counts.vectors },
      ...(counts.keywordShards !== undefined && { keywordShards: { namespace, count: counts.keywordShards } }),
    }),
    ...(circuit && { circuit }),
  };
  if (typeof mismatch === 'string') return { ...component, status: 'error', error: mismatch, misconfigured: true };
  return component;
}

/**
 * The default namespace's index generations: the serving one and its settings, the one being
 * built with its progress, and whether the configured settings call for a rebuild.
 */
function indexGeneration(services: Services, serving: Generation | null, building: BuildProgress | null) {
  const current = currentSettings(services);
  const settings = serving?.settings ?? current;
  return {
    serving: serving?.generation ?? 0,
    settings,
    building: building && { generation: building.generation, settings: building.settings, pending: building.pending, built: building.built, failed: building.failed },
    ...(!sameSettings(settings, current) &&
      !(building && sameSettings(building.settings, current)) && {
        note: 'The configured embedding model or chunking differs from what the serving generation was built with: POST /v1/reindex builds a generation with them.',
      }),
  };
}

/**
 * A chat model, embedder or reranker. The local ones need no call; a cloud one is billed per
 * call, so /status reports what is configured and what its circuit breaker says.
 */
function provider(name: string, local: string, circuit: CircuitState | undefined, details: Record<string, unknown>): Component {
  if (name === local || circuit === undefined) return { status: 'ok', provider: name, ...details };
  const base = { provider: name, ...details, circuit };
  if (circuit === 'open') {
    return { status: 'error', ...base, error: 'circuit open: recent calls failed; calls fail fast until a trial call succeeds' };
  }
  return { status: 'configured', ...base, note: 'not called by /status (each call is billed)' };
}

/**
 * With auth on and no way in, every /v1 route answers 503 (AccessControl.lockedOut): say so,
 * since with OPERATIONS_PUBLIC this is visible to anyone. D1 failing is d1's problem.
 */
async function checkWayIn(services: Services): Promise<string | null> {
  const lockedOut = await withTimeout(() => services.access.lockedOut()).catch(() => false);
  return lockedOut ? LOCKED_OUT : null;
}

interface Counts {
  documents: Record<string, number> | null;
  chunks: number | null;
  embedding: { model: string; dimensions: number; chunksByModel: Record<string, number> | null };
  warnings: string[];
}

/** Documents by status and chunks by embedding model, for admins; null where D1 did not answer. */
async function countContents(services: Services): Promise<Counts> {
  const { embedder } = services;
  const [documents, byModel] = await Promise.all([
    withTimeout(() => services.documents.countByStatus()).catch(() => null),
    withTimeout(() => services.chunks.countByModel()).catch(() => null),
  ]);
  const chunksByModel = byModel && Object.fromEntries(byModel.map((row) => [row.model, row.n]));
  const warnings: string[] = [];
  const stale = byModel?.filter((row) => row.model !== embedder.model).reduce((sum, row) => sum + row.n, 0) ?? 0;
  if (stale > 0) {
    warnings.push(`${stale} chunks were embedded with another model than ${embedder.model}: POST /v1/reindex re-embeds them`);
  }
  return {
    documents,
    chunks: byModel ? byModel.reduce((sum, row) => sum + row.n, 0) : null,
    embedding: { model: embedder.model, dimensions: embedder.dimensions, chunksByModel },
    warnings,
  };
}

/** What is configured, without a secret's value (only whether each is set). */
function configSummary({ config, embedder, chat, reranker }: Services) {
  const usesOpenAI = config.EMBEDDING_PROVIDER === 'openai' || config.CHAT_PROVIDER === 'openai';
  return {
    providers: {
      embedding: { provider: config.EMBEDDING_PROVIDER, model: embedder.model, dimensions: embedder.dimensions },
      vectorIndex: {
        provider: config.VECTOR_PROVIDER,
        defaultNamespace: config.DEFAULT_NAMESPACE,
        filterableFields: ['documentId', ...config.FILTERABLE_FIELDS],
      },
      chat: { provider: config.CHAT_PROVIDER, model: chat.model, maxTokens: config.LLM_MAX_TOKENS, temperature: config.LLM_TEMPERATURE },
      reranker: { provider: config.RERANK_PROVIDER, ...(reranker && { model: reranker.model, candidates: config.RERANK_CANDIDATES }) },
      ...(usesOpenAI && { openai: { baseUrlHost: hostOf(config.OPENAI_BASE_URL) } }),
      retries: config.PROVIDER_RETRIES,
      timeoutsMs: { embedding: config.EMBEDDING_TIMEOUT_MS, chat: config.LLM_TIMEOUT_MS },
    },
    chunking: { size: config.CHUNK_SIZE, overlap: config.CHUNK_OVERLAP },
    retrieval: {
      topK: config.DEFAULT_TOP_K,
      candidates: config.RETRIEVAL_CANDIDATES,
      fusion: { rrfK: config.RRF_K, vectorWeight: config.VECTOR_WEIGHT, keywordWeight: config.KEYWORD_WEIGHT },
    },
    uploads: { maxBytes: config.MAX_UPLOAD_BYTES, maxFiles: config.MAX_FILES_PER_UPLOAD, ingestConcurrency: config.INGEST_CONCURRENCY },
    auth: { enabled: config.AUTH_ENABLED, operationsPublic: config.OPERATIONS_PUBLIC },
    rateLimits: {
      perMinute: config.RATE_LIMIT_PER_MINUTE,
      burst: config.RATE_LIMIT_BURST,
      anonymous: config.RATE_LIMIT_ANONYMOUS,
      whenLimiterUnavailable: config.RATE_LIMIT_UNAVAILABLE,
    },
    quotas: { documents: config.QUOTA_DOCUMENTS, bytes: config.QUOTA_BYTES, passages: config.QUOTA_PASSAGES },
    cors: { origins: config.CORS_ORIGINS.length, anyOrigin: config.CORS_ORIGINS.includes('*') },
    secrets: { ADMIN_API_KEY: config.ADMIN_API_KEY ? 'set' : 'unset', OPENAI_API_KEY: config.OPENAI_API_KEY ? 'set' : 'unset' },
  };
}

// ---------------------------------------------------------------------------------------

class TimedOut extends Error {
  constructor() {
    super('timed out');
  }
}

/** What `work` resolves to, or a rejection with "timed out" after `ms`; a synchronous throw becomes a rejection. */
function withTimeout<T>(work: () => Promise<T>, ms = STATUS_CHECK_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const started = Promise.resolve().then(work);
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut()), ms);
  });
  return Promise.race([started, deadline]).finally(() => clearTimeout(timer));
}

/** Runs a check within the deadline: `ok` with what it returned, or `error` with why; both with the time taken. */
async function timed<T extends Record<string, unknown>>(check: () => Promise<T>): Promise<Component & Partial<T>> {
  const started = Date.now();
  try {
    const details = await withTimeout(check);
    return { status: 'ok', latencyMs: Date.now() - started, ...details };
  } catch (error) {
    return { status: 'error', latencyMs: Date.now() - started, error: describe(error) } as Component & Partial<T>;
  }
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message || 'failed').slice(0, 300);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'invalid';
  }
}

/** Belt and braces: no secret's value leaves /status, even inside an error message. */
function redact(text: string, config: Config): string {
  for (const secret of [config.ADMIN_API_KEY, config.OPENAI_API_KEY]) {
    if (secret) text = text.split(JSON.stringify(secret).slice(1, -1)).join('[redacted]');
  }
  return text;
}

describeRoute({
  method: 'get',
  path: '/status',
  summary: 'Readiness and, for admins, every component',
  description: 'Each dependency (D1, R2, queue, search engine, providers) with its status and latency; documents by status; the embedding model; a configuration summary without secrets.',
  access: 'operations',
  responses: {
    200: { description: 'Ready or degraded.', schema: z.object({ status: z.enum(['ready', 'degraded']), auth: z.enum(['on', 'off']) }).passthrough() },
    503: { description: 'A required component fails, or the engine is misconfigured.', schema: z.object({ status: z.enum(['unavailable', 'misconfigured']), auth: z.enum(['on', 'off']) }).passthrough() },
  },
});
