/**
 * The engine's one error family. Everything below the HTTP layer throws `AppError`;
 * the app's `onError` turns it into `{ "error": { "code", "message" } }` with `status`.
 * Anything else is an internal error: logged in full, answered as a bare 500.
 */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_json'
  | 'unauthorized'
  | 'forbidden'
  | 'quota_exceeded'
  | 'not_found'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'conflict'
  | 'rate_limited'
  | 'provider_error'
  | 'provider_timeout'
  | 'misconfigured'
  | 'unavailable'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  quota_exceeded: 403,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  conflict: 409,
  rate_limited: 429,
  provider_error: 502,
  provider_timeout: 504,
  // The operator's to fix, not the client's; 503 tells a load balancer this instance is not ready.
  misconfigured: 503,
  unavailable: 503,
  internal: 500,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Whether repeating the same work later may succeed (drives queue retries). */
  readonly retryable: boolean;
  /** When the backend said how long to wait (Retry-After), in seconds. */
  readonly retryAfterSeconds?: number;
  /** Response headers the answer needs (WWW-Authenticate, RateLimit…). */
  readonly headers?: Record<string, string>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryable?: boolean; retryAfterSeconds?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = STATUS[code];
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.headers = options.headers;
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
