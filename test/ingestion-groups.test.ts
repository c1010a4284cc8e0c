import { env } from 'cloudflare:workers';
import { expect, it } from 'vitest';
import type { EmbeddingProvider } from '../src/domain';
import { ingestDocuments } from '../src/ingestion/pipeline';
import { getServices } from '../src/composition';
import { type Services } from '../src/services';

it('indexes a batch of large documents in bounded groups, embedding at most maxBatchSize texts a call, every document complete', async () => {
  const base = getServices(env);
  // Small chunks and one document at a time: four documents of ~700 chunks cross the
  // 2,000-chunk group bound after the third, so the batch is indexed in two groups.
  // An embedder that takes 100 texts a call, as Workers AI's does, and refuses more.
  const embedder: EmbeddingProvider = {
    model: base.embedder.model,
    dimensions: base.embedder.dimensions,
    maxBatchSize: 100,
    embed: async (texts) => {
      if (texts.length > 100) throw new Error(`${texts.length} texts in one call`);
      return base.embedder.embed(texts);
    },
  };
  const services: Services = { ...base, embedder, config: { ...base.config, CHUNK_SIZE: 16, CHUNK_OVERLAP: 0, INGEST_CONCURRENCY: 1 } };
  const namespace = `groups${crypto.randomUUID().slice(0, 8)}`;
  const ids: string[] = [];
  for (let d = 0; d < 4; d++) {
    const text = Array.from({ length: 700 }, (_, i) => `Document ${d} sentence ${i} mentions glacier number ${i * 7 + d}.`).join('\n\n');
    const id = crypto.randomUUID().replaceAll('-', '');
    await services.originals.put(`originals/${namespace}/${id}`, text);
    await services.documents.enqueue([
      { id, namespace, title: `Big ${d}`, filename: null, type: 'txt', size: text.length, r2Key: `originals/${namespace}/${id}`, metadata: {} },
    ]);
    ids.push(id);
  }

  const outcomes = await ingestDocuments(services, ids);
  let total = 0;
  for (const id of ids) {
    const outcome = outcomes.get(id);
    expect(outcome).toMatchObject({ status: 'ready', chunkCount: 700 });
    total += outcome?.status === 'ready' ? outcome.chunkCount : 0;
  }
  expect(await services.engine.count(namespace)).toEqual({ passages: total, vectors: total, vectorScope: 'namespace' });
  const rows = await env.DB.prepare('SELECT COUNT(*) AS n FROM chunks WHERE namespace = ?').bind(namespace).first<{ n: number }>();
  expect(rows?.n).toBe(total);
});
