import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IndexedChunk } from '../src/domain';
import { KeywordSearch } from '../src/engines/cloudflare/keyword-search';
import { PassageTable } from '../src/engines/cloudflare/passages';
import { DEFAULT_FEEDBACK } from '../src/engines/feedback';
import { KeywordIndex } from '../src/engines/keyword-index';

/**
 * The Cloudflare engine's sharded keyword index ranks as one index would: SciFact's 5,183
 * abstracts (one passage each, the title as context) split into 1, 4 and 16 shards give the
 * same top 10 for every test query, hence the same nDCG@10, and the offline engine's in-memory
 * BM25F over the same passages agrees with them.
 */

interface Doc {
  _id: string;
  title: string;
  text: string;
}

const fetchText = async (path: string) => (await env.TEST_DATA.fetch(`http://data/${path}`)).text();

let docs: Doc[] = [];
let queries: { id: string; text: string }[] = [];
const relevant = new Map<string, Set<string>>();

function ndcg10(ranked: string[], wanted: Set<string>): number {
  const dcg = ranked.slice(0, 10).reduce((sum, id, i) => sum + (wanted.has(id) ? 1 / Math.log2(i + 2) : 0), 0);
  let ideal = 0;
  for (let i = 0; i < Math.min(wanted.size, 10); i++) ideal += 1 / Math.log2(i + 2);
  return dcg / ideal;
}

/** Stages and activates every abstract in a namespace whose shards hold `shardSize` passages. */
async function indexCorpus(namespace: string, shardSize: number, corpus = docs): Promise<KeywordSearch> {
  const keywords = new KeywordSearch(env.DB, env.KEYWORD_SHARDS, shardSize);
  const passages = new PassageTable(env.DB);
  const chunks: IndexedChunk[] = corpus.map((d, i) => ({
    id: `${namespace}:${d._id}`,
    documentId: `${namespace}:${d._id}`,
    title: d.title,
    text: d.text,
    context: d.title,
    position: i,
    page: null,
    headings: null,
    metadata: {},
    vector: null,
  }));
  for (let i = 0; i < chunks.length; i += 500) {
    const batch = chunks.slice(i, i + 500);
    const shardOf = await passages.stage(namespace, batch, shardSize, await passages.stored(namespace, batch.map((c) => c.id)));
    await keywords.stage(namespace, batch, shardOf);
    const versions = batch.map((c) => ({ documentId: c.documentId, chunkIds: [c.id] }));
    await keywords.activate(namespace, versions, shardOf);
    await passages.activate(namespace, versions);
  }
  return keywords;
}

describe('keyword shards: rankings independent of sharding (SciFact)', () => {
  const results = new Map<number, string[][]>();

  beforeAll(async () => {
    docs = (await fetchText('scifact/corpus.jsonl')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as Doc);
    const wanted = new Set<string>();
    for (const line of (await fetchText('scifact/qrels/test.tsv')).split('\n').slice(1)) {
      const [q, d, score] = line.split('\t');
      if (!q || Number(score) <= 0) continue;
      relevant.set(q, (relevant.get(q) ?? new Set()).add(d!));
      wanted.add(q);
    }
    queries = (await fetchText('scifact/queries.jsonl'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { _id: string; text: string })
      .filter((q) => wanted.has(q._id))
      .map((q) => ({ id: q._id, text: q.text }));
  }, 120_000);

  for (const shards of [1, 4, 16]) {
    it(`ranks the test queries over ${shards} shard(s)`, async () => {
      const namespace = `scifact-${shards}`;
      const keywords = await indexCorpus(namespace, Math.ceil(docs.length / shards));
      expect(await keywords.shardCount(namespace)).toBe(shards);
      const ranked: string[][] = [];
      for (const q of queries) {
        const hits = await keywords.search(namespace, q.text, 10, null);
        ranked.push(hits.map((hit) => hit.id.slice(namespace.length + 1)));
      }
      results.set(shards, ranked);
    }, 300_000);
  }

  it('gives the same top 10 for every query, and the same nDCG@10, whatever the shards', () => {
    const one = results.get(1)!;
    expect(one.length).toBe(queries.length);
    for (const shards of [4, 16]) expect(results.get(shards)).toEqual(one);
    const ndcg = one.reduce((sum, ranked, i) => sum + ndcg10(ranked, relevant.get(queries[i]!.id)!), 0) / queries.length;
    console.log(`SciFact test, ${queries.length} queries, one passage per abstract: keyword nDCG@10 ${ndcg.toFixed(4)} over 1, 4 and 16 shards`);
    expect(ndcg).toBeGreaterThan(0.68);
  });

  it('ranks with the statistics of what is live now, after documents leave', async () => {
    const sample = docs.slice(0, 400);
    const sharded = await indexCorpus('scifact-churn', 100, sample);
    const strip = (hits: { id: string; score: number }[], namespace: string) => hits.map((h) => `${h.id.slice(namespace.length + 1)} ${h.score}`);
    // Remembered statistics of the 400, then half of them removed.
    for (const q of queries.slice(0, 20)) await sharded.search('scifact-churn', q.text, 10, null);
    const passages = new PassageTable(env.DB);
    for (const d of sample.slice(0, 200)) {
      await sharded.remove('scifact-churn', `scifact-churn:${d._id}`);
      await passages.remove('scifact-churn', `scifact-churn:${d._id}`);
    }
    const rest = await indexCorpus('scifact-rest', 1_000, sample.slice(200));
    for (const q of queries.slice(0, 20)) {
      const expected = strip(await rest.search('scifact-rest', q.text, 10, null), 'scifact-rest');
      expect(strip(await sharded.search('scifact-churn', q.text, 10, null), 'scifact-churn')).toEqual(expected);
    }
  }, 120_000);

  it("ranks as the offline engine's in-memory BM25F does", () => {
    const index = new KeywordIndex();
    docs.forEach((d, row) => index.add(row, d.text, d.title));
    const textOf = (rows: number[]) => rows.map((row) => `${docs[row]!.title}\n${docs[row]!.text}`);
    let same = 0;
    queries.forEach((q, i) => {
      const ranked = index.searchExpanded(q.text, 10, DEFAULT_FEEDBACK, textOf).map((hit) => docs[hit.row]!._id);
      if (JSON.stringify(ranked) === JSON.stringify(results.get(1)![i])) same++;
    });
    console.log(`in-memory BM25F and the shards: the same top 10 for ${same} of ${queries.length} queries`);
    expect(same).toBe(queries.length);
  });
});
