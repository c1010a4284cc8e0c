#!/usr/bin/env node
// Uploads the SciFact corpus (5,183 abstracts) through the HTTP API and waits until every
// document is ready. Usage: node scripts/bench-ingest.mjs [--url http://127.0.0.1:8787]
//   [--corpus ../shared/data/scifact/corpus.jsonl] [--limit N] [--concurrency 4] [--batch 50] [--namespace scifact]
// Each request carries --batch abstracts as JSON { documents: [...] }; --batch 1 sends one per request.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    corpus: { type: 'string', default: new URL('../../shared/data/scifact/corpus.jsonl', import.meta.url).pathname },
    limit: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    batch: { type: 'string', default: '50' },
    namespace: { type: 'string', default: 'scifact' },
    'timeout-seconds': { type: 'string', default: '600' },
  },
});

const lines = readFileSync(args.corpus, 'utf8').split('\n').filter(Boolean);
const corpus = lines.slice(0, args.limit ? Number(args.limit) : undefined).map((line) => JSON.parse(line));
const started = performance.now();
const ids = [];
let next = 0;
let failedUploads = 0;

async function uploader() {
  while (next < corpus.length) {
    const docs = corpus.slice(next, next + Number(args.batch));
    next += docs.length;
    const response = await fetch(`${args.url}/v1/documents`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        namespace: args.namespace,
        documents: docs.map((doc) => ({ text: doc.text, title: doc.title, metadata: { corpusId: doc._id } })),
      }),
    });
    if (response.status !== 202) {
      failedUploads += docs.length;
      console.error('upload failed', docs[0]._id, response.status, await response.text());
      continue;
    }
    for (const document of (await response.json()).documents) ids.push(document.id);
  }
}
await Promise.all(Array.from({ length: Number(args.concurrency) }, uploader));
const uploadedAt = performance.now();
console.log(`uploaded ${ids.length} documents in ${((uploadedAt - started) / 1000).toFixed(1)} s (${failedUploads} failed)`);

// Wait until nothing is queued or processing (counts from /status, all namespaces).
const deadline = Date.now() + Number(args['timeout-seconds']) * 1000;
let counts;
for (;;) {
  counts = (await (await fetch(`${args.url}/status`)).json()).documents;
  if (counts.queued === 0 && counts.processing === 0) break;
  if (Date.now() > deadline) {
    console.error('timed out waiting', counts);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 250));
}
const doneAt = performance.now();
console.log(`all settled ${((doneAt - started) / 1000).toFixed(1)} s after the first upload:`, JSON.stringify(counts));
