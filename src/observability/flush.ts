import { inBackground } from '../background';
import { metrics, type MetricsSnapshot } from './metrics';
import type { MetricsStore } from './metrics-store';

/** How often an isolate sends what it counted: often enough for a scrape, rare enough to cost nothing. */
const FLUSH_INTERVAL_MS = 5_000;
let lastFlush = 0;

function store(namespace: DurableObjectNamespace<MetricsStore>): DurableObjectStub<MetricsStore> {
  return namespace.get(namespace.idFromName('global'));
}

/** Sends this isolate's counts to the MetricsStore now; what fails to send is kept for the next flush. */
export async function flushMetrics(namespace: DurableObjectNamespace<MetricsStore>): Promise<void> {
  if (!metrics.dirty) return;
  lastFlush = Date.now();
  const snapshot: MetricsSnapshot = metrics.drain();
  try {
    await store(namespace).add(snapshot);
  } catch (error) {
    metrics.restore(snapshot);
    console.error(JSON.stringify({ level: 'error', msg: 'metrics flush failed', error: String(error) }));
  }
}

/** Flushes in the background (waitUntil) when the interval has passed, off the request's path. */
export function flushMetricsIfDue(namespace: DurableObjectNamespace<MetricsStore>): Promise<void> {
  return metrics.dirty && Date.now() - lastFlush >= FLUSH_INTERVAL_MS ? inBackground(flushMetrics(namespace)) : Promise.resolve();
}

/** Everything counted so far, this isolate's unsent counts included. */
export async function metricTotals(namespace: DurableObjectNamespace<MetricsStore>): Promise<MetricsSnapshot> {
  await flushMetrics(namespace);
  return store(namespace).totals();
}
