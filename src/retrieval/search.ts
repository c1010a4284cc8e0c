import type { MetadataFilter, Reranker } from '../providers/types';
import type { Services } from '../services';
import { PASSAGE_COLUMNS, type PassageRow, passageFromRow, type StoredPassage } from '../storage/chunks';
import { words, isStopword } from '../text/analyze';
import { filterToSql } from './filter-sql';
import { reciprocalRankFusion } from './fusion';

export type SearchMode = 'hybrid' | 'vector' | 'keyword';

export interface SearchRequest {
  query: string;
  topK: number;
  namespace: string;
  filter?: MetadataFilter;
  mode: SearchMode;
}

export interface Passage extends StoredPassage {
  /**
   * Fused score in hybrid mode, cosine similarity in vector mode, -bm25 in keyword mode;
   * the reranker's relevance score when reranking is on.
   */
  score: number;
}

/** Vectorize returns at most 100 matches when values and metadata are not requested. */
const MAX_VECTOR_CANDIDATES = 100;

/** Only chunks of documents that completed an ingestion are ever returned. */
const VISIBLE = 'd.indexed_at IS NOT NULL';

/**
 * Hybrid retrieval: vector search, then keyword search (FTS5 bm25) and the texts of the
 * vector hits in one D1 batch, fused by reciprocal rank fusion. Two round trips, three
 * binding calls at most; every call on this path costs throughput.
 */
export async function search(services: Services, request: SearchRequest): Promise<Passage[]> {
  const { config } = services;
  const candidates = Math.max(config.RETRIEVAL_CANDIDATES, request.topK);

  const vectorMatches =
    request.mode === 'keyword'
      ? []
      : await services.vectors.query((await services.embedder.embed([request.query]))[0] as Float32Array, {
          topK: Math.min(candidates, MAX_VECTOR_CANDIDATES),
          namespace: request.namespace,
          filter: request.filter,
        });

  const statements: D1PreparedStatement[] = [];
  const keyword = request.mode === 'vector' ? null : keywordStatement(services.db, request, candidates);
  if (keyword) statements.push(keyword);
  if (vectorMatches.length > 0) statements.push(byIdsStatement(services.db, vectorMatches.map((m) => m.id)));
  const results = statements.length ? await services.db.batch<PassageRow & { rank?: number }>(statements) : [];

  const keywordRows = keyword ? (results[0]?.results ?? []) : [];
  const vectorRows = results[keyword ? 1 : 0]?.results ?? [];
  const passages = new Map<string, Passage>();
  for (const row of [...keywordRows, ...vectorRows]) passages.set(row.id, { ...passageFromRow(row), score: 0 });

  // Vector hits whose rows are gone or invisible (deleted, failed, not yet ready) drop out here.
  const vectorIds = vectorMatches.filter((m) => passages.has(m.id));
  let ranked: { id: string; score: number }[];
  if (request.mode === 'vector') ranked = vectorIds;
  else if (request.mode === 'keyword') ranked = keywordRows.map((row) => ({ id: row.id, score: -(row.rank ?? 0) }));
  else {
    ranked = reciprocalRankFusion(
      [
        { ids: vectorIds.map((m) => m.id), weight: config.VECTOR_WEIGHT },
        { ids: keywordRows.map((row) => row.id), weight: config.KEYWORD_WEIGHT },
      ],
      config.RRF_K,
    );
  }
  const fused = ranked.map(({ id, score }) => ({ ...(passages.get(id) as Passage), score }));
  return services.reranker ? rerank(services, request, fused) : fused.slice(0, request.topK);
}

/**
 * Rescores the best fused candidates with a cross-encoder, which reads query and passage
 * together: slower than the retrievers, so it only sees the top RERANK_CANDIDATES.
 */
async function rerank(services: Services, request: SearchRequest, candidates: Passage[]): Promise<Passage[]> {
  const reranker = services.reranker as Reranker;
  const pool = candidates.slice(0, Math.max(request.topK, services.config.RERANK_CANDIDATES));
  if (pool.length === 0) return [];
  const scores: number[] = [];
  for (let i = 0; i < pool.length; i += reranker.maxBatchSize) {
    const slice = pool.slice(i, i + reranker.maxBatchSize);
    scores.push(...(await reranker.score(request.query, slice.map((p) => p.text))));
  }
  return pool
    .map((passage, i) => ({ ...passage, score: scores[i] as number }))
    .sort((a, b) => b.score - a.score)
    .slice(0, request.topK);
}

/**
 * The FTS5 query for free text: each word quoted (so user input cannot inject FTS
 * syntax) and OR-ed, letting bm25 rank by how many and how rare the matches are.
 */
export function keywordQuery(text: string): string | null {
  const unique = [...new Set(words(text).filter((word) => !isStopword(word)))];
  return unique.length ? unique.map((word) => `"${word}"`).join(' OR ') : null;
}

function keywordStatement(db: D1Database, request: SearchRequest, limit: number): D1PreparedStatement | null {
  const match = keywordQuery(request.query);
  if (!match) return null;
  const filter = filterToSql(request.filter);
  return db
    .prepare(
      `SELECT ${PASSAGE_COLUMNS}, bm25(chunks_fts, 1.0, 0.5) AS rank
       FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
       WHERE chunks_fts MATCH ? AND c.namespace = ? AND ${VISIBLE}${filter.sql}
       ORDER BY rank LIMIT ?`,
    )
    .bind(match, request.namespace, ...filter.params, limit);
}

function byIdsStatement(db: D1Database, ids: string[]): D1PreparedStatement {
  return db
    .prepare(
      `SELECT ${PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id
       WHERE c.id IN (SELECT value FROM json_each(?)) AND ${VISIBLE}`,
    )
    .bind(JSON.stringify(ids));
}
