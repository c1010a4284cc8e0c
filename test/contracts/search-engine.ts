import { describe, expect, it } from 'vitest';
import {
  AppError,
  type DocumentMetadata,
  type EngineQuery,
  type IndexedChunk,
  type MetadataFilter,
  parseFilter,
  type ScoredPassage,
  type SearchEngine,
  type SearchMode,
} from '../../src/domain';
import { LocalEmbedder } from '../../src/providers/local-embedder';
import { caught } from '../support';

export interface SearchEngineHarness {
  /**
   * A fresh engine: its vector store holds only what the suite writes from now on (a new
   * Vectorize fake; the local engine's Durable Objects are per namespace and the suite makes
   * unique namespaces), so vector counts are exact even when `vectorScope` is 'index'.
   */
  engine: SearchEngine;
  /** Makes accepted writes visible (Vectorize's are asynchronous); a no-op for a synchronous engine. */
  settle(): Promise<void>;
  /** The same stores, served by an engine configured for another embedding dimension. */
  reconfigured(dimensions: number): SearchEngine;
}

/** The metadata fields the suite filters on: the engine must declare them filterable. */
export const SUITE_FILTER_FIELDS = ['team', 'year', 'draft'] as const;

const MODES: readonly SearchMode[] = ['hybrid', 'vector', 'keyword'];
const FUSION = { k: 60, vectorWeight: 1, keywordWeight: 1 };
const KEYS = ['documentId', 'headings', 'id', 'page', 'position', 'score', 'text', 'title'];

/** What search returns of a staged chunk, score aside. */
function passageOf({ context: _context, metadata: _metadata, vector: _vector, ...passage }: IndexedChunk): Omit<ScoredPassage, 'score'> {
  return passage;
}

/**
 * What every `SearchEngine` must do (src/domain/engine.ts), run against each implementation (the
 * local engine; the Cloudflare engine over a Vectorize fake and the local D1), so the offline
 * default and production behave the same. Vectors come from the offline embedder, so a query
 * made from a passage's words is nearest to that passage.
 *
 * Every id the suite writes (chunks and documents) is unique across namespaces and tests:
 * Vectorize ids are unique per index, and the engine's ids are by construction (they hash the
 * namespace).
 */
