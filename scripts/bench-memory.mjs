#!/usr/bin/env node
// Peak memory of the engine's process while it ingests one file, under `npm start`'s
// configuration: for each file a fresh `wrangler dev` (empty state in a temporary directory)
// is started, the file uploaded, and its status polled until it is ready or failed. Reported:
// the user Worker's workerd resident memory before the upload, and its peak (VmHWM, which the
// kernel keeps) when the document settled, with the time it took. A document indexed in slices
// also reports the peak when its parse had ended (its first slices queued), and the resident
// memory once it settled, which is what the local index keeps of it; and every file the peak
// right after its upload was answered, before its ingestion starts.
//
//   node scripts/bench-memory.mjs [--port 8791] [--var NAME:VALUE ...] [FILE ...]
//
// `--var` sets an engine setting, e.g. `--var INGEST_SLICE_CHUNKS:1000000` to ingest without slices.
//
// Without files: a 25 MiB text made of SciFact abstracts, and the largest PDF and DOCX under
// ../shared/data/documents. Run it from a snapshot of the repository: wrangler dev reloads
// when a source file changes.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  options: { port: { type: 'string', default: '8791' }, var: { type: 'string', multiple: true, default: [] } },
  allowPositionals: true,
});
const PORT = Number(args.port);
const URL_BASE = `http://127.0.0.1:${PORT}`;
const DATA = resolve(import.meta.dirname, '../../shared/data');
const MIB = 1024 * 1024;

function largest(dir, extension) {
  const files = readdirSync(dir, { recursive: true })
    .map((f) => join(dir, f))
    .filter((f) => f.endsWith(extension));
  return files.sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

/** 25 MiB of SciFact abstracts, one after another (the API's largest upload). */
function largeText() {
  const file = join(tmpdir(), 'scifact-25mib.txt');
  const abstracts = readFileSync(join(DATA, 'scifact/corpus.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .map((d) => `${d.title}\n\n${d.text}\n\n`)
    .join('');
  let text = '';
  while (Buffer.byteLength(text) < 25 * MIB) text += abstracts;
  writeFileSync(file, Buffer.from(text).subarray(0, 25 * MIB - 1024));
  return file;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function start(state) {
  execFileSync('npx', ['wrangler', 'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state], { stdio: 'ignore', env: { ...process.env, CI: 'true' } });
  const vars = args.var.flatMap((v) => ['--var', v]);
  const child = spawn('npx', ['wrangler', 'dev', '--ip', '127.0.0.1', '--port', String(PORT), '--persist-to', state, '--show-interactive-dev-session=false', ...vars], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
  });
  for (let i = 0; i < 120; i++) {
    if (await fetch(`${URL_BASE}/health`).then((r) => r.ok, () => false)) return child;
    await sleep(500);
  }
  throw new Error('wrangler dev did not answer');
}

/** The workerd running the engine (not wrangler's proxy, which listens on --port). */
function engineWorkerd(child) {
  const pids = execFileSync('ps', ['-o', 'pid=,args=', '-g', String(child.pid)], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes('workerd') && !line.includes(`entry=127.0.0.1:${PORT}`))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
  if (pids.length !== 1) throw new Error(`expected one engine workerd, found ${pids.length}`);
  return pids[0];
}

const memory = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
};

async function measure(file) {
  const state = mkdtempSync(join(tmpdir(), 'bench-memory-'));
  const child = await start(state);
  try {
    const pid = engineWorkerd(child);
    const before = memory(pid);
    const form = new FormData();
    form.append('file', new File([readFileSync(file)], basename(file)));
    const started = performance.now();
    const upload = await fetch(`${URL_BASE}/v1/documents`, { method: 'POST', body: form });
    if (upload.status !== 202) throw new Error(`upload: ${upload.status} ${await upload.text()}`);
    const [{ id }] = (await upload.json()).documents;
    // Ingestion starts within a second (the queue's batch timeout): this is the upload's own peak.
    const uploaded = memory(pid);
    let document;
    /** The peak once the parse had ended: when the first slice is seen queued. */
    let parsed = null;
    for (;;) {
      document = await (await fetch(`${URL_BASE}/v1/documents/${id}`)).json();
      if (document.status === 'ready' || document.status === 'failed') break;
      if (parsed === null && document.progress) parsed = { ...memory(pid), slices: document.progress.total };
      await sleep(250);
    }
    const after = memory(pid);
    return {
      file: basename(file),
      mib: statSync(file).size / MIB,
      status: document.status,
      chunks: document.chunkCount,
      seconds: (performance.now() - started) / 1000,
      rssBefore: before.rss / MIB,
      peakBefore: before.peak / MIB,
      peak: after.peak / MIB,
      rssAfter: after.rss / MIB,
      uploadPeak: uploaded.peak / MIB,
      parsed: parsed && { slices: parsed.slices, peak: parsed.peak / MIB },
    };
  } finally {
    process.kill(-child.pid, 'SIGTERM');
    await sleep(1000);
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
    rmSync(state, { recursive: true, force: true });
  }
}

const files = positionals.length
  ? positionals
  : [largeText(), largest(join(DATA, 'documents'), '.pdf'), largest(join(DATA, 'documents'), '.docx')];
for (const file of files) {
  const r = await measure(file);
  console.log(
    `${r.file} (${r.mib.toFixed(1)} MiB): ${r.status}, ${r.chunks} chunks in ${r.seconds.toFixed(1)} s; ` +
      `workerd RSS ${r.rssBefore.toFixed(0)} MiB before (peak so far ${r.peakBefore.toFixed(0)}), peak ${r.peak.toFixed(0)} MiB (+${(r.peak - r.rssBefore).toFixed(0)} MiB)` +
      `; peak after the upload ${r.uploadPeak.toFixed(0)} MiB (+${(r.uploadPeak - r.rssBefore).toFixed(0)})` +
      (r.parsed ? `; ${r.parsed.slices} slices, peak when parsed ${r.parsed.peak.toFixed(0)} MiB (+${(r.parsed.peak - r.rssBefore).toFixed(0)})` : '') +
      `; RSS after ${r.rssAfter.toFixed(0)} MiB (+${(r.rssAfter - r.rssBefore).toFixed(0)})`,
  );
}
