import { embedQuery } from '../cache/embeddings';
import { type MetadataFilter, parseFilter, type Reranker, type ScoredPassage, type SearchMode } from '../domain';
import type { Services } from '../services';
import { servingScope } from './generations';

export type { SearchMode };

export interface SearchRequest {
  query: string;
  topK: number;
  namespace: string;
  filter?: MetadataFilter;
  mode: SearchMode;
}

export type Passage = ScoredPassage;

/**
 * Retrieval: the query embedded (unless keyword mode), the configured search engine's hybrid
 * search (vector and keyword search fused), then optionally a reranker over the best.
 */
export async function search(services: Services, request: SearchRequest): Promise<Passage[]> {
  // The generation serving the namespace: its engine namespaces, and the model its vectors are of.
  const serving = await servingScope(services, request.namespace);
  const { config, engine, reranker } = serving;
  const wanted = reranker ? Math.max(request.topK, config.RERANK_CANDIDATES) : request.topK;
  const vector = request.mode === 'keyword' ? null : await embedQuery(serving, request.query);
  const passages = await engine.search({
    namespace: request.namespace,
    text: request.query,
    vector,
    mode: request.mode,
    limit: Math.min(wanted, engine.limits.maxResults),
    candidates: Math.min(Math.max(config.RETRIEVAL_CANDIDATES, request.topK), engine.limits.maxResults),
    filter: parseFilter(request.filter),
    fusion: { k: config.RRF_K, vectorWeight: config.VECTOR_WEIGHT, keywordWeight: config.KEYWORD_WEIGHT },
  });
  return reranker ? rerank(reranker, request, passages, config.RERANK_CANDIDATES) : passages.slice(0, request.topK);
}

/**
 * Rescores the best fused candidates with a cross-encoder, which reads query and passage
 * together: slower than the retrievers, so it only sees the top RERANK_CANDIDATES.
 */
async function rerank(reranker: Reranker, request: SearchRequest, candidates: Passage[], pool: number): Promise<Passage[]> {
  const shortlist = candidates.slice(0, Math.max(request.topK, pool));
  if (shortlist.length === 0) return [];
  const scores: number[] = [];
  for (let i = 0; i < shortlist.length; i += reranker.maxBatchSize) {
    const slice = shortlist.slice(i, i + reranker.maxBatchSize);
    scores.push(...(await reranker.score(request.query, slice.map((p) => p.text))));
  }
  return shortlist
    .map((passage, i) => ({ ...passage, score: scores[i] as number }))
    .sort((a, b) => b.score - a.score)
    .slice(0, request.topK);
}
