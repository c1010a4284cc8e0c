export interface Ranking<Id = string> {
  /** Ids, best first. */
  ids: Id[];
  weight: number;
}

export interface FusedResult<Id = string> {
  id: Id;
  score: number;
}

/**
 * Reciprocal rank fusion (Cormack et al., 2009): score(d) = Σ weight / (k + rank(d)),
 * rank starting at 1. It needs no score calibration between retrievers, which is why it
 * suits cosine similarities and bm25 scores that live on unrelated scales. Ties keep the
 * order in which ids were first seen, so the result is deterministic.
 */
export function reciprocalRankFusion<Id>(rankings: Ranking<Id>[], k: number): FusedResult<Id>[] {
  const scores = new Map<Id, number>();
  for (const { ids, weight } of rankings) {
    ids.forEach((id, index) => scores.set(id, (scores.get(id) ?? 0) + weight / (k + index + 1)));
  }
  // Map iteration is insertion order and Array.prototype.sort is stable.
  return [...scores].map(([id, score]) => ({ id, score })).sort((a, b) => b.score - a.score);
}

/**
 * The ranking a search mode returns: the vector hits, the keyword hits, or both fused by
 * `reciprocalRankFusion` (hits best first; `key` says which hits are the same passage).
 * The one fusion of both engines.
 */
export function fuse<Hit extends { score: number }, Id>(
  mode: 'hybrid' | 'vector' | 'keyword',
  vectorHits: Hit[],
  keywordHits: Hit[],
  weights: { k: number; vectorWeight: number; keywordWeight: number },
  key: (hit: Hit) => Id,
): { id: Id; score: number }[] {
  if (mode === 'vector') return vectorHits.map((hit) => ({ id: key(hit), score: hit.score }));
  if (mode === 'keyword') return keywordHits.map((hit) => ({ id: key(hit), score: hit.score }));
  return reciprocalRankFusion(
    [
      { ids: vectorHits.map(key), weight: weights.vectorWeight },
      { ids: keywordHits.map(key), weight: weights.keywordWeight },
    ],
    weights.k,
  );
}
