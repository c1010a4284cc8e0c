import { AppError, type DocumentVersion, type EngineCounts, type EngineQuery, type IndexedChunk, type ScoredPassage, type SearchEngine, type StoredPassage, type VectorWrite } from '../../domain';
import { fuse } from '../fusion';
import type { KeywordSearch } from './keyword-search';
import type { PassageTable } from './passages';
import { VECTORIZE_LIMITS, type VectorizeIndex } from './vectorize';

const bad = (message: string) => new AppError('bad_request', `Search engine: ${message}`);

/**
 * The Cloudflare engine: vectors in Vectorize, passages in D1, the keyword index in sharded
 * Durable Objects (keyword-search.ts). Vector search and keyword search run in parallel and
 * are fused here; one D1 read then fetches the texts of the
 * final passages, which also drops vector hits that are not live (staged, or stale: Vectorize
 * applies writes asynchronously, ~30 s median, so it may still return removed vectors).
 *
 * Order of writes: passages (D1) before their vectors, so every vector has a row through which
 * `remove` finds it; after an activation, the vectors of the replaced version are deleted.
 */
export class CloudflareEngine implements SearchEngine {
  readonly name = 'cloudflare';
  readonly limits = {
    maxResults: VECTORIZE_LIMITS.maxTopK,
    maxIdBytes: VECTORIZE_LIMITS.maxIdBytes,
    maxNamespaceBytes: VECTORIZE_LIMITS.maxNamespaceBytes,
    writeDelayMs: VECTORIZE_LIMITS.writeDelayMs,
  };

  constructor(
    private readonly vectors: VectorizeIndex,
    private readonly keywords: KeywordSearch,
    private readonly passages: PassageTable,
    readonly capabilities: { filterableFields: readonly string[] },
  ) {}

  get dimensions(): number {
    return this.vectors.dimensions;
  }

  /**
   * Checks everything before writing anything (ids, dimensions, metadata), then writes the
   * passages, then the vectors. A kept chunk (`vector: null`) whose metadata changed is
   * re-upserted with its stored values: Vectorize filters on the metadata stored with a vector.
   */
  async stage(namespace: string, chunks: IndexedChunk[]): Promise<string[]> {
    const metadataOf = (c: IndexedChunk) => ({ ...c.metadata, documentId: c.documentId });
    const records = chunks.flatMap((c) => (c.vector ? [{ id: c.id, values: c.vector, metadata: metadataOf(c) }] : []));
    // A kept chunk is checked with a placeholder vector: only its id and metadata are new.
    this.vectors.check(namespace, [
      ...records,
      ...chunks.filter((c) => !c.vector).map((c) => ({ id: c.id, values: new Float32Array(this.dimensions), metadata: metadataOf(c) })),
    ]);
    // One read of what D1 holds of these ids: kept chunks' metadata, and every stored id's shard.
    const stored = await this.passages.stored(namespace, chunks.map((c) => c.id));
    const before = new Map(chunks.flatMap((c) => (!c.vector && stored.has(c.id) ? [[c.id, stored.get(c.id)!.metadata] as const] : [])));
    const missing = chunks.filter((c) => !c.vector && !before.has(c.id)).map((c) => c.id);
    const kept = chunks.filter((c) => !c.vector && before.has(c.id));
    const changed = kept.filter((c) => before.get(c.id) !== JSON.stringify(c.metadata));
    const values = changed.length ? await this.vectors.values(changed.map((c) => c.id)) : new Map<string, number[]>();
    for (const chunk of changed) {
      const stored = values.get(chunk.id);
      // Not applied yet by Vectorize (staged moments ago): a retry finds it.
      if (!stored) throw new AppError('unavailable', `Search engine: the vector of "${chunk.id}" is not readable yet; retry shortly.`, { retryable: true });
      records.push({ id: chunk.id, values: stored, metadata: metadataOf(chunk) });
    }
    const absent = new Set(missing);
    const staged = chunks.filter((c) => !absent.has(c.id));
    const shardOf = await this.passages.stage(namespace, staged, this.keywords.shardSize, stored);
    // Both after D1, which holds what removes them; neither is searchable before activation.
    await Promise.all([this.keywords.stage(namespace, staged, shardOf), records.length ? this.vectors.upsert(namespace, records) : null]);
    return missing;
  }

