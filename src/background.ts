import { waitUntil } from 'cloudflare:workers';

/**
 * Runs `promise` past the response (the invocation's waitUntil), so work that need not hold
 * up the answer does not; awaited when there is no invocation to extend.
 */
export function inBackground(promise: Promise<unknown>): Promise<void> {
  const settled = promise.then(() => undefined);
  try {
    waitUntil(settled);
    return Promise.resolve();
  } catch {
    return settled;
  }
}
