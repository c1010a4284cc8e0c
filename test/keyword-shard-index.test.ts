import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { ShardIndex } from '../src/engines/cloudflare/shard-index';
import { rankAcrossShards } from '../src/engines/cloudflare/shard-ranking';
import { DEFAULT_FEEDBACK } from '../src/engines/feedback';
import { keywordTerms } from '../src/text/keyword-terms';

/** A keyword shard's index in a fresh KeywordShard object's storage, with a small compaction. */
function inShard<T>(name: string, work: (index: ShardIndex, storage: DurableObjectStorage) => T | Promise<T>): Promise<T> {
  const stub = env.KEYWORD_SHARDS.get(env.KEYWORD_SHARDS.idFromName(`index-test:${name}`));
  return runInDurableObject(stub, (_instance, state) => work(new ShardIndex(state.storage, undefined, { minDead: 20, termsPerStep: 7 }), state.storage));
}

const WORDS = ['heron', 'otter', 'salmon', 'willow', 'reed', 'marsh', 'tide', 'estuary', 'kelp', 'plover', 'dune', 'shingle'];
const passage = (i: number) => {
  const text = `${WORDS[i % WORDS.length]} ${WORDS[(i * 5 + 3) % WORDS.length]} ${WORDS[(i * 7 + 1) % WORDS.length]} creature${i} habitat${i % 9}`;
  return { id: `p${i}`, documentId: `d${i}`, metadata: '{}', contextTerms: keywordTerms(`Survey ${i % 4}`), textTerms: keywordTerms(text) };
};

describe('a keyword shard index', () => {
  it('rewrites removed passages out of its postings a few terms per write, ranking the same throughout', async () => {
    await inShard('compaction', async (index, storage) => {
      const all = Array.from({ length: 60 }, (_, i) => passage(i));
      index.stage(all);
      index.activate(all.map((p) => ({ documentId: p.documentId, chunkIds: [p.id] })));
      const entries = () => storage.sql.exec<{ n: number }>('SELECT SUM(size) AS n FROM postings').one().n;
      const before = entries();
      const query = async () => rankAcrossShards([index], keywordTerms('heron otter marsh creature7 habitat3'), 10, null, DEFAULT_FEEDBACK);

      // Half the passages leave: past a quarter of dead entries, compaction starts with that
      // write, and rewrites only its first 7 terms.
      index.remove(all.slice(0, 30).map((p) => p.documentId));
      const live = all.slice(30).reduce((n, p) => n + new Set([...p.contextTerms, ...p.textTerms]).size, 0);
      expect(storage.sql.exec('SELECT 1 FROM compaction').toArray()).toHaveLength(1);
      expect(entries()).toBeLessThan(before);
      expect(entries()).toBeGreaterThan(live);
      const ranked = await query();
      expect(ranked.every((hit) => Number(hit.id.slice(1)) >= 30)).toBe(true);

      // Each later write rewrites 7 more terms, until every term has been through.
      const terms = storage.sql.exec<{ n: number }>('SELECT COUNT(DISTINCT term) AS n FROM postings').one().n;
      let steps = 0;
      while (storage.sql.exec('SELECT 1 FROM compaction').toArray().length > 0) {
        index.remove(['nothing']);
        steps++;
        expect(await query()).toEqual(ranked);
        if (steps > terms) throw new Error('compaction never ends');
      }
      expect(steps).toBeGreaterThan(1);
      // What is left is exactly the live passages' postings.
      expect(entries()).toBe(live);
      expect(storage.sql.exec<{ value: number }>("SELECT value FROM counters WHERE key = 'dead'").one().value).toBe(0);
      expect(index.count()).toBe(30);
    });
  });
});
