import { z } from 'zod';

/** Queue message asking for a document to be (re)ingested from its original in R2. */
export const IngestMessage = z.object({ type: z.literal('ingest'), documentId: z.string().min(1).max(64) });
export type IngestMessage = z.infer<typeof IngestMessage>;

/** Queues accept at most 100 messages per sendBatch. */
const QUEUE_BATCH = 100;

/** Enqueues the ingestion of documents, 100 messages per send. */
export async function sendIngestMessages(queue: Queue<IngestMessage>, documentIds: string[]): Promise<void> {
  const messages = documentIds.map((documentId) => ({ body: { type: 'ingest' as const, documentId } }));
  for (let i = 0; i < messages.length; i += QUEUE_BATCH) {
    await queue.sendBatch(messages.slice(i, i + QUEUE_BATCH));
  }
}
