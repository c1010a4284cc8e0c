import { Hono } from 'hono';
import { metricTotals } from '../../observability/flush';
import { type GaugeSample, renderPrometheus } from '../../observability/metrics';
import { servingScope } from '../../retrieval/generations';
import type { Services } from '../../services';
import type { AppEnv } from '../app-env';
import { guard } from '../guard';
import { describeRoute } from '../openapi';

/** Namespaces whose local vector count /metrics reads (one Durable Object call each). */
const MAX_VECTOR_NAMESPACES = 50;

export const metricsRoutes = new Hono<AppEnv>();

/**
 * Prometheus text format: the counters and histograms of every isolate (summed in the
 * MetricsStore Durable Object) and the index's sizes from the catalog. Counts span every
 * namespace, so admin-only unless OPERATIONS_PUBLIC.
 */
metricsRoutes.get('/', guard('admin', { open: (c) => c.var.services.config.OPERATIONS_PUBLIC }), async (c) => {
  const { services } = c.var;
  const [totals, gauges] = await Promise.all([metricTotals(c.env.METRICS), indexGauges(services)]);
  return c.text(renderPrometheus(totals, gauges), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
});

async function indexGauges(services: Services): Promise<GaugeSample[]> {
  const [documents, passages] = await Promise.all([services.documents.countByNamespaceAndStatus(), services.chunks.countByNamespace()]);
  const gauges: GaugeSample[] = [
    ...documents.map(({ namespace, status, n }) => ({ name: 'rag_index_documents' as const, labels: { namespace, status }, value: n })),
    ...passages.map(({ namespace, n }) => ({ name: 'rag_index_passages' as const, labels: { namespace }, value: n })),
  ];
  // Only an engine that counts vectors per namespace has a figure per namespace (Vectorize counts its whole index).
  const namespaces = [...new Set(documents.map((d) => d.namespace))].slice(0, MAX_VECTOR_NAMESPACES);
  const counts = await Promise.all(namespaces.map(async (namespace) => (await servingScope(services, namespace)).engine.count(namespace)));
  namespaces.forEach((namespace, i) => {
    const count = counts[i];
    if (count?.vectorScope === 'namespace') gauges.push({ name: 'rag_index_vectors', labels: { namespace }, value: count.vectors });
  });
  return gauges;
}

describeRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics, summed across isolates',
  access: 'operations',
  responses: { 200: { description: 'Prometheus text format 0.0.4.', contentType: 'text/plain' } },
});
