import { AppError } from '../domain/errors';
import { metrics } from '../observability/metrics';
import type { Services } from '../services';
import { IngestMessage } from './messages';
import { ingestDocuments, removeFromIndexes } from './pipeline';
import { applyR2Event, R2EventMessage } from './r2-events';

/**
 * Attempts before a document is given up on. Must match `max_retries` + 1 of the queue
 * consumer in wrangler.toml: on the last attempt the document is marked failed, and the
 * message then moves to the dead-letter queue.
 */
export const MAX_ATTEMPTS = 6;

/** The longest delay a queue message can be retried with (Cloudflare Queues: 12 hours). */
export const MAX_DELAY_SECONDS = 12 * 60 * 60;

/**
 * Backoff for transient failures after attempt n: 15 s × 4^(n−1), at most an hour — 15 s,
 * 1 min, 4 min, 16 min, 1 h. The five retries span 81 minutes, so a provider down for an hour
 * does not use up a document's attempts.
 */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(3600, 15 * 4 ** (attempt - 1));
}

/** The backoff, or longer when the provider said how long to wait (Retry-After), up to the queue's limit. */
export function delayAfter(error: unknown, attempt: number): number {
  const asked = error instanceof AppError && error.retryAfterSeconds !== undefined ? Math.ceil(error.retryAfterSeconds) : 0;
  return Math.min(MAX_DELAY_SECONDS, Math.max(retryDelaySeconds(attempt), asked));
}

/**
 * Originals at least this large are ingested alone: a batch forwards them to the queue for
 * large documents, whose consumer takes one message per invocation, so a document that needs
 * an invocation's whole memory or time never takes a batch of others down with it.
 */
export const LARGE_DOCUMENT_BYTES = 4 * 1024 * 1024;

/**
 * Handles one batch of the ingestion queue: the engine's own ingest messages and R2 event
 * notifications for objects put straight into the bucket. The documents are ingested together,
 * but for large ones, which go to the queue for large documents (unless `alone`: this batch
 * is from it).
 */
export async function consumeIngestBatch(batch: MessageBatch<unknown>, services: Services, { alone = false } = {}): Promise<void> {
  let valid: Delivery[] = [];
  for (const message of batch.messages) {
    const ingest = IngestMessage.safeParse(message.body);
    const event = ingest.success ? null : R2EventMessage.safeParse(message.body);
    metrics.inc('rag_queue_deliveries_total', { kind: ingest.success ? 'ingest' : event?.success ? 'r2_event' : 'malformed' });
    if (ingest.success) valid.push({ message, documentId: ingest.data.documentId });
    else if (event?.success) {
      try {
        const documentId = await applyR2Event(services, event.data);
        if (documentId) valid.push({ message, documentId });
        else message.ack();
      } catch (error) {
        console.error('ingest: R2 event for', event.data.object.key, 'failed', error);
        retry(message, retryDelaySeconds(message.attempts));
      }
    } else {
      // Retrying cannot fix a message we cannot read: log it and let it go.
      console.error('ingest: dropping malformed message', message.id, JSON.stringify(message.body)?.slice(0, 500));
      message.ack();
    }
  }
  if (!alone && batch.messages.length > 1) valid = await forwardLarge(valid, services);
  if (valid.length === 0) return;

  let outcomes: Awaited<ReturnType<typeof ingestDocuments>>;
  try {
    outcomes = await ingestDocuments(services, [...new Set(valid.map((v) => v.documentId))]);
  } catch (error) {
    // The catalog itself could not be read or written: retry the whole batch.
    outcomes = new Map(valid.map((v) => [v.documentId, { status: 'retry', error }]));
  }

  for (const outcome of outcomes.values()) {
    metrics.inc('rag_ingested_documents_total', { outcome: outcome.status });
    if (outcome.status === 'ready') {
      metrics.inc('rag_ingested_chunks_total', { how: 'embedded' }, outcome.embedded);
      metrics.inc('rag_ingested_chunks_total', { how: 'reused' }, outcome.chunkCount - outcome.embedded);
    }
  }
  for (const { message, documentId } of valid) {
    const outcome = outcomes.get(documentId);
    if (outcome?.status === 'deferred') {
      // Another delivery holds the document: this one waits for its lease, failing nothing.
      retry(message, Math.min(outcome.retryAfterSeconds, MAX_DELAY_SECONDS));
      continue;
    }
    if (outcome?.status !== 'retry') {
      message.ack();
      continue;
    }
    const { attempt } = outcome;
    console.error('ingest: attempt', message.attempts, 'failed for', documentId, outcome.error);
    const reason = outcome.error instanceof AppError ? outcome.error.message : 'an internal error (see the Worker logs)';
    const final = (outcome.error instanceof AppError && !outcome.error.retryable) || message.attempts >= MAX_ATTEMPTS;
    try {
      if (final) {
        // A document that was ready keeps its previous version (the failed attempt's staged
        // chunks were never activated); one that never was keeps nothing searchable.
        const kept = await services.documents.keepPreviousVersion(
          documentId,
          `Re-indexing failed (${reason}); the previous version is still searchable. Re-index it to try again.`,
          attempt,
        );
        if (kept) {
          if (message.attempts >= MAX_ATTEMPTS && !(outcome.error instanceof AppError && !outcome.error.retryable)) {
            metrics.inc('rag_queue_dead_lettered_total');
            message.retry();
          } else message.ack();
          continue;
        }
        const document = await services.documents.get(documentId);
        if (document) await removeFromIndexes(services, document);
      }
      if (outcome.error instanceof AppError && !outcome.error.retryable) {
        await services.documents.markFailed(documentId, `Indexing failed: ${reason}`, attempt);
        message.ack();
      } else if (message.attempts >= MAX_ATTEMPTS) {
        await services.documents.markFailed(documentId, `Indexing failed after ${message.attempts} attempts: ${reason}`, attempt);
        metrics.inc('rag_queue_dead_lettered_total');
        message.retry(); // past max_retries: the queue moves it to the dead-letter queue
      } else {
        const delaySeconds = delayAfter(outcome.error, message.attempts);
        await services.documents.markRetrying(documentId, `Attempt ${message.attempts} failed (${reason}); retrying in ${delaySeconds} s.`, delaySeconds, attempt);
        retry(message, delaySeconds);
      }
    } catch (error) {
      console.error('ingest: could not record the failure of', documentId, error);
      retry(message, retryDelaySeconds(message.attempts));
    }
  }
}

