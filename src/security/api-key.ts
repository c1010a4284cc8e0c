import type { Scope } from '../domain';
import { sha256Hex } from '../text/hash';

export type { Scope };

/**
 * API keys: `rag_<id>_<secret>`. The id (12 hex digits) is public: it names the key in
 * listings and routes a request to the key's rate-limiter Durable Object. The secret is 256
 * random bits. Only the SHA-256 of the whole key is stored; a plain hash suffices because
 * the key is random, not a password.
 */
export const API_KEY_PREFIX = 'rag_';
const API_KEY_PATTERN = /^rag_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

export const SCOPES: readonly Scope[] = ['read', 'write', 'admin'];

export interface NewApiKey {
  id: string;
  /** The whole key, shown to its owner once. */
  key: string;
  hash: string;
}

export async function generateApiKey(): Promise<NewApiKey> {
  const id = toHex(crypto.getRandomValues(new Uint8Array(6)));
  const secret = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const key = `${API_KEY_PREFIX}${id}_${secret}`;
  return { id, key, hash: await hashApiKey(key) };
}

/** The id inside a well-formed key, or null for anything else. */
export function apiKeyId(key: string): string | null {
  return API_KEY_PATTERN.exec(key)?.[1] ?? null;
}

export function hashApiKey(key: string): Promise<string> {
  return sha256Hex(key);
}

/** Compares two strings in time that depends on their length only, never on where they differ. */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  // Hash first: equal lengths for timingSafeEqual, and a's length reveals nothing of b.
  const [ha, hb] = await Promise.all([sha256Hex(a), sha256Hex(b)]);
  return sameHash(ha, hb);
}

/** Compares two hex hashes of equal length in constant time. */
export function sameHash(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  return ea.byteLength === eb.byteLength && crypto.subtle.timingSafeEqual(ea, eb);
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}
