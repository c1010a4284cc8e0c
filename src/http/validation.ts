import type { Context } from 'hono';
import { z } from 'zod';
import type { Config } from '../config';
import { AppError } from '../domain/errors';
import { REQUEST_LIMITS as L } from '../limits';
import type { DocumentMetadata, MetadataFilter, MetadataValue, SearchEngine } from '../domain';
import type { SearchRequest } from '../retrieval/search';
import type { Principal } from '../security/principal';
import {
  atMost,
  clip,
  fieldNameProblem,
  isObject,
  LONE_SURROGATE,
  metadataProblems,
  NOT_UNICODE,
  type Problem,
  utf8Bytes,
  valueProblem,
} from '../ingestion/metadata-rules';
import { namespaceFor } from './tenancy';

/**
 * Reads a JSON body and validates it, answering 400 with what is wrong. Only an
 * `application/json` body is read (415 otherwise): a browser sends that type cross-site only
 * after a CORS preflight, so a form on another site cannot post to the API.
 */
export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  if (!isJson(c.req.header('content-type'))) {
    throw new AppError('unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');
  }
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new AppError('invalid_json', 'The request body is not valid JSON.');
  }
  return validate(schema, body);
}

export function isJson(contentType: string | undefined): boolean {
  return /^application\/json\s*(;|$)/i.test(contentType ?? '');
}

/** Problems listed in one answer: a body with thousands of bad items gets a readable message. */
const MAX_PROBLEMS = 10;

/** Validates `value`, answering 400 with each problem as `path: what is wrong`; `label` names a lone value. */
export function validate<T extends z.ZodType>(schema: T, value: unknown, label?: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const problems = describeIssues(result.error.issues, label === undefined ? [] : [label]);
    const more = problems.length > MAX_PROBLEMS ? `; and ${problems.length - MAX_PROBLEMS} more` : '';
    throw new AppError('bad_request', problems.slice(0, MAX_PROBLEMS).join('; ') + more);
  }
  return result.data;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], base: PropertyKey[]): string[] {
  return issues.flatMap((issue) => {
    const path = [...base, ...issue.path];
    if (issue.code === 'invalid_union') {
      // The alternative the value's type matched says what is wrong; the others only "expected …".
      const near = issue.errors.filter((errors) => !errors.every((e) => e.code === 'invalid_type'));
      if (near.length === 1) return describeIssues(near[0] as z.core.$ZodIssue[], path);
    }
    return [path.length ? `${path.map((p) => clip(String(p))).join('.')}: ${issue.message}` : issue.message];
  });
}

/** C0 controls (NUL, ESC…), DEL and C1 controls. Titles turn whitespace controls into spaces first. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Bidirectional embeddings, overrides and isolates: they make a file name display as another. */
const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/;
const NO_CONTROL = 'control characters (such as NUL or ESC) are not allowed';

/**
 * A document title: one line. Line breaks, tabs and runs of spaces become one space rather than
 * an error (a title taken from a file's first line often ends in "\r\n"), and a title is a
 * label shown on one line, put into every chunk's context and into prompts as "[n] title".
 */
export const Title = z
  .string()
  .overwrite((title) => title.replace(/\s+/g, ' ').trim())
  .max(L.maxTitleChars, atMost(L.maxTitleChars))
  .refine((title) => !CONTROL.test(title), NO_CONTROL)
  .refine((title) => !LONE_SURROGATE.test(title), NOT_UNICODE);

/**
 * A file name as stored: directories stripped (`../../etc/passwd` → `passwd`, `C:\a\b.txt` →
 * `b.txt`), no control or bidi characters, at most 255 characters. Nothing is left → undefined.
 */
export const Filename = z
  .string()
  .refine((name) => !CONTROL.test(name), NO_CONTROL)
  .refine((name) => !BIDI_CONTROL.test(name), 'bidirectional control characters are not allowed')
  .refine((name) => !LONE_SURROGATE.test(name), NOT_UNICODE)
  .overwrite((name) => {
    const base = (name.split(/[/\\]/).pop() ?? '').trim();
    return base === '.' || base === '..' ? '' : base;
  })
  .max(L.maxFilenameChars, atMost(L.maxFilenameChars))
  .transform((name) => name || undefined);

export const Namespace = z
  .string()
  .regex(new RegExp(`^[A-Za-z0-9_-]{1,${L.maxNamespaceChars}}$`), `a namespace is 1-${L.maxNamespaceChars} letters, digits, _ or -`);

/** One problem in a hand-checked value; `path` is relative to the value. */

/** A schema that checks a value with `problems` and passes it through as `T`. */
function checked<T>(problems: (value: unknown) => Problem[]) {
  return z
    .unknown()
    .superRefine((value, ctx) => {
      for (const { path, message } of problems(value)) ctx.addIssue({ code: 'custom', path, message });
    })
    .transform((value) => value as T);
}


/** Filterable document metadata: it travels with every vector, ≤ 10 KiB in Vectorize. */
export const Metadata = checked<DocumentMetadata>(metadataProblems).meta({
  type: 'object',
  description: 'Up to 32 fields named with letters, digits, _ and - ("documentId" is reserved); values are strings, finite numbers or booleans; at most 10 KiB as JSON.',
  additionalProperties: { type: ['string', 'number', 'boolean'] },
});

const FILTER_OPERATORS = '$eq, $ne, $in or $nin';

/**
 * Vectorize's filter syntax: `{ field: value }` or `{ field: { $eq|$ne: v, $in|$nin: [v…] } }`,
 * fields ANDed. Checked against the limits of both engines (REQUEST_LIMITS), so a filter the
 * production index or D1 would refuse is refused offline too.
 */
