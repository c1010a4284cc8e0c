#!/usr/bin/env node
// Uploads a directory (recursively) to the engine, skipping files it already has.
//
//   node scripts/ingest.mjs DIR [--url http://127.0.0.1:8787] [--types txt,pdf,md,docx]
//     [--concurrency 4] [--namespace ns] [--metadata '{"k":"v"}'] [--wait] [--timeout 600]
//     [--api-key K] [--skip-failed]
//
// A file's document id is computed as the engine does (src/ingestion/upload.ts): the first
// 32 hex characters of sha256(`${namespace}\0` + bytes). `GET /v1/documents/:id` decides:
// 200 ready/queued/processing → skip; failed → upload again (unless --skip-failed); 404 →
// upload. Files go up as multipart, several per request (≤ 100 files, ≤ ~20 MB). A request
// refused as a whole (413/415) is retried one file per request, so the report names the file.
// With --wait it polls every uploaded document until ready or failed (≤ --timeout seconds)
// and prints counts by status and the failures with their reasons.
// Exit code: 0 all good; 1 an upload was rejected, a document failed, or --wait timed out;
// 2 bad arguments.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `usage: node scripts/ingest.mjs DIR [--url URL] [--types txt,pdf,md,docx] [--concurrency 4]
       [--namespace ns] [--metadata '{"k":"v"}'] [--wait] [--timeout 600] [--api-key K] [--skip-failed]`;

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8787' },
      types: { type: 'string', default: 'txt,pdf,md,docx' },
      concurrency: { type: 'string', default: '4' },
      namespace: { type: 'string' },
      metadata: { type: 'string' },
      wait: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '600' },
      'api-key': { type: 'string' },
      'skip-failed': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (error) {
  usage(error.message);
}
const { values: args, positionals } = parsed;
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
if (positionals.length !== 1) usage('give exactly one directory');

const baseUrl = checkUrl(args.url);
const concurrency = positiveInt(args.concurrency, '--concurrency');
const timeoutSeconds = positiveNumber(args.timeout, '--timeout');
// The engine's DEFAULT_NAMESPACE; the id depends on the namespace, so it must match.
const namespace = args.namespace ?? 'default';
if (!/^[A-Za-z0-9_-]{1,64}$/.test(namespace)) usage('--namespace: 1-64 letters, digits, _ or -');
if (args.metadata !== undefined) {
  let meta;
  try {
    meta = JSON.parse(args.metadata);
  } catch {
    usage('--metadata is not valid JSON');
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) usage('--metadata must be a JSON object');
}
const types = new Set(
  args.types
    .split(',')
    .map((t) => t.trim().toLowerCase().replace(/^\./, ''))
    .filter(Boolean),
);
if (types.size === 0) usage('--types is empty');

const MAX_FILES_PER_REQUEST = 100; // the server's MAX_FILES_PER_UPLOAD default
const MAX_REQUEST_BYTES = 20 * 1024 * 1024; // below MAX_UPLOAD_BYTES (25 MiB) with room for multipart overhead
const REQUEST_TIMEOUT_MS = 120_000;
const headers = args['api-key'] ? { authorization: `Bearer ${args['api-key']}` } : {};

// ─── 1. Find the files ────────────────────────────────────────────────────────────────
const root = resolve(positionals[0]);
try {
  if (!statSync(root).isDirectory()) usage(`${positionals[0]} is not a directory`);
} catch (error) {
  if (error?.code) usage(`${positionals[0]}: ${error.code}`);
  throw error;
}

/** @type {{ path: string, rel: string, size: number }[]} */
const files = [];
(function walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.isFile() || (entry.isSymbolicLink() && statSync(path).isFile())) {
      const ext = entry.name.includes('.') ? entry.name.split('.').pop().toLowerCase() : '';
      if (types.has(ext)) files.push({ path, rel: relative(root, path), size: statSync(path).size });
    }
  }
})(root);

if (files.length === 0) {
  console.log(`no ${[...types].join('/')} files under ${root}`);
  process.exit(0);
}

// ─── 2. Ids, and what the engine already has ──────────────────────────────────────────
const prefix = Buffer.from(`${namespace}\u0000`, 'utf8');
const byId = new Map(); // id → first file with these bytes
const duplicates = []; // files whose bytes equal an earlier file's in this run
for (const file of files) {
  file.id = createHash('sha256').update(prefix).update(readFileSync(file.path)).digest('hex').slice(0, 32);
  if (byId.has(file.id)) {
    duplicates.push({ ...file, sameAs: byId.get(file.id).rel });
  } else {
    byId.set(file.id, file);
  }
}
const unique = [...byId.values()];

const progress = makeProgress(unique.length);
const counts = { uploaded: 0, skipped: 0, failed: 0 };
/** @type {{ rel: string, id: string, status: number | string, reason: string }[]} */
const rejected = [];
/** @type {{ file: object, status: string }[]} */
const skipped = [];
const toUpload = [];

await pool(unique, concurrency * 2, async (file) => {
  const res = await request(`/v1/documents/${file.id}`);
  if (res.status === 200) {
    const doc = res.body;
    if (doc.status === 'failed' && !args['skip-failed']) {
      file.previous = doc;
      toUpload.push(file);
      return;
    }
    counts.skipped++;
    skipped.push({ file, status: doc.status });
    progress.update(counts);
    return;
  }
  if (res.status === 404) {
    toUpload.push(file);
    return;
  }
  // Could not check (engine down, 5xx): try the upload anyway; the engine de-duplicates.
  toUpload.push(file);
});

// ─── 3. Upload, in batches ───────────────────────────────────────────────────────────
/** @type {Map<string, { file: object, title: string, status: string }>} */
const accepted = new Map();
const batches = [];
{
  let batch = [];
  let bytes = 0;
  for (const file of toUpload.sort((a, b) => a.rel.localeCompare(b.rel))) {
    if (batch.length && (batch.length >= MAX_FILES_PER_REQUEST || bytes + file.size > MAX_REQUEST_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(file);
    bytes += file.size;
  }
  if (batch.length) batches.push(batch);
}

await pool(batches, concurrency, async function upload(batch) {
  const form = new FormData();
  for (const file of batch) form.append('file', new Blob([readFileSync(file.path)]), basename(file.path));
  if (args.namespace !== undefined) form.append('namespace', namespace);
  if (args.metadata !== undefined) form.append('metadata', args.metadata);
  const res = await request('/v1/documents', { method: 'POST', body: form });
  if (res.status === 202 && Array.isArray(res.body?.documents)) {
    res.body.documents.forEach((doc, i) => {
      const file = batch[i];
      if (doc.id !== file.id) {
        // Should not happen: the id scheme changed. Trust the engine's id.
        progress.note(`warning: ${file.rel}: engine id ${doc.id} differs from computed ${file.id}`);
      }
      accepted.set(doc.id, { file, title: doc.title, status: doc.status });
      counts.uploaded++;
    });
    progress.update(counts);
    return;
  }
  // 413/415 refuse the whole request: find which file by sending them one at a time.
  if (batch.length > 1 && (res.status === 413 || res.status === 415)) {
    for (const file of batch) await upload([file]);
    return;
  }
  for (const file of batch) {
    rejected.push({ rel: file.rel, id: file.id, status: res.status || 'network', reason: errorText(res) });
    counts.failed++;
  }
  progress.update(counts);
});
progress.done(counts);

// ─── 4. Report, and with --wait follow the documents to the end ──────────────────────
const finals = new Map(); // id → last seen document
let timedOut = [];
if (args.wait && accepted.size > 0) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let pending = [...accepted.keys()];
  let delay = 500;
  const started = Date.now();
  let lastLine = 0;
  while (pending.length) {
    const still = [];
    await pool(pending, Math.max(4, concurrency * 2), async (id) => {
      const res = await request(`/v1/documents/${id}`);
      if (res.status === 200) {
        finals.set(id, res.body);
        if (res.body.status === 'ready' || res.body.status === 'failed') return;
      }
      still.push(id);
    });
    pending = still;
    const settled = accepted.size - pending.length;
    if (process.stderr.isTTY) {
      process.stderr.write(`\rwaiting: ${settled}/${accepted.size} settled (${Math.round((Date.now() - started) / 1000)} s)   `);
    } else if (Date.now() - lastLine > 5000 || pending.length === 0) {
      console.error(`waiting: ${settled}/${accepted.size} settled (${Math.round((Date.now() - started) / 1000)} s)`);
      lastLine = Date.now();
    }
    if (!pending.length) break;
    if (Date.now() + delay > deadline) {
      timedOut = pending;
      break;
    }
    await sleep(delay);
    delay = Math.min(2000, delay * 1.5);
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
}

console.log(
  `\n${files.length} files (${unique.length} distinct): ${counts.uploaded} uploaded, ` +
    `${counts.skipped + duplicates.length} skipped (${counts.skipped} already in the engine, ` +
    `${duplicates.length} same bytes as another file here), ${counts.failed} rejected`,
);
for (const d of duplicates) console.log(`  same bytes: ${d.rel} = ${d.sameAs} (${d.id})`);

if (rejected.length) {
  console.log('\nrejected uploads:');
  printTable(['file', 'http', 'reason'], rejected.map((r) => [r.rel, String(r.status), r.reason]));
}

const failures = [];
if (args.wait) {
  const byStatus = {};
  for (const [id, entry] of accepted) {
    const status = timedOut.includes(id) ? `timed out (${finals.get(id)?.status ?? 'unknown'})` : finals.get(id)?.status ?? 'unknown';
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    if (finals.get(id)?.status === 'failed') failures.push([entry.file.rel, id, finals.get(id).error ?? '(no reason given)']);
  }
  console.log(`\nuploaded documents by final status: ${fmtCounts(byStatus)}`);
  if (skipped.length) {
    const skippedStatus = {};
    for (const s of skipped) skippedStatus[s.status] = (skippedStatus[s.status] ?? 0) + 1;
    console.log(`skipped documents, as found: ${fmtCounts(skippedStatus)}`);
  }
  if (failures.length) {
    console.log('\nfailed documents:');
    printTable(['file', 'id', 'reason'], failures);
  }
  if (timedOut.length) console.log(`\n${timedOut.length} documents not settled after ${timeoutSeconds} s`);
}
const skippedFailed = skipped.filter((s) => s.status === 'failed');
if (skippedFailed.length) {
  console.log(`\n${skippedFailed.length} skipped documents are 'failed' in the engine (--skip-failed):`);
  for (const s of skippedFailed) console.log(`  ${s.file.rel} (${s.file.id})`);
}

process.exit(rejected.length || failures.length || timedOut.length ? 1 : 0);

// ─── helpers ─────────────────────────────────────────────────────────────────────────
async function request(path, init = {}) {
  try {
    const response = await fetch(`${baseUrl.href.replace(/\/+$/, '')}${path}`, {
      ...init,
      headers: { ...headers, ...(init.headers ?? {}) },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    return { status: response.status, body };
  } catch (error) {
    return { status: 0, error: error.cause?.code ?? error.name ?? String(error), body: null };
  }
}

function errorText(res) {
  if (res.status === 0) return `network error: ${res.error}`;
  // 401, or 403 for the key (not quota_exceeded): say what to do about it.
  if (res.status === 401 || (res.status === 403 && res.body?.error?.code !== 'quota_exceeded')) {
    const hint = args['api-key'] ? 'check that --api-key is valid and has the write scope and this namespace' : 'pass --api-key';
    return `the engine refused the API key (${res.status}): ${hint}${res.body?.error?.message ? ` (${res.body.error.message})` : ''}`;
  }
  if (res.body?.error?.message) return `${res.body.error.code}: ${res.body.error.message}`;
  return typeof res.body === 'string' ? res.body.slice(0, 200) : JSON.stringify(res.body)?.slice(0, 200);
}

async function pool(items, size, worker) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(size, items.length) }, async () => {
      while (next < items.length) await worker(items[next++]);
    }),
  );
}

function makeProgress(total) {
  const tty = process.stderr.isTTY;
  let lastPlain = 0;
  let lastText = '';
  const line = (c) => {
    const done = c.uploaded + c.skipped + c.failed;
    const pct = total ? Math.floor((100 * done) / total) : 100;
    const width = 24;
    const filled = Math.round((width * done) / Math.max(total, 1));
    return { done, pct, text: `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}%  ${done}/${total}  uploaded ${c.uploaded}  skipped ${c.skipped}  failed ${c.failed}` };
  };
  return {
    update(c) {
      const { text } = line(c);
      if (tty) process.stderr.write(`\r${text}\x1b[K`);
      else if (Date.now() - lastPlain >= 2000) {
        console.error(text);
        lastPlain = Date.now();
        lastText = text;
      }
    },
    note(message) {
      if (tty) process.stderr.write('\r\x1b[K');
      console.error(message);
    },
    done(c) {
      const { text } = line(c);
      if (tty) process.stderr.write(`\r${text}\x1b[K\n`);
      else if (text !== lastText) console.error(text);
    },
  };
}

function printTable(head, rows) {
  const widths = head.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((r) => r[i].length))));
  const fmt = (r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ');
  console.log(`  ${fmt(head)}`);
  console.log(`  ${widths.map((w, i) => '-'.repeat(i === widths.length - 1 ? head[i].length : w)).join('  ')}`);
  for (const r of rows) console.log(`  ${fmt(r)}`);
}

function fmtCounts(obj) {
  if (Object.keys(obj).length === 0) return 'none';
  return Object.entries(obj)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

function checkUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    usage(`--url: not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') usage('--url must be http(s)');
  return url;
}

function positiveInt(text, name) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) usage(`${name} must be a positive integer`);
  return n;
}

function positiveNumber(text, name) {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) usage(`${name} must be a positive number`);
  return n;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function usage(message) {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}
