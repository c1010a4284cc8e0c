import { type CounterName, type HistogramName, METRICS, type MetricName } from './metric-definitions';

export type Labels = Record<string, string>;

export interface HistogramValue {
  /** Cumulative-free counts per bucket of the definition, then one for +Inf. */
  buckets: number[];
  sum: number;
  count: number;
}

/** What an isolate adds up between flushes: series key → value. */
export interface MetricsSnapshot {
  counters: Record<string, number>;
  histograms: Record<string, HistogramValue>;
}

/** `name{a="x",b="y"}`, labels sorted: the series' identity and its Prometheus spelling. */
export function seriesKey(name: MetricName, labels: Labels = {}): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k] as string)}"`);
  return pairs.length ? `${name}{${pairs.join(',')}}` : name;
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

export function emptySnapshot(): MetricsSnapshot {
  return { counters: {}, histograms: {} };
}

/** Adds `from` into `into` (counts and sums; buckets by position). */
export function mergeSnapshot(into: MetricsSnapshot, from: MetricsSnapshot): MetricsSnapshot {
  for (const [key, value] of Object.entries(from.counters)) into.counters[key] = (into.counters[key] ?? 0) + value;
  for (const [key, value] of Object.entries(from.histograms)) {
    const target = (into.histograms[key] ??= { buckets: value.buckets.map(() => 0), sum: 0, count: 0 });
    value.buckets.forEach((n, i) => (target.buckets[i] = (target.buckets[i] ?? 0) + n));
    target.sum += value.sum;
    target.count += value.count;
  }
  return into;
}

/**
 * This isolate's counters and histograms since its last flush. Workers run many isolates and
 * none lives long, so what is counted here is drained to the MetricsStore Durable Object every
 * few seconds (see flush.ts), off the request path; /metrics reads the sums from there.
 */
export class MetricsRecorder {
  #pending = emptySnapshot();
  #dirty = false;

  inc(name: CounterName, labels: Labels = {}, by = 1): void {
    const key = seriesKey(name, labels);
    this.#pending.counters[key] = (this.#pending.counters[key] ?? 0) + by;
    this.#dirty = true;
  }

  /** Records one observation, in seconds. */
  observe(name: HistogramName, labels: Labels, seconds: number): void {
    const bounds = METRICS[name].buckets;
    const key = seriesKey(name, labels);
    const histogram = (this.#pending.histograms[key] ??= { buckets: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 });
    const index = bounds.findIndex((bound) => seconds <= bound);
    const slot = index === -1 ? bounds.length : index;
    histogram.buckets[slot] = (histogram.buckets[slot] ?? 0) + 1;
    histogram.sum += seconds;
    histogram.count += 1;
    this.#dirty = true;
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  /** Takes what was counted since the last drain; `restore` gives it back if sending it failed. */
  drain(): MetricsSnapshot {
    const taken = this.#pending;
    this.#pending = emptySnapshot();
    this.#dirty = false;
    return taken;
  }

  restore(snapshot: MetricsSnapshot): void {
    mergeSnapshot(this.#pending, snapshot);
    this.#dirty = true;
  }
}

/** The isolate's recorder: module state lives as long as the isolate does. */
export const metrics = new MetricsRecorder();

/** A gauge's current value, read at scrape time. */
export interface GaugeSample {
  name: MetricName;
  labels: Labels;
  value: number;
}

/** Prometheus text exposition format (0.0.4) of the summed series and the gauges. */
export function renderPrometheus(totals: MetricsSnapshot, gauges: GaugeSample[]): string {
  const lines: string[] = [];
  for (const [name, definition] of Object.entries(METRICS) as [MetricName, (typeof METRICS)[MetricName]][]) {
    const series: string[] = [];
    if (definition.type === 'counter') {
      for (const [key, value] of sorted(totals.counters)) if (nameOf(key) === name) series.push(`${key} ${value}`);
    } else if (definition.type === 'histogram') {
      for (const [key, value] of sorted(totals.histograms)) if (nameOf(key) === name) series.push(...histogramLines(key, definition.buckets, value));
    } else {
      for (const gauge of gauges) if (gauge.name === name) series.push(`${seriesKey(name, gauge.labels)} ${gauge.value}`);
    }
    if (series.length === 0) continue;
    lines.push(`# HELP ${name} ${definition.help}`, `# TYPE ${name} ${definition.type}`, ...series);
  }
  return `${lines.join('\n')}\n`;
}

/** Series in a stable order (a histogram's own lines keep theirs: buckets by increasing `le`). */
function sorted<T>(series: Record<string, T>): [string, T][] {
  return Object.entries(series).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function nameOf(key: string): string {
  const brace = key.indexOf('{');
  return brace === -1 ? key : key.slice(0, brace);
}

function histogramLines(key: string, bounds: readonly number[], value: HistogramValue): string[] {
  const name = nameOf(key);
  const labels = key.slice(name.length + 1, -1); // without braces; '' when none
  const withLe = (le: string) => `${name}_bucket{${labels ? `${labels},` : ''}le="${le}"}`;
  const lines: string[] = [];
  let cumulative = 0;
  bounds.forEach((bound, i) => {
    cumulative += value.buckets[i] ?? 0;
    lines.push(`${withLe(String(bound))} ${cumulative}`);
  });
  cumulative += value.buckets[bounds.length] ?? 0;
  lines.push(`${withLe('+Inf')} ${cumulative}`);
  const suffix = labels ? `{${labels}}` : '';
  lines.push(`${name}_sum${suffix} ${value.sum}`, `${name}_count${suffix} ${value.count}`);
  return lines;
}
