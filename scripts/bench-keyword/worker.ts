/**
 * The bench Worker of scripts/bench-keyword.mjs: the production KeywordShard Durable Object
 * behind a few JSON endpoints, so that loading, querying and memory are measured inside workerd
 * with real RPC between the Worker and the shards.
 *
 *   POST /load        {shard, passages: [{id, title, text}]}  → {count, stageMs, activateMs}
 *   POST /query       {shards, text, limit?}                  → {ms, hits: [{id, score}]}
 *   POST /query-shard {shard, text, limit?}                   → {ms, hits}   (one shard alone, its own statistics)
 *   GET  /memory?shards=n                                     → [{shard, rows, bytes}]
 *   GET  /ping                                                → "ok"          (touches no shard)
 */
import { keywordTerms } from '../../src/text/keyword-terms';
import { DEFAULT_FEEDBACK } from '../../src/engines/feedback';
import type { KeywordShard } from '../../src/engines/cloudflare/keyword-shard';
import { rankAcrossShards, type RankingShard, type ShardHit } from '../../src/engines/cloudflare/shard-ranking';

export { KeywordShard } from '../../src/engines/cloudflare/keyword-shard';

interface BenchEnv {
  SHARDS: DurableObjectNamespace<KeywordShard>;
}

interface Passage {
  id: string;
  title: string;
  text: string;
}

const stub = (env: BenchEnv, shard: number) => env.SHARDS.get(env.SHARDS.idFromName(`bench:${shard}`));

// In workerd the clock only advances across I/O (a defence against timing attacks); a call to a
// Durable Object is I/O, so performance.now() around it measures the call, and a call's work.
const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
  const start = performance.now();
  const result = await work();
  return [result, performance.now() - start];
};

async function load(env: BenchEnv, shard: number, passages: Passage[]) {
  // The Worker analyses, as KeywordSearch.stage does; the shard only ever sees terms. (Not
  // timed: without I/O the clock does not move. The client's time for the request includes it.)
  const staged = passages.map((p) => ({ id: p.id, documentId: p.id, metadata: '{}', contextTerms: keywordTerms(p.title), textTerms: keywordTerms(p.text) }));
  const shardStub = stub(env, shard);
  const [, stageMs] = await timed(() => shardStub.stage(staged));
  // One document a passage: each becomes live on its own, as chunks of separate uploads would.
  const [, activateMs] = await timed(() => shardStub.activate(passages.map((p) => ({ documentId: p.id, chunkIds: [p.id] }))));
  return { count: await shardStub.count(), stageMs, activateMs };
}

async function query(env: BenchEnv, shards: number, text: string, limit: number) {
  const terms = keywordTerms(text);
  const [hits, ms] = await timed(async (): Promise<ShardHit[]> => {
    // One shard runs the whole query itself, as KeywordSearch.search does: no call per step.
    if (shards === 1) return stub(env, 0).search(terms, limit, null, DEFAULT_FEEDBACK);
    const ranking: RankingShard[] = Array.from({ length: shards }, (_, shard) => {
      const s = stub(env, shard);
      return { stats: (t) => s.stats(t), rank: (r) => s.rank(r) };
    });
    return rankAcrossShards(ranking, terms, limit, null, DEFAULT_FEEDBACK);
  });
  return { ms, hits: hits.map(({ id, score }) => ({ id, score })) };
}

/** One shard's own search (its local statistics): its share of a namespace query's work. */
async function queryShard(env: BenchEnv, shard: number, text: string, limit: number) {
  const terms = keywordTerms(text);
  const [hits, ms] = await timed(() => stub(env, shard).search(terms, limit, null, DEFAULT_FEEDBACK));
  return { ms, hits: hits.map(({ id, score }) => ({ id, score })) };
}

export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const { pathname, searchParams } = new URL(request.url);
    try {
      if (request.method === 'GET' && pathname === '/ping') return new Response('ok');
      if (request.method === 'GET' && pathname === '/memory') {
        const shards = Number(searchParams.get('shards') ?? 1);
        return Response.json(await Promise.all(Array.from({ length: shards }, async (_, shard) => ({ shard, ...(await stub(env, shard).memory()) }))));
      }
      if (request.method === 'POST') {
        const body = await request.json<{ shard?: number; shards?: number; text?: string; limit?: number; passages?: Passage[] }>();
        const limit = body.limit ?? 10;
        if (pathname === '/load') return Response.json(await load(env, body.shard ?? 0, body.passages ?? []));
        if (pathname === '/query') return Response.json(await query(env, body.shards ?? 1, body.text ?? '', limit));
        if (pathname === '/query-shard') return Response.json(await queryShard(env, body.shard ?? 0, body.text ?? '', limit));
      }
      return new Response('not found', { status: 404 });
    } catch (err) {
      return Response.json({ error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) }, { status: 500 });
    }
  },
};