  /**
   * The keyword shards switch first, then D1 (whose live rows decide what a search returns),
   * then the replaced vectors go. Each step repeats safely: when one fails, the retried
   * activation completes the others (meanwhile the document's new passages are not found by
   * keyword, and its old ones not at all).
   */
  async activate(namespace: string, versions: DocumentVersion[]): Promise<void> {
    const shardOf = await this.passages.shardsOf(namespace, versions);
    await this.keywords.activate(namespace, versions, shardOf);
    const stale = await this.passages.activate(namespace, versions);
    if (stale.length) await this.vectors.deleteByIds(namespace, stale);
  }

  async remove(namespace: string, documentId: string): Promise<void> {
    await this.keywords.remove(namespace, documentId);
    const ids = await this.passages.remove(namespace, documentId);
    if (ids.length) await this.vectors.deleteByIds(namespace, ids);
  }

  async search(query: EngineQuery): Promise<ScoredPassage[]> {
    const { namespace, mode, limit, candidates, filter } = query;
    const max = this.limits.maxResults;
    for (const [name, value] of [['limit', limit], ['candidates', candidates]] as const) {
      if (!Number.isInteger(value) || value < 1 || value > max) throw bad(`${name} must be an integer from 1 to ${max}, got ${value}`);
    }
    // Twice the candidates, within Vectorize's limit: room for vectors that are staged, not live.
    const vectorCandidates = Math.min(2 * candidates, VECTORIZE_LIMITS.maxTopK);
    const [vectorHits, keywordHits] = await Promise.all([
      mode === 'keyword' || !query.vector ? [] : this.vectors.query(query.vector, { topK: vectorCandidates, namespace, filter }).then((hits) => this.#live(hits, candidates)),
      mode === 'vector' ? [] : this.keywords.search(namespace, query.text, candidates, filter),
    ]);
    const ranked = fuse(mode, vectorHits, keywordHits, query.fusion, (hit) => hit.id);
    // Twice what is wanted: room for vector hits that are not live.
    const shortlist = ranked.slice(0, limit * 2);
    const found = await this.passages.read(shortlist.map((hit) => hit.id));
    const out: ScoredPassage[] = [];
    for (const { id, score } of shortlist) {
      const passage = found.get(id);
      if (passage) out.push({ ...passage, score });
      if (out.length === limit) break;
    }
    return out;
  }

  /** The first `n` vector hits that are live passages (one indexed D1 read). */
  async #live(hits: { id: string; score: number }[], n: number) {
    if (hits.length <= n) return hits;
    const live = await this.passages.live(hits.map((hit) => hit.id));
    return hits.filter((hit) => live.has(hit.id)).slice(0, n);
  }

  documentPassages(namespace: string, documentId: string, { from, limit }: { from: number; limit: number }): Promise<StoredPassage[]> {
    return this.passages.ofDocument(namespace, documentId, from, limit);
  }

  async count(namespace: string): Promise<EngineCounts> {
    const [passages, vectors, keywordShards] = await Promise.all([this.passages.count(namespace), this.vectors.count(namespace), this.keywords.shardCount(namespace)]);
    return { passages, vectors, vectorScope: 'index', keywordShards };
  }

  misconfiguration(_namespace: string): Promise<string | null> {
    return this.vectors.dimensionMismatch(_namespace);
  }

  lastWrite(): VectorWrite | null {
    return this.vectors.lastWrite();
  }

  isApplied(write: VectorWrite): Promise<boolean> {
    return this.vectors.isApplied(write);
  }
}
