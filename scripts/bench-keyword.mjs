#!/usr/bin/env node
// The production keyword shard (src/engines/cloudflare/keyword-shard.ts) measured inside workerd:
// a bench Worker (scripts/bench-keyword/) under `wrangler dev`, loaded with SciFact-like passages
// (each shard different), queried with SciFact's test claims. Reports load time per shard, warm
// query latency of a K-shard namespace, each shard's own latency, the merge overhead, memory (the
// shards' own account, the isolate's heap as V8 counts it, and the workerd process's RSS) and the first query after a restart.
//
//   npm run bench:keyword -- [--passages 50000] [--shards 1] [--queries 300] [--skip-load]
//        [--data ../shared/data/scifact] [--port 8790] [--persist-to /tmp/keyword-bench-state]
//
// Without --skip-load the persist directory is emptied first (only if it holds nothing but
// wrangler's state); with it, the shards loaded by an earlier run with the same --shards are reused.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const REPO = new URL('..', import.meta.url).pathname;
const CONFIG = join(REPO, 'scripts/bench-keyword/wrangler.toml');

const { values: args } = parseArgs({
  options: {
    passages: { type: 'string', default: '50000' },
    shards: { type: 'string', default: '1' },
    queries: { type: 'string', default: '300' },
    limit: { type: 'string', default: '10' },
    batch: { type: 'string', default: '500' },
    data: { type: 'string', default: join(REPO, '../shared/data/scifact') },
    port: { type: 'string', default: '8790' },
    'persist-to': { type: 'string', default: '/tmp/keyword-bench-state' },
    'skip-load': { type: 'boolean', default: false },
  },
});
const PASSAGES = Number(args.passages);
const SHARDS = Number(args.shards);
const LIMIT = Number(args.limit);
const BATCH = Number(args.batch);
const PORT = Number(args.port);
const PERSIST = args['persist-to'];
const BASE = `http://127.0.0.1:${PORT}`;
const LOG = `/tmp/keyword-bench-wrangler-${PORT}.log`;

// ---------------------------------------------------------------------------------------------
// wrangler dev: started in its own process group, so one signal ends it and its workerd child
// (and nothing else: other workerd processes on the machine are not ours).

let wrangler = null;

async function start() {
  if (await answers()) throw new Error(`something already answers on ${BASE}; pick another --port`);
  const started = performance.now();
  const log = createWriteStream(LOG, { flags: 'a' });
  wrangler = spawn(
    'npx',
    ['wrangler', 'dev', '-c', CONFIG, '--port', String(PORT), '--ip', '127.0.0.1', '--persist-to', PERSIST, '--show-interactive-dev-session=false'],
    {
      cwd: REPO,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // X_LOCAL_OBSERVABILITY / X_LOCAL_EXPLORER: wrangler dev otherwise traces every request into
      // a SQLite store (34 MB after a 5,000-passage run) and serves a state explorer, both inside
      // the workerd we measure: CPU and memory that are no part of the shard.
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', X_LOCAL_OBSERVABILITY: 'false', X_LOCAL_EXPLORER: 'false' },
    },
  );
  wrangler.stdout.pipe(log);
  wrangler.stderr.pipe(log);
  const child = wrangler;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (await answers()) return performance.now() - started;
    await Promise.race([sleep(250), exited]);
  }
  await stop();
  throw new Error(`wrangler dev did not start on ${BASE} (its output: ${LOG})`);
}

