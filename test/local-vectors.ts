import { env } from 'cloudflare:workers';
import { type MetadataFilter, parseFilter } from '../src/domain';
import type { LocalVectorIndex } from '../src/engines/local/vector-index';
import { callIndex } from '../src/engines/rpc-errors';
import type { VectorMatch, VectorMetadata } from '../src/engines/vector-types';

/**
 * The local index's vector-only API (the Durable Object's upsert, deleteByIds and query, which
 * the vector tests and benchmarks drive without passages), per namespace, with errors
 * restored to AppErrors as the engine restores them.
 */
export function localVectors(dims: number) {
  const ns = env.VECTOR_INDEX as unknown as DurableObjectNamespace<LocalVectorIndex>;
  const stub = (namespace: string) => ns.get(ns.idFromName(namespace));
  return {
    dimensions: dims,
    upsert: (namespace: string, records: { id: string; values: ArrayLike<number>; metadata: VectorMetadata }[]) =>
      callIndex(() => stub(namespace).upsert(records.map((r) => ({ ...r, values: Array.from(r.values) })))),
    deleteByIds: (namespace: string, ids: string[]) => callIndex(() => stub(namespace).deleteByIds(ids)),
    query: (vector: ArrayLike<number>, query: { namespace: string; topK: number; filter?: MetadataFilter }): Promise<VectorMatch[]> =>
      callIndex(() => stub(query.namespace).query(Array.from(vector), query.topK, parseFilter(query.filter))),
    count: async (namespace: string) => (await callIndex(() => stub(namespace).count())).vectors,
  };
}
