import { AppError } from '../../domain/errors';
import type { LocalVectorIndex } from './vector-index';
import { BAD_REQUEST, bad } from './vector-rows';
import type { IndexedPassage, PassageIndex, PassageQuery, ScoredPassage, VectorMatch, VectorQuery, VectorRecord } from '../../domain/types';

/**
 * `PassageIndex` backed by `LocalVectorIndex`: one Durable Object per namespace, called over
 * RPC; a search is one call.
 */
export class LocalVectorIndexClient implements PassageIndex {
  constructor(
    private readonly ns: DurableObjectNamespace<LocalVectorIndex>,
    readonly dimensions: number,
  ) {}

  private stub(namespace: string): DurableObjectStub<LocalVectorIndex> {
    return this.ns.get(this.ns.idFromName(namespace));
  }

  /** RPC delivers an AppError as a plain Error with the same message: restore it by prefix. */
  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof Error && !(err instanceof AppError) && err.message.startsWith(BAD_REQUEST)) {
        throw new AppError('bad_request', err.message, { cause: err });
      }
      throw err;
    }
  }

  private toArray(values: Float32Array | number[]): number[] {
    if (values.length !== this.dimensions) throw bad(`vector has ${values.length} dimensions but ${this.dimensions} are configured`);
    return Array.from(values);
  }

  async upsert(namespace: string, records: VectorRecord[]): Promise<void> {
    if (records.length === 0) return;
    const plain = records.map((r) => ({ id: r.id, values: this.toArray(r.values), metadata: r.metadata }));
    await this.call(() => this.stub(namespace).upsert(plain));
  }

  async deleteByIds(namespace: string, ids: string[]): Promise<void> {
    if (ids.length > 0) await this.call(() => this.stub(namespace).deleteByIds(ids));
  }

  async query(vector: Float32Array | number[], query: VectorQuery): Promise<VectorMatch[]> {
    const values = this.toArray(vector);
    return this.call(() => this.stub(query.namespace).query(values, query.topK, query.filter));
  }

  async publish(namespace: string, passages: IndexedPassage[]): Promise<void> {
    if (passages.length > 0) await this.call(() => this.stub(namespace).publish(passages));
  }

  async unpublish(namespace: string, ids: string[]): Promise<void> {
    if (ids.length > 0) await this.call(() => this.stub(namespace).unpublish(ids));
  }

  async search({ namespace, vector, ...query }: PassageQuery): Promise<ScoredPassage[]> {
    const values = vector === null ? null : this.toArray(vector);
    return this.call(() => this.stub(namespace).search({ ...query, vector: values }));
  }

  async count(namespace: string): Promise<number> {
    return this.call(() => this.stub(namespace).count());
  }

  async dimensionMismatch(namespace: string): Promise<string | null> {
    const stored = await this.call(() => this.stub(namespace).storedDimensions());
    if (stored === null || stored === this.dimensions) return null;
    return (
      `The local vector index of namespace "${namespace}" holds ${stored}-dimensional vectors but the embedder makes ` +
      `${this.dimensions}: set EMBEDDING_DIMENSIONS back to ${stored}, or use a new namespace and re-upload.`
    );
  }
}
