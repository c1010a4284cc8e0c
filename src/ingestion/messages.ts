import { z } from 'zod';
import type { IngestRequest } from '../domain';

/** An index generation a message is for; absent: the one serving the document's namespace. */
const Generation = z.number().int().min(0).optional();

/** Queue message asking for a document to be (re)ingested from its original in R2. */
export const IngestMessage = z.object({ type: z.literal('ingest'), documentId: z.string().min(1).max(64), generation: Generation });
export type IngestMessage = z.infer<typeof IngestMessage>;

/** Queue message asking for one slice of a large document to be embedded and indexed. */
export const SliceMessage = z.object({
  type: z.literal('slice'),
  documentId: z.string().min(1).max(64),
  attempt: z.string().min(1).max(64),
  slice: z.number().int().min(0),
  generation: Generation,
});
export type SliceMessage = z.infer<typeof SliceMessage>;

/** Queue message asking for a retired index generation's data to be removed, a page at a time. */
export const RetireMessage = z.object({ type: z.literal('retire'), namespace: z.string().min(1).max(64), generation: z.number().int().min(0) });
export type RetireMessage = z.infer<typeof RetireMessage>;

/** Queues accept at most 100 messages per sendBatch. */
const QUEUE_BATCH = 100;

/** Enqueues the ingestion of documents (into an index generation being built), 100 messages per send. */
export async function sendIngestMessages(queue: Queue<IngestRequest>, documentIds: string[], generation?: number): Promise<void> {
  const messages = documentIds.map((documentId) => ({ body: { type: 'ingest' as const, documentId, ...(generation === undefined ? {} : { generation }) } }));
  await sendAll(queue, messages);
}

/** Sends messages, 100 per call. */
export async function sendAll(queue: Queue<IngestRequest>, messages: { body: IngestRequest }[]): Promise<void> {
  for (let i = 0; i < messages.length; i += QUEUE_BATCH) {
    await queue.sendBatch(messages.slice(i, i + QUEUE_BATCH));
  }
}
