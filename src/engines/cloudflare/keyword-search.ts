import type { DocumentVersion, Filter, IndexedChunk } from '../../domain';
import { keywordTerms } from '../../text/keyword-terms';
import { DEFAULT_FEEDBACK, type Feedback } from '../feedback';
import { callIndex } from '../rpc-errors';
import type { KeywordShard } from './keyword-shard';
import type { ShardPassage } from './shard-index';
import { rankAcrossShards, type RankingShard } from './shard-ranking';

export interface KeywordHit {
  id: string;
  score: number;
}

/** Passages per stage call to one shard. */
const STAGE_BATCH = 500;

/**
 * The Cloudflare engine's keyword search: BM25F with pseudo-relevance feedback over the
 * namespace's KeywordShard Durable Objects, with the local engine's analyser (run here, in the
 * Worker) and ranking as one index would (shard-ranking.ts). D1's `keyword_shards` lists each
 * namespace's shards; which shard a passage lives on is chosen when it is first staged
 * (PassageTable.stage) and kept in its D1 row. No call for one namespace reaches another's shards.
 */
export class KeywordSearch {
  constructor(
    private readonly db: D1Database,
    private readonly shards: DurableObjectNamespace<KeywordShard>,
    /** Passages per shard before a namespace opens another. */
    readonly shardSize: number,
    private readonly feedback: Feedback = DEFAULT_FEEDBACK,
  ) {}

  /** Stores chunks' analysed terms on their shards (`shardOf` by id), unsearchable until `activate`. */
  async stage(namespace: string, chunks: IndexedChunk[], shardOf: Map<string, number>): Promise<void> {
    const byShard = new Map<number, ShardPassage[]>();
    for (const c of chunks) {
      const shard = shardOf.get(c.id)!;
      const passage = { id: c.id, documentId: c.documentId, metadata: JSON.stringify(c.metadata), contextTerms: keywordTerms(c.context), textTerms: keywordTerms(c.text) };
      let list = byShard.get(shard);
      if (!list) byShard.set(shard, (list = []));
      list.push(passage);
    }
    await Promise.all(
      [...byShard].map(async ([shard, passages]) => {
        for (let i = 0; i < passages.length; i += STAGE_BATCH) {
          const batch = passages.slice(i, i + STAGE_BATCH);
          await callIndex(() => this.#stub(namespace, shard).stage(batch));
        }
      }),
    );
  }

  /**
   * Makes each version live on every shard of the namespace: each shard gets the ids it holds
   * and drops the document's other passages. `shardOf` says where each id lives.
   */
  async activate(namespace: string, versions: DocumentVersion[], shardOf: Map<string, number>): Promise<void> {
    const shards = new Set([...(await this.#shards(namespace, false)), ...shardOf.values()]);
    await Promise.all(
      [...shards].map((shard) => {
        const here = versions.map(({ documentId, chunkIds }) => ({ documentId, chunkIds: chunkIds.filter((id) => shardOf.get(id) === shard) }));
        return callIndex(() => this.#stub(namespace, shard).activate(here));
      }),
    );
  }

  async remove(namespace: string, documentId: string): Promise<void> {
    const shards = await this.#shards(namespace, false);
    await Promise.all(shards.map((shard) => callIndex(() => this.#stub(namespace, shard).remove([documentId]))));
  }

  async search(namespace: string, text: string, limit: number, filter: Filter | null): Promise<KeywordHit[]> {
    const terms = keywordTerms(text);
    if (terms.length === 0) return [];
    const shards = await this.#shards(namespace, true);
    if (shards.length === 0) return [];
    // One shard runs the whole query itself: the same steps, without a call per step.
    if (shards.length === 1) return callIndex(() => this.#stub(namespace, shards[0]!).search(terms, limit, filter, this.feedback));
    const ranking: RankingShard[] = shards.map((shard) => {
      const stub = this.#stub(namespace, shard);
      return { stats: (t) => callIndex(() => stub.stats(t)), rank: (r) => callIndex(() => stub.rank(r)) };
    });
    return rankAcrossShards(ranking, terms, limit, filter, this.feedback);
  }

  /** The namespace's shards: those holding any passage, or (for writes) every one it ever opened. */
  async #shards(namespace: string, holdingOnly: boolean): Promise<number[]> {
    const { results } = await this.db
      .prepare(`SELECT shard FROM keyword_shards WHERE namespace = ?${holdingOnly ? ' AND passages > 0' : ''} ORDER BY shard`)
      .bind(namespace)
      .all<{ shard: number }>();
    return results.map((row) => row.shard);
  }

  #stub(namespace: string, shard: number) {
    // The shard number first: it holds no colon, so no two (namespace, shard) pairs share a name.
    return this.shards.get(this.shards.idFromName(`${shard}:${namespace}`));
  }
}
