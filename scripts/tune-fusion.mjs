#!/usr/bin/env node
// Tunes the hybrid fusion (VECTOR_WEIGHT, KEYWORD_WEIGHT, RRF_K) on a BEIR split: fetches
// each query's vector and keyword rankings once, then replays reciprocal rank fusion
// client-side for every setting, exactly as src/retrieval/fusion.ts does, and prints
// nDCG@10 per setting. Tune on train, report on test (scripts/eval.mjs with the chosen vars).
//   node scripts/tune-fusion.mjs [--url] [--namespace scifact] [--split train] [--data DIR] [--api-key K]
// --api-key K is sent as `Authorization: Bearer K` (the engine with auth on wants a key with
// the read scope); a refused key stops the run with the engine's reason.
import { commandLine, idMap, loadBeir, query } from './eval.mjs';
import { collapseToDocuments, ndcgAt } from './lib/metrics.mjs';

const USAGE = `usage: node scripts/tune-fusion.mjs [--url URL] [--namespace scifact] [--split train] [--data DIR]
       [--api-key K]`;
const args = commandLine(
  {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    namespace: { type: 'string', default: 'scifact' },
    split: { type: 'string', default: 'train' },
    data: { type: 'string', default: new URL('../../shared/data/scifact', import.meta.url).pathname },
  },
  USAGE,
);
const { corpus, queries, qrels } = loadBeir(args.data, args.split);
const ids = idMap(args.namespace, corpus);
const toDocs = (passage) => ids.get(passage.documentId) ?? [];

const lists = new Map();
let next = 0;
const items = [...qrels.keys()];
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < items.length) {
      const id = items[next++];
      const body = { query: queries.get(id), topK: 100, namespace: args.namespace };
      const [vector, keyword] = await Promise.all([query(args.url, { ...body, mode: 'vector' }), query(args.url, { ...body, mode: 'keyword' })]);
      const refused = [vector, keyword].find((r) => r.refused);
      if (refused) throw new Error(refused.error);
      lists.set(id, { vector: vector.passages, keyword: keyword.passages });
    }
  }),
).catch((error) => {
  console.error(error.message);
  process.exit(1);
});

function fuse(rankings, k) {
  const scores = new Map();
  const byId = new Map();
  for (const { passages, weight } of rankings) {
    passages.forEach((p, i) => {
      byId.set(p.id, p);
      scores.set(p.id, (scores.get(p.id) ?? 0) + weight / (k + i + 1));
    });
  }
  return [...scores].sort((a, b) => b[1] - a[1]).map(([id]) => byId.get(id));
}

const rows = [];
for (const k of [10, 20, 40, 60, 100]) {
  for (const vectorWeight of [0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1]) {
    let sum = 0;
    for (const [id, qrel] of qrels) {
      const { vector, keyword } = lists.get(id);
      const fused = fuse([{ passages: vector, weight: vectorWeight }, { passages: keyword, weight: 1 }], k);
      sum += ndcgAt(collapseToDocuments(fused.slice(0, 100), toDocs), qrel, 10);
    }
    rows.push({ k, vectorWeight, ndcg: sum / qrels.size });
  }
}
rows.sort((a, b) => b.ndcg - a.ndcg);
console.log(`split ${args.split}, ${qrels.size} queries; best settings first (keyword weight 1):`);
for (const row of rows.slice(0, 12)) console.log(`RRF_K=${row.k}\tVECTOR_WEIGHT=${row.vectorWeight}\tnDCG@10=${row.ndcg.toFixed(4)}`);
