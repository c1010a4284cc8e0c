import { REQUEST_LIMITS as L } from '../limits';

/**
 * The rules every name and value a client sends obeys, checked at the API (http/validation.ts)
 * and on what arrives through the bucket (an R2 object's custom metadata, r2-events.ts), so
 * both refuse the same things with the same words.
 */

/** A problem and where: a path into the value (empty: the value itself). */
export interface Problem {
  path: (string | number)[];
  message: string;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A client's text quoted in a message, cut so the answer stays small. */
export const clip = (text: string, max = 64) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
export const utf8Bytes = (text: string) => new TextEncoder().encode(text).length;
/** How every cap reads in an answer: "title: at most 512 characters". */
export const atMost = (n: number, what = 'characters') => `at most ${n} ${what}`;

/** Half a UTF-16 surrogate pair: not text, and D1 stores it as "\ufffd\ufffd\ufffd". */
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
export const NOT_UNICODE = 'not well-formed Unicode (a lone surrogate)';

/**
 * What is wrong with a metadata key or filter field, or null. Vectorize refuses keys that are
 * empty, contain "." or '"' or start with "$", so the engine allows only letters, digits, _ and -
 * in both engines. `__proto__` is refused: zod drops it silently (a filter on it would match all).
 */
export function fieldNameProblem(name: string): string | null {
  const quoted = JSON.stringify(clip(name));
  if (name.length > L.maxFieldNameChars) return `field name ${quoted}: ${atMost(L.maxFieldNameChars)}`;
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) {
    return `field name ${quoted}: letters, digits, _ and - only, starting with a letter or _ ("." and "$" are not allowed)`;
  }
  if (name === '__proto__') return `field name ${quoted} is not allowed`;
  return null;
}

/**
 * What is wrong with a metadata or filter value, or null: a string (within `tooLong`'s size
 * and well-formed), a finite number or a boolean.
 */
export function valueProblem(value: unknown, tooLong: (text: string) => string | null): string | null {
  if (typeof value === 'string') return tooLong(value) ?? (LONE_SURROGATE.test(value) ? NOT_UNICODE : null);
  return typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)) ? null : 'must be a string, a finite number or a boolean';
}

/**
 * What is wrong with document metadata (from the API, or an R2 object's custom metadata):
 * at most `maxMetadataFields` fields of allowed names (`documentId` is reserved), scalar
 * values, ≤ `maxMetadataBytes` as JSON (Vectorize keeps 10 KiB per vector). Empty when fine.
 */
export function metadataProblems(value: unknown): Problem[] {
  if (!isObject(value)) return [{ path: [], message: 'must be an object of "field": string, number or boolean' }];
  const keys = Object.keys(value);
  if (keys.length > L.maxMetadataFields) return [{ path: [], message: atMost(L.maxMetadataFields, 'fields') }];
  const problems: Problem[] = [];
  for (const key of keys) {
    const name = fieldNameProblem(key);
    if (name) problems.push({ path: [], message: name });
    else if (key === 'documentId') problems.push({ path: [], message: '"documentId" is reserved' });
    const problem = valueProblem(value[key], (text) => (text.length > L.maxMetadataValueChars ? atMost(L.maxMetadataValueChars) : null));
    if (problem) problems.push({ path: [clip(key)], message: problem });
  }
  if (problems.length === 0 && utf8Bytes(JSON.stringify(value)) > L.maxMetadataBytes) {
    problems.push({ path: [], message: `${atMost(L.maxMetadataBytes, 'bytes')} as JSON (Vectorize keeps 10 KiB per vector)` });
  }
  return problems;
}