interface Delivery {
  message: Message<unknown>;
  documentId: string;
}

/**
 * Sends the large documents of a batch to the queue for large documents and acknowledges
 * their messages here; returns the others. A document whose forwarding fails stays in this
 * batch, as without that queue.
 */
async function forwardLarge(valid: Delivery[], services: Services): Promise<Delivery[]> {
  const { largeQueue } = services;
  if (!largeQueue) return valid;
  const documents = await services.documents.getMany(valid.map((v) => v.documentId));
  const kept: Delivery[] = [];
  for (const delivery of valid) {
    const size = documents.get(delivery.documentId)?.size ?? 0;
    if (size < LARGE_DOCUMENT_BYTES) {
      kept.push(delivery);
      continue;
    }
    try {
      await largeQueue.send({ type: 'ingest', documentId: delivery.documentId });
      metrics.inc('rag_queue_deliveries_total', { kind: 'forwarded_large' });
      delivery.message.ack();
    } catch (error) {
      console.error('ingest: could not forward large document', delivery.documentId, error);
      kept.push(delivery);
    }
  }
  return kept;
}

function retry(message: Message<unknown>, delaySeconds: number): void {
  metrics.inc('rag_queue_retries_total');
  message.retry({ delaySeconds });
}

/**
 * Handles the dead-letter queue: messages whose document ran out of attempts. The last attempt
 * usually marked it already; when its invocation died instead (out of memory or time), the
 * document is still queued or processing, and is marked here with its last reason: failed, or,
 * if it was ready before, ready on its previous version with the note.
 */
export async function consumeDeadLetters(batch: MessageBatch<unknown>, services: Services): Promise<void> {
  for (const message of batch.messages) {
    const ingest = IngestMessage.safeParse(message.body);
    if (!ingest.success) {
      console.error('ingest: dead letter that is not an ingest message', message.id, JSON.stringify(message.body)?.slice(0, 500));
      message.ack();
      continue;
    }
    const document = await services.documents.get(ingest.data.documentId);
    if (document && (document.status === 'queued' || document.status === 'processing')) {
      const reason = `Ingestion gave up after ${MAX_ATTEMPTS} attempts: ${document.error ?? 'its last attempt ended without a reason (it may have run out of memory or time)'}`;
      metrics.inc('rag_queue_dead_lettered_total');
      if (!(await services.documents.keepPreviousVersion(document.id, `${reason} The previous version is still searchable.`))) {
        await removeFromIndexes(services, document);
        await services.documents.markFailed(document.id, reason);
      }
    }
    message.ack();
  }
}
