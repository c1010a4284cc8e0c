#!/usr/bin/env node
// The new user's acceptance run against a running engine (either profile): every file of
// ../shared/data/documents uploaded in one request; each must reach the outcome listed in
// test/sample-documents.json (ready and found in the top 3 by a phrase from it, or failed with
// its reason). The same expectations drive test/sample-documents.test.ts.
//
//   node scripts/check-samples.mjs [--url http://127.0.0.1:8787] [--data ../shared/data] [--namespace samples-…]
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { authHeaders, commandLine, sleep } from './eval.mjs';

const USAGE = 'usage: node scripts/check-samples.mjs [--url URL] [--data DIR] [--namespace ns] [--api-key K]';
const args = commandLine(
  {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    data: { type: 'string', default: new URL('../../shared/data', import.meta.url).pathname },
    namespace: { type: 'string', default: `samples-${Date.now().toString(36)}` },
  },
  USAGE,
);
const expected = JSON.parse(readFileSync(new URL('../test/sample-documents.json', import.meta.url), 'utf8'));
const paths = [...Object.keys(expected.readable), ...Object.keys(expected.unreadable)];

const form = new FormData();
for (const path of paths) form.append('file', new Blob([readFileSync(join(args.data, 'documents', path))]), basename(path));
form.append('namespace', args.namespace);
const started = Date.now();
const response = await fetch(`${args.url}/v1/documents`, { method: 'POST', body: form, headers: { ...authHeaders } });
if (!response.ok) throw new Error(`upload: ${response.status} ${await response.text()}`);
const { documents } = await response.json();
const byPath = new Map(paths.map((path, i) => [path, documents[i]]));

async function settled(id) {
  for (;;) {
    const document = await (await fetch(`${args.url}/v1/documents/${id}`, { headers: { ...authHeaders } })).json();
    if (document.status === 'ready' || document.status === 'failed') return document;
    await sleep(500);
  }
}

let failures = 0;
const fail = (path, why) => (failures++, console.log(`FAIL ${path}: ${why}`));
for (const [path, phrase] of Object.entries(expected.readable)) {
  const document = await settled(byPath.get(path).id);
  if (document.status !== 'ready') {
    fail(path, `${document.status}: ${document.error}`);
    continue;
  }
  const found = await fetch(`${args.url}/v1/query`, {
    method: 'POST',
    headers: { ...authHeaders, 'content-type': 'application/json' },
    body: JSON.stringify({ query: phrase, namespace: args.namespace, topK: 10 }),
  });
  const { passages } = await found.json();
  const top = [...new Set(passages.map((p) => p.documentId))].slice(0, 3);
  if (!top.includes(document.id)) fail(path, `not in the top 3 for "${phrase}"`);
}
for (const [path, { pattern, flags }] of Object.entries(expected.unreadable)) {
  const document = await settled(byPath.get(path).id);
  if (document.status !== 'failed' || !new RegExp(pattern, flags).test(document.error ?? '')) fail(path, `${document.status}: ${document.error}`);
}
const total = paths.length;
console.log(`${total - failures} of ${total} files as expected (${Object.keys(expected.readable).length} ready and found in the top 3, ${Object.keys(expected.unreadable).length} failed with their reason) in ${((Date.now() - started) / 1000).toFixed(1)} s, namespace ${args.namespace}`);
process.exit(failures ? 1 : 0);
