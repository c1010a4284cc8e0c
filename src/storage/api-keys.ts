import type { Scope } from '../domain';

/** An API key as the catalog holds it: everything but the key itself, which is never stored. */
export interface ApiKeyRecord {
  id: string;
  name: string | null;
  /** Hex SHA-256 of the whole key. */
  hash: string;
  scopes: Scope[];
  /** The namespaces the key may touch; null for all. */
  namespaces: string[] | null;
  /** Per-key overrides of RATE_LIMIT_PER_MINUTE and RATE_LIMIT_BURST. */
  rateLimit: { perMinute?: number; burst?: number } | null;
  expiresAt: string | null;
  createdAt: string;
  revokedAt: string | null;
}

interface ApiKeyRow {
  id: string;
  name: string | null;
  hash: string;
  scopes: string;
  namespaces: string | null;
  rate_per_minute: number | null;
  rate_burst: number | null;
  expires_at: string | null;
  created_at: string;
  revoked_at: string | null;
}

function fromRow(row: ApiKeyRow): ApiKeyRecord {
  const rateLimit = {
    ...(row.rate_per_minute !== null && { perMinute: row.rate_per_minute }),
    ...(row.rate_burst !== null && { burst: row.rate_burst }),
  };
  return {
    id: row.id,
    name: row.name,
    hash: row.hash,
    scopes: JSON.parse(row.scopes) as Scope[],
    namespaces: row.namespaces === null ? null : (JSON.parse(row.namespaces) as string[]),
    rateLimit: Object.keys(rateLimit).length ? rateLimit : null,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

/** The API key catalog in D1. */
export class ApiKeyStore {
  readonly #db: D1Database;

  constructor(db: D1Database) {
    this.#db = db;
  }

  async create(key: ApiKeyRecord): Promise<void> {
    await this.#db
      .prepare(
        `INSERT INTO api_keys (id, name, hash, scopes, namespaces, rate_per_minute, rate_burst, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(
        key.id,
        key.name,
        key.hash,
        JSON.stringify(key.scopes),
        key.namespaces ? JSON.stringify(key.namespaces) : null,
        key.rateLimit?.perMinute ?? null,
        key.rateLimit?.burst ?? null,
        key.expiresAt,
        key.createdAt,
      )
      .run();
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const row = await this.#db.prepare('SELECT * FROM api_keys WHERE id = ?').bind(id).first<ApiKeyRow>();
    return row ? fromRow(row) : null;
  }

  /** Newest first. */
  async list(options: { includeRevoked: boolean }): Promise<ApiKeyRecord[]> {
    const where = options.includeRevoked ? '' : 'WHERE revoked_at IS NULL';
    const { results } = await this.#db.prepare(`SELECT * FROM api_keys ${where} ORDER BY created_at DESC, id`).all<ApiKeyRow>();
    return results.map(fromRow);
  }

  /** Marks a key revoked; false when there is no such key. Revoking twice keeps the first time. */
  async revoke(id: string, at: string): Promise<boolean> {
    const result = await this.#db
      .prepare('UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?')
      .bind(at, id)
      .run();
    return result.meta.changes > 0;
  }

  /** Whether any key that still works exists (auth with no admin secret and none is misconfigured). */
  async anyUsable(now: string): Promise<boolean> {
    const row = await this.#db
      .prepare('SELECT 1 AS found FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) LIMIT 1')
      .bind(now)
      .first<{ found: number }>();
    return row !== null;
  }
}
