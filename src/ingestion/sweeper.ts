import type { Services } from '../services';
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
