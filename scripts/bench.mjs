#!/usr/bin/env node
// Small end-to-end benchmark (a few minutes) against a running engine; prints one table.
//
//   npm run bench -- [--url http://127.0.0.1:8787] [--data ../shared/data/scifact]
//     [--queries 100] [--others 1000] [--namespace bench-<time>] [--keep] [--api-key K]
//
// (a) ingest: the documents judged for the first --queries SciFact test queries plus
//     --others unjudged ones (spread evenly over the corpus), into a fresh namespace;
//     time until every one is settled (ready or failed);
// (b) retrieval quality of those queries in hybrid, vector and keyword modes
//     (nDCG@10, Recall@10, MRR@10 on the subset — higher than on the full corpus, which
//     has 4× as many distractors; compare runs of this script with each other only);
// (c) /v1/query vs /health: latency p50/p99 at concurrency 1 and throughput at
//     concurrency 10 (through scripts/loadtest.mjs --json when present, else a small
//     bounded loop here).
// The namespace is deleted afterwards unless --keep.
// --api-key K is sent as `Authorization: Bearer K` on every request but /health, and passed
// on to scripts/loadtest.mjs (the engine with auth on wants a key with the read and write
// scopes); a refused key stops the run with the engine's reason.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  authHeaders,
  checkEngine,
  commandLine,
  fmt,
  idMap,
  loadBeir,
  refusal,
  resolveTopK,
  runQueries,
  table,
  upload,
  waitUntilSettled,
} from './eval.mjs';
import { evaluate, mrrAt, ndcgAt, percentile, recallAt } from './lib/metrics.mjs';

const HERE = resolve(fileURLToPath(import.meta.url), '..');
const USAGE = `usage: npm run bench -- [--url URL] [--data DIR] [--queries 100] [--others 1000]
       [--namespace bench-<time>] [--keep] [--api-key K]`;
