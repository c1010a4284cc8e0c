import { AppError } from '../../domain/errors';
import type { MetadataFilter, MetadataValue } from '../../domain/types';

/** D1 binds at most 100 parameters per statement; the keyword query binds 2 of its own. */
export const MAX_FILTER_PARAMS = 98;

/**
 * Translates a metadata filter (Vectorize's syntax) into a SQL condition over
 * `d.metadata` (documents) so the keyword side filters exactly as the vector side.
 * `documentId` is a column, not metadata. Missing fields fail `$eq`/`$in` and pass
 * `$ne`/`$nin`, as in Vectorize.
 *
 * Each condition binds at most two parameters, its JSON path and its value, a `$in`/`$nin` list
 * as one JSON array read with json_each, so a filter of F fields binds at most 8·F whatever
 * its lists hold (REQUEST_LIMITS.maxFilterFields keeps that within D1's 100).
 */
export function filterToSql(filter: MetadataFilter | undefined): { sql: string; params: (string | number)[] } {
  const clauses: string[] = [];
  const params: (string | number)[] = [];
  for (const [field, condition] of Object.entries(filter ?? {})) {
    const column = field === 'documentId' ? 'c.document_id' : 'json_extract(d.metadata, ?)';
    const columnParams = field === 'documentId' ? [] : [`$."${field}"`];
    const operators = typeof condition === 'object' ? condition : { $eq: condition };
    for (const [operator, value] of Object.entries(operators)) {
      // A missing field is NULL: NULL != v and NULL NOT IN (…) are NULL, which coalesce makes true.
      if (operator === '$eq') clauses.push(`${column} = ?`);
      else if (operator === '$ne') clauses.push(`coalesce(${column} != ?, 1)`);
      else if (operator === '$in') clauses.push(`${column} IN (SELECT value FROM json_each(?))`);
      else clauses.push(`coalesce(${column} NOT IN (SELECT value FROM json_each(?)), 1)`);
      params.push(...columnParams, Array.isArray(value) ? JSON.stringify(value.map(sqlValue)) : sqlValue(value as MetadataValue));
    }
  }
  if (params.length > MAX_FILTER_PARAMS) {
    throw new AppError('bad_request', `filter: too many conditions for one query (${params.length} parameters, at most ${MAX_FILTER_PARAMS}).`);
  }
  return { sql: clauses.map((c) => ` AND ${c}`).join(''), params };
}

/** JSON booleans come out of json_extract (and json_each) as 1 and 0. */
function sqlValue(value: MetadataValue): string | number {
  return typeof value === 'boolean' ? Number(value) : value;
}
