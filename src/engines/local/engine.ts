import { type DocumentVersion, type EngineCounts, type EngineQuery, type IndexedChunk, type ScoredPassage, type SearchEngine, type StoredPassage, type VectorWrite } from '../../domain';
import type { LocalVectorIndex } from './vector-index';
import { callIndex } from '../rpc-errors';
import { wrongDimensions } from './vector-rows';

/** Vectorize's limits, kept by the local engine so what works offline works in production. */
const LIMITS = { maxResults: 100, maxIdBytes: 64, maxNamespaceBytes: 64, writeDelayMs: 0 } as const;
/** Chunks per stage call: at most Vectorize's 1,000 vectors, and about 8 MiB of text. */
const STAGE_CHUNKS = 1000;
const STAGE_BYTES = 8 * 2 ** 20;

/**
 * The local search engine: one `LocalVectorIndex` Durable Object per namespace holding vectors,
 * passages and the keyword index, called over RPC. A search is one call.
 */
export class LocalEngine implements SearchEngine {
  readonly name = 'local';
  readonly limits = LIMITS;

  constructor(
    private readonly ns: DurableObjectNamespace<LocalVectorIndex>,
    readonly dimensions: number,
    readonly capabilities: { filterableFields: readonly string[] },
  ) {}

  private stub(namespace: string): DurableObjectStub<LocalVectorIndex> {
    return this.ns.get(this.ns.idFromName(namespace));
  }

  private toArray(values: Float32Array | number[]): number[] {
    if (values.length !== this.dimensions) throw wrongDimensions(values.length, this.dimensions, 'the configuration');
    return Array.from(values);
  }

  async stage(namespace: string, chunks: IndexedChunk[]): Promise<string[]> {
    const missing: string[] = [];
    let call: IndexedChunk[] = [];
    let bytes = 0;
    const send = async () => {
      const batch = call;
      (call = []), (bytes = 0);
      if (batch.length) missing.push(...(await callIndex(() => this.stub(namespace).stage(batch))));
    };
    for (const chunk of chunks) {
      if (call.length === STAGE_CHUNKS || (bytes > 0 && bytes + chunk.text.length > STAGE_BYTES)) await send();
      call.push({ ...chunk, vector: chunk.vector && this.toArray(chunk.vector) });
      bytes += chunk.text.length + chunk.context.length;
    }
    await send();
    return missing;
  }

  async activate(namespace: string, versions: DocumentVersion[]): Promise<void> {
    if (versions.length) await callIndex(() => this.stub(namespace).activate(versions));
  }

  async remove(namespace: string, documentId: string): Promise<void> {
    await callIndex(() => this.stub(namespace).remove(documentId));
  }

  async search({ namespace, vector, ...query }: EngineQuery): Promise<ScoredPassage[]> {
    const values = vector === null ? null : this.toArray(vector);
    return callIndex(() => this.stub(namespace).search({ ...query, vector: values }));
  }

  async documentPassages(namespace: string, documentId: string, { from, limit }: { from: number; limit: number }): Promise<StoredPassage[]> {
    const passages = await callIndex(() => this.stub(namespace).documentPassages(documentId, from, limit));
    return passages.map(({ score: _score, ...passage }) => passage);
  }

  async count(namespace: string): Promise<EngineCounts> {
    return { ...(await callIndex(() => this.stub(namespace).count())), vectorScope: 'namespace' };
  }

  async misconfiguration(namespace: string): Promise<string | null> {
    const stored = await callIndex(() => this.stub(namespace).storedDimensions());
    if (stored === null || stored === this.dimensions) return null;
    return (
      `The local index of namespace "${namespace}" holds ${stored}-dimensional vectors but the embedder makes ` +
      `${this.dimensions}: set EMBEDDING_DIMENSIONS back to ${stored}, or use a new namespace and re-upload.`
    );
  }

  /** Writes are applied when the call returns. */
  lastWrite(): VectorWrite | null {
    return null;
  }

  async isApplied(): Promise<boolean> {
    return true;
  }
}