export function searchEngineContract(name: string, make: () => Promise<SearchEngineHarness>): void {
  describe(`SearchEngine contract: ${name}`, () => {
    async function setup() {
      const harness = await make();
      const { engine, settle } = harness;
      const embedder = new LocalEmbedder({ dimensions: engine.dimensions });
      const run = crypto.randomUUID().replaceAll('-', '').slice(0, 12);
      /** Embeds as ingestion does: context and text. */
      const embed = (c: { context: string; text: string }) => embedder.embedOne(`${c.context}\n${c.text}`);

      const chunk = (
        documentId: string,
        label: string,
        text: string,
        options: Partial<Omit<IndexedChunk, 'id' | 'documentId' | 'text' | 'vector'>> & { vector?: 'embed' | null; id?: string } = {},
      ): IndexedChunk => {
        const base = {
          id: options.id ?? `${run}-${label}`,
          documentId,
          title: options.title ?? 'Field notes',
          text,
          context: options.context ?? '',
          position: options.position ?? 0,
          page: options.page ?? null,
          headings: options.headings ?? null,
          metadata: options.metadata ?? {},
        };
        return { ...base, vector: options.vector === null ? null : embed(base) };
      };

      const search = (
        namespace: string,
        mode: SearchMode,
        text: string,
        options: { limit?: number; candidates?: number; filter?: MetadataFilter | null; vector?: Float32Array | number[] | null } = {},
      ): Promise<ScoredPassage[]> => {
        const query: EngineQuery = {
          namespace,
          text,
          vector: options.vector !== undefined ? options.vector : mode === 'keyword' ? null : embedder.embedOne(text),
          mode,
          limit: options.limit ?? 10,
          candidates: options.candidates ?? 50,
          filter: parseFilter(options.filter ?? null),
          fusion: FUSION,
        };
        return engine.search(query);
      };
      const ids = async (...args: Parameters<typeof search>) => (await search(...args)).map((p) => p.id);
      const sortedIds = async (...args: Parameters<typeof search>) => (await ids(...args)).sort();

      /** Stages and activates whole documents, then settles. */
      const index = async (namespace: string, documents: Record<string, IndexedChunk[]>) => {
        await engine.stage(namespace, Object.values(documents).flat());
        await engine.activate(namespace, Object.entries(documents).map(([documentId, chunks]) => ({ documentId, chunkIds: chunks.map((c) => c.id) })));
        await settle();
      };

      return {
        ...harness,
        embedder,
        run,
        ns: (label: string) => `${label}-${run}`,
        doc: (label: string) => `${run}-${label}`,
        /** The id `chunk` gives a label. */
        cid: (label: string) => `${run}-${label}`,
        chunk,
        embed,
        search,
        ids,
        sortedIds,
        index,
      };
    }

    describe('index and search', () => {
      const CORPUS = [
        ['otters', 'Sea otters wrap themselves in kelp to sleep without drifting away, and crack urchins on their bellies with stones.', 'otters sleeping in kelp'],
        ['glaciers', 'Glaciers carve U-shaped valleys as they grind slowly downhill, leaving moraines of rock and gravel behind.', 'glaciers carving valleys'],
        ['bees', 'Honeybees tell their hive mates the direction of flowers through a waggle dance performed inside the hive.', 'honeybee waggle dance'],
        ['volcanoes', 'Volcanic eruptions release ash and sulfur dioxide that can cool the climate for several years.', 'volcanic ash cooling climate'],
        ['press', 'The printing press spread pamphlets and books across Europe, lowering the price of reading.', 'printing press pamphlets Europe'],
        ['antibodies', 'Antibodies attach to surface markers of viruses and flag them for destruction by immune cells.', 'antibodies flag viruses'],
      ] as const;

      it('finds the right passage first for a query made from its text, in every mode', async () => {
        const { ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('corpus');
        const chunks = CORPUS.map(([label, text]) => chunk(doc(label), label, text, { title: label, context: label }));
        await index(namespace, Object.fromEntries(chunks.map((c) => [c.documentId, [c]])));
        for (const mode of MODES) {
          for (const [i, [, , query]] of CORPUS.entries()) {
            const found = await ids(namespace, mode, query);
            expect(found[0], `${mode}: "${query}"`).toBe(chunks[i]!.id);
          }
        }
      });

      it('returns each passage as staged (id, document, title, text, place), with a score, best first', async () => {
        const { ns, doc, chunk, search, index } = await setup();
        const namespace = ns('shape');
        const documentId = doc('seabirds');
        const albatross = chunk(documentId, 'albatross', 'Albatrosses glide for hours without flapping.', {
          title: 'Seabirds',
          context: 'Seabirds › Flight',
          position: 3,
          page: 2,
          headings: ['Seabirds', 'Flight'],
        });
        // Another context: keyword feedback from the albatross's terms would bring in a passage sharing its title words.
        const gannet = chunk(documentId, 'gannet', 'Gannets dive into the sea from thirty metres to catch fish.', { title: 'Seabirds', context: 'Diving', position: 4 });
        await index(namespace, { [documentId]: [albatross, gannet] });
        for (const mode of MODES) {
          const found = await search(namespace, mode, 'albatross gliding for hours');
          expect(found.length, mode).toBeGreaterThan(0);
          expect(found[0], mode).toEqual({ ...passageOf(albatross), score: expect.any(Number) });
          for (const p of found) {
            expect(Object.keys(p).sort(), mode).toEqual(KEYS);
            expect(Number.isFinite(p.score), mode).toBe(true);
          }
          const scores = found.map((p) => p.score);
          expect(scores, `${mode}: best first`).toEqual([...scores].sort((a, b) => b - a));
          const other = found.find((p) => p.id === gannet.id);
          if (other) expect(other, mode).toEqual({ ...passageOf(gannet), score: expect.any(Number) });
        }
        // The context (title and headings) is searched, though not returned: "flight" is only there.
        expect((await search(namespace, 'keyword', 'flight')).map((p) => p.id)).toEqual([albatross.id]);
      });

      it('never returns staged chunks, even when they are the nearest and match best; returns them once activated', async () => {
        const { engine, settle, ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('staged');
        const live = chunk(doc('live'), 'live', 'Herons stalk fish in the shallows of the estuary at dawn.', { metadata: { team: 'x' } });
        const stagedText = 'Otters crack shellfish with stones on their bellies.';
        const staged = [0, 1, 2].map((i) => chunk(doc('staged'), `staged${i}`, `${stagedText}${i ? ` Again ${i}.` : ''}`, { position: i, metadata: { team: 'x' } }));
        await index(namespace, { [live.documentId]: [live] });
        await engine.stage(namespace, staged);
        await settle(); // the staged vectors are in the vector store, and the nearest to the query
        for (const mode of MODES) {
          const filters: [MetadataFilter | null, string[]][] = [
            [null, [live.id]],
            [{ team: 'x' }, [live.id]],
            [{ documentId: staged[0]!.documentId }, []],
          ];
          for (const [filter, matching] of filters) {
            const found = await ids(namespace, mode, 'otters crack shellfish with stones', { filter });
            const expected = mode === 'keyword' ? [] : matching;
            expect(found, `${mode} ${JSON.stringify(filter)}`).toEqual(expected);
          }
        }
        expect((await engine.count(namespace)).passages).toBe(1);

        await engine.activate(namespace, [{ documentId: staged[0]!.documentId, chunkIds: staged.map((c) => c.id) }]);
        await settle();
        for (const mode of MODES) {
          const found = await ids(namespace, mode, 'otters crack shellfish with stones');
          expect(found.slice(0, 3).sort(), mode).toEqual(staged.map((c) => c.id).sort());
        }
        expect((await engine.count(namespace)).passages).toBe(4);
      });
    });

    describe('keyword analysis', () => {
      it('matches word forms through stems', async () => {
        const { ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('stems');
        const protein = chunk(doc('protein'), 'protein', 'Each protein folds into one precise shape.');
        const otters = chunk(doc('otters'), 'otters', 'Otters crack urchins with stones.');
        await index(namespace, { [protein.documentId]: [protein], [otters.documentId]: [otters] });
        expect(await ids(namespace, 'keyword', 'proteins')).toEqual([protein.id]);
        expect(await ids(namespace, 'keyword', 'folding')).toEqual([protein.id]);
        expect(await ids(namespace, 'keyword', 'otter cracking urchin')).toEqual([otters.id]);
      });

      it('ignores stopwords', async () => {
        const { ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('stop');
        const protein = chunk(doc('protein'), 'protein', 'Each protein folds into one precise shape.');
        const filler = chunk(doc('filler'), 'filler', 'The cat and the hat of the day.');
        await index(namespace, { [protein.documentId]: [protein], [filler.documentId]: [filler] });
        // With "the" and "of" indexed, the filler passage would match.
        expect(await ids(namespace, 'keyword', 'the protein of')).toEqual([protein.id]);
        expect(await ids(namespace, 'keyword', 'the and of')).toEqual([]);
        expect(await ids(namespace, 'keyword', 'cat')).toEqual([filler.id]);
      });

      it('finds Chinese and Japanese text by a two-character word in it', async () => {
        const { ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('cjk');
        const chinese = chunk(doc('zh'), 'zh', '今天天气很好，我们去公园散步。');
        const japanese = chunk(doc('ja'), 'ja', '東京は日本の首都です。');
        const english = chunk(doc('en'), 'en', 'Parks are good places for a walk.');
        await index(namespace, { [chinese.documentId]: [chinese], [japanese.documentId]: [japanese], [english.documentId]: [english] });
        expect(await ids(namespace, 'keyword', '公园')).toEqual([chinese.id]);
        expect(await ids(namespace, 'keyword', '首都')).toEqual([japanese.id]);
        expect((await ids(namespace, 'hybrid', '公园'))[0]).toBe(chinese.id);
        expect((await ids(namespace, 'hybrid', '首都'))[0]).toBe(japanese.id);
      });
    });

    describe('filters', () => {
      it("applies documentId and metadata conditions with Vectorize's semantics, in every mode", async () => {
        const { engine, ns, doc, cid, chunk, sortedIds, index } = await setup();
        for (const field of SUITE_FILTER_FIELDS) expect(engine.capabilities.filterableFields, 'the harness must make these filterable').toContain(field);
        const namespace = ns('filter');
        const metas: Record<string, DocumentMetadata> = {
          a: { team: 'red', year: 2020 },
          b: { team: 'blue', year: 2021 },
          c: {}, // no fields: fails $eq/$in, passes $ne/$nin
          d: { team: 'red', year: 2021, draft: true },
          e: { year: 2019, draft: 1 }, // a number, not a boolean: types compare strictly
        };
        const chunks = Object.entries(metas).map(([label, metadata]) =>
          chunk(doc(label), label, `Lighthouse keeper log ${label}: the lamp was trimmed and the lens polished.`, { metadata }),
        );
        await index(namespace, Object.fromEntries(chunks.map((c) => [c.documentId, [c]])));
        const cases: [MetadataFilter | null, string[]][] = [
          [null, ['a', 'b', 'c', 'd', 'e']],
          [{ documentId: doc('a') }, ['a']],
          [{ documentId: { $in: [doc('a'), doc('b')] } }, ['a', 'b']],
          [{ documentId: { $ne: doc('a') }, team: 'red' }, ['d']],
          [{ team: 'red' }, ['a', 'd']],
          [{ team: { $eq: 'red' } }, ['a', 'd']],
          [{ team: { $ne: 'red' } }, ['b', 'c', 'e']],
          [{ team: { $in: ['red', 'blue'] } }, ['a', 'b', 'd']],
          [{ team: { $nin: ['blue'] } }, ['a', 'c', 'd', 'e']],
          [{ team: 'green' }, []],
          [{ team: 'red', year: { $ne: 2020 } }, ['d']],
          [{ year: { $in: [2020, 2021] }, team: { $ne: 'blue' } }, ['a', 'd']],
          [{ year: '2021' }, []],
          [{ draft: true }, ['d']],
          [{ draft: 1 }, ['e']],
          [{ draft: { $ne: true } }, ['a', 'b', 'c', 'e']],
          [{ team: { $eq: 'red', $ne: 'red' } }, []],
          [{ a: { $eq: 1, $ne: 1 } }, []],
          [{ team: { $in: [] } }, []],
        ];
        for (const mode of MODES) {
          for (const [filter, expected] of cases) {
            const found = await sortedIds(namespace, mode, 'lighthouse lamp lens', { filter });
            expect.soft(found, `${mode} ${JSON.stringify(filter)}`).toEqual(expected.map(cid));
          }
        }
      });
    });

    describe('update', () => {
      it('reports, and does not stage, a chunk without a vector whose vector it does not hold', async () => {
        const { engine, settle, ns, doc, chunk, ids } = await setup();
        const namespace = ns('novector');
        const documentId = doc('gulls');
        const known = chunk(documentId, 'known', 'Gulls drop mussels on rocks to crack them open.');
        const unknown = chunk(documentId, 'unknown', 'Gulls follow ploughs for worms.', { vector: null });
        expect(await engine.stage(namespace, [known, unknown])).toEqual([unknown.id]);
        await settle();
        const error = await caught(engine.activate(namespace, [{ documentId, chunkIds: [known.id, unknown.id] }]));
        expect(error.status).toBe(400);
        await engine.activate(namespace, [{ documentId, chunkIds: [known.id] }]);
        await settle();
        for (const mode of MODES) expect(await ids(namespace, mode, 'gulls ploughs worms mussels'), mode).toEqual([known.id]);
      });

      it('serves the old version whole until the new one is activated, then exactly the new one', async () => {
        const { engine, settle, ns, doc, chunk, embed, ids, sortedIds, search, index } = await setup();
        const namespace = ns('update');
        const documentId = doc('birds');
        const kept = chunk(documentId, 'kept', 'Kingfishers dive headfirst into rivers to catch small fish.', { position: 0 });
        const changed = chunk(documentId, 'changed', 'Cormorants dry their wings on posts after fishing.', { position: 1 });
        const dropped = chunk(documentId, 'dropped', 'Dippers walk underwater along stream beds searching for larvae.', { position: 2 });
        const other = chunk(doc('other'), 'other', 'Lichens grow slowly on bare granite.');
        await index(namespace, { [documentId]: [kept, changed, dropped], [other.documentId]: [other] });

        const keptAgain = { ...kept, vector: null };
        const changed2 = chunk(documentId, 'changed2', 'Cormorants spread their wings on posts to dry them after fishing.', { position: 1 });
        const added = chunk(documentId, 'added', 'Nightjars hunt moths at dusk over open heath.', { position: 2 });
        await engine.stage(namespace, [keptAgain, changed2, added]);
        await settle();

        const query = 'kingfishers cormorants dippers nightjars wings fishing moths larvae';
        const inDocument = (found: string[]) => found.filter((id) => id !== other.id);
        for (const mode of MODES) {
          const found = await search(namespace, mode, query);
          expect(inDocument(found.map((p) => p.id)).sort(), `${mode}, before activation`).toEqual([kept.id, changed.id, dropped.id].sort());
          expect(found.find((p) => p.id === changed.id)?.text).toBe(changed.text);
          // The new chunks, asked for by their own words, are not there either.
          expect(await ids(namespace, mode, 'nightjars hunting moths at dusk'), mode).not.toContain(added.id);
        }
        expect((await engine.count(namespace)).passages).toBe(4);

        await engine.activate(namespace, [{ documentId, chunkIds: [kept.id, changed2.id, added.id] }]);
        // The dropped chunks go at once, even before an asynchronous vector store applies their deletion.
        for (const mode of MODES) {
          const found = await ids(namespace, mode, query);
          expect(found, `${mode}, before settling`).not.toContain(changed.id);
          expect(found, `${mode}, before settling`).not.toContain(dropped.id);
        }
        await settle();
        for (const mode of MODES) {
          expect(inDocument(await sortedIds(namespace, mode, query)), `${mode}, after activation`).toEqual([kept.id, changed2.id, added.id].sort());
          expect(await ids(namespace, mode, 'dippers walking underwater searching larvae'), mode).not.toContain(dropped.id);
        }
        expect((await engine.count(namespace)).passages).toBe(4);
        // The kept chunk was staged without a vector: it kept its own (exactly: cosine 1 to its embedding).
        const [nearest] = await search(namespace, 'vector', '', { vector: embed(kept) });
        expect(nearest?.id).toBe(kept.id);
        expect(nearest?.score).toBeCloseTo(1, 4);
      });

      it('filters a kept chunk (staged without its vector) by the metadata of the new version, in every mode', async () => {
        const { engine, settle, ns, doc, chunk, sortedIds, index } = await setup();
        const namespace = ns('remeta');
        const documentId = doc('remeta');
        const kept = chunk(documentId, 'kept', 'Puffins nest in burrows on grassy cliff tops.', { metadata: { team: 'red' } });
        await index(namespace, { [documentId]: [kept] });
        // The same document uploaded again with other metadata: same chunk, same vector.
        await engine.stage(namespace, [{ ...kept, metadata: { team: 'blue' }, vector: null }]);
        await engine.activate(namespace, [{ documentId, chunkIds: [kept.id] }]);
        await settle();
        for (const mode of MODES) {
          expect.soft(await sortedIds(namespace, mode, 'puffins burrows', { filter: { team: 'blue' } }), `${mode} team=blue`).toEqual([kept.id]);
          expect.soft(await sortedIds(namespace, mode, 'puffins burrows', { filter: { team: 'red' } }), `${mode} team=red`).toEqual([]);
        }
      });
    });

    describe('remove', () => {
      it('removes every chunk of a document, live and staged, in every mode; counts follow', async () => {
        const { engine, settle, ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('remove');
        const documentId = doc('moss');
        const live = [
          chunk(documentId, 'moss1', 'Moss grows on the north side of trees.', { position: 0 }),
          chunk(documentId, 'moss2', 'Lichens and moss cover bare rock in the tundra.', { position: 1 }),
        ];
        const keep = chunk(doc('ferns'), 'ferns', 'Ferns unfurl their fronds in spring.');
        await index(namespace, { [documentId]: live, [keep.documentId]: [keep] });
        const next = chunk(documentId, 'moss3', 'Moss spores drift on the wind for miles.', { position: 2 });
        await engine.stage(namespace, [next]);
        await settle();
        const query = 'moss lichens trees tundra spores wind';
        for (const mode of MODES) expect(await ids(namespace, mode, query), mode).toContain(live[0]!.id);
        expect(await engine.count(namespace)).toMatchObject({ passages: 3, vectors: 4 });

        await engine.remove(namespace, documentId);
        for (const mode of MODES) {
          const found = await ids(namespace, mode, query);
          for (const c of [...live, next]) expect(found, `${mode}, before settling`).not.toContain(c.id);
        }
        await settle();
        for (const mode of MODES) {
          const found = await ids(namespace, mode, query);
          expect(found, mode).toEqual(mode === 'keyword' ? [] : [keep.id]);
          expect(await ids(namespace, mode, query, { filter: { documentId } }), mode).toEqual([]);
        }
        expect(await engine.count(namespace)).toMatchObject({ passages: 1, vectors: 1 });
        // Its staged chunk is gone too: it cannot be activated.
        expect((await caught(engine.activate(namespace, [{ documentId, chunkIds: [next.id] }]))).status).toBe(400);
        for (const mode of MODES) expect(await ids(namespace, mode, query), mode).not.toContain(next.id);
      });

      it('removes what is absent without error', async () => {
        const { engine, ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('absent');
        const c = chunk(doc('here'), 'here', 'Beavers build dams of branches and mud.');
        await index(namespace, { [c.documentId]: [c] });
        await engine.remove(namespace, doc('never'));
        await engine.remove(ns('never-used'), doc('never'));
        expect(await ids(namespace, 'keyword', 'beavers')).toEqual([c.id]);
        expect((await engine.count(namespace)).passages).toBe(1);
      });
    });

    describe('activate', () => {
      it('refuses ids that were never staged (400), changing nothing', async () => {
        const { engine, ns, doc, chunk, sortedIds, index } = await setup();
        const namespace = ns('activate');
        const documentId = doc('bats');
        const v1 = [chunk(documentId, 'bats1', 'Bats find insects by echolocation.'), chunk(documentId, 'bats2', 'Bats roost in caves by day.', { position: 1 })];
        const stranger = chunk(doc('stranger'), 'stranger', 'Moles dig tunnels under lawns.');
        await index(namespace, { [documentId]: v1 });
        await engine.stage(namespace, [stranger]);

        const refusals = [
          [{ documentId, chunkIds: [v1[0]!.id, `${v1[0]!.id}-never`] }],
          [{ documentId, chunkIds: [stranger.id] }], // staged, but for another document
          [{ documentId: doc('unknown'), chunkIds: [`${v1[0]!.id}-never`] }],
        ];
        for (const versions of refusals) {
          const error = await caught(engine.activate(namespace, versions));
          expect(error.status, JSON.stringify(versions)).toBe(400);
          expect(error.code).toBe('bad_request');
        }
        for (const mode of MODES) {
          expect(await sortedIds(namespace, mode, 'bats echolocation caves roost moles tunnels'), mode).toEqual(v1.map((c) => c.id).sort());
        }
        expect((await engine.count(namespace)).passages).toBe(2);
      });

      it('refuses a call of several versions, one with an id never staged, changing none of them', async () => {
        const { engine, settle, ns, doc, chunk, sortedIds, index } = await setup();
        const namespace = ns('activate-many');
        const a1 = chunk(doc('a'), 'a1', 'Walrus tusks grow throughout life.');
        const b1 = chunk(doc('b'), 'b1', 'Walrus flippers turn outward on land.');
        await index(namespace, { [a1.documentId]: [a1], [b1.documentId]: [b1] });
        const a2 = chunk(doc('a'), 'a2', 'Walrus whiskers sense clams on the sea floor.');
        await engine.stage(namespace, [a2]);
        const error = await caught(
          engine.activate(namespace, [
            { documentId: a1.documentId, chunkIds: [a2.id] },
            { documentId: b1.documentId, chunkIds: [`${b1.id}-never`] },
          ]),
        );
        expect(error.status).toBe(400);
        await settle();
        for (const mode of MODES) {
          expect.soft(await sortedIds(namespace, mode, 'walrus tusks flippers whiskers'), mode).toEqual([a1.id, b1.id].sort());
        }
      });
    });

    describe('limits', () => {
      it('returns up to limits.maxResults passages, taking as many candidates', async () => {
        const { engine, ns, doc, chunk, ids, index } = await setup();
        const namespace = ns('limits');
        const max = engine.limits.maxResults;
        const n = max + 20;
        const documentId = doc('many');
        const chunks = Array.from({ length: n }, (_, i) => chunk(documentId, `m${i}`, `Lantern note ${i}: the wick burned ${i % 7} hours on shelf ${i % 11}.`, { position: i }));
        await index(namespace, { [documentId]: chunks });
        for (const mode of MODES) {
          const found = await ids(namespace, mode, 'lantern note wick', { limit: max, candidates: max });
          expect(found, mode).toHaveLength(max);
          expect(new Set(found).size, mode).toBe(max);
          expect(await ids(namespace, mode, 'lantern note wick', { limit: 1, candidates: 1 }), mode).toHaveLength(1);
          expect(await ids(namespace, mode, 'lantern note wick', { limit: 5, candidates: max }), mode).toHaveLength(5);
        }
      });

      it('refuses a chunk id over limits.maxIdBytes bytes with a 400, storing nothing of the call', async () => {
        const { engine, settle, ns, doc, chunk, run, ids } = await setup();
        const namespace = ns('idbytes');
        const max = engine.limits.maxIdBytes;
        // Multi-byte characters: the limit is in bytes of UTF-8, not characters.
        const ofBytes = (n: number, tag: string) => `${run}${tag}${'é'.repeat(Math.floor((n - run.length - 1) / 2))}${(n - run.length - 1) % 2 ? 'x' : ''}`;
        const longest = ofBytes(max, 'a');
        const tooLong = ofBytes(max + 1, 'b');
        expect(new TextEncoder().encode(longest).length).toBe(max);
        expect(new TextEncoder().encode(tooLong).length).toBe(max + 1);
        expect(tooLong.length).toBeLessThanOrEqual(max); // under the limit in characters
        const documentId = doc('ids');
        const ok = chunk(documentId, '', 'Swifts sleep on the wing during migration.', { id: longest });
        const bad = chunk(documentId, '', 'Swallows gather on wires before migration.', { id: tooLong, position: 1 });

        const error = await caught(engine.stage(namespace, [ok, bad]));
        expect(error.code).toBe('bad_request');
        expect(error.status).toBe(400);
        await settle();
        // Nothing of the call was stored: not even the valid chunk can be activated.
        const activated = await engine.activate(namespace, [{ documentId, chunkIds: [ok.id] }]).then(() => null, (e: unknown) => e);
        expect.soft(activated, 'activating the valid chunk of the refused stage call').toBeInstanceOf(AppError);
        expect.soft((activated as AppError | null)?.status).toBe(400);
        await settle();
        expect.soft(await engine.count(namespace)).toMatchObject({ passages: 0, vectors: 0 });
        for (const mode of MODES) expect.soft(await ids(namespace, mode, 'swifts swallows migration'), mode).toEqual([]);

        // The longest id the limit allows works.
        await engine.stage(namespace, [ok]);
        await engine.activate(namespace, [{ documentId, chunkIds: [ok.id] }]);
        await settle();
        for (const mode of MODES) expect(await ids(namespace, mode, 'swifts sleep on the wing'), mode).toEqual([ok.id]);
      });

      it("refuses a vector of the wrong dimension as the engine's misconfiguration (503), never the client's", async () => {
        const { engine, ns, doc, chunk, search, index } = await setup();
        const namespace = ns('dims');
        const c = chunk(doc('dims'), 'dims', 'Geysers erupt when groundwater boils.');
        await index(namespace, { [c.documentId]: [c] });
        const wrong = new Float32Array(engine.dimensions - 1).fill(0.1);
        for (const space of [namespace, ns('dims-empty')]) {
          for (const mode of ['vector', 'hybrid'] as const) {
            const error = await caught(search(space, mode, 'geysers', { vector: wrong }));
            expect(error.code, `${mode} ${space}`).toBe('misconfigured');
            expect(error.status).toBe(503);
          }
        }
        const staged = await caught(engine.stage(namespace, [{ ...chunk(c.documentId, 'dims2', 'Hot springs steam.'), vector: wrong }]));
        expect(staged.code).toBe('misconfigured');
        expect(await engine.misconfiguration(namespace)).toBeNull();
        expect(await engine.misconfiguration(ns('dims-empty'))).toBeNull();
      });

      it('names the mismatch when the embedder changed dimensions, and answers with misconfigured (503)', async () => {
        const { engine, reconfigured, ns, doc, chunk, index } = await setup();
        const namespace = ns('redim');
        const c = chunk(doc('redim'), 'redim', 'Geysers erupt when groundwater boils.');
        await index(namespace, { [c.documentId]: [c] });
        const smaller = reconfigured(16);
        expect(smaller.dimensions).toBe(16);
        expect(await smaller.misconfiguration(namespace)).toEqual(expect.stringContaining(String(engine.dimensions)));
        const vector = new Float32Array(16).fill(0.25);
        for (const mode of ['vector', 'hybrid'] as const) {
          const error = await caught(smaller.search({ namespace, text: 'geysers', vector, mode, limit: 5, candidates: 5, filter: null, fusion: FUSION }));
          expect(error.code, mode).toBe('misconfigured');
        }
        const staged = await caught(smaller.stage(namespace, [{ ...chunk(c.documentId, 'redim2', 'Hot springs steam.'), vector }]));
        expect(staged.code).toBe('misconfigured');
        expect(await engine.misconfiguration(namespace)).toBeNull();
      });
    });

    describe('namespaces', () => {
      it('never returns a document of one namespace in a search of another', async () => {
        const { engine, ns, doc, chunk, ids, index } = await setup();
        const [a, b] = [ns('ns-a'), ns('ns-b')];
        const inA = chunk(doc('a'), 'a', 'Narwhals use their tusks to sense the water around them.', { metadata: { team: 'x' } });
        const inB = chunk(doc('b'), 'b', 'Walruses haul out on sea ice to rest.', { metadata: { team: 'x' } });
        await index(a, { [inA.documentId]: [inA] });
        await index(b, { [inB.documentId]: [inB] });
        const query = 'narwhals tusks sense water';
        for (const mode of MODES) {
          expect(await ids(a, mode, query), mode).toEqual([inA.id]);
          expect(await ids(b, mode, query), mode).toEqual(mode === 'keyword' ? [] : [inB.id]);
          expect(await ids(b, mode, query, { filter: { documentId: inA.documentId } }), mode).toEqual([]);
          expect(await ids(b, mode, query, { filter: { team: 'x' } }), mode).toEqual(mode === 'keyword' ? [] : [inB.id]);
        }
        expect((await engine.count(a)).passages).toBe(1);
        expect((await engine.count(b)).passages).toBe(1);
      });

      it('removes a document from the namespace named only', async () => {
        const { engine, settle, ns, doc, chunk, ids, index } = await setup();
        const [a, b] = [ns('rm-a'), ns('rm-b')];
        const inA = chunk(doc('a'), 'a', 'Narwhals use their tusks to sense the water around them.');
        await index(a, { [inA.documentId]: [inA] });
        await engine.remove(b, inA.documentId);
        await settle();
        const query = 'narwhals tusks sense water';
        for (const mode of MODES) expect.soft(await ids(a, mode, query), `${mode}, after remove(other namespace)`).toEqual([inA.id]);
        expect((await engine.count(a)).passages, 'after remove(other namespace)').toBe(1);
      });
    });

    describe('a document\'s passages', () => {
      it('lists its live passages in document order, a page at a time, and nothing staged or of another document', async () => {
        const { engine, ns, doc, chunk, index } = await setup();
        const namespace = ns('passages');
        const documentId = doc('log');
        // Staged out of order: the list follows `position`.
        const chunks = [2, 0, 3, 1].map((i) => chunk(documentId, `log${i}`, `Logbook entry ${i}: the keeper lit the lamp.`, { position: i, page: i + 1 }));
        await index(namespace, { [documentId]: chunks, [doc('other')]: [chunk(doc('other'), 'other', 'Another document.')] });
        const all = await engine.documentPassages(namespace, documentId, { from: 0, limit: 10 });
        expect(all.map((p) => p.position)).toEqual([0, 1, 2, 3]);
        expect(all[1]).toEqual(passageOf(chunks[3]!));
        expect((await engine.documentPassages(namespace, documentId, { from: 1, limit: 2 })).map((p) => p.position)).toEqual([1, 2]);
        // A new version, staged only: the list is still the live one.
        await engine.stage(namespace, [chunk(documentId, 'log9', 'Logbook entry 9, not yet live.', { position: 0 })]);
        expect((await engine.documentPassages(namespace, documentId, { from: 0, limit: 10 })).map((p) => p.id)).toEqual(all.map((p) => p.id));
        expect(await engine.documentPassages(ns('elsewhere'), documentId, { from: 0, limit: 10 })).toEqual([]);
      });
    });

    describe('count', () => {
      it("counts the namespace's live passages, and its stored vectors staged ones included", async () => {
        const { engine, settle, ns, doc, chunk, index } = await setup();
        const namespace = ns('count');
        expect(await engine.count(namespace)).toMatchObject({ passages: 0, vectors: 0 });
        const first = [0, 1, 2].map((i) => chunk(doc('first'), `first${i}`, `Tide pool note ${i}: anemones close at low tide.`, { position: i }));
        await engine.stage(namespace, first);
        await settle();
        expect(await engine.count(namespace)).toMatchObject({ passages: 0, vectors: 3 });
        await engine.activate(namespace, [{ documentId: doc('first'), chunkIds: first.map((c) => c.id) }]);
        await settle();
        expect(await engine.count(namespace)).toMatchObject({ passages: 3, vectors: 3 });
        const second = [0, 1].map((i) => chunk(doc('second'), `second${i}`, `Rock pool note ${i}: crabs hide under weed.`, { position: i }));
        await index(namespace, { [doc('second')]: second });
        const counts = await engine.count(namespace);
        expect(counts).toMatchObject({ passages: 5, vectors: 5 });
        expect(['namespace', 'index']).toContain(counts.vectorScope);
        expect((await engine.count(ns('count-other'))).passages).toBe(0);
        // A new version with one chunk fewer.
        await engine.stage(namespace, [{ ...second[0]!, vector: null }]);
        await engine.activate(namespace, [{ documentId: doc('second'), chunkIds: [second[0]!.id] }]);
        await settle();
        expect(await engine.count(namespace)).toMatchObject({ passages: 4, vectors: 4 });
      });
    });

    describe('asynchronous writes', () => {
      it('marks its last write; once it is applied (or at once, without a marker) vector search sees it', async () => {
        const { engine, settle, ns, doc, chunk, ids } = await setup();
        const namespace = ns('async');
        const c = chunk(doc('async'), 'async', 'Salmon leap up waterfalls to reach their spawning grounds.');
        await engine.stage(namespace, [c]);
        await engine.activate(namespace, [{ documentId: c.documentId, chunkIds: [c.id] }]);
        const write = engine.lastWrite();
        if (write === null) {
          expect(await ids(namespace, 'vector', 'salmon leaping waterfalls')).toEqual([c.id]);
        } else {
          expect(typeof write.mutationId).toBe('string');
          if (await engine.isApplied(write)) expect(await ids(namespace, 'vector', 'salmon leaping waterfalls')).toEqual([c.id]);
        }
        // Keyword search needs no vector: it sees the activation at once.
        expect(await ids(namespace, 'keyword', 'salmon waterfalls')).toEqual([c.id]);
        await settle();
        if (write) expect(await engine.isApplied(write)).toBe(true);
        expect(await ids(namespace, 'vector', 'salmon leaping waterfalls')).toEqual([c.id]);
      });
    });
  });
}
