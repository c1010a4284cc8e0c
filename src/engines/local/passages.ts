import { KeywordIndex } from '../keyword-index';
import type { IndexedPassage, ScoredPassage } from '../../domain/types';

/**
 * The passages of the local index: each published chunk's text, context and place in its
 * document, kept in the same SQLite row as its vector (so vector and keyword hits share the
 * rowid), with an in-memory keyword index over them. A row whose `text` is NULL holds a
 * vector that is not published yet: queries never return it.
 */

/** Adds the passage columns to a vector table created before they existed. */
export function addPassageColumns(sql: SqlStorage): void {
  const have = new Set(sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('vectors')`).toArray().map((c) => c.name));
  for (const column of ['text', 'context', 'passage']) {
    if (!have.has(column)) sql.exec(`ALTER TABLE vectors ADD COLUMN ${column} TEXT`);
  }
}

/** Where a passage sits in its document: stored as JSON beside the text. */
type Placement = Omit<IndexedPassage, 'id' | 'text' | 'context'>;

/**
 * Publishes passages whose vectors are stored: all or none (inside the caller's transaction).
 * Returns, in order, each passage's rowid and whether its indexed words (text or context)
 * changed, or the ids that have no vector.
 */
export function writePassages(sql: SqlStorage, passages: IndexedPassage[]): { rows: { rowid: number; changed: boolean }[]; missing: string[] } {
  const rows: { rowid: number; changed: boolean }[] = [];
  const missing: string[] = [];
  for (const { id, text, context, ...placement } of passages) {
    const placed: Placement = placement;
    const before = sql.exec<{ r: number; text: string | null; context: string | null }>('SELECT rowid AS r, text, context FROM vectors WHERE id = ?', id).toArray()[0];
    if (!before) {
      missing.push(id);
      continue;
    }
    sql.exec('UPDATE vectors SET text = ?, context = ?, passage = ? WHERE rowid = ?', text, context, JSON.stringify(placed), before.r);
    rows.push({ rowid: before.r, changed: before.text !== text || before.context !== context });
  }
  return { rows, missing };
}

/** Clears the passages of `ids` (inside the caller's transaction); returns the rowids that were published. */
export function unpublishPassages(sql: SqlStorage, ids: string[]): number[] {
  const rowids: number[] = [];
  for (const id of ids) {
    for (const { r } of sql.exec<{ r: number }>(
      'UPDATE vectors SET text = NULL, context = NULL, passage = NULL WHERE id = ? AND text IS NOT NULL RETURNING rowid AS r',
      id,
    )) {
      rowids.push(r);
    }
  }
  return rowids;
}

/** The keyword index over every published passage, built from SQL. */
export function buildKeywordIndex(sql: SqlStorage): KeywordIndex {
  const index = new KeywordIndex();
  for (const { r, text, context } of sql.exec<{ r: number; text: string; context: string }>(
    'SELECT rowid AS r, text, context FROM vectors WHERE text IS NOT NULL',
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
     WHERE rowid IN (SELECT value FROM json_each(?)) AND text IS NOT NULL`,
    JSON.stringify(rowids),
  )) {
    byRow.set(r, text);
  }
  return rowids.map((r) => byRow.get(r) ?? '');
}

/** The published passages among `ranked`, in its order, at most `limit`. */
export function readPassages(sql: SqlStorage, ranked: { row: number; score: number }[], limit: number): ScoredPassage[] {
  const found = new Map<number, { id: string; text: string; passage: string }>();
  for (const row of sql.exec<{ r: number; id: string; text: string; passage: string }>(
    `SELECT rowid AS r, id, text, passage FROM vectors WHERE rowid IN (SELECT value FROM json_each(?)) AND text IS NOT NULL`,
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
