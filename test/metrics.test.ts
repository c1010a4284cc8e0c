import { env, exports } from 'cloudflare:workers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { flushMetrics, metricTotals } from '../src/observability/flush';
import { createLogger } from '../src/observability/log';
import { metrics, MetricsRecorder, mergeSnapshot, renderPrometheus } from '../src/observability/metrics';
import { resilientCall } from '../src/providers/resilience';
import { AppError } from '../src/domain/errors';
import { uploadText, waitUntilSettled } from './helpers';

const call = (path: string, init?: RequestInit) => exports.default.fetch(new Request(`http://rag.test${path}`, init));
const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function scrape(): Promise<string> {
  const response = await call('/metrics');
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The sum of a counter's series, optionally only those whose labels include `match`. */
function total(text: string, name: string, match = ''): number {
  return text
    .split('\n')
    .filter((line) => (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(match))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** `promtool check metrics` (Debian package prometheus) on the text; skipped outside CI when it is not installed. */
async function promtool(text: string): Promise<{ available: boolean; code: number | null; output: string }> {
  const result = (await (await env.PROMTOOL.fetch('http://promtool/', { method: 'POST', body: text })).json()) as {
    available: boolean;
    code: number | null;
    output: string;
  };
  if (!result.available && env.CI) throw new Error('promtool is not installed: apt-get install prometheus');
  return result;
}

afterEach(() => vi.restoreAllMocks());

describe('/metrics', () => {
  it('counts every request, and passes promtool check metrics', async () => {
    const before = total(await scrape(), 'rag_http_requests_total');
    const requests: (() => Promise<Response>)[] = [
      () => call('/health'),
      () => call('/v1/query', json({ query: 'paraffin lamps' })),
      () => call('/v1/query', json({ query: 'x', topK: 1000 })), // 400
      () => call('/v1/query', { method: 'POST', body: 'not json' }), // 415
      () => call('/nowhere'), // 404
      () => call('/v1/documents?limit=5'),
      () => call('/v1/chat', json({ query: 'What burns?' })),
    ];
    const sent = 140;
    for (let i = 0; i < sent; i++) await (await requests[i % requests.length]!()).body?.cancel();
    const text = await scrape();
    // The first scrape is counted too; this one is not yet.
    expect(total(text, 'rag_http_requests_total') - before).toBe(sent + 1);
    expect(total(text, 'rag_http_requests_total', 'route="/v1/query",status="400"')).toBeGreaterThanOrEqual(20);
    expect(total(text, 'rag_http_requests_total', 'route="unmatched",status="404"')).toBeGreaterThanOrEqual(20);
    expect(text).toMatch(/^rag_http_request_duration_seconds_bucket\{route="\/v1\/query",le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^rag_http_request_duration_seconds_count\{route="\/v1\/chat"\} \d+$/m);

    const checked = await promtool(text);
    if (checked.available) expect(checked, checked.output).toMatchObject({ code: 0 });
    else console.warn('promtool is not installed: the exposition was not checked (apt-get install prometheus)');
  });

  it('reports ingestion, queue deliveries and the index by namespace', async () => {
    const namespace = `metrics${crypto.randomUUID().slice(0, 8)}`;
    const document = await uploadText({ text: 'The lamp room holds the paraffin store.', title: 'Lamp room', namespace });
    await waitUntilSettled(document.id);
    const text = await scrape();
    expect(total(text, 'rag_ingested_documents_total', 'outcome="ready"')).toBeGreaterThanOrEqual(1);
    expect(total(text, 'rag_ingested_chunks_total', 'how="embedded"')).toBeGreaterThanOrEqual(1);
    expect(total(text, 'rag_queue_deliveries_total', 'kind="ingest"')).toBeGreaterThanOrEqual(1);
    expect(text).toContain(`rag_index_documents{namespace="${namespace}",status="ready"} 1`);
    expect(text).toContain(`rag_index_passages{namespace="${namespace}"} 1`);
    expect(text).toContain(`rag_index_vectors{namespace="${namespace}"} 1`);
    const checked = await promtool(text);
    if (checked.available) expect(checked, checked.output).toMatchObject({ code: 0 });
  });

  it('sums what many isolates flush, and keeps what a failed flush could not send', async () => {
    const before = await metricTotals(env.METRICS);
    const isolates = [new MetricsRecorder(), new MetricsRecorder(), new MetricsRecorder()];
    isolates.forEach((recorder, i) => {
      recorder.inc('rag_queue_retries_total', {}, i + 1);
      recorder.observe('rag_provider_call_duration_seconds', { provider: 'test' }, 0.02 * (i + 1));
    });
    const store = env.METRICS.get(env.METRICS.idFromName('global'));
    for (const recorder of isolates) await store.add(recorder.drain());
    const after = await metricTotals(env.METRICS);
    expect((after.counters.rag_queue_retries_total ?? 0) - (before.counters.rag_queue_retries_total ?? 0)).toBe(6);
    const histogram = after.histograms['rag_provider_call_duration_seconds{provider="test"}'];
    expect(histogram?.count).toBe(3);
    expect(histogram?.sum).toBeCloseTo(0.12);

    metrics.inc('rag_queue_dead_lettered_total');
    const broken = { idFromName: () => env.METRICS.idFromName('x'), get: () => ({ add: async () => Promise.reject(new Error('unreachable')) }) };
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    await flushMetrics(broken as never);
    expect(metrics.dirty).toBe(true);
    await flushMetrics(env.METRICS);
    expect(total(await scrape(), 'rag_queue_dead_lettered_total')).toBe(1);
  });

  it('counts provider calls, errors and retries', async () => {
    let attempts = 0;
    const flaky = () => (++attempts < 3 ? Promise.reject(new AppError('provider_error', 'busy', { retryable: true })) : Promise.resolve('ok'));
    await resilientCall('test-provider', flaky, { retries: 3, timeoutMs: 1_000, sleep: async () => undefined });
    await resilientCall('test-provider', () => Promise.reject(new AppError('bad_request', 'no')), { retries: 3, timeoutMs: 1_000 }).catch(() => undefined);
    const text = await scrape();
    expect(total(text, 'rag_provider_calls_total', 'outcome="ok",provider="test-provider"')).toBe(1);
    expect(total(text, 'rag_provider_calls_total', 'outcome="error",provider="test-provider"')).toBe(1);
    expect(total(text, 'rag_provider_retries_total', 'provider="test-provider"')).toBe(2);
  });

  it('renders label values safely and merges histograms bucket by bucket', () => {
    const recorder = new MetricsRecorder();
    recorder.inc('rag_http_requests_total', { route: 'a"b\\c\nd', method: 'GET', status: '200' });
    const text = renderPrometheus(recorder.drain(), []);
    expect(text).toContain('rag_http_requests_total{method="GET",route="a\\"b\\\\c\\nd",status="200"} 1');
    const a = { counters: {}, histograms: { h: { buckets: [1, 0, 2], sum: 3, count: 3 } } };
    expect(mergeSnapshot(a, { counters: { c: 2 }, histograms: { h: { buckets: [0, 1, 1], sum: 1, count: 2 } } })).toEqual({
      counters: { c: 2 },
      histograms: { h: { buckets: [1, 1, 3], sum: 4, count: 5 } },
    });
  });
});

describe('request ids and logs', () => {
  it('returns an id on every response, keeps a client id, and logs one JSON line per request with it', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => void lines.push(String(line)));
    const mine = await call('/v1/query', { ...json({ query: 'lamps' }), headers: { 'content-type': 'application/json', 'x-request-id': 'client-id-42' } });
    expect(mine.headers.get('X-Request-Id')).toBe('client-id-42');
    const fresh = await call('/nowhere', { headers: { 'x-request-id': 'bad id with spaces' } });
    const id = fresh.headers.get('X-Request-Id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.msg === 'request');
    expect(logged.find((l) => l.requestId === 'client-id-42')).toMatchObject({ method: 'POST', route: '/v1/query', status: 200, key: null, ms: expect.any(Number) });
    expect(logged.find((l) => l.requestId === id)).toMatchObject({ route: 'unmatched', status: 404 });
    expect(lines.join('\n')).not.toContain('lamps'); // no query text in info logs
  });

  it('honours LOG_LEVEL', () => {
    const out: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => void out.push(String(line)));
    vi.spyOn(console, 'warn').mockImplementation((line: unknown) => void out.push(String(line)));
    const log = createLogger('warn');
    log.info('dropped');
    log.debug('dropped');
    log.warn('kept', { n: 1 });
    expect(out.map((line) => JSON.parse(line).msg)).toEqual(['kept']);
  });
});
