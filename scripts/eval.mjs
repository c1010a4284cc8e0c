#!/usr/bin/env node
// BEIR-format retrieval evaluation through the HTTP API.
//
//   node scripts/eval.mjs [--url http://127.0.0.1:8787] [--data ../shared/data/scifact]
//     [--split test|train] [--namespace beir-<dataset>] [--mode hybrid|vector|keyword]
//     [--top-k 100] [--limit-queries N] [--skip-ingest] [--concurrency 4] [--api-key K] [--json]
//     [--save-runs FILE] [--compare-runs FILE]
//
// Uploads the corpus (JSON bulk, metadata { corpusId }) unless --skip-ingest or the
// namespace already holds it, waits until nothing of the namespace is queued or processing,
// runs every query of the qrels split and prints nDCG@10, Recall@10, Recall@<k>, MRR@10
// (trec_eval definitions, as BEIR) and client-side query latency. --save-runs writes each
// query's top 10 documents to FILE; --compare-runs counts the queries whose top 10 equals
// FILE's (e.g. the same corpus on two engines, or on one keyword shard and on four).
//
// Passages are chunks; a corpus document may have several. Results are collapsed to
// documents keeping each one's best rank. The API caps topK (50 at the time of writing,
// src/http/routes/retrieval.ts): a larger --top-k is probed and, if refused, the cap is
// used and the deep recall is reported as Recall@<cap>, never labelled Recall@100.
//
// --api-key K is sent as `Authorization: Bearer K` on every request but /health (the engine
// with auth on wants a key with the read scope, and write to upload). A 401/403 stops the run
// with the engine's reason.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { collapseToDocuments, evaluate, parseQrels, percentile, standardMetrics } from './lib/metrics.mjs';

const REPO = resolve(fileURLToPath(import.meta.url), '../..');
/** The API's limit on topK (src/http/routes/retrieval.ts), used when a larger value is refused. */
export const API_MAX_TOP_K = 100;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...parts) => console.error(...parts);

const USAGE = `usage: node scripts/eval.mjs [--url URL] [--data DIR] [--split test|train] [--namespace ns]
       [--mode hybrid|vector|keyword] [--top-k 100] [--limit-queries N] [--skip-ingest]
       [--concurrency 4] [--api-key K] [--json] [--save-runs FILE] [--compare-runs FILE]`;

/**
 * Headers every request to the engine made here carries, but /health: `authorization` once
 * setApiKey has been given a key, nothing otherwise. Scripts with their own requests spread it too.
 */
export const authHeaders = {};

/** Sends `key` as `Authorization: Bearer <key>` from now on; no key (undefined or '') sends none. */
function setApiKey(key) {
  delete authHeaders.authorization;
  if (key) authHeaders.authorization = `Bearer ${key}`;
}

/**
 * Parses a script's options plus `--api-key K` (then sent on every request, see setApiKey)
 * and `--help`: prints USAGE and exits 0 for --help, 2 for a bad option.
 */