const args = commandLine(
  {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    data: { type: 'string', default: resolve(HERE, '../../shared/data/scifact') },
    queries: { type: 'string', default: '100' },
    others: { type: 'string', default: '1000' },
    namespace: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  USAGE,
);
const url = args.url.replace(/\/$/, '');
const log = (...parts) => console.error(...parts);
const started = performance.now();
const fail = (error) => {
  console.error(error.message);
  process.exit(1);
};

await checkEngine(url).catch(fail);

// ── (a) ingest ────────────────────────────────────────────────────────────────────────
const data = loadBeir(args.data, 'test');
const queryIds = [...data.qrels.keys()].slice(0, Number(args.queries));
const judged = new Set(queryIds.flatMap((id) => [...data.qrels.get(id).keys()]));
const unjudged = data.corpus.filter((d) => !judged.has(String(d._id)));
const step = Math.max(1, Math.floor(unjudged.length / Number(args.others)));
const others = unjudged.filter((_, i) => i % step === 0).slice(0, Number(args.others));
const subset = [...data.corpus.filter((d) => judged.has(String(d._id))), ...others];
const namespace = args.namespace ?? `bench-${Date.now().toString(36)}`;

log(`(a) uploading ${subset.length} documents (${judged.size} judged + ${others.length} others) to ${namespace}…`);
const t0 = performance.now();
const uploaded = await upload(url, namespace, subset).catch(fail);
const uploadS = (performance.now() - t0) / 1000;
const { failed } = await waitUntilSettled(url, namespace, { intervalMs: 100 }).catch(fail);
const readyS = (performance.now() - t0) / 1000;

// ── (b) quality ───────────────────────────────────────────────────────────────────────
const ids = idMap(namespace, subset);
const topK = await resolveTopK(url, namespace, 100).catch(fail);
const qrels = new Map(queryIds.map((id) => [id, data.qrels.get(id)]));
const items = queryIds.filter((id) => data.queries.has(id)).map((id) => [id, data.queries.get(id)]);
const metrics = [
  { name: 'nDCG@10', fn: ndcgAt, k: 10 },
  { name: 'R@10', fn: recallAt, k: 10 },
  { name: 'MRR@10', fn: mrrAt, k: 10 },
];
const quality = {};
for (const mode of ['hybrid', 'vector', 'keyword']) {
  log(`(b) ${items.length} queries, ${mode}…`);
  const run = await runQueries(url, items, { namespace, mode, topK, concurrency: 4, ids });
  quality[mode] = { ...evaluate(run.runs, qrels, metrics), errors: run.errors };
}

// ── (c) latency and throughput ────────────────────────────────────────────────────────
const loadtest = resolve(HERE, 'loadtest.mjs');
const queryTexts = items.map(([, text]) => text);

/** { query: {p50, p99, rps, ok, n}, health: {…} } at a concurrency. */
async function load(concurrency, requests, durationS) {
  if (existsSync(loadtest)) {
    const out = spawnSync(
      process.execPath,
      [loadtest, '--url', url, '--namespace', namespace, '--concurrency', String(concurrency), '--requests', String(requests),
        '--duration', String(durationS), '--compare-health', '--json', ...(args['api-key'] ? ['--api-key', args['api-key']] : [])],
      { encoding: 'utf8', maxBuffer: 16 << 20 },
    );
    try {
      const { runs } = JSON.parse(out.stdout);
      const pick = (r) => ({ p50: r.latencyMs.p50, p99: r.latencyMs.p99, rps: r.requestsPerSecond, ok: r.succeeded, n: r.issued });
      return { via: 'scripts/loadtest.mjs', health: pick(runs.find((r) => r.endpoint === 'health')), query: pick(runs.find((r) => r.endpoint === 'query')) };
    } catch {
      log(`scripts/loadtest.mjs gave no usable JSON (exit ${out.status}); using the built-in loop`);
    }
  }
  return { via: 'built-in loop', health: await loop('health', concurrency, requests, durationS), query: await loop('query', concurrency, requests, durationS) };
}

/** Bounded loop: at most `requests` requests or `durationS` seconds. */
async function loop(target, concurrency, requests, durationS) {
  const latencies = [];
  let issued = 0;
  let ok = 0;
  const start = performance.now();
  const deadline = start + durationS * 1000;
  async function worker() {
    while (issued < requests && performance.now() < deadline) {
      const n = issued++;
      const init =
        target === 'health'
          ? {}
          : {
              method: 'POST',
              headers: { ...authHeaders, 'content-type': 'application/json' },
              body: JSON.stringify({ query: queryTexts[n % queryTexts.length], namespace }),
            };
      const t = performance.now();
      try {
        const response = await fetch(`${url}${target === 'health' ? '/health' : '/v1/query'}`, { ...init, signal: AbortSignal.timeout(30_000) });
        await response.arrayBuffer();
        latencies.push(performance.now() - t);
        if (response.ok) ok++;
      } catch {
        /* counted as not ok */
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rps: latencies.length / seconds, ok, n: issued };
}

log('(c) latency at concurrency 1…');
const c1 = await load(1, 200, 30);
log('(c) throughput at concurrency 10…');
const c10 = await load(10, 1000, 15);

const q = (mode) => `nDCG@10 ${fmt(quality[mode]['nDCG@10'], 3)} · R@10 ${fmt(quality[mode]['R@10'], 3)} · MRR@10 ${fmt(quality[mode]['MRR@10'], 3)}${quality[mode].errors ? ` · ${quality[mode].errors} errors` : ''}`;
const lat = (r) => `p50 ${fmt(r.p50, 1)} ms · p99 ${fmt(r.p99, 1)} ms (${r.ok}/${r.n} ok)`;
const rps = (r) => `${fmt(r.rps, 1)} req/s (${r.ok}/${r.n} ok)`;
const rows = [
  { part: '(a) ingest', measure: `${subset.length} SciFact docs (${judged.size} judged + ${others.length} others), JSON bulk 50/request ×4`, value: `uploads done ${uploadS.toFixed(1)} s · all settled ${readyS.toFixed(1)} s · ${failed} failed · ${uploaded.failedUploads} refused` },
  { part: '(b) quality', measure: `hybrid, ${items.length} test queries, top ${topK} passages → docs`, value: q('hybrid') },
  { part: '(b) quality', measure: 'vector', value: q('vector') },
  { part: '(b) quality', measure: 'keyword', value: q('keyword') },
  { part: '(c) latency c=1', measure: 'POST /v1/query (hybrid, default topK)', value: lat(c1.query) },
  { part: '(c) latency c=1', measure: 'GET /health', value: lat(c1.health) },
  { part: '(c) throughput c=10', measure: 'POST /v1/query', value: rps(c10.query) },
  { part: '(c) throughput c=10', measure: 'GET /health', value: `${rps(c10.health)} · query/health ${fmt(c10.query.rps / c10.health.rps, 3)}` },
];
console.log(table(rows));
console.log(`engine ${url} · namespace ${namespace} · load via ${c1.via} · ${((performance.now() - started) / 1000).toFixed(1)} s`);

// ── cleanup (after the report, so a failure here loses nothing) ──────────────────────
if (!args.keep) {
  const t = performance.now();
  const toDelete = [...ids.keys()];
  let next = 0;
  let deleted = 0;
  let refused = null; // a refused key refuses every delete alike: stop at the first
  const remove = async (id) => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const response = await fetch(`${url}/v1/documents/${id}`, { method: 'DELETE', headers: { ...authHeaders } });
        const text = await response.text();
        if (response.ok || response.status === 404) return response.ok;
        const why = refusal(response.status, text);
        if (why) {
          refused = why;
          return false;
        }
      } catch {
        /* retried */
      }
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
    return false;
  };
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < toDelete.length && !refused) if (await remove(toDelete[next++])) deleted++;
    }),
  );
  if (refused) log(`cleanup stopped: ${refused}`);
  log(`cleanup: ${deleted}/${toDelete.length} documents of ${namespace} deleted in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
