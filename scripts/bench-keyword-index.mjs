#!/usr/bin/env node --expose-gc
// The offline keyword index (src/engines/keyword-index.ts) on a BEIR corpus, in Node: build
// time, memory per passage, and query time with and without pseudo-relevance feedback.
//   node --expose-gc scripts/bench-keyword-index.mjs [--data ../shared/data/scifact]
import { parseArgs } from 'node:util';
import { loadBeir } from './eval.mjs';
import { corpusPassages, engineModules } from './lib/engine-modules.mjs';

const { values: args } = parseArgs({
  options: { data: { type: 'string', default: new URL('../../shared/data/scifact', import.meta.url).pathname } },
});
const engine = await engineModules();
const { corpus, queries } = loadBeir(args.data);
const passages = corpusPassages(engine, corpus);
const gc = globalThis.gc ?? (() => {});
const used = () => (gc(), process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Memory of one index, with the word → term memo (shared, bounded) filled beforehand.
for (const p of passages) engine.keywordTerms(`${p.context} ${p.text}`);
const before = used();
let index = new engine.KeywordIndex();
passages.forEach((p, row) => index.add(row, p.text, p.context));
const bytes = used() - before;
const builds = [];
for (let run = 0; run < 3; run++) {
  const start = performance.now();
  index = new engine.KeywordIndex();
  passages.forEach((p, row) => index.add(row, p.text, p.context));
  builds.push(performance.now() - start);
}
const textOf = (rows) => rows.map((r) => `${passages[r].context}\n${passages[r].text}`);
const time = (fn) => {
  const runs = [];
  for (let run = 0; run < 3; run++) {
    const start = performance.now();
    for (const text of queries.values()) fn(text);
    runs.push((performance.now() - start) / queries.size);
  }
  return median(runs);
};
console.log(`${passages.length} passages, ${queries.size} queries (medians of 3 runs)`);
console.log(`build            ${median(builds).toFixed(0)} ms`);
console.log(`memory           ${(bytes / 2 ** 20).toFixed(1)} MiB, ${(bytes / passages.length).toFixed(0)} B a passage${globalThis.gc ? '' : ' (run with --expose-gc for a stable figure)'}`);
console.log(`query            ${time((q) => index.search(q, 50)).toFixed(3)} ms`);
console.log(`query + feedback ${time((q) => index.searchExpanded(q, 50, engine.DEFAULT_FEEDBACK, textOf)).toFixed(3)} ms`);
