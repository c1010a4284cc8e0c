import { z } from 'zod';
import { AppError } from '../errors';
import type { IngestMessage, Services } from '../services';
import { ingestDocument } from './pipeline';

const IngestMessageSchema = z.object({ type: z.literal('ingest'), documentId: z.string().min(1).max(64) });

/**
 * Attempts before a document is given up on. Must match `max_retries` + 1 of the queue
 * consumer in wrangler.toml: on the last attempt the document is marked failed, and the
 * message then moves to the dead-letter queue.
 */
export const MAX_ATTEMPTS = 6;

/** Exponential backoff for transient failures: 10 s, 20 s, 40 s … capped at 10 minutes. */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(600, 10 * 2 ** (attempt - 1));
}

/** Handles one batch of ingestion messages, a few documents at a time. */
export async function consumeIngestBatch(batch: MessageBatch<unknown>, services: Services): Promise<void> {
  const queue = [...batch.messages];
  const worker = async () => {
    for (let message = queue.shift(); message; message = queue.shift()) await handleMessage(message, services);
  };
  await Promise.all(Array.from({ length: services.config.INGEST_CONCURRENCY }, worker));
}

async function handleMessage(message: Message<unknown>, services: Services): Promise<void> {
  const parsed = IngestMessageSchema.safeParse(message.body);
  if (!parsed.success) {
    // Retrying cannot fix a message we cannot read: log it and let it go.
    console.error('ingest: dropping malformed message', message.id, JSON.stringify(message.body)?.slice(0, 500));
    message.ack();
    return;
  }
  const { documentId } = parsed.data satisfies IngestMessage;
  try {
    const outcome = await ingestDocument(services, documentId);
    console.log('ingest:', documentId, JSON.stringify(outcome));
    message.ack();
  } catch (error) {
    console.error('ingest: attempt', message.attempts, 'failed for', documentId, error);
    const reason = error instanceof AppError ? error.message : 'an internal error (see the Worker logs)';
    if (error instanceof AppError && !error.retryable) {
      await services.documents.markFailed(documentId, `Indexing failed: ${reason}`);
      message.ack();
    } else if (message.attempts >= MAX_ATTEMPTS) {
      await services.documents.markFailed(documentId, `Indexing failed after ${message.attempts} attempts: ${reason}`);
      message.retry(); // past max_retries: the queue moves it to the dead-letter queue
    } else {
      const delaySeconds = retryDelaySeconds(message.attempts);
      await services.documents.markRetrying(documentId, `Attempt ${message.attempts} failed (${reason}); retrying in ${delaySeconds} s.`);
      message.retry({ delaySeconds });
    }
  }
}
