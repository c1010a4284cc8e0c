import type { Config } from '../config';
import { AppError, UnreadableDocumentError } from '../domain/errors';
import type { ChunkStore } from '../storage/chunks';
import type { DocumentStore } from '../storage/documents';

/**
 * Refuses an upload that would take a namespace over QUOTA_DOCUMENTS or QUOTA_BYTES, or into a
 * namespace already at QUOTA_PASSAGES, before anything of it is stored. Two uploads racing
 * each other can both pass: the quotas bound a tenant's share, they are not exact counters.
 */
export async function checkUploadQuotas(
  stores: { config: Config; documents: DocumentStore; chunks: ChunkStore },
  namespace: string,
  added: { documents: number; bytes: number },
): Promise<void> {
  const { QUOTA_DOCUMENTS, QUOTA_BYTES, QUOTA_PASSAGES } = stores.config;
  if (!QUOTA_DOCUMENTS && !QUOTA_BYTES && !QUOTA_PASSAGES) return;
  if (added.documents === 0) return;
  const usage = await stores.documents.usage(namespace);
  if (QUOTA_DOCUMENTS && usage.documents + added.documents > QUOTA_DOCUMENTS) {
    throw over(`holds ${usage.documents} of its ${QUOTA_DOCUMENTS} documents (QUOTA_DOCUMENTS); this upload adds ${added.documents}`, namespace);
  }
  if (QUOTA_BYTES && usage.bytes + added.bytes > QUOTA_BYTES) {
    throw over(`holds ${usage.bytes} of its ${QUOTA_BYTES} bytes (QUOTA_BYTES); this upload adds ${added.bytes}`, namespace);
  }
  if (QUOTA_PASSAGES) {
    const passages = await stores.chunks.countServing(namespace);
    if (passages >= QUOTA_PASSAGES) throw over(`holds ${passages} passages, its quota (QUOTA_PASSAGES)`, namespace);
  }
}

function over(what: string, namespace: string): AppError {
  return new AppError('quota_exceeded', `Namespace "${namespace}" ${what}: delete documents, or ask the operator to raise the quota.`);
}

/**
 * QUOTA_PASSAGES at ingestion, when a document's passage count is known: counts each
 * namespace once per batch, then keeps a running total of what the batch adds.
 */
export class PassageBudget {
  readonly #quota: number;
  readonly #chunks: ChunkStore;
  readonly #used = new Map<string, Promise<number>>();

  constructor(quota: number, chunks: ChunkStore) {
    this.#quota = quota;
    this.#chunks = chunks;
  }

  /**
   * Reserves room for a document of `passages` that held `before` (a re-ingest replaces
   * them); throws an error that fails the document with its reason otherwise.
   */
  async reserve(namespace: string, passages: number, before: number): Promise<void> {
    if (!this.#quota) return;
    // Documents are prepared concurrently: each reservation chains on the previous one.
    let verdict = { used: 0, admitted: true };
    const previous = this.#used.get(namespace) ?? this.#chunks.count(namespace);
    const next = previous.then((used) => {
      const after = used - before + passages;
      verdict = { used, admitted: after <= this.#quota };
      return verdict.admitted ? after : used;
    });
    this.#used.set(namespace, next);
    await next;
    if (!verdict.admitted) {
      throw new UnreadableDocumentError(
        `Namespace "${namespace}" holds ${verdict.used} passages and this document adds ${passages - before}, over its quota of ${this.#quota} (QUOTA_PASSAGES): delete documents or ask the operator to raise it.`,
      );
    }
  }
}
