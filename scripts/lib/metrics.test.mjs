// Self-check of the metric functions against hand-computed examples: node scripts/lib/metrics.test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  collapseToDocuments,
  dcgAt,
  evaluate,
  mrrAt,
  ndcgAt,
  parseQrels,
  percentile,
  recallAt,
  standardMetrics,
} from './metrics.mjs';

const close = (actual, expected) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≠ ${expected}`);

test('ideal ranking has nDCG 1; no relevant retrieved has nDCG 0', () => {
  const qrel = new Map([['a', 2], ['b', 1], ['c', 1]]);
  close(ndcgAt(['a', 'b', 'c', 'x'], qrel, 10), 1);
  close(ndcgAt(['a', 'c', 'b'], qrel, 10), 1); // equal grades swapped: still ideal
  close(ndcgAt(['x', 'y'], qrel, 10), 0);
  close(ndcgAt([], qrel, 10), 0);
});

test('graded toy case computed by hand', () => {
  // qrels: d1=3, d2=2, d3=1; ranking: x, d3, d1 (d2 not retrieved).
  // DCG  = 0/log2(2) + 1/log2(3) + 3/log2(4) = 0.630930 + 1.5 = 2.130930
  // IDCG = 3/1 + 2/log2(3) + 1/log2(4) = 3 + 1.261860 + 0.5 = 4.761860
  const qrel = { d1: 3, d2: 2, d3: 1 };
  const ranking = ['x', 'd3', 'd1'];
  close(dcgAt(ranking, qrel, 10), 1 / Math.log2(3) + 1.5);
  close(ndcgAt(ranking, qrel, 10), (1 / Math.log2(3) + 1.5) / (3 + 2 / Math.log2(3) + 0.5));
  assert.ok(Math.abs(ndcgAt(ranking, qrel, 10) - 0.4475) < 5e-6); // 2.130930 / 4.761860 = 0.447500
  // Cut at 2: DCG = 1/log2(3) = 0.630930; IDCG@2 = 3 + 2/log2(3) = 4.261860
  close(ndcgAt(ranking, qrel, 2), 1 / Math.log2(3) / (3 + 2 / Math.log2(3)));
});

test('ideal DCG uses all judged-relevant documents, even those beyond the ranking', () => {
  // One relevant retrieved at rank 1 of two relevant: DCG 1, IDCG 1 + 1/log2(3).
  close(ndcgAt(['a'], { a: 1, b: 1 }, 10), 1 / (1 + 1 / Math.log2(3)));
  // Judged non-relevant (0) documents are not part of the ideal.
  close(ndcgAt(['a'], { a: 1, z: 0 }, 10), 1);
});

test('recall and MRR at a cut-off', () => {
  const qrel = { a: 1, b: 1, c: 1, d: 1 };
  const ranking = ['x', 'a', 'y', 'b', 'c'];
  close(recallAt(ranking, qrel, 2), 1 / 4);
  close(recallAt(ranking, qrel, 10), 3 / 4);
  close(mrrAt(ranking, qrel, 10), 1 / 2);
  close(mrrAt(ranking, qrel, 1), 0);
  close(mrrAt(['x', 'y', 'z'], qrel, 10), 0);
  close(recallAt(ranking, { a: 0 }, 10), 0); // nothing relevant judged
});

test('passages collapse to documents at their best rank', () => {
  const passages = [{ doc: 'A' }, { doc: 'B' }, { doc: 'A' }, { doc: '?' }, { doc: 'C' }];
  const map = { A: ['a'], B: ['b'], C: ['c'] };
  assert.deepEqual(collapseToDocuments(passages, (p) => map[p.doc] ?? []), ['a', 'b', 'c']);
});

test('evaluate averages over every judged query; a query without results counts as 0', () => {
  const qrels = new Map([
    ['q1', new Map([['a', 1]])],
    ['q2', new Map([['b', 1]])],
  ]);
  const runs = new Map([['q1', ['a']]]); // q2 returned nothing
  const result = evaluate(runs, qrels, standardMetrics(100));
  close(result['nDCG@10'], 0.5);
  close(result['R@10'], 0.5);
  close(result['R@100'], 0.5);
  close(result['MRR@10'], 0.5);
});

test('qrels TSV with CRLF line ends', () => {
  const qrels = parseQrels('query-id\tcorpus-id\tscore\r\n1\t31715818\t1\r\n3\t14717500\t1\r\n3\t999\t2\r\n');
  assert.equal(qrels.size, 2);
  assert.equal(qrels.get('3').get('999'), 2);
  assert.equal(qrels.get('1').get('31715818'), 1);
});

test('nearest-rank percentiles', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 95), 95);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});