async function stop() {
  const child = wrangler;
  if (!child) return;
  wrangler = null;
  if (child.exitCode !== null || child.signalCode !== null) return killGroup(child.pid, 'SIGKILL');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  killGroup(child.pid, 'SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  // workerd may outlive wrangler's node by a moment: wait until no process of the group is left.
  for (let i = 0; i < 40 && groupPids(child.pid).length; i++) await sleep(250);
  killGroup(child.pid, 'SIGKILL');
  await sleep(500);
  const left = groupPids(child.pid);
  if (left.length) console.warn(`warning: still running after SIGKILL: ${left.map((p) => `${p.pid} ${p.comm}`).join(', ')}`);
}

function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Processes of a process group, from /proc: [{pid, comm}]. */
function groupPids(pgid) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const [, , pgrp] = stat.slice(close + 2).split(' ');
      if (Number(pgrp) === pgid) found.push({ pid: Number(entry), comm: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

/**
 * Resident memory of the workerd running the bench Worker and its shards, in bytes. wrangler dev
 * runs two: one for its proxy Worker, listening on --port, and one for the user Worker, on a
 * port of its own; the second is ours.
 */
function userWorkerd() {
  if (!wrangler) throw new Error('wrangler is not running');
  const ours = groupPids(wrangler.pid).filter(({ pid, comm }) => {
    if (!comm.startsWith('workerd')) return false;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return !argv.includes(`--socket-addr=entry=127.0.0.1:${PORT}`);
  });
  if (ours.length !== 1) throw new Error(`expected one user-Worker workerd in wrangler's process group ${wrangler.pid}, found ${ours.length}`);
  return ours[0].pid;
}

function workerdRss() {
  return 1024 * Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${userWorkerd()}/status`, 'utf8'))?.[1]);
}

/** Runtime.getHeapUsage over one inspector connection (at most 5 s). */
function heapUsage(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => (ws.close(), reject(new Error('no answer'))), 5000);
    ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: 'Runtime.getHeapUsage' }));
    ws.onmessage = async (e) => {
      const message = JSON.parse(typeof e.data === 'string' ? e.data : await e.data.text());
      if (message.id !== 1) return;
      clearTimeout(timer);
      ws.close();
      resolve(message.result);
    };
    ws.onerror = () => (clearTimeout(timer), reject(new Error('refused')));
    ws.onclose = () => (clearTimeout(timer), reject(new Error('closed')));
  });
}

/**
 * The bench Worker's isolate (where its Durable Objects run too) as V8 counts it: the JS heap in
 * use plus ArrayBuffer backing stores (the postings), what the 128 MB limit is about. Read with
 * Runtime.getHeapUsage from workerd's own inspector (a random local port: each port the process
 * listens on is asked for its targets). Garbage not yet collected counts too, so it is an upper
 * bound. Needs Node 22's WebSocket (`npm run bench:keyword`); null without it.
 */
async function isolateHeap() {
  if (typeof WebSocket === 'undefined') return null;
  const pid = userWorkerd();
  const ports = [...execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' }).matchAll(/127\.0\.0\.1:(\d+)\s.*pid=(\d+),/g)]
    .filter((m) => Number(m[2]) === pid)
    .map((m) => m[1]);
  for (const port of ports) {
    // Some of its ports are not HTTP, and hold the request: each gets a second.
    const targets = await fetch(`http://127.0.0.1:${port}/json`, { signal: AbortSignal.timeout(1000) }).then((r) => (r.ok ? r.json() : []), () => []);
    const target = Array.isArray(targets) && targets.find((t) => String(t.id).startsWith('core:user:'));
    if (!target) continue;
    // The inspector sometimes drops a session's first connection: three tries.
    for (let attempt = 0; attempt < 3; attempt++) {
      const usage = await heapUsage(target.webSocketDebuggerUrl).catch(() => null);
      if (usage) return usage.usedSize + usage.backingStorageSize;
    }
    return null;
  }
  return null;
}

async function restart() {
  await stop();
  return start();
}

// Stop wrangler however this process ends.
process.on('exit', () => wrangler && killGroup(wrangler.pid, 'SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping wrangler`);
    stop().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function answers() {
  try {
    return (await fetch(`${BASE}/ping`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

async function call(path, body) {
  const response = await fetch(`${BASE}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}: ${text.slice(0, 2000)}`);
  return JSON.parse(text);
}

/** A call timed by the client too: [result, client ms]. */
async function timedCall(path, body) {
  const startedAt = performance.now();
  const result = await call(path, body);
  return [result, performance.now() - startedAt];
}

// ---------------------------------------------------------------------------------------------
// Data: SciFact-like passages, different on every shard, and SciFact's test claims.

function readJsonl(file) {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

const abstracts = readJsonl(join(args.data, 'corpus.jsonl'))
  .map((doc) => ({ title: doc.title ?? '', sentences: (doc.text ?? '').split(/(?<=[.!?])\s+(?=[A-Z0-9(\[])/).filter((s) => s.trim()) }))
  .filter((a) => a.sentences.length > 0);

const testIds = new Set(
  readFileSync(join(args.data, 'qrels/test.tsv'), 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.split('\t')[0])
    .filter(Boolean),
);
const queries = readJsonl(join(args.data, 'queries.jsonl'))
  .filter((q) => testIds.has(String(q._id)))
  .slice(0, Number(args.queries))
  .map((q) => q.text);

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Passage j of shard s: abstract a's title over a's sentences, about a third of them swapped for
 * sentences of abstract b, shuffled; a and b drawn from (s, j). Deterministic, different per shard.
 */
function passage(shard, j) {
  const random = prng(Math.imul(shard + 1, 0x9e3779b1) ^ Math.imul(j + 1, 0x85ebca77));
  random();
  const pick = (n) => Math.floor(random() * n);
  const a = abstracts[pick(abstracts.length)];
  const b = abstracts[pick(abstracts.length)];
  const sentences = a.sentences.map((s) => (random() < 1 / 3 ? b.sentences[pick(b.sentences.length)] : s));
  for (let i = sentences.length - 1; i > 0; i--) {
    const k = pick(i + 1);
    [sentences[i], sentences[k]] = [sentences[k], sentences[i]];
  }
  return { id: `s${shard}-p${j}`, title: a.title, text: sentences.join(' ') };
}

// ---------------------------------------------------------------------------------------------
// Figures

const percentile = (xs, p) => {
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
};
const round = (x, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function main() {
  if (!(PASSAGES > 0 && SHARDS > 0 && queries.length > 0)) throw new Error('need --passages > 0, --shards > 0 and at least one query');
  const result = { passagesPerShard: PASSAGES, shards: SHARDS, queries: queries.length, limit: LIMIT, skipLoad: args['skip-load'] };
  console.log(`keyword shard bench: ${SHARDS} shard(s) × ${PASSAGES} passages, ${queries.length} queries, top ${LIMIT}; wrangler log ${LOG}`);

  // Load.
  if (!args['skip-load']) {
    if (existsSync(PERSIST)) {
      const entries = readdirSync(PERSIST);
      if (entries.some((e) => e !== 'v3')) throw new Error(`${PERSIST} holds more than wrangler state (${entries.join(', ')}); not emptying it`);
      rmSync(PERSIST, { recursive: true, force: true });
    }
  }
  if (!args['skip-load']) {
    result.startMs = round(await start(), 0);
    result.load = [];
    for (let shard = 0; shard < SHARDS; shard++) {
      const started = performance.now();
      let stageMs = 0;
      let activateMs = 0;
      let count = 0;
      const activateBatchMs = [];
      for (let from = 0; from < PASSAGES; from += BATCH) {
        const batch = Array.from({ length: Math.min(BATCH, PASSAGES - from) }, (_, i) => passage(shard, from + i));
        const loaded = await call('/load', { shard, passages: batch });
        stageMs += loaded.stageMs;
        activateMs += loaded.activateMs;
        activateBatchMs.push(loaded.activateMs);
        count = loaded.count;
        if ((from / BATCH) % 20 === 19) console.error(`  shard ${shard}: ${count} passages, ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
      const ms = performance.now() - started;
      if (count !== PASSAGES) throw new Error(`shard ${shard} holds ${count} passages after loading ${PASSAGES}`);
      result.load.push({ shard, ms: round(ms, 0), stageMs: round(stageMs, 0), activateMs: round(activateMs, 0), passagesPerSecond: round(PASSAGES / (ms / 1000), 0), activateBatchMs });
      console.log(
        `load shard ${shard}: ${PASSAGES} passages in ${(ms / 1000).toFixed(1)} s (${Math.round(PASSAGES / (ms / 1000))}/s; stage ${(stageMs / 1000).toFixed(1)} s, activate ${(activateMs / 1000).toFixed(1)} s; activate of the first batch ${activateBatchMs[0]} ms, of the last ${activateBatchMs.at(-1)} ms)`,
      );
    }
  }

  // Cold start: a fresh workerd over the kept state (with --skip-load, the first one); its
  // memory before any query, then the first query.
  result.restartMs = round(await (args['skip-load'] ? start() : restart()), 0);
  const rssFresh = workerdRss();
  const heapFresh = await isolateHeap();
  const [cold, coldClientMs] = await timedCall('/query', { shards: SHARDS, text: queries[0], limit: LIMIT });
  const rssCold = workerdRss();
  result.cold = { clientMs: round(coldClientMs), workerMs: round(cold.ms), hits: cold.hits.length };
  console.log(`restart: wrangler answered after ${(result.restartMs / 1000).toFixed(1)} s`);
  console.log(`cold first query (${SHARDS} shard(s)): ${coldClientMs.toFixed(1)} ms client, ${cold.ms.toFixed(1)} ms in the worker`);

  // Warm namespace latency: one warm-up pass, then the timed one.
  for (const text of queries) await call('/query', { shards: SHARDS, text, limit: LIMIT });
  const workerMs = [];
  const clientMs = [];
  let hits = 0;
  for (const text of queries) {
    const [answer, ms] = await timedCall('/query', { shards: SHARDS, text, limit: LIMIT });
    workerMs.push(answer.ms);
    clientMs.push(ms);
    hits += answer.hits.length;
  }
  const rssWarm = workerdRss();
  const heapWarm = await isolateHeap();
  result.query = {
    p50: round(percentile(workerMs, 0.5)),
    p90: round(percentile(workerMs, 0.9)),
    p99: round(percentile(workerMs, 0.99)),
    clientP50: round(percentile(clientMs, 0.5)),
    clientP90: round(percentile(clientMs, 0.9)),
    clientP99: round(percentile(clientMs, 0.99)),
    meanHits: round(hits / queries.length, 1),
  };

  // Each shard alone, with its own statistics: its share of a query's work.
  const perShard = [];
  const sums = new Array(queries.length).fill(0);
  for (let shard = 0; shard < SHARDS; shard++) {
    for (const text of queries) await call('/query-shard', { shard, text, limit: LIMIT });
    const times = [];
    for (const [q, text] of queries.entries()) {
      const { ms } = await call('/query-shard', { shard, text, limit: LIMIT });
      times.push(ms);
      sums[q] += ms;
    }
    perShard.push({ shard, p50: round(percentile(times, 0.5)), p90: round(percentile(times, 0.9)) });
  }
  const slowest = Math.max(...perShard.map((s) => s.p50));
  result.perShard = perShard;
  result.mergeOverheadMs = round(result.query.p50 - slowest);
  result.cpuPerQueryMs = { p50: round(percentile(sums, 0.5)), mean: round(sums.reduce((x, y) => x + y, 0) / sums.length) };

  // Memory: the shards' own account, and workerd's RSS.
  const rssEnd = workerdRss();
  const shards = await call(`/memory?shards=${SHARDS}`);
  const rows = shards.reduce((n, s) => n + s.rows, 0);
  const bytes = shards.reduce((n, s) => n + s.bytes, 0);
  if (rows !== SHARDS * PASSAGES) console.warn(`warning: the shards hold ${rows} passages, not ${SHARDS} × ${PASSAGES} (state of another run?)`);
  result.memory = {
    passages: rows,
    shardBytes: bytes,
    shardBytesPerPassage: round(bytes / rows, 1),
    rssFresh,
    rssCold,
    rssWarm,
    rssEnd,
    rssPerPassage: round((rssWarm - rssFresh) / rows, 1),
    heapFresh,
    heapWarm,
    heapPerPassage: heapWarm === null ? null : round((heapWarm - heapFresh) / rows, 1),
  };
  await stop();

  console.log(`\nwarm query, ${SHARDS}-shard namespace (worker ms; client ms in brackets)`);
  console.log(`  p50 ${result.query.p50} (${result.query.clientP50})   p90 ${result.query.p90} (${result.query.clientP90})   p99 ${result.query.p99} (${result.query.clientP99})   ${result.query.meanHits} hits a query`);
  console.log(`per shard alone, p50 ms: ${perShard.map((s) => s.p50).join(', ')}`);
  console.log(`merge overhead: ${result.mergeOverheadMs} ms (namespace p50 − slowest shard's p50 ${slowest})`);
  console.log(`work per query (sum over shards of their own time): p50 ${result.cpuPerQueryMs.p50} ms, mean ${result.cpuPerQueryMs.mean} ms`);
  console.log(`memory, shards' account: ${mib(bytes)}, ${result.memory.shardBytesPerPassage} B a passage (${rows} passages)`);
  console.log(
    `memory, workerd RSS: fresh ${mib(rssFresh)}, after the first query ${mib(rssCold)}, after all namespace queries ${mib(rssWarm)}, after the per-shard ones ${mib(rssEnd)}; (warm − fresh) / passages = ${result.memory.rssPerPassage} B`,
  );
  if (heapWarm !== null) {
    console.log(`memory, the isolate's heap and buffers: fresh ${mib(heapFresh)}, after all namespace queries ${mib(heapWarm)}; (warm − fresh) / passages = ${result.memory.heapPerPassage} B`);
  }
  console.log(JSON.stringify(result));
}

main().catch(async (err) => {
  console.error(err);
  await stop();
  process.exit(1);
});
