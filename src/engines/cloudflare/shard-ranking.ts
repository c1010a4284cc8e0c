import type { Filter } from '../../domain';
import { expandedQuery, type Feedback } from '../feedback';

/**
 * Keyword ranking over a namespace's shards, as one index would rank it. BM25 needs collection
 * statistics (passages, average field lengths, each term's document frequency); each shard only
 * knows its own, so a query first sums them over the shards, and every shard then scores with
 * the namespace's figures. With the same statistics the same passage gets the same score on
 * whichever shard it lives, and the merged ranking does not depend on how passages were split.
 *
 * With pseudo-relevance feedback (RM3, feedback.ts) a query takes four steps: statistics of the
 * query's terms; the best rows of a first pass, with their terms; statistics of the expansion
 * terms; the final pass. A namespace with one shard runs the same steps inside the shard.
 */

/** What a shard holds in all: live passages and the sum of their field lengths (in terms). */
export interface CollectionTotals {
  passages: number;
  textLength: number;
  contextLength: number;
}

export interface TermStats extends CollectionTotals {
  /** Live passages containing each asked term (terms no passage has are absent). */
  documentFrequency: Record<string, number>;
}

export interface WeightedTerm {
  term: string;
  weight: number;
  /** Namespace-wide document frequency. */
  documentFrequency: number;
}

export interface RankRequest {
  /** Namespace-wide totals. */
  totals: CollectionTotals;
  terms: WeightedTerm[];
  limit: number;
  filter: Filter | null;
  /** Return each hit's analysed terms (context, then text): the feedback pass needs them. */
  withTerms: boolean;
}

export interface ShardHit {
  id: string;
  score: number;
  terms?: string[];
}

/** One shard as the ranking sees it: a Durable Object stub, or the index inside one. */
export interface RankingShard {
  stats(terms: string[]): Promise<TermStats> | TermStats;
  rank(request: RankRequest): Promise<ShardHit[]> | ShardHit[];
}

/** Namespace-wide statistics of terms: summed from the shards (`statsOf`), or remembered. */
export type StatsSource = (terms: string[]) => Promise<TermStats> | TermStats;

/** The statistics of terms summed over the shards. */
export function statsOf(shards: RankingShard[]): StatsSource {
  return async (terms) => sum(await Promise.all(shards.map((shard) => shard.stats(terms))));
}

/** The best `limit` passages of the namespace for the query's analysed terms, best first. */
export async function rankAcrossShards(
  shards: RankingShard[],
  query: string[],
  limit: number,
  filter: Filter | null,
  feedback: Feedback,
  statsSource: StatsSource = statsOf(shards),
): Promise<ShardHit[]> {
  const original = [...new Set(query)];
  if (original.length === 0 || shards.length === 0 || filter?.matchesNothing) return [];
  const stats = await statsSource(original);
  if (stats.passages === 0) return [];
  const weighted = (weights: Map<string, number>, df: Record<string, number>): WeightedTerm[] =>
    [...weights].map(([term, weight]) => ({ term, weight, documentFrequency: df[term] ?? 0 })).filter((t) => t.documentFrequency > 0);
  const rank = async (terms: WeightedTerm[], n: number, withTerms: boolean) =>
    merge(await Promise.all(shards.map((shard) => shard.rank({ totals: stats, terms, limit: n, filter, withTerms }))), n);

  const first = await rank(weighted(new Map(original.map((t) => [t, 1])), stats.documentFrequency), feedback.rows, true);
  if (first.length === 0) return [];
  const weights = expandedQuery(original, first, first.map((hit) => hit.terms ?? []), feedback);
  const unseen = [...weights.keys()].filter((term) => !original.includes(term));
  const more = unseen.length ? await statsSource(unseen) : null;
  const hits = await rank(weighted(weights, { ...stats.documentFrequency, ...more?.documentFrequency }), limit, false);
  return hits.map(({ id, score }) => ({ id, score }));
}

export function sum(parts: TermStats[]): TermStats {
  const total: TermStats = { passages: 0, textLength: 0, contextLength: 0, documentFrequency: {} };
  for (const part of parts) {
    total.passages += part.passages;
    total.textLength += part.textLength;
    total.contextLength += part.contextLength;
    for (const [term, n] of Object.entries(part.documentFrequency)) total.documentFrequency[term] = (total.documentFrequency[term] ?? 0) + n;
  }
  return total;
}

/**
 * The best `limit` hits of all shards: by score, then by id, so that equal scores order the
 * same however passages are split (shards return every hit tied with their last one).
 */
function merge(parts: ShardHit[][], limit: number): ShardHit[] {
  return parts
    .flat()
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, limit);
}
