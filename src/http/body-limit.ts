import { bodyLimit } from 'hono/body-limit';
import { AppError } from '../domain/errors';

/** Bodies of the JSON endpoints (queries, chats, keys); uploads have their own, larger limit. */
export const JSON_BODY_LIMIT = 1024 * 1024;

/**
 * Refuses a body over `maxSize` bytes with 413: from its Content-Length, or while a
 * chunked body streams in, so an oversized upload is never buffered whole.
 */
export function limitBody(maxSize: number) {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new AppError('payload_too_large', `The request body exceeds ${maxSize} bytes.`);
    },
  });
}