export function commandLine(options, usage) {
  let values;
  try {
    ({ values } = parseArgs({
      options: { ...options, 'api-key': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    }));
  } catch (error) {
    console.error(`${error.message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  setApiKey(values['api-key']);
  return values;
}

/** Whether an answer with this status may be a refused key (read its body with `refusal`). */
export const mayBeRefusal = (status) => status === 401 || status === 403;

/**
 * For an answer that refused the request's key (or its lack of one), a readable message with
 * the engine's reason; null for any other answer (a 403 quota_exceeded is not about keys).
 */
export function refusal(status, text = '') {
  if (!mayBeRefusal(status)) return null;
  let error;
  try {
    error = JSON.parse(text)?.error;
  } catch {
    /* not JSON */
  }
  if (error?.code === 'quota_exceeded') return null;
  const hint = authHeaders.authorization ? 'check that --api-key is valid and has the scope and namespace this needs' : 'pass --api-key';
  return `the engine refused the API key (${status}): ${hint}${typeof error?.message === 'string' ? ` (${error.message})` : ''}`;
}

function readJsonl(path) {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

/** Loads a BEIR dataset directory: corpus (array), queries (Map id → text), qrels (Map). */
export function loadBeir(dir, split = 'test') {
  return {
    name: basename(resolve(dir)),
    corpus: readJsonl(`${dir}/corpus.jsonl`),
    queries: new Map(readJsonl(`${dir}/queries.jsonl`).map((q) => [String(q._id), q.text])),
    qrels: parseQrels(readFileSync(`${dir}/qrels/${split}.tsv`, 'utf8')),
  };
}

/** The engine's document id: sha256(namespace + "\0" + UTF-8 bytes), first 32 hex chars (src/ingestion/upload.ts). */
export function documentId(namespace, text) {
  return createHash('sha256').update(`${namespace}\u0000`).update(Buffer.from(text, 'utf8')).digest('hex').slice(0, 32);
}

/** Map engine document id → corpus ids (identical texts share one engine document). */
export function idMap(namespace, corpus) {
  const map = new Map();
  for (const doc of corpus) {
    const id = documentId(namespace, doc.text);
    if (!map.has(id)) map.set(id, []);
    map.get(id).push(String(doc._id));
  }
  return map;
}

/** Throws a readable error when no engine answers at `url`. */
export async function checkEngine(url) {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  } catch (error) {
    throw new Error(`No engine answers at ${url} (${error.cause?.code ?? error.message}). Start one with \`npm start\` or pass --url.`);
  }
}

async function exists(url, id) {
  const response = await fetch(`${url}/v1/documents/${id}`, { headers: { ...authHeaders } });
  if (mayBeRefusal(response.status)) {
    const refused = refusal(response.status, await response.text());
    if (refused) throw new Error(refused);
    return false;
  }
  await response.body?.cancel();
  return response.status === 200;
}

/** True when the first and last corpus documents are already in the namespace. */
export async function alreadyLoaded(url, namespace, corpus) {
  if (corpus.length === 0) return true;
  const first = corpus[0];
  const last = corpus[corpus.length - 1];
  return (await exists(url, documentId(namespace, first.text))) && (await exists(url, documentId(namespace, last.text)));
}

/** Uploads docs in JSON bulk batches; returns { uploaded, duplicates, failedUploads, idsMismatched }. */
export async function upload(url, namespace, docs, { batch = 50, concurrency = 4 } = {}) {
  let next = 0;
  let uploaded = 0;
  let duplicates = 0;
  let failedUploads = 0;
  let idsMismatched = 0;
  async function uploader() {
    while (next < docs.length) {
      const slice = docs.slice(next, next + batch);
      next += slice.length;
      const body = JSON.stringify({
        namespace,
        documents: slice.map((d) => ({ text: d.text, title: d.title || undefined, metadata: { corpusId: String(d._id) } })),
      });
      // Up to 3 attempts: a 5xx or a dropped connection (e.g. `wrangler dev` reloading) is retried.
      let response;
      for (let attempt = 1; attempt <= 3; attempt++) {
        response = await fetch(`${url}/v1/documents`, {
          method: 'POST',
          headers: { ...authHeaders, 'content-type': 'application/json' },
          body,
        }).catch((error) => ({ status: 0, text: async () => error.message }));
        if (response.status === 202 || (response.status >= 400 && response.status < 500)) break;
        if (attempt < 3) await sleep(2000 * attempt);
      }
      if (response.status !== 202) {
        const text = await response.text();
        // A refused key refuses every later batch alike: stop with the reason.
        const refused = refusal(response.status, text);
        if (refused) throw new Error(refused);
        failedUploads += slice.length;
        log('upload failed', slice[0]._id, response.status, text.slice(0, 300));
        continue;
      }
      const { documents } = await response.json();
      documents.forEach((d, i) => {
        uploaded++;
        if (d.duplicate) duplicates++;
        if (d.id !== documentId(namespace, slice[i].text)) idsMismatched++;
      });
    }
  }
  await Promise.all(Array.from({ length: concurrency }, uploader));
  return { uploaded, duplicates, failedUploads, idsMismatched };
}

async function countInNamespace(url, namespace, status) {
  const response = await fetch(`${url}/v1/documents?namespace=${namespace}&status=${status}&limit=100`, {
    headers: { ...authHeaders },
  });
  if (!response.ok) {
    const text = await response.text();
    throw new Error(refusal(response.status, text) ?? `listing ${status} documents of ${namespace} failed: HTTP ${response.status} ${text.slice(0, 300)}`);
  }
  const body = await response.json();
  return { n: body.documents.length, more: body.nextCursor != null };
}

/** Polls until no document of the namespace is queued or processing; returns the failed count. */
export async function waitUntilSettled(url, namespace, { timeoutSeconds = 900, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const [queued, processing] = await Promise.all([
      countInNamespace(url, namespace, 'queued'),
      countInNamespace(url, namespace, 'processing'),
    ]);
    if (queued.n === 0 && processing.n === 0) break;
    if (Date.now() > deadline) throw new Error(`timed out waiting for namespace ${namespace} to settle`);
    await sleep(intervalMs);
  }
  const failed = await countInNamespace(url, namespace, 'failed');
  return { failed: failed.more ? `${failed.n}+` : failed.n };
}

/** Finds the topK to request: the wanted one if the API accepts it, else its cap. */
export async function resolveTopK(url, namespace, wanted) {
  const response = await fetch(`${url}/v1/query`, {
    method: 'POST',
    headers: { ...authHeaders, 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'probe', topK: wanted, namespace, mode: 'keyword' }),
  });
  const text = await response.text();
  if (response.ok) return wanted;
  const refused = refusal(response.status, text);
  if (refused) throw new Error(refused);
  if (response.status === 400) {
    const cap = Number(/<=\s*(\d+)/.exec(text)?.[1] ?? API_MAX_TOP_K);
    return Math.min(wanted, cap);
  }
  throw new Error(`query probe failed: HTTP ${response.status} ${text.slice(0, 300)}`);
}

