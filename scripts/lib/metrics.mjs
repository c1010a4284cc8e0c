// Retrieval metrics with trec_eval's definitions (as BEIR computes them through pytrec_eval),
// as small pure functions. A ranking is an array of document ids, best first, without
// repeats; a qrel is a Map (or plain object) of document id → graded relevance, where a
// score > 0 means relevant.

/** @param {Map<string, number> | Record<string, number>} qrel */
function gainsOf(qrel) {
  return qrel instanceof Map ? qrel : new Map(Object.entries(qrel));
}

/** Number of judged-relevant documents (relevance > 0). */
export function relevantCount(qrel) {
  let n = 0;
  for (const rel of gainsOf(qrel).values()) if (rel > 0) n++;
  return n;
}

/** DCG@k with linear gains (the qrel score) and log2(rank + 1) discount, as trec_eval's ndcg_cut. */
export function dcgAt(ranking, qrel, k) {
  const gains = gainsOf(qrel);
  let dcg = 0;
  for (let i = 0; i < Math.min(k, ranking.length); i++) {
    const rel = gains.get(ranking[i]) ?? 0;
    if (rel > 0) dcg += rel / Math.log2(i + 2);
  }
  return dcg;
}

/** nDCG@k; the ideal ranking is every judged-relevant document, highest grade first. */
export function ndcgAt(ranking, qrel, k) {
  const ideal = [...gainsOf(qrel).entries()].filter(([, rel]) => rel > 0).sort((a, b) => b[1] - a[1]);
  const idcg = dcgAt(
    ideal.map(([id]) => id),
    new Map(ideal),
    k,
  );
  return idcg === 0 ? 0 : dcgAt(ranking, qrel, k) / idcg;
}

/** Recall@k: relevant documents in the top k over all judged-relevant documents. */
export function recallAt(ranking, qrel, k) {
  const gains = gainsOf(qrel);
  const total = relevantCount(gains);
  if (total === 0) return 0;
  let found = 0;
  for (let i = 0; i < Math.min(k, ranking.length); i++) if ((gains.get(ranking[i]) ?? 0) > 0) found++;
  return found / total;
}

/** MRR@k (reciprocal rank of the first relevant document in the top k, 0 if none). */
export function mrrAt(ranking, qrel, k) {
  const gains = gainsOf(qrel);
  for (let i = 0; i < Math.min(k, ranking.length); i++) if ((gains.get(ranking[i]) ?? 0) > 0) return 1 / (i + 1);
  return 0;
}

/**
 * Passage-level results → document ranking: each document keeps its first (best) rank,
 * as BEIR does when it scores passage retrieval. `toDocs(passage)` returns the document
 * ids a passage stands for (usually one); unknown passages return [].
 */
export function collapseToDocuments(passages, toDocs) {
  const seen = new Set();
  const ranking = [];
  for (const passage of passages) {
    for (const id of toDocs(passage)) {
      if (!seen.has(id)) {
        seen.add(id);
        ranking.push(id);
      }
    }
  }
  return ranking;
}

/**
 * Averages over every query in `qrels` (Map query id → qrel); a query missing from
 * `runs` (Map query id → ranking) scores 0 and still counts.
 * `metrics` is a list of { name, fn, k }; returns { [name]: mean }.
 */
export function evaluate(runs, qrels, metrics) {
  const sums = Object.fromEntries(metrics.map((m) => [m.name, 0]));
  for (const [queryId, qrel] of qrels) {
    const ranking = runs.get(queryId) ?? [];
    for (const m of metrics) sums[m.name] += m.fn(ranking, qrel, m.k);
  }
  const n = qrels.size;
  return Object.fromEntries(Object.entries(sums).map(([name, sum]) => [name, n === 0 ? 0 : sum / n]));
}

/** The standard set: nDCG@10, Recall@10, Recall@<deepK>, MRR@10. */
export function standardMetrics(deepK = 100) {
  return [
    { name: 'nDCG@10', fn: ndcgAt, k: 10 },
    { name: 'R@10', fn: recallAt, k: 10 },
    { name: `R@${deepK}`, fn: recallAt, k: deepK },
    { name: 'MRR@10', fn: mrrAt, k: 10 },
  ];
}

/** Nearest-rank percentile (p in 0..100) of a list of numbers; NaN when empty. */
export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** Parses a BEIR qrels TSV (header `query-id corpus-id score`, LF or CRLF) → Map query → Map doc → score. */
export function parseQrels(text) {
  const qrels = new Map();
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    const [queryId, docId, score] = line.split('\t').map((s) => s.trim());
    if (i === 0 && queryId === 'query-id') continue;
    if (!qrels.has(queryId)) qrels.set(queryId, new Map());
    qrels.get(queryId).set(docId, Number(score));
  }
  return qrels;
}
