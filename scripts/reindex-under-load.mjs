#!/usr/bin/env node
// Re-indexing without an empty window, tried against a running engine: keyword queries for
// document titles run from several clients while `POST /v1/reindex` builds a new index
// generation; reported are the queries answered during the rebuild, how many came back empty
// although the same query had results before, and when the new generation began serving.
//
//   node scripts/reindex-under-load.mjs --titles FILE [--url http://127.0.0.1:8787] [--clients 8] [--api-key K]
//
// FILE is a JSON array of titles of documents in the default namespace (whose generation
// /status shows). Restart the engine with a changed setting first (e.g. `npm start -- --var
// CHUNK_SIZE:256`), so that the rebuild has something to change.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    titles: { type: 'string' },
    clients: { type: 'string', default: '8' },
    'api-key': { type: 'string' },
  },
});
if (!args.titles) {
  console.error('usage: node scripts/reindex-under-load.mjs --titles FILE [--url URL] [--clients 8] [--api-key K]');
  process.exit(2);
}
const titles = JSON.parse(readFileSync(args.titles, 'utf8'));
const headers = { 'content-type': 'application/json', ...(args['api-key'] && { authorization: `Bearer ${args['api-key']}` }) };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Passages a keyword query for `text` returns (−1 on an error). */
async function ask(text) {
  const response = await fetch(`${args.url}/v1/query`, { method: 'POST', headers, body: JSON.stringify({ query: text, mode: 'keyword', topK: 5 }) });
  if (!response.ok) return -1;
  return (await response.json()).passages.length;
}

async function generation() {
  return (await (await fetch(`${args.url}/status`, { headers })).json()).components.searchEngine.generation;
}

const answered = new Set();
for (const title of titles) if ((await ask(title)) > 0) answered.add(title);
console.log(`before: ${answered.size} of ${titles.length} titles answered; generation ${JSON.stringify(await generation())}`);

let stop = false;
let during = 0;
let empty = 0;
let errors = 0;
const clients = Array.from({ length: Number(args.clients) }, async (_, c) => {
  for (let i = c; !stop; i++) {
    const title = titles[i % titles.length];
    const n = await ask(title).catch(() => -1);
    during++;
    if (n < 0) errors++;
    else if (n === 0 && answered.has(title)) empty++;
  }
});

const started = Date.now();
const response = await fetch(`${args.url}/v1/reindex?namespace=default`, { method: 'POST', headers });
const reindex = await response.json();
console.log(`POST /v1/reindex: ${response.status} ${JSON.stringify(reindex)}`);
const target = reindex.generations?.[0]?.generation;
let switched = null;
while (target !== undefined && Date.now() - started < 600_000) {
  if ((await generation()).serving === target) {
    switched = (Date.now() - started) / 1000;
    break;
  }
  await sleep(500);
}
await sleep(3000); // queries go on a little after the switch
stop = true;
await Promise.all(clients);
console.log(`generation ${target} serving after ${switched === null ? 'never (10 min)' : `${switched.toFixed(1)} s`}`);
console.log(`queries during the rebuild: ${during}; empty where they had results before: ${empty}; errors: ${errors}`);
let after = 0;
for (const title of titles) if ((await ask(title)) > 0) after++;
console.log(`after: ${after} of ${titles.length} titles answered; generation ${JSON.stringify(await generation())}`);
process.exit(empty === 0 && errors === 0 && switched !== null ? 0 : 1);
