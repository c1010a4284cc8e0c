/**
 * The engine's one error family. Everything below the HTTP layer throws `AppError`;
 * the app's `onError` turns it into `{ "error": { "code", "message" } }` with `status`.
 * Anything else is an internal error: logged in full, answered as a bare 500.
 */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_json'
  | 'not_found'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'conflict'
  | 'rate_limited'
  | 'provider_error'
  | 'provider_timeout'
  | 'misconfigured'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_json: 400,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  conflict: 409,
  rate_limited: 429,
  provider_error: 502,
  provider_timeout: 504,
  misconfigured: 500,
  internal: 500,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Whether repeating the same work later may succeed (drives queue retries). */
  readonly retryable: boolean;
  /** When the backend said how long to wait (Retry-After), in seconds. */
  readonly retryAfterSeconds?: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryable?: boolean; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = STATUS[code];
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/**
 * A document that cannot be turned into text (encrypted, image-only, corrupt, empty).
 * Never retried: the reason is shown to the user as the document's `error`.
 */
export class UnreadableDocumentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnreadableDocumentError';
  }
}
