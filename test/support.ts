import { expect } from 'vitest';
import type { IngestRequest } from '../src/domain';
import { AppError } from '../src/domain/errors';

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` vectors of `dims` components in [-1, 1), the same for the same seed. */
export function randomVectors(n: number, dims: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dims }, () => r() * 2 - 1));
}

// The fakes (../fakes/) use it too, and must not import test/.
export { cosine } from '../fakes/support';

/** The AppError a promise rejects with; fails the test if it resolves or throws anything else. */
export async function caught(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => new Error('expected the call to fail'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

/** A queue that records the bodies sent to it (`send` and `sendBatch`), in `sent`, for the test to deliver. */
export function spyQueue(): { queue: Queue<IngestRequest>; sent: IngestRequest[] } {
  const sent: IngestRequest[] = [];
  const queue = {
    send: async (body: IngestRequest) => void sent.push(body),
    sendBatch: async (messages: Iterable<{ body: IngestRequest }>) => void sent.push(...[...messages].map((m) => m.body)),
  } as unknown as Queue<IngestRequest>;
  return { queue, sent };
}
