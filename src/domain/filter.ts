import { AppError } from './errors';
import type { MetadataValue } from './documents';

/**
 * A metadata filter as clients send it (Vectorize's syntax): `{ field: value }` means `$eq`;
 * operators `$eq`, `$ne`, `$in`, `$nin`; all fields must hold (no OR). `documentId` filters on
 * the document.
 */
export type MetadataFilter = Record<
  string,
  MetadataValue | { $eq?: MetadataValue; $ne?: MetadataValue; $in?: MetadataValue[]; $nin?: MetadataValue[] }
>;

/**
 * A filter parsed once into the one form every engine compiles: per field, the values allowed
 * (the intersection of its `$eq`/`$in`; absent: any) and the values excluded (the union of its
 * `$ne`/`$nin`). A missing field fails `allowed` and passes `excluded`, as in Vectorize.
 */
export interface FieldCondition {
  field: string;
  allowed?: MetadataValue[];
  excluded: MetadataValue[];
}

/** Conditions ANDed; `matchesNothing` when some field allows no value (e.g. `$eq: 1, $ne: 1`). */
export interface Filter {
  conditions: FieldCondition[];
  matchesNothing: boolean;
}

const bad = (message: string) => new AppError('bad_request', `filter: ${message}`);
const isScalar = (v: unknown): v is MetadataValue =>
  typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

/**
 * Parses a client's filter (already checked for size and syntax at the API) into conditions;
 * null for no filter or one without conditions. Throws a bad_request for anything malformed,
 * so an engine never sees a condition it cannot compile.
 */
export function parseFilter(filter: MetadataFilter | undefined | null): Filter | null {
  if (filter === undefined || filter === null) return null;
  if (typeof filter !== 'object' || Array.isArray(filter)) throw bad('must be an object of field conditions');
  const conditions: FieldCondition[] = [];
  let matchesNothing = false;
  for (const [field, condition] of Object.entries(filter)) {
    if (field.startsWith('$')) throw bad(`unsupported operator ${field} (no OR; fields are ANDed; use $eq, $ne, $in, $nin)`);
    if (field === '' || field.includes('.') || field.includes('"')) throw bad(`invalid field "${field}"`);
    const operators: [string, unknown][] =
      typeof condition === 'object' && condition !== null && !Array.isArray(condition) ? Object.entries(condition) : [['$eq', condition]];
    let allowed: MetadataValue[] | undefined;
    const excluded: MetadataValue[] = [];
    for (const [op, arg] of operators) {
      const list = op === '$in' || op === '$nin';
      if (list && !Array.isArray(arg)) throw bad(`${op} on "${field}" needs a list of values`);
      const values = (list ? (arg as unknown[]) : [arg]).map((v) => {
        if (!isScalar(v)) throw bad(`values for "${field}" must be strings, finite numbers or booleans`);
        return v;
      });
      if (op === '$eq' || op === '$in') {
        allowed = allowed ? allowed.filter((v) => values.includes(v)) : [...new Set(values)];
      } else if (op === '$ne' || op === '$nin') {
        for (const v of values) if (!excluded.includes(v)) excluded.push(v);
      } else {
        throw bad(`unsupported operator ${op} on "${field}" (use $eq, $ne, $in, $nin)`);
      }
    }
    if (allowed) {
      allowed = allowed.filter((v) => !excluded.includes(v));
      if (allowed.length === 0) matchesNothing = true;
      conditions.push({ field, allowed, excluded: [] });
    } else if (excluded.length) conditions.push({ field, excluded });
  }
  return conditions.length || matchesNothing ? { conditions, matchesNothing } : null;
}

/** Whether metadata (with its document's id as `documentId`) meets every condition. */
export function matchesFilter(filter: Filter, metadata: Record<string, unknown>): boolean {
  if (filter.matchesNothing) return false;
  return filter.conditions.every(({ field, allowed, excluded }) => {
    const value = Object.hasOwn(metadata, field) ? metadata[field] : undefined;
    if (allowed) return allowed.some((v) => v === value);
    return !excluded.some((v) => v === value);
  });
}
