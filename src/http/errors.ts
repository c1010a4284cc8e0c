import type { Context } from 'hono';
import { AppError } from '../domain/errors';

/** What an error answers: its status, its body's fields, and Retry-After when it has one. */
function describe(error: unknown, c: Context) {
  if (!(error instanceof AppError)) {
    console.error('unhandled error', c.req.method, c.req.path, error);
    return { status: 500, code: 'internal', message: 'Internal error.', headers: {} as Record<string, string> };
  }
  if (error.status >= 500) console.error(error);
  const headers: Record<string, string> = { ...error.headers };
  if (error.retryAfterSeconds !== undefined && (error.status === 429 || error.status === 503)) {
    headers['Retry-After'] = String(Math.max(1, Math.ceil(error.retryAfterSeconds)));
  }
  return { status: error.status, code: error.code, message: error.message, headers };
}

/** The engine's error shape: `{ "error": { "code", "message" } }`. */
export function engineError(error: unknown, c: Context): Response {
  const { status, code, message, headers } = describe(error, c);
  return c.json({ error: { code, message } }, status as 400, headers);
}

/** OpenAI's `type` for each status class, as its API answers (clients decide by status). */
function openAIType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'api_error';
  return 'invalid_request_error';
}

/** OpenAI's error shape, for the OpenAI-compatible routes: `{ "error": { "message", "type", "param", "code" } }`. */
export function openAIError(error: unknown, c: Context): Response {
  const { status, code, message, headers } = describe(error, c);
  return c.json({ error: { message, type: openAIType(status), param: null, code } }, status as 400, headers);
}
