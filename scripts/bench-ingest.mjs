#!/usr/bin/env node
// Uploads the SciFact corpus (5,183 abstracts) through the HTTP API and times how long
// until every document is ready. Usage: node scripts/bench-ingest.mjs [--url http://127.0.0.1:8787]
//   [--data ../shared/data/scifact] [--limit N] [--concurrency 4] [--batch 50] [--namespace scifact]
//   [--timeout-seconds 600] [--api-key K]
// Each request carries --batch abstracts as JSON { documents: [...] }; --batch 1 sends one per request.
// --api-key K is sent as `Authorization: Bearer K` (the engine with auth on wants a key with
// the write scope); a refused key stops the run with the engine's reason.
import { commandLine, loadBeir, upload, waitUntilSettled } from './eval.mjs';

const USAGE = `usage: node scripts/bench-ingest.mjs [--url URL] [--data DIR] [--limit N] [--concurrency 4]
       [--batch 50] [--namespace scifact] [--timeout-seconds 600] [--api-key K]`;

const args = commandLine(
  {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    data: { type: 'string', default: new URL('../../shared/data/scifact', import.meta.url).pathname },
    limit: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    batch: { type: 'string', default: '50' },
    namespace: { type: 'string', default: 'scifact' },
    'timeout-seconds': { type: 'string', default: '600' },
  },
  USAGE,
);
const fail = (error) => {
  console.error(error.message);
  process.exit(1);
};

const corpus = loadBeir(args.data).corpus.slice(0, args.limit ? Number(args.limit) : undefined);
const started = performance.now();
const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
const uploads = await upload(args.url, args.namespace, corpus, { batch: Number(args.batch), concurrency: Number(args.concurrency) }).catch(fail);
console.log(`uploaded ${uploads.uploaded} documents in ${seconds()} s (${uploads.failedUploads} failed)`);
const { failed } = await waitUntilSettled(args.url, args.namespace, { timeoutSeconds: Number(args['timeout-seconds']) }).catch(fail);
console.log(`all settled ${seconds()} s after the first upload (${failed} failed)`);
