#!/usr/bin/env node
// Rebuilds the catalog from the R2 originals (see the README's runbook): pages through
// POST /v1/recover until the bucket is done, then waits until the restored documents are
// ingested again. Needs an admin key when auth is on.
//
//   node scripts/recover.mjs [--url http://127.0.0.1:8787] --api-key <admin key>
import { authHeaders, commandLine, sleep } from './eval.mjs';

const args = commandLine({ url: { type: 'string', default: 'http://127.0.0.1:8787' } }, 'usage: node scripts/recover.mjs [--url URL] [--api-key K]');
const total = { scanned: 0, restored: 0, withoutManifest: 0 };
let cursor = null;
do {
  const response = await fetch(`${args.url}/v1/recover${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`, { method: 'POST', headers: { ...authHeaders } });
  if (response.status !== 202) throw new Error(`recover: ${response.status} ${await response.text()}`);
  const page = await response.json();
  for (const key of Object.keys(total)) total[key] += page[key];
  cursor = page.cursor;
  console.log(`scanned ${total.scanned} originals, restored ${total.restored} documents (${total.withoutManifest} without a manifest)`);
} while (cursor);

// Until nothing is queued or processing.
for (;;) {
  const status = await (await fetch(`${args.url}/status`, { headers: { ...authHeaders } })).json();
  const { queued = 0, processing = 0, ready = 0, failed = 0 } = status.documents ?? {};
  console.log(`documents: ${ready} ready, ${failed} failed, ${queued + processing} to go`);
  if (queued + processing === 0) break;
  await sleep(2000);
}
