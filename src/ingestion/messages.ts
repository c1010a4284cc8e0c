import { z } from 'zod';
import type { IngestRequest } from '../domain';

/** Queue message asking for a document to be (re)ingested from its original in R2. */
export const IngestMessage = z.object({ type: z.literal('ingest'), documentId: z.string().min(1).max(64) });
export type IngestMessage = z.infer<typeof IngestMessage>;

/** Queue message asking for one slice of a large document to be embedded and indexed. */
export const SliceMessage = z.object({
  type: z.literal('slice'),
  documentId: z.string().min(1).max(64),
  attempt: z.string().min(1).max(64),
  slice: z.number().int().min(0),
});
export type SliceMessage = z.infer<typeof SliceMessage>;

/** Queues accept at most 100 messages per sendBatch. */
const QUEUE_BATCH = 100;

/** Enqueues the ingestion of documents, 100 messages per send. */
export async function sendIngestMessages(queue: Queue<IngestRequest>, documentIds: string[]): Promise<void> {
  const messages = documentIds.map((documentId) => ({ body: { type: 'ingest' as const, documentId } }));
  await sendAll(queue, messages);
}

/** Sends messages, 100 per call. */
export async function sendAll(queue: Queue<IngestRequest>, messages: { body: IngestRequest }[]): Promise<void> {
  for (let i = 0; i < messages.length; i += QUEUE_BATCH) {
    await queue.sendBatch(messages.slice(i, i + QUEUE_BATCH));
  }
}
