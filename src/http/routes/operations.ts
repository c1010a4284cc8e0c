import { Hono } from 'hono';
import type { AppEnv } from '../app-env';
import { hasScope } from '../../security/principal';
import { guard } from '../guard';

export const operationsRoutes = new Hono<AppEnv>();

/** /status and /metrics answer without a key when OPERATIONS_PUBLIC is set (a key sent is still checked). */
const operationsOpen = (c: { var: AppEnv['Variables'] }) => c.var.services.config.OPERATIONS_PUBLIC;

/** Liveness: no binding calls and no key, so it stays cheap under load. */
operationsRoutes.get('/health', (c) => c.json({ status: 'ok' }));

/**
 * Readiness. Any key may ask whether the engine is ready and whether auth is on; counts,
 * providers and problems across every namespace are for admins.
 */
operationsRoutes.get('/status', guard('read', { open: operationsOpen }), async (c) => {
  const { services, principal } = c.var;
  const namespace = services.config.DEFAULT_NAMESPACE;
  const mismatch = await services.vectors.dimensionMismatch(namespace);
  const summary = { status: mismatch ? 'misconfigured' : 'ready', auth: services.config.AUTH_ENABLED ? 'on' : 'off' };
  if (!hasScope(principal, 'admin')) return c.json(summary, mismatch ? 503 : 200);
  const [documents, chunks, vectors] = await Promise.all([
    services.documents.countByStatus(),
    services.chunks.count(),
    services.vectors.count(namespace),
  ]);
  return c.json(
    {
      ...summary,
      ...(mismatch && { problems: [mismatch] }),
      documents,
      chunks,
      vectors: { namespace, count: vectors },
      providers: {
        embedding: { model: services.embedder.model, dimensions: services.embedder.dimensions },
        vectorIndex: { provider: services.config.VECTOR_PROVIDER, dimensions: services.vectors.dimensions },
        chat: { model: services.chat.model },
        reranker: services.reranker ? { model: services.reranker.model } : null,
      },
    },
    mismatch ? 503 : 200,
  );
});

/** Prometheus text format; counts across every namespace, so admin-only unless OPERATIONS_PUBLIC. */
operationsRoutes.get('/metrics', guard('admin', { open: operationsOpen }), async (c) => {
  const { services } = c.var;
  const [documents, chunks] = await Promise.all([services.documents.countByStatus(), services.chunks.count()]);
  const lines = [
    '# HELP rag_documents Documents by ingestion status.',
    '# TYPE rag_documents gauge',
    ...Object.entries(documents).map(([status, n]) => `rag_documents{status="${status}"} ${n}`),
    '# HELP rag_chunks Chunks in the keyword index.',
    '# TYPE rag_chunks gauge',
    `rag_chunks ${chunks}`,
  ];
  return c.text(`${lines.join('\n')}\n`, 200, { 'content-type': 'text/plain; version=0.0.4' });
});
