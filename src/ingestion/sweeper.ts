import type { Services } from '../services';
import { switchWhenBuilt } from './generations';
import { sendIngestMessages } from './messages';

/** How overdue a queued message must be before it is re-sent. */
const OVERDUE_AFTER_MS = 60_000;
/** Documents re-queued per sweep: the next sweep takes the rest. */
const PER_SWEEP = 1_000;

/**
 * Re-queues the documents nobody is working on: queued with their message overdue (a send that
 * failed, a restart that dropped the local queue), or processing under a lease that ran out (an
 * invocation that died). A duplicate message is harmless: claims have leases, ingestion is
 * idempotent. Returns the documents re-queued.
 */
export async function sweepOverdue(services: Services): Promise<string[]> {
  const ids = await services.documents.overdue(OVERDUE_AFTER_MS, PER_SWEEP);
  if (ids.length) {
    services.log.warn('sweeper: re-queuing documents nothing is working on', { count: ids.length });
    await sendIngestMessages(services.queue, ids);
  }
  return ids;
}

/** How long a building generation waits for a document before its message is re-sent. */
const BUILD_OVERDUE_AFTER_MS = 5 * 60_000;

/**
 * Keeps index generations moving: re-sends the messages of documents a building generation has
 * waited too long for (lost in a restart), switches in a generation that needs nothing more
 * once its vectors are applied (or its last documents were deleted), and re-sends the removal
 * of retired ones (idempotent).
 */
export async function sweepGenerations(services: Services): Promise<void> {
  const overdue = await services.generations.overdue(BUILD_OVERDUE_AFTER_MS, PER_SWEEP);
  const byGeneration = new Map<number, string[]>();
  for (const { generation, documentId } of overdue) byGeneration.set(generation, [...(byGeneration.get(generation) ?? []), documentId]);
  for (const [generation, ids] of byGeneration) await sendIngestMessages(services.queue, ids, generation);
  for (const { namespace, generation } of await services.generations.complete(services.engine.limits.writeDelayMs)) {
    await switchWhenBuilt(services, namespace, generation);
  }
  for (const { namespace, generation } of await services.generations.retired()) await services.queue.send({ type: 'retire', namespace, generation });
}
