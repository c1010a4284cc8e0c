import type { IndexSettings } from '../domain';

export interface Generation {
  namespace: string;
  generation: number;
  settings: IndexSettings;
}

export interface BuildProgress {
  generation: number;
  settings: IndexSettings;
  pending: number;
  built: number;
  failed: number;
}

export type GenerationState = 'serving' | 'building' | 'retired';

interface GenerationRow {
  namespace: string;
  generation: number;
  settings: string;
}

const fromRow = (row: GenerationRow): Generation => ({ namespace: row.namespace, generation: row.generation, settings: JSON.parse(row.settings) as IndexSettings });

/**
 * Index generations in the catalog (migration 0013): per namespace, the one serving, the one
 * being built beside it, and retired ones whose data is being removed; and, for a building
 * generation, which documents it still needs.
 */
export class GenerationStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  /** The serving generation of each namespace that has recorded one (one read). */
  async serving(namespaces: string[]): Promise<Map<string, Generation>> {
    const { results } = await this.#db
      .prepare(`SELECT namespace, generation, settings FROM index_generations WHERE state = 'serving' AND namespace IN (SELECT value FROM json_each(?))`)
      .bind(JSON.stringify(namespaces))
      .all<GenerationRow>();
    return new Map(results.map((row) => [row.namespace, fromRow(row)]));
  }

  /** Records generation 0 as serving with `settings` for namespaces that have no generation yet. */
  async pin(namespaces: string[], settings: IndexSettings): Promise<void> {
    if (namespaces.length === 0) return;
    const statement = this.#db.prepare(
      `INSERT INTO index_generations (namespace, generation, settings, state, created_at)
       SELECT ?1, 0, ?2, 'serving', ?3 WHERE NOT EXISTS (SELECT 1 FROM index_generations WHERE namespace = ?1)`,
    );
    await this.#db.batch(namespaces.map((namespace) => statement.bind(namespace, JSON.stringify(settings), Date.now())));
  }

  /**
   * The generations named by messages, for their documents' namespaces, with their state: key
   * `<document id>\n<generation>`. A generation dropped since (or a deleted document) is absent.
   */
  async named(pairs: { documentId: string; generation: number }[]): Promise<Map<string, Generation & { state: GenerationState }>> {
    if (pairs.length === 0) return new Map();
    const { results } = await this.#db
      .prepare(
        `SELECT d.id AS document_id, g.namespace, g.generation, g.settings, g.state
         FROM json_each(?) AS p JOIN documents d ON d.id = json_extract(p.value, '$[0]')
         JOIN index_generations g ON g.namespace = d.namespace AND g.generation = json_extract(p.value, '$[1]')`,
      )
      .bind(JSON.stringify(pairs.map((p) => [p.documentId, p.generation])))
      .all<GenerationRow & { document_id: string; state: GenerationState }>();
    return new Map(results.map((row) => [`${row.document_id}\n${row.generation}`, { ...fromRow(row), state: row.state }]));
  }

  /** The generation being built in a namespace, if any. */
  async building(namespace: string): Promise<Generation | null> {
    const row = await this.#db
      .prepare(`SELECT namespace, generation, settings FROM index_generations WHERE namespace = ? AND state = 'building'`)
      .bind(namespace)
      .first<GenerationRow>();
    return row ? fromRow(row) : null;
  }

  /** A namespace's generations that hold data: serving, building, and retired ones not removed yet. */
  async holdingData(namespace: string): Promise<Generation[]> {
    const { results } = await this.#db
      .prepare(`SELECT namespace, generation, settings FROM index_generations WHERE namespace = ?`)
      .bind(namespace)
      .all<GenerationRow>();
    return results.map(fromRow);
  }

  /**
   * Starts building a new generation of a namespace with `settings`, needing every document of
   * the namespace that is not failed; one being built already is retired (its data removed
   * later). Returns it with the documents it needs.
   */
  async startBuild(namespace: string, settings: IndexSettings): Promise<{ generation: number; documents: string[]; replaced: number | null }> {
    const replaced = await this.building(namespace);
    const now = Date.now();
    const top = await this.#db
      .prepare('SELECT COALESCE(MAX(generation), 0) AS n FROM index_generations WHERE namespace = ?')
      .bind(namespace)
      .first<{ n: number }>();
    const generation = (top?.n ?? 0) + 1;
    await this.#db.batch([
      this.#db.prepare(`UPDATE index_generations SET state = 'retired' WHERE namespace = ? AND state = 'building'`).bind(namespace),
      this.#db
        .prepare(`INSERT INTO index_generations (namespace, generation, settings, state, created_at) VALUES (?, ?, ?, 'building', ?)`)
        .bind(namespace, generation, JSON.stringify(settings), now),
      this.#db
        .prepare(
          `INSERT INTO generation_documents (namespace, generation, document_id, state, updated_at)
           SELECT namespace, ?2, id, 'pending', ?3 FROM documents WHERE namespace = ?1 AND status != 'failed'`,
        )
        .bind(namespace, generation, now),
    ]);
    const { results } = await this.#db
      .prepare(`SELECT document_id FROM generation_documents WHERE namespace = ? AND generation = ?`)
      .bind(namespace, generation)
      .all<{ document_id: string }>();
    return { generation, documents: results.map((r) => r.document_id), replaced: replaced?.generation ?? null };
  }

  /** Marks documents as needed (again) by a building generation: new, or changed since it was built. */
  async need(namespace: string, generation: number, documentIds: string[]): Promise<void> {
    if (documentIds.length === 0) return;
    const statement = this.#db.prepare(
      `INSERT INTO generation_documents (namespace, generation, document_id, state, updated_at) VALUES (?, ?, ?, 'pending', ?)
       ON CONFLICT DO UPDATE SET state = 'pending', updated_at = excluded.updated_at`,
    );
    await this.#db.batch(documentIds.map((id) => statement.bind(namespace, generation, id, Date.now())));
  }

  /**
   * Records a document's outcome in a building generation (`gone`: deleted, no longer needed);
   * returns how many documents it still needs, or null when it is no longer building.
   */
  async record(namespace: string, generation: number, documentId: string, outcome: 'built' | 'failed' | 'gone'): Promise<number | null> {
    const change =
      outcome === 'gone'
        ? this.#db.prepare('DELETE FROM generation_documents WHERE namespace = ? AND generation = ? AND document_id = ?').bind(namespace, generation, documentId)
        : this.#db
            .prepare('UPDATE generation_documents SET state = ?4, updated_at = ?5 WHERE namespace = ?1 AND generation = ?2 AND document_id = ?3')
            .bind(namespace, generation, documentId, outcome, Date.now());
    const [, left] = await this.#db.batch([
      change,
      this.#db
        .prepare(
          `SELECT (SELECT COUNT(*) FROM generation_documents WHERE namespace = ?1 AND generation = ?2 AND state = 'pending') AS pending
           FROM index_generations WHERE namespace = ?1 AND generation = ?2 AND state = 'building'`,
        )
        .bind(namespace, generation),
    ]);
    const row = (left?.results as { pending: number }[] | undefined)?.[0];
    return row ? row.pending : null;
  }

  /**
   * Makes a building generation the serving one if it needs no document any more and none
   * failed in it (a document that cannot be indexed with the new settings keeps the old
   * generation serving until it is fixed or deleted); the one serving before is retired. Bumps the namespace's answer-cache generation in the same
   * transaction. Returns the retired generation, or null when nothing switched.
   */
  async switchTo(namespace: string, generation: number): Promise<{ retired: number | null } | null> {
    const ready = `NOT EXISTS (SELECT 1 FROM generation_documents WHERE namespace = ?1 AND generation = ?2 AND state IN ('pending', 'failed'))
      AND EXISTS (SELECT 1 FROM index_generations WHERE namespace = ?1 AND generation = ?2 AND state = 'building')`;
    const before = await this.serving([namespace]);
    const results = await this.#db.batch([
      this.#db.prepare(`UPDATE index_generations SET state = 'retired' WHERE namespace = ?1 AND state = 'serving' AND ${ready}`).bind(namespace, generation),
      this.#db.prepare(`UPDATE index_generations SET state = 'serving' WHERE namespace = ?1 AND generation = ?2 AND ${ready}`).bind(namespace, generation),
      this.#db
        .prepare(
          `INSERT INTO namespace_generations (namespace, generation, changed_at) VALUES (?1, ?2, ?2)
           ON CONFLICT (namespace) DO UPDATE SET generation = generation + 1, changed_at = excluded.changed_at`,
        )
        .bind(namespace, Date.now()),
    ]);
    if ((results[1]?.meta.changes ?? 0) === 0) return null;
    return { retired: before.get(namespace)?.generation ?? null };
  }

  /**
   * Building generations that need no document any more, whose last document was recorded at
   * least `quietMs` ago (an asynchronous vector index applies writes that long after), for the
   * sweeper to switch in.
   */
  async complete(quietMs: number): Promise<{ namespace: string; generation: number }[]> {
    const { results } = await this.#db
      .prepare(
        `SELECT namespace, generation FROM index_generations g WHERE state = 'building'
           AND NOT EXISTS (SELECT 1 FROM generation_documents d
             WHERE d.namespace = g.namespace AND d.generation = g.generation AND d.state IN ('pending', 'failed'))
           AND COALESCE((SELECT MAX(updated_at) FROM generation_documents d WHERE d.namespace = g.namespace AND d.generation = g.generation), 0) < ?`,
      )
      .bind(Date.now() - quietMs)
      .all<{ namespace: string; generation: number }>();
    return results;
  }

  /** Retired generations, whose data is to be removed. */
  async retired(): Promise<{ namespace: string; generation: number }[]> {
    const { results } = await this.#db
      .prepare(`SELECT namespace, generation FROM index_generations WHERE state = 'retired'`)
      .all<{ namespace: string; generation: number }>();
    return results;
  }

  /** Forgets a retired generation once its data is removed. */
  async drop(namespace: string, generation: number): Promise<void> {
    await this.#db.batch([
      this.#db.prepare(`DELETE FROM index_generations WHERE namespace = ? AND generation = ? AND state = 'retired'`).bind(namespace, generation),
      this.#db.prepare('DELETE FROM generation_documents WHERE namespace = ? AND generation = ?').bind(namespace, generation),
    ]);
  }

  /** Where a namespace's building generation stands, for /status. */
  async progress(namespace: string): Promise<BuildProgress | null> {
    const building = await this.building(namespace);
    if (!building) return null;
    const { results } = await this.#db
      .prepare('SELECT state, COUNT(*) AS n FROM generation_documents WHERE namespace = ? AND generation = ? GROUP BY state')
      .bind(namespace, building.generation)
      .all<{ state: 'pending' | 'built' | 'failed'; n: number }>();
    const count = (state: string) => results.find((r) => r.state === state)?.n ?? 0;
    return { generation: building.generation, settings: building.settings, pending: count('pending'), built: count('built'), failed: count('failed') };
  }

  /**
   * Documents a building generation has waited for longer than `graceMs` (their message lost):
   * at most `limit`, their wait restarted, so one sweep re-sends each once.
   */
  async overdue(graceMs: number, limit: number): Promise<{ namespace: string; generation: number; documentId: string }[]> {
    const now = Date.now();
    const { results } = await this.#db
      .prepare(
        `UPDATE generation_documents SET updated_at = ?1
         WHERE (namespace, generation, document_id) IN (
           SELECT namespace, generation, document_id FROM generation_documents WHERE state = 'pending' AND updated_at < ?1 - ?2 LIMIT ?3)
         RETURNING namespace, generation, document_id`,
      )
      .bind(now, graceMs, limit)
      .all<{ namespace: string; generation: number; document_id: string }>();
    return results.map((r) => ({ namespace: r.namespace, generation: r.generation, documentId: r.document_id }));
  }
}
