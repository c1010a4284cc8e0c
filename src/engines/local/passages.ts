import { KeywordIndex } from '../keyword-index';
import type { IndexedChunk, ScoredPassage } from '../../domain';

/**
 * The passages of the local index: each chunk's text, context and place in its document, kept
 * in the same SQLite row as its vector (so vector and keyword hits share the rowid), with its
 * document's id and whether it is `live` (its document's searchable version) or only staged.
 * The in-memory keyword index covers exactly the live rows.
 */

/** Adds the passage columns to a vector table created before they existed. */
export function addPassageColumns(sql: SqlStorage): void {
  const have = new Set(sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('vectors')`).toArray().map((c) => c.name));
  for (const column of ['text', 'context', 'passage', 'document']) {
    if (!have.has(column)) sql.exec(`ALTER TABLE vectors ADD COLUMN ${column} TEXT`);
  }
  if (!have.has('live')) {
    // Before versions, a row with text was published: it is its document's live version.
    sql.exec(`ALTER TABLE vectors ADD COLUMN live INTEGER NOT NULL DEFAULT 0;
      UPDATE vectors SET live = (text IS NOT NULL), document = json_extract(metadata, '$.documentId');`);
  }
  sql.exec('CREATE INDEX IF NOT EXISTS vectors_by_document ON vectors (document)');
}

/** Where a passage sits in its document: stored as JSON beside the text. */
type Placement = Omit<ScoredPassage, 'id' | 'text' | 'score'>;

export function placementOf(chunk: IndexedChunk): string {
  const placement: Placement = {
    documentId: chunk.documentId,
    title: chunk.title,
    position: chunk.position,
    page: chunk.page,
    headings: chunk.headings,
  };
  return JSON.stringify(placement);
}

/** The keyword index over every live passage, built from SQL. */
export function buildKeywordIndex(sql: SqlStorage): KeywordIndex {
  const index = new KeywordIndex();
  for (const { r, text, context } of sql.exec<{ r: number; text: string; context: string }>(
    'SELECT rowid AS r, text, context FROM vectors WHERE live = 1',
  )) {
    index.add(r, text, context);
  }
  return index;
}

/** Context and text of rows, in the order asked (feedback for query expansion). */
export function passageTexts(sql: SqlStorage, rowids: number[]): string[] {
  const byRow = new Map<number, string>();
  for (const { r, text } of sql.exec<{ r: number; text: string }>(
    `SELECT rowid AS r, context || char(10) || text AS text FROM vectors
     WHERE rowid IN (SELECT value FROM json_each(?)) AND live = 1`,
    JSON.stringify(rowids),
  )) {
    byRow.set(r, text);
  }
  return rowids.map((r) => byRow.get(r) ?? '');
}

/** The live passages among `ranked`, in its order, at most `limit`. */
export function readPassages(sql: SqlStorage, ranked: { row: number; score: number }[], limit: number): ScoredPassage[] {
  const found = new Map<number, { id: string; text: string; passage: string }>();
  for (const row of sql.exec<{ r: number; id: string; text: string; passage: string }>(
    `SELECT rowid AS r, id, text, passage FROM vectors WHERE rowid IN (SELECT value FROM json_each(?)) AND live = 1`,
    JSON.stringify(ranked.map((hit) => hit.row)),
  )) {
    found.set(row.r, row);
  }
  const out: ScoredPassage[] = [];
  for (const { row, score } of ranked) {
    const hit = found.get(row);
    if (!hit) continue;
    const placement = JSON.parse(hit.passage) as Placement;
    out.push({ id: hit.id, text: hit.text, ...placement, score });
    if (out.length === limit) break;
  }
  return out;
}
