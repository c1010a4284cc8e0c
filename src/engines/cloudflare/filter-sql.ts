import { AppError, type Filter } from '../../domain';

/** D1 binds at most 100 parameters per statement; the keyword query binds 2 of its own. */
export const MAX_FILTER_PARAMS = 98;

/**
 * A parsed filter as a SQL condition over a passage (`p`): metadata fields read from its
 * document's metadata JSON, `documentId` from its column. A value matches only a value of the
 * same JSON type (true is not 1, "1" is not 1), as in Vectorize; a missing field fails an
 * allowed list and passes an excluded one. Each condition binds its values as one JSON array
 * read with json_each, and a metadata field's JSON path twice, whatever the lists hold.
 */
export function filterToSql(filter: Filter | null): { sql: string; params: (string | number)[] } {
  const clauses: string[] = [];
  const params: (string | number)[] = [];
  if (filter?.matchesNothing) return { sql: ' AND 0', params };
  for (const { field, allowed, excluded } of filter?.conditions ?? []) {
    for (const [values, holds] of [
      [allowed, 'EXISTS'],
      [excluded.length ? excluded : undefined, 'NOT EXISTS'],
    ] as const) {
      if (!values) continue;
      if (field === 'documentId') {
        clauses.push(`${holds} (SELECT 1 FROM json_each(?) AS v WHERE v.type = 'text' AND v.value = p.document_id)`);
        params.push(JSON.stringify(values));
      } else {
        clauses.push(`${holds} (SELECT 1 FROM json_each(?) AS v WHERE v.type = json_type(p.metadata, ?) AND v.value = json_extract(p.metadata, ?))`);
        const path = `$."${field}"`;
        params.push(JSON.stringify(values), path, path);
      }
    }
  }
  if (params.length > MAX_FILTER_PARAMS) {
    throw new AppError('bad_request', `filter: too many conditions for one query (${params.length} parameters, at most ${MAX_FILTER_PARAMS}).`);
  }
  return { sql: clauses.map((c) => ` AND ${c}`).join(''), params };
}
