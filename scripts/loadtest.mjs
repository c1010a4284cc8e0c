#!/usr/bin/env node
// Load test for the engine's HTTP API (successor of the old test_scalability.py).
//
//   node scripts/loadtest.mjs [--url http://127.0.0.1:8787] [--requests 1000] [--concurrency 10]
//     [--duration S] [--endpoint health|query|chat] [--chat-test] [--api-key K] [--namespace ns] [--mode M]
//     [--queries FILE] [--timeout 30] [--compare-health] [--json]
//
// C workers share a budget of N requests over keep-alive connections (Node's fetch pools
// them). Every run is bounded: it stops issuing requests after --duration seconds (default
// 60) even if requests remain, and each request is aborted after --timeout seconds.
// Query and chat bodies cycle through the texts of a BEIR queries.jsonl (default: SciFact).
// A request's latency runs from sending it to reading its whole body. Percentiles are exact
// (nearest rank over every completed response, whatever its status). requests/s counts
// completed responses over the run's wall time.
// --compare-health runs the same load against /health first, then against the endpoint,
// and prints endpoint req/s ÷ health req/s (team target: query ≥ 0.35 × health at concurrency 50).
// Exit code: 0 every request answered 2xx; 1 some did not; 2 bad arguments.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const USAGE = `usage: node scripts/loadtest.mjs [--url URL] [--requests N] [--concurrency C] [--duration S]
       [--endpoint health|query|chat] [--chat-test] [--api-key K] [--namespace ns] [--mode hybrid|vector|keyword] [--queries FILE]
       [--timeout S] [--compare-health] [--json]`;
const DEFAULT_DURATION_S = 60;
const HEALTH_TARGET = 0.35;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      requests: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '10' },
      duration: { type: 'string' },
      endpoint: { type: 'string', default: 'query' },
      'chat-test': { type: 'boolean', default: false },
      'api-key': { type: 'string' },
      namespace: { type: 'string' },
      mode: { type: 'string' },
      queries: { type: 'string', default: new URL('../../shared/data/scifact/queries.jsonl', import.meta.url).pathname },
      timeout: { type: 'string', default: '30' },
      'compare-health': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (error) {
  usage(error.message);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

let base;
try {
  base = new URL(args.url);
} catch {
  usage(`--url: not a URL: ${args.url}`);
}
if (base.protocol !== 'http:' && base.protocol !== 'https:') usage('--url must be http(s)');
const baseUrl = base.href.replace(/\/+$/, '');

const endpoint = args['chat-test'] ? 'chat' : args.endpoint;
if (!['health', 'query', 'chat'].includes(endpoint)) usage('--endpoint is health, query or chat');
if (args['chat-test'] && args.endpoint !== 'query' && args.endpoint !== 'chat') usage('--chat-test contradicts --endpoint');
const totalRequests = int(args.requests, '--requests');
const concurrency = int(args.concurrency, '--concurrency');
const durationS = args.duration === undefined ? DEFAULT_DURATION_S : num(args.duration, '--duration');
const timeoutMs = num(args.timeout, '--timeout') * 1000;
if (args.mode !== undefined && !['hybrid', 'vector', 'keyword'].includes(args.mode)) usage('--mode is hybrid, vector or keyword');
if (args.namespace !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(args.namespace)) {
  usage('--namespace: 1-64 letters, digits, _ or -');
}
const authHeaders = args['api-key'] ? { authorization: `Bearer ${args['api-key']}` } : {};

let queries = [];
if (endpoint !== 'health') {
  try {
    queries = readFileSync(args.queries, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l).text)
      .filter((t) => typeof t === 'string' && t.trim());
  } catch (error) {
    usage(`--queries ${args.queries}: ${error.code ?? error.message}`);
  }
  if (queries.length === 0) usage(`--queries ${args.queries}: no "text" fields`);
}

const log = args.json ? () => {} : (line) => console.log(line);
const config = {
  url: baseUrl,
  requests: totalRequests,
  concurrency,
  durationCapS: durationS,
  timeoutS: timeoutMs / 1000,
  namespace: args.namespace ?? null,
  queries: endpoint === 'health' ? null : { file: args.queries, count: queries.length },
};

const runs = [];
if (args['compare-health']) {
  runs.push(await run('health'));
  if (endpoint !== 'health') runs.push(await run(endpoint));
} else {
  runs.push(await run(endpoint));
}

let comparison = null;
if (args['compare-health'] && runs.length === 2) {
  const [health, other] = runs;
  const ratio = health.requestsPerSecond > 0 ? other.requestsPerSecond / health.requestsPerSecond : null;
  comparison = {
    endpoint,
    healthRequestsPerSecond: health.requestsPerSecond,
    endpointRequestsPerSecond: other.requestsPerSecond,
    ratio,
    target: HEALTH_TARGET,
    targetConcurrency: 50,
    meetsTarget: ratio !== null && ratio >= HEALTH_TARGET,
  };
  log(
    `\n${endpoint} / health throughput: ${other.requestsPerSecond.toFixed(1)} / ${health.requestsPerSecond.toFixed(1)} req/s = ` +
      `${ratio === null ? 'n/a' : ratio.toFixed(3)}  (target ≥ ${HEALTH_TARGET} at concurrency 50: ` +
      `${comparison.meetsTarget ? 'met' : 'NOT met'}${concurrency !== 50 ? `; this run used concurrency ${concurrency}` : ''})`,
  );
}

if (args.json) console.log(JSON.stringify({ config, runs, comparison }, null, 2));
process.exit(runs.every((r) => r.succeeded === r.issued) ? 0 : 1);

// ─────────────────────────────────────────────────────────────────────────────────────

async function run(target) {
  const path = target === 'health' ? '/health' : `/v1/${target}`;
  const url = `${baseUrl}${path}`;
  const latencies = [];
  const statuses = {};
  const errors = {};
  let networkErrors = 0;
  let aborted = 0; // requests cut off by the duration cap
  let succeeded = 0;
  let issued = 0;
  let stoppedByDuration = false;

  const started = performance.now();
  const deadline = started + durationS * 1000;
  // In-flight requests get at most --timeout past the deadline; then the run ends regardless.
  const hardStop = new AbortController();
  const hardTimer = setTimeout(() => hardStop.abort(new Error('duration cap')), durationS * 1000 + timeoutMs);

  async function worker() {
    for (;;) {
      if (issued >= totalRequests) return;
      if (performance.now() >= deadline) {
        stoppedByDuration = true;
        return;
      }
      const n = issued++;
      const init = { headers: { ...authHeaders }, signal: AbortSignal.any([hardStop.signal, AbortSignal.timeout(timeoutMs)]) };
      if (target !== 'health') {
        init.method = 'POST';
        init.headers['content-type'] = 'application/json';
        const body = { query: queries[n % queries.length] };
        if (args.namespace !== undefined) body.namespace = args.namespace;
        if (args.mode !== undefined) body.mode = args.mode;
        init.body = JSON.stringify(body);
      }
      const t0 = performance.now();
      try {
        const response = await fetch(url, init);
        await response.arrayBuffer();
        latencies.push(performance.now() - t0);
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        if (response.ok) succeeded++;
      } catch (error) {
        if (hardStop.signal.aborted) {
          aborted++;
        } else {
          networkErrors++;
          const key = error.name === 'TimeoutError' ? `timeout after ${timeoutMs / 1000} s` : (error.cause?.code ?? error.cause?.message ?? error.message);
          errors[key] = (errors[key] ?? 0) + 1;
        }
      }
    }
  }

  log(`\n${target}: ${target === 'health' ? 'GET' : 'POST'} ${url} — ${totalRequests} requests, concurrency ${concurrency}, cap ${durationS} s`);
  await Promise.all(Array.from({ length: Math.min(concurrency, totalRequests) }, worker));
  clearTimeout(hardTimer);
  const elapsedS = (performance.now() - started) / 1000;

  latencies.sort((a, b) => a - b);
  const completed = latencies.length;
  const pct = (p) => (completed ? latencies[Math.max(0, Math.ceil((p / 100) * completed) - 1)] : null);
  const result = {
    endpoint: target,
    path,
    issued,
    completed,
    succeeded,
    networkErrors,
    abortedAtCap: aborted,
    stoppedByDuration,
    totalSeconds: round(elapsedS, 3),
    requestsPerSecond: round(completed / elapsedS, 2),
    successRate: issued ? round(succeeded / issued, 4) : null,
    latencyMs: {
      avg: completed ? round(latencies.reduce((s, x) => s + x, 0) / completed, 2) : null,
      min: completed ? round(latencies[0], 2) : null,
      p50: round(pct(50), 2),
      p95: round(pct(95), 2),
      p99: round(pct(99), 2),
      max: completed ? round(latencies[completed - 1], 2) : null,
    },
    statusCodes: statuses,
    errors,
  };
  const l = result.latencyMs;
  log(`  requests      ${issued} issued, ${completed} answered, ${networkErrors} network errors${aborted ? `, ${aborted} cut off at the cap` : ''}${stoppedByDuration ? ` (stopped by the ${durationS} s cap)` : ''}`);
  log(`  total time    ${elapsedS.toFixed(2)} s`);
  log(`  throughput    ${result.requestsPerSecond.toFixed(1)} req/s`);
  log(`  success rate  ${result.successRate === null ? 'n/a' : `${(100 * result.successRate).toFixed(2)} %`} (${succeeded}/${issued} answered 2xx)`);
  log(`  latency ms    avg ${fmt(l.avg)}  p50 ${fmt(l.p50)}  p95 ${fmt(l.p95)}  p99 ${fmt(l.p99)}  max ${fmt(l.max)}`);
  log(`  status codes  ${Object.entries(statuses).map(([s, n]) => `${s}: ${n}`).join(', ') || 'none'}${networkErrors ? `; network errors: ${networkErrors}` : ''}`);
  for (const [k, n] of Object.entries(errors)) log(`    ${n} × ${k}`);
  for (const status of [401, 403]) {
    if (statuses[status]) {
      const hint = args['api-key'] ? 'check that --api-key is valid and has the scope and namespace this needs' : 'pass --api-key';
      log(`  the engine refused the API key (${status}) ${statuses[status]} times: ${hint}`);
    }
  }
  return result;
}

function round(x, digits) {
  return x === null ? null : Number(x.toFixed(digits));
}

function fmt(x) {
  return x === null ? '-' : x.toFixed(1);
}

function int(text, name) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) usage(`${name} must be a positive integer`);
  return n;
}

function num(text, name) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) usage(`${name} must be a positive number of seconds`);
  return n;
}

function usage(message) {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}
