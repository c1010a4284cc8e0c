import { inBackground } from '../background';

/**
 * Two tiers for values that may be reused: a bounded LRU in this isolate's memory (free, but
 * per isolate and gone when it is), then the Workers Cache API (`caches.default`: shared by
 * the isolates of one data centre, a local read of a few milliseconds). The Cache API does
 * nothing on *.workers.dev and behind Cloudflare Access (custom domains only); the memory
 * tier still works there.
 */

/** Keys of the Cache API: any URL works, the cache is private to the zone. */
const CACHE_ORIGIN = 'https://cache.rag-engine.internal';

interface Entry<V> {
  value: V;
  expires: number;
  bytes: number;
}

/** Every memory tier of the isolate, so a test can start as a fresh isolate would. */
const tiers = new Set<MemoryLru<unknown>>();

/** Empties the memory tiers (what a new isolate starts with); the Cache API keeps its entries. */
export function clearMemoryTiers(): void {
  for (const tier of tiers) tier.clear();
}

/** Least recently used first out, bounded by entries and bytes; entries expire after their TTL. */
export class MemoryLru<V> {
  readonly #entries = new Map<string, Entry<V>>();
  #bytes = 0;

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {
    tiers.add(this as MemoryLru<unknown>);
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.expires <= Date.now()) {
      this.#bytes -= entry.bytes;
      return undefined;
    }
    this.#entries.set(key, entry); // most recently used last
    return entry.value;
  }

  set(key: string, value: V, bytes: number, ttlSeconds: number): void {
    const old = this.#entries.get(key);
    if (old) (this.#entries.delete(key), (this.#bytes -= old.bytes));
    if (bytes > this.maxBytes) return;
    this.#entries.set(key, { value, expires: Date.now() + ttlSeconds * 1000, bytes });
    this.#bytes += bytes;
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= entry.bytes;
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** The Cache API's entry for `path`, or undefined (also when the cache cannot be reached). */
export async function cacheApiGet(path: string): Promise<Response | undefined> {
  try {
    return await caches.default.match(`${CACHE_ORIGIN}/${path}`);
  } catch (error) {
    console.warn(JSON.stringify({ level: 'warn', msg: 'cache read failed', error: String(error) }));
    return undefined;
  }
}

/** Stores `body` under `path` for `ttlSeconds`, after the response when the invocation allows it. */
export function cacheApiPut(path: string, body: BodyInit, contentType: string, ttlSeconds: number): Promise<void> {
  const put = caches.default
    .put(`${CACHE_ORIGIN}/${path}`, new Response(body, { headers: { 'content-type': contentType, 'cache-control': `max-age=${ttlSeconds}` } }))
    .catch((error: unknown) => console.warn(JSON.stringify({ level: 'warn', msg: 'cache write failed', error: String(error) })));
  return inBackground(put);
}
