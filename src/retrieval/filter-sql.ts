import type { MetadataFilter, MetadataValue } from '../providers/types';

/**
 * Translates a metadata filter (Vectorize's syntax) into a SQL condition over
 * `d.metadata` (documents) so the keyword side filters exactly as the vector side.
 * `documentId` is a column, not metadata. Missing fields fail `$eq`/`$in` and pass
 * `$ne`/`$nin`, as in Vectorize.
 */
export function filterToSql(filter: MetadataFilter | undefined): { sql: string; params: (string | number)[] } {
  const clauses: string[] = [];
  const params: (string | number)[] = [];
  for (const [field, condition] of Object.entries(filter ?? {})) {
    const column = field === 'documentId' ? 'c.document_id' : 'json_extract(d.metadata, ?)';
    const columnParams = field === 'documentId' ? [] : [`$."${field}"`];
    const operators = typeof condition === 'object' ? condition : { $eq: condition };
    for (const [operator, value] of Object.entries(operators)) {
      if (operator === '$eq' || operator === '$ne') {
        clauses.push(operator === '$eq' ? `${column} = ?` : `(${column} IS NULL OR ${column} != ?)`);
        params.push(...columnParams, ...(operator === '$ne' ? columnParams : []), sqlValue(value as MetadataValue));
      } else {
        const list = value as MetadataValue[];
        const marks = list.map(() => '?').join(', ');
        clauses.push(operator === '$in' ? `${column} IN (${marks})` : `(${column} IS NULL OR ${column} NOT IN (${marks}))`);
        params.push(...columnParams, ...(operator === '$nin' ? columnParams : []), ...list.map(sqlValue));
      }
    }
  }
  return { sql: clauses.map((c) => ` AND ${c}`).join(''), params };
}

/** JSON booleans come out of json_extract as 1 and 0. */
function sqlValue(value: MetadataValue): string | number {
  return typeof value === 'boolean' ? Number(value) : value;
}
