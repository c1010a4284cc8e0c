import { DurableObject } from 'cloudflare:workers';
import type { DocumentVersion, Filter } from '../../domain';
import type { Feedback } from '../feedback';
import { ShardIndex, type ShardPassage } from './shard-index';
import { rankAcrossShards, type RankRequest, type ShardHit, type TermStats } from './shard-ranking';

/**
 * One shard of a namespace's keyword index (the Cloudflare engine's): a SQLite-backed Durable
 * Object named by namespace and shard number, holding at most KEYWORD_SHARD_SIZE passages.
 * Its methods are synchronous over its own storage, so calls never interleave.
 */
export class KeywordShard extends DurableObject<Env> {
  readonly #index = new ShardIndex(this.ctx.storage);

  stage(passages: ShardPassage[]): void {
    this.#index.stage(passages);
  }

  activate(versions: DocumentVersion[]): void {
    this.#index.activate(versions);
  }

  remove(documentIds: string[]): void {
    this.#index.remove(documentIds);
  }

  stats(terms: string[]): TermStats {
    return this.#index.stats(terms);
  }

  rank(request: RankRequest): ShardHit[] {
    return this.#index.rank(request);
  }

  /** A whole query, for a namespace whose only shard this is: the same steps as across shards, without the calls. */
  search(terms: string[], limit: number, filter: Filter | null, feedback: Feedback): Promise<ShardHit[]> {
    return rankAcrossShards([this.#index], terms, limit, filter, feedback);
  }

  count(): number {
    return this.#index.count();
  }

  memory(): { rows: number; bytes: number } {
    return this.#index.memory();
  }
}