/** One query; returns { passages, ms, error?, refused? } (refused: the key was refused; error says so). */
export async function query(url, body) {
  const started = performance.now();
  try {
    const response = await fetch(`${url}/v1/query`, {
      method: 'POST',
      headers: { ...authHeaders, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    const refused = refusal(response.status, text);
    if (refused) return { passages: [], ms, error: refused, refused: true };
    if (!response.ok) return { passages: [], ms, error: `HTTP ${response.status}` };
    const payload = JSON.parse(text);
    return { passages: payload.passages, ms };
  } catch (error) {
    return { passages: [], ms: performance.now() - started, error: error.message };
  }
}

/**
 * Runs queries ([id, text] pairs) with bounded concurrency; returns
 * { runs: Map query → corpus-id ranking, latencies, errors, meanDocs }.
 */
export async function runQueries(url, items, { namespace, mode, topK, concurrency = 4, ids }) {
  const runs = new Map();
  const latencies = [];
  let errors = 0;
  let docs = 0;
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const [queryId, text] = items[next++];
      const result = await query(url, { query: text, topK, namespace, mode });
      latencies.push(result.ms);
      if (result.error) {
        errors++;
        if (errors <= 3) log(`query ${queryId} failed: ${result.error}`);
      }
      const ranking = collapseToDocuments(result.passages, (p) => ids.get(p.documentId) ?? []);
      docs += ranking.length;
      runs.set(queryId, ranking);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { runs, latencies, errors, meanDocs: items.length ? docs / items.length : 0 };
}

/** Renders rows (array of objects with the same keys) as a Markdown table. */
export function table(rows) {
  const keys = Object.keys(rows[0]);
  const cells = [keys, ...rows.map((r) => keys.map((k) => String(r[k])))];
  const widths = keys.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const line = (row) => `| ${row.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

export const fmt = (x, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

async function main() {
  const args = commandLine(
    {
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      data: { type: 'string', default: resolve(REPO, '../shared/data/scifact') },
      split: { type: 'string', default: 'test' },
      namespace: { type: 'string' },
      mode: { type: 'string', default: 'hybrid' },
      'top-k': { type: 'string', default: '100' },
      'limit-queries': { type: 'string' },
      'skip-ingest': { type: 'boolean', default: false },
      concurrency: { type: 'string', default: '4' },
      json: { type: 'boolean', default: false },
      'save-runs': { type: 'string' },
      'compare-runs': { type: 'string' },
    },
    USAGE,
  );
  if (!['hybrid', 'vector', 'keyword'].includes(args.mode)) throw new Error('--mode is hybrid, vector or keyword');
  const url = args.url.replace(/\/$/, '');
  const started = performance.now();
  const data = loadBeir(args.data, args.split);
  const namespace = args.namespace ?? `beir-${data.name}`;
  await checkEngine(url);

  // Ingest.
  let ingest = 'skipped (--skip-ingest)';
  if (!args['skip-ingest']) {
    if (await alreadyLoaded(url, namespace, data.corpus)) {
      ingest = 'skipped (namespace already holds the corpus)';
    } else {
      log(`uploading ${data.corpus.length} documents to namespace ${namespace}…`);
      const t0 = performance.now();
      const result = await upload(url, namespace, data.corpus);
      const uploadedS = (performance.now() - t0) / 1000;
      const { failed } = await waitUntilSettled(url, namespace);
      const readyS = (performance.now() - t0) / 1000;
      ingest = `${result.uploaded} uploaded (${result.duplicates} duplicates, ${result.failedUploads} refused, ${failed} failed) in ${uploadedS.toFixed(1)} s, settled at ${readyS.toFixed(1)} s`;
      if (result.idsMismatched) log(`warning: ${result.idsMismatched} ids differ from the locally computed ones`);
    }
  }
  if (args['skip-ingest'] || ingest.startsWith('skipped (namespace')) await waitUntilSettled(url, namespace);
  log(`ingest: ${ingest}`);

  // Queries.
  const wantedK = Number(args['top-k']);
  const topK = await resolveTopK(url, namespace, wantedK);
  if (topK < wantedK) log(`note: the API caps topK at ${topK}; Recall@${wantedK} is not measurable, reporting Recall@${topK}`);
  let queryIds = [...data.qrels.keys()];
  if (args['limit-queries']) queryIds = queryIds.slice(0, Number(args['limit-queries']));
  const missing = queryIds.filter((id) => !data.queries.has(id));
  if (missing.length) log(`warning: ${missing.length} qrels queries have no text; they score 0`);
  const items = queryIds.filter((id) => data.queries.has(id)).map((id) => [id, data.queries.get(id)]);
  const qrels = new Map(queryIds.map((id) => [id, data.qrels.get(id)]));
  const ids = idMap(namespace, data.corpus);
  const t1 = performance.now();
  const { runs, latencies, errors, meanDocs } = await runQueries(url, items, {
    namespace,
    mode: args.mode,
    topK,
    concurrency: Number(args.concurrency),
    ids,
  });
  const querySeconds = (performance.now() - t1) / 1000;
  const scores = evaluate(runs, qrels, standardMetrics(topK));
  const noResults = queryIds.filter((id) => (runs.get(id) ?? []).length === 0).length;

  const result = {
    dataset: data.name,
    split: args.split,
    mode: args.mode,
    namespace,
    queries: queryIds.length,
    topKRequested: wantedK,
    topKUsed: topK,
    metrics: scores,
    recallAt100: topK >= 100 ? scores['R@100'] : null,
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), concurrency: Number(args.concurrency) },
    queriesWithNoResults: noResults,
    queryErrors: errors,
    meanDocumentsPerQuery: meanDocs,
    ingest,
    querySeconds,
    totalSeconds: (performance.now() - started) / 1000,
  };
  const top10 = Object.fromEntries(queryIds.map((id) => [id, (runs.get(id) ?? []).slice(0, 10)]));
  if (args['save-runs']) await writeFile(args['save-runs'], JSON.stringify(top10));
  if (args['compare-runs']) {
    const other = JSON.parse(await readFile(args['compare-runs'], 'utf8'));
    const same = queryIds.filter((id) => JSON.stringify(other[id] ?? []) === JSON.stringify(top10[id])).length;
    result.sameTop10As = { file: args['compare-runs'], same, of: queryIds.length };
    log(`top 10 the same as ${args['compare-runs']} for ${same} of ${queryIds.length} queries`);
  }
  if (args.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const deep = `R@${topK}`;
  console.log(
    table([
      {
        dataset: data.name,
        split: args.split,
        mode: args.mode,
        queries: queryIds.length,
        'nDCG@10': fmt(scores['nDCG@10']),
        'R@10': fmt(scores['R@10']),
        'R@100': topK >= 100 ? fmt(scores['R@100']) : `n/a (cap ${topK})`,
        ...(topK < 100 && { [deep]: fmt(scores[deep]) }),
        'MRR@10': fmt(scores['MRR@10']),
        'p50 ms': fmt(result.latencyMs.p50, 1),
        'p95 ms': fmt(result.latencyMs.p95, 1),
      },
    ]),
  );
  console.log(
    `queries at concurrency ${args.concurrency} took ${querySeconds.toFixed(1)} s; ${noResults} with no results, ${errors} errors; ` +
      `${meanDocs.toFixed(1)} documents per query after collapsing top-${topK} passages; total ${result.totalSeconds.toFixed(1)} s`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error) => {
    console.error(error.message);
    process.exit(1);
  });
}
