import { Hono } from 'hono';
import type { AppEnv } from '../app-env';

export const operationsRoutes = new Hono<AppEnv>();

/** Liveness: no binding calls, so it stays cheap under load. */
operationsRoutes.get('/health', (c) => c.json({ status: 'ok' }));

/** Readiness: every store answers, with counts. */
operationsRoutes.get('/status', async (c) => {
  const { services } = c.var;
  const namespace = services.config.DEFAULT_NAMESPACE;
  const [documents, chunks, vectors, mismatch] = await Promise.all([
    services.documents.countByStatus(),
    services.chunks.count(),
    services.vectors.count(namespace),
    services.vectors.dimensionMismatch(namespace),
  ]);
  return c.json({
    status: mismatch ? 'misconfigured' : 'ready',
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
  }, mismatch ? 503 : 200);
});

/** Prometheus text format. */
operationsRoutes.get('/metrics', async (c) => {
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
