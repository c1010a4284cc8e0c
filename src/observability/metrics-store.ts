import { DurableObject } from 'cloudflare:workers';
import { emptySnapshot, mergeSnapshot, type MetricsSnapshot } from './metrics';

const TOTALS = 'totals';

/**
 * The sums of every isolate's counters and histograms: one object, named "global", that
 * isolates flush into every few seconds (a handful of small calls per isolate a minute), and
 * that /metrics reads. Kept in SQLite-backed storage, so totals survive restarts as
 * Prometheus counters should.
 */
export class MetricsStore extends DurableObject<Env> {
  add(snapshot: MetricsSnapshot): void {
    const totals = this.ctx.storage.kv.get<MetricsSnapshot>(TOTALS) ?? emptySnapshot();
    this.ctx.storage.kv.put(TOTALS, mergeSnapshot(totals, snapshot));
  }

  totals(): MetricsSnapshot {
    return this.ctx.storage.kv.get<MetricsSnapshot>(TOTALS) ?? emptySnapshot();
  }
}
