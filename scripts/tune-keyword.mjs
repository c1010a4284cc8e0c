#!/usr/bin/env node
// Tunes the offline keyword index (BM25F k1, b, context weight) on a BEIR split without the
// engine: chunks the corpus with the engine's chunker, indexes it with the engine's
// KeywordIndex (both bundled from src/ by esbuild) and prints nDCG@10 per setting.
// Tune on train, then confirm on test with scripts/eval.mjs against the running engine.
//   node scripts/tune-keyword.mjs [--split train] [--data DIR] [k1=0.9,1.2 b=0.4,0.75 fbRows=0,3 ...]
import { parseArgs } from 'node:util';
import { loadBeir } from './eval.mjs';
import { corpusPassages, engineModules } from './lib/engine-modules.mjs';
import { collapseToDocuments, evaluate, standardMetrics } from './lib/metrics.mjs';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    split: { type: 'string', default: 'train' },
    data: { type: 'string', default: new URL('../../shared/data/scifact', import.meta.url).pathname },
  },
});

const engine = await engineModules();
const { corpus, queries, qrels } = loadBeir(args.data, args.split);

const passages = corpusPassages(engine, corpus);

// Each grid axis: name=v1,v2,… (defaults: the engine's); fbRows=0 turns feedback off.
const { rows: fbRows, terms: fbTerms, originalWeight: fbOriginal } = engine.DEFAULT_FEEDBACK;
const defaults = { ...engine.DEFAULT_KEYWORD_PARAMS, fbRows, fbTerms, fbOriginal };
const grid = Object.fromEntries(Object.entries(defaults).map(([k, v]) => [k, [v]]));
for (const axis of positionals) {
  const [name, values] = axis.split('=');
  grid[name] = values.split(',').map(Number);
}
const settings = Object.entries(grid).reduce(
  (acc, [name, values]) => acc.flatMap((s) => values.map((v) => ({ ...s, [name]: v }))),
  [{}],
);

console.log(`${passages.length} passages, ${qrels.size} ${args.split} queries, ${settings.length} settings`);
for (const params of settings) {
  const index = new engine.KeywordIndex(params);
  passages.forEach((p, row) => index.add(row, p.text, p.context));
  const runs = new Map();
  for (const id of qrels.keys()) {
    const hits = params.fbRows
      ? index.searchExpanded(queries.get(id), 100, { rows: params.fbRows, terms: params.fbTerms, originalWeight: params.fbOriginal }, (rows) => rows.map((r) => `${passages[r].context}\n${passages[r].text}`))
      : index.search(queries.get(id), 100);
    runs.set(id, collapseToDocuments(hits, (hit) => [passages[hit.row].corpusId]));
  }
  const m = evaluate(runs, qrels, standardMetrics(100));
  console.log(JSON.stringify(params), Object.entries(m).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  '));
}