export const Filter = checked<MetadataFilter>((value) => {
  if (!isObject(value)) return [{ path: [], message: 'must be an object of field conditions' }];
  const fields = Object.keys(value);
  if (fields.length > L.maxFilterFields) return [{ path: [], message: atMost(L.maxFilterFields, 'fields') }];
  const problems: Problem[] = [];
  let count = 0;
  const tooLong = (text: string) =>
    utf8Bytes(text) > L.maxFilterStringBytes ? `${atMost(L.maxFilterStringBytes, 'bytes')} of UTF-8 (Vectorize indexes a string's first 64 bytes)` : null;
  const scalar = (v: unknown, path: (string | number)[]) => {
    count++;
    const problem = valueProblem(v, tooLong);
    if (problem) problems.push({ path, message: problem });
  };
  for (const field of fields) {
    const where = clip(field);
    if (field.startsWith('$')) {
      problems.push({ path: [], message: `${JSON.stringify(where)} is not supported: fields are ANDed, each with ${FILTER_OPERATORS}` });
      continue;
    }
    const name = fieldNameProblem(field);
    if (name) problems.push({ path: [], message: name });
    const condition = value[field];
    if (!isObject(condition)) {
      scalar(condition, [where]);
      continue;
    }
    const operators = Object.keys(condition);
    if (operators.length === 0) problems.push({ path: [where], message: `needs ${FILTER_OPERATORS}` });
    for (const op of operators) {
      const arg = condition[op];
      if (op === '$eq' || op === '$ne') scalar(arg, [where, op]);
      else if (op === '$in' || op === '$nin') {
        if (!Array.isArray(arg) || arg.length === 0) problems.push({ path: [where, op], message: 'must be a non-empty list of values' });
        else if (count + arg.length > L.maxFilterValues) count += arg.length;
        else arg.forEach((v, i) => scalar(v, [where, op, i]));
      } else problems.push({ path: [where], message: `unsupported operator ${JSON.stringify(clip(op))} (use ${FILTER_OPERATORS})` });
    }
  }
  if (count > L.maxFilterValues) {
    problems.push({ path: [], message: `${atMost(L.maxFilterValues, 'values')} in all (a $eq or $ne is one, a $in or $nin one per item)` });
  }
  if (problems.length === 0) {
    // Measured as Vectorize receives it: `field: value` is sent as `field: { $eq: value }`.
    const sent = Object.fromEntries(fields.map((f) => [f, isObject(value[f]) ? value[f] : { $eq: value[f] as MetadataValue }]));
    if (utf8Bytes(JSON.stringify(sent)) > L.maxFilterBytes) {
      problems.push({ path: [], message: `${atMost(L.maxFilterBytes, 'bytes')} as JSON (Vectorize's limit)` });
    }
  }
  return problems;
}).meta({
  type: 'object',
  description:
    'Vectorize-style: `{ "field": value }` or `{ "field": { "$eq" | "$ne": value, "$in" | "$nin": [values] } }`, fields ANDed; ' +
    'fields in FILTERABLE_FIELDS and documentId; at most 10 fields, 100 values, 2 KiB.',
  additionalProperties: true,
});


/** Retrieval fields shared by /v1/query, /v1/chat and /v1/chat/completions. */
export const Retrieval = {
  // Vectorize's limit for matches without metadata; evaluations need Recall@100.
  topK: z.number().int().min(1).max(L.maxTopK, `at most ${L.maxTopK}`).optional(),
  namespace: Namespace.optional(),
  filter: Filter.optional(),
  mode: z.enum(['hybrid', 'vector', 'keyword']).default('hybrid'),
};

/** A search query. */
export const QueryText = z.string().trim().min(1).max(L.maxQueryChars, atMost(L.maxQueryChars));

/** The cap on a chat's messages together, as a refinement of a body with `messages`. */
export function chatWithinTotal<M>(chars: (message: M) => number) {
  return (body: { messages?: M[] }, ctx: z.RefinementCtx) => {
    const total = (body.messages ?? []).reduce((sum, m) => sum + chars(m), 0);
    if (total > L.maxChatChars) ctx.addIssue({ code: 'custom', path: ['messages'], message: `${atMost(L.maxChatChars)} across all messages` });
  };
}

/**
 * The search options of a request, with the configured defaults filled in, its namespace
 * checked, and its filter's fields checked against what the search engine can filter on: the
 * same 400 from both engines, where Vectorize alone would match nothing.
 */
export function retrievalOptions(
  body: { topK?: number; namespace?: string; filter?: SearchRequest['filter']; mode: SearchRequest['mode'] },
  { config, engine }: { config: Config; engine: SearchEngine },
  principal: Principal,
): Omit<SearchRequest, 'query'> {
  const filterable = new Set(['documentId', ...engine.capabilities.filterableFields]);
  const refused = Object.keys(body.filter ?? {}).filter((field) => !filterable.has(field));
  if (refused.length) {
    throw new AppError(
      'bad_request',
      `filter: cannot filter on ${refused.map((f) => JSON.stringify(f)).join(', ')}; filterable fields are ${[...filterable].join(', ')} ` +
        '(FILTERABLE_FIELDS; in production each needs a Vectorize metadata index).',
    );
  }
  return {
    topK: body.topK ?? config.DEFAULT_TOP_K,
    namespace: namespaceFor(principal, body.namespace, config),
    filter: body.filter,
    mode: body.mode,
  };
}
