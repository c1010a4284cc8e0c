import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { consumeIngestBatch } from '../src/ingestion/consumer';
import { LocalEmbedder } from '../src/providers/local-embedder';
import { localEngine } from './engines';
import { localVectors } from './local-vectors';
import { VectorizeIndex } from '../src/engines/cloudflare/vectorize';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';
import { FakeVectorize } from '../fakes/vectorize';

const unit = (dims: number) => Array.from({ length: dims }, (_, i) => (i === 0 ? 1 : 0));

describe('the embedder and the vector index must agree on dimensions', () => {
  it('names a mismatch in the local index, and none when they agree or it is empty', async () => {
    const namespace = `dims${crypto.randomUUID().slice(0, 8)}`;
    await localVectors(8).upsert(namespace, [{ id: 'a', values: unit(8), metadata: {} }]);
    expect(await localEngine(8).misconfiguration(namespace)).toBeNull();
    expect(await localEngine(16).misconfiguration(namespace)).toMatch(/holds 8-dimensional.*makes 16/);
    expect(await localEngine(16).misconfiguration(`${namespace}-empty`)).toBeNull();
  });

  it('names a mismatch with the Vectorize index', async () => {
    const vectors = new VectorizeIndex(new FakeVectorize({ dimensions: 768 }), { dimensions: 384, resilience: { retries: 0, timeoutMs: 1_000 } });
    expect(await vectors.dimensionMismatch('any')).toMatch(/768 dimensions.*makes 384/);
  });

  it('fails documents with the reason at ingestion instead of indexing garbage', async () => {
    const base = getServices(env);
    const namespace = `dims${crypto.randomUUID().slice(0, 8)}`;
    await localVectors(8).upsert(namespace, [{ id: 'old', values: unit(8), metadata: {} }]);
    const services: Services = {
      ...base,
      embedder: new LocalEmbedder({ dimensions: 16 }),
      engine: localEngine(16),
    };
    const id = crypto.randomUUID().replaceAll('-', '');
    await services.originals.put(`originals/${namespace}/${id}`, 'Geysers erupt when groundwater boils.');
    await services.documents.enqueue([
      { id, namespace, title: 'Geysers', filename: null, type: 'txt', size: 37, r2Key: `originals/${namespace}/${id}`, metadata: {} },
    ]);
    const acks: string[] = [];
    const message = { id: 'm1', timestamp: new Date(), attempts: 1, body: { type: 'ingest', documentId: id }, ack: () => acks.push('m1'), retry: () => {} };
    await consumeIngestBatch({ queue: 'rag-engine-ingest', messages: [message], ackAll: () => {}, retryAll: () => {} } as unknown as MessageBatch<unknown>, services);
    expect(acks).toEqual(['m1']);
    expect(await services.documents.get(id)).toMatchObject({ status: 'failed', error: expect.stringMatching(/16 dimensions.*8/) });
  });
});
