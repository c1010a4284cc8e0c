import type { DocumentVersion, Filter, IndexedChunk } from '../../domain';
import { keywordTerms } from '../../text/keyword-terms';
import { DEFAULT_FEEDBACK, type Feedback } from '../feedback';
import { callIndex } from '../rpc-errors';
import type { KeywordShard } from './keyword-shard';
import type { ShardPassage } from './shard-index';
import { rankAcrossShards, statsOf, type CollectionTotals, type RankingShard, type StatsSource } from './shard-ranking';

export interface KeywordHit {
  id: string;
  score: number;
}

/** Passages per stage call to one shard. */
const STAGE_BATCH = 500;
/** Term statistics remembered per namespace (then forgotten at once), and namespaces remembered. */
const REMEMBERED_TERMS = 50_000;
const REMEMBERED_NAMESPACES = 1_000;

/** A namespace's statistics at one version of its shards' contents. */
interface RememberedStats {
  version: number;
  totals: CollectionTotals | null;
  df: Map<string, number>;
}

/**
 * The Cloudflare engine's keyword search: BM25F with pseudo-relevance feedback over the
 * namespace's KeywordShard Durable Objects, with the local engine's analyser (run here, in the
 * Worker) and ranking as one index would (shard-ranking.ts). D1's `keyword_shards` lists each
 * namespace's shards; which shard a passage lives on is chosen when it is first staged
 * (PassageTable.stage) and kept in its D1 row. No call for one namespace reaches another's shards.
 */
export class KeywordSearch {
  /**
   * By namespace: statistics read from its shards, exact while its version is unchanged (it is
   * bumped after every activation or removal), so that a query across shards usually skips the
   * two calls to every shard that ask for them.
   */
  readonly #remembered = new Map<string, RememberedStats>();

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
    const shards = new Set([...(await this.#shards(namespace)), ...shardOf.values()]);
    await Promise.all(
      [...shards].map((shard) => {
        const here = versions.map(({ documentId, chunkIds }) => ({ documentId, chunkIds: chunkIds.filter((id) => shardOf.get(id) === shard) }));
        return callIndex(() => this.#stub(namespace, shard).activate(here));
      }),
    );
    await this.#changed(namespace);
  }

  async remove(namespace: string, documentId: string): Promise<void> {
    const shards = await this.#shards(namespace);
    await Promise.all(shards.map((shard) => callIndex(() => this.#stub(namespace, shard).remove([documentId]))));
    await this.#changed(namespace);
  }

  /** After the shards changed (never before: statistics read meanwhile must not outlive the change). */
  async #changed(namespace: string): Promise<void> {
    await this.db
      .prepare('INSERT INTO keyword_versions (namespace, version) VALUES (?1, 1) ON CONFLICT (namespace) DO UPDATE SET version = version + 1')
      .bind(namespace)
      .run();
  }

  async search(namespace: string, text: string, limit: number, filter: Filter | null): Promise<KeywordHit[]> {
    const terms = keywordTerms(text);
    if (terms.length === 0) return [];
    const { results } = await this.db
      .prepare(
        `SELECT s.shard, COALESCE(v.version, 0) AS version FROM keyword_shards AS s LEFT JOIN keyword_versions AS v ON v.namespace = s.namespace
         WHERE s.namespace = ? AND s.passages > 0 ORDER BY s.shard`,
      )
      .bind(namespace)
      .all<{ shard: number; version: number }>();
    if (results.length === 0) return [];
    // One shard runs the whole query itself: the same steps, without a call per step.
    if (results.length === 1) return callIndex(() => this.#stub(namespace, results[0]!.shard).search(terms, limit, filter, this.feedback));
    const ranking: RankingShard[] = results.map(({ shard }) => {
      const stub = this.#stub(namespace, shard);
      return { stats: (t) => callIndex(() => stub.stats(t)), rank: (r) => callIndex(() => stub.rank(r)) };
    });
    return rankAcrossShards(ranking, terms, limit, filter, this.feedback, this.#rememberedStats(namespace, results[0]!.version, statsOf(ranking)));
  }

  /** Statistics of terms at a version of the namespace: those remembered, the others asked of the shards. */
  #rememberedStats(namespace: string, version: number, ask: StatsSource): StatsSource {
    return async (terms) => {
      let entry = this.#remembered.get(namespace);
      if (!entry || entry.version !== version || entry.df.size > REMEMBERED_TERMS) {
        entry = { version, totals: null, df: new Map() };
        this.#remembered.delete(namespace);
        if (this.#remembered.size >= REMEMBERED_NAMESPACES) this.#remembered.delete(this.#remembered.keys().next().value!);
        this.#remembered.set(namespace, entry);
      }
      const unknown = entry.totals ? terms.filter((t) => !entry.df.has(t)) : terms;
      if (unknown.length) {
        const { documentFrequency, ...totals } = await ask(unknown);
        entry.totals ??= totals;
        for (const term of unknown) entry.df.set(term, documentFrequency[term] ?? 0);
      }
      const documentFrequency: Record<string, number> = {};
      for (const term of terms) if (entry.df.get(term)) documentFrequency[term] = entry.df.get(term)!;
      return { ...entry.totals!, documentFrequency };
    };
  }

  /** Shards holding any of the namespace's passages. */
  async shardCount(namespace: string): Promise<number> {
    const row = await this.db.prepare('SELECT COUNT(*) AS n FROM keyword_shards WHERE namespace = ? AND passages > 0').bind(namespace).first<{ n: number }>();
    return row?.n ?? 0;
  }

  /** Every shard the namespace ever opened (writes reach them all: a document may be on any). */
  async #shards(namespace: string): Promise<number[]> {
    const { results } = await this.db.prepare('SELECT shard FROM keyword_shards WHERE namespace = ? ORDER BY shard').bind(namespace).all<{ shard: number }>();
    return results.map((row) => row.shard);
  }

  #stub(namespace: string, shard: number) {
    // The shard number first: it holds no colon, so no two (namespace, shard) pairs share a name.
    return this.shards.get(this.shards.idFromName(`${shard}:${namespace}`));
  }
}
