import { embedQuery } from '../cache/embeddings';
import { isPassageIndex, type MetadataFilter, type PassageIndex, type Reranker, type ScoredPassage } from '../domain/types';
import type { Services } from '../services';
import { PASSAGE_COLUMNS, type PassageRow, passageFromRow } from '../storage/chunks';
import { words, isStopword } from '../text/analyze';
import { filterToSql } from '../engines/cloudflare/filter-sql';
import { reciprocalRankFusion } from '../engines/fusion';

export type SearchMode = 'hybrid' | 'vector' | 'keyword';

export interface SearchRequest {
  query: string;
  topK: number;
  namespace: string;
  filter?: MetadataFilter;
  mode: SearchMode;
}

export type Passage = ScoredPassage;

/** Vectorize returns at most 100 matches when values and metadata are not requested. */
const MAX_VECTOR_CANDIDATES = 100;

/**
 * bm25 column weights: text, context (title and headings), namespace token. Titles say
 * what a passage is about: on SciFact's train queries, keyword nDCG@10 went 0.697 (0.5×),
 * 0.705 (2×), 0.707 (3×), 0.706 (4×), ranking the indexed corpus in SQLite directly.
 */
const BM25_WEIGHTS = 'bm25(chunks_fts, 1.0, 3.0, 0.0)';

/** Only chunks of documents that completed an ingestion are ever returned. */
const VISIBLE = 'd.indexed_at IS NOT NULL';

/**
 * Hybrid retrieval: vector search and keyword search fused by reciprocal rank fusion, then
 * optionally reranked. The local index does all of it in one call (`PassageIndex`); with
 * Vectorize, keyword search is FTS5 in D1 (see `separateSearch`).
 */
export async function search(services: Services, request: SearchRequest): Promise<Passage[]> {
  const wanted = services.reranker ? Math.max(request.topK, services.config.RERANK_CANDIDATES) : request.topK;
  const passages = isPassageIndex(services.vectors)
    ? await passageIndexSearch(services, services.vectors, request, wanted)
    : await separateSearch(services, request, wanted);
  return services.reranker ? rerank(services, request, passages) : passages.slice(0, request.topK);
}

async function passageIndexSearch(services: Services, index: PassageIndex, request: SearchRequest, wanted: number): Promise<Passage[]> {
  const { config } = services;
  const vector = request.mode === 'keyword' ? null : await embedQuery(services, request.query);
  return index.search({
    namespace: request.namespace,
    text: request.query,
    vector,
    mode: request.mode,
    limit: wanted,
    candidates: Math.min(Math.max(config.RETRIEVAL_CANDIDATES, request.topK), MAX_VECTOR_CANDIDATES),
    filter: request.filter,
    fusion: { k: config.RRF_K, vectorWeight: config.VECTOR_WEIGHT, keywordWeight: config.KEYWORD_WEIGHT },
  });
}

/**
 * Vector search (Vectorize) and keyword search (FTS5 bm25 in D1) in parallel, fused, then one
 * D1 read of the texts of the final passages only. The read also drops vector hits of
 * documents that are not (or no longer) searchable.
 */
async function separateSearch(services: Services, request: SearchRequest, wanted: number): Promise<Passage[]> {
  const { config } = services;
  const candidates = Math.max(config.RETRIEVAL_CANDIDATES, request.topK);
  const [vectorHits, keywordHits] = await Promise.all([
    request.mode === 'keyword' ? [] : vectorSearch(services, request, candidates),
    request.mode === 'vector' ? [] : keywordSearch(services.db, request, candidates),
  ]);

  let ranked: { id: string; score: number }[];
  if (request.mode === 'vector') ranked = vectorHits;
  else if (request.mode === 'keyword') ranked = keywordHits;
  else {
    ranked = reciprocalRankFusion(
      [
        { ids: vectorHits.map((hit) => hit.id), weight: config.VECTOR_WEIGHT },
        { ids: keywordHits.map((hit) => hit.id), weight: config.KEYWORD_WEIGHT },
      ],
      config.RRF_K,
    );
  }

  // Twice what is wanted: room for vector hits whose document is not searchable.
  const shortlist = ranked.slice(0, wanted * 2);
  const rows = await fetchPassages(services.db, shortlist.map((hit) => hit.id));
  return shortlist.flatMap(({ id, score }) => {
    const row = rows.get(id);
    return row ? [{ ...passageFromRow(row), score }] : [];
  });
}

async function vectorSearch(services: Services, request: SearchRequest, candidates: number) {
  const vector = await embedQuery(services, request.query);
  return services.vectors.query(vector, {
    topK: Math.min(candidates, MAX_VECTOR_CANDIDATES),
    namespace: request.namespace,
    filter: request.filter,
  });
}

/**
 * The FTS5 query for free text: each word quoted (so user input cannot inject FTS
 * syntax) and OR-ed, letting bm25 rank by how many and how rare the matches are.
 */
export function keywordQuery(text: string): string | null {
  const unique = [...new Set(words(text).filter((word) => !isStopword(word)))];
  return unique.length ? unique.map((word) => `"${word}"`).join(' OR ') : null;
}

/** The token that stands for a namespace in the keyword index (see migration 0004). */
export function namespaceToken(namespace: string): string {
  const hex = [...new TextEncoder().encode(namespace)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `n${hex}z`;
}

/**
 * Best chunks by bm25 (title and headings weigh three times as much as the text). Without a
 * metadata filter, FTS5 ranks the namespace's rowids on its own and only the best are
 * joined; with one, every match must be joined to its document's metadata first.
 */
async function keywordSearch(db: D1Database, request: SearchRequest, limit: number) {
  const words = keywordQuery(request.query);
  if (!words) return [];
  const match = `namespace : ${namespaceToken(request.namespace)} AND {text context} : (${words})`;
  const filter = filterToSql(request.filter);
  const statement = filter.sql
    ? db
        .prepare(
          `SELECT c.id, ${BM25_WEIGHTS} AS rank
           FROM chunks_fts JOIN chunks c ON c.seq = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
           WHERE chunks_fts MATCH ? AND ${VISIBLE}${filter.sql} ORDER BY rank LIMIT ?`,
        )
        .bind(match, ...filter.params, limit)
    : db
        .prepare(
          `SELECT c.id, best.rank FROM
             (SELECT rowid, ${BM25_WEIGHTS} AS rank FROM chunks_fts WHERE chunks_fts MATCH ?
              ORDER BY rank LIMIT ?) AS best
           JOIN chunks c ON c.seq = best.rowid JOIN documents d ON d.id = c.document_id
           WHERE ${VISIBLE} ORDER BY best.rank`,
        )
        .bind(match, limit);
  const { results } = await statement.all<{ id: string; rank: number }>();
  return results.map((row) => ({ id: row.id, score: -row.rank }));
}

/** Texts of the given chunks, only of searchable documents. */
async function fetchPassages(db: D1Database, ids: string[]): Promise<Map<string, PassageRow>> {
  if (ids.length === 0) return new Map();
  const { results } = await db
    .prepare(
      `SELECT ${PASSAGE_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.document_id
       WHERE c.id IN (SELECT value FROM json_each(?)) AND ${VISIBLE}`,
    )
    .bind(JSON.stringify(ids))
    .all<PassageRow>();
  return new Map(results.map((row) => [row.id, row]));
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
