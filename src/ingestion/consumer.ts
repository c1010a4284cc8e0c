import { AppError } from '../domain/errors';
import { metrics } from '../observability/metrics';
import type { Services } from '../services';
import type { DocumentRecord } from '../storage/documents';
import { type IngestOutcome, removeFromIndexes } from './indexing';
import { IngestMessage, RetireMessage, SliceMessage } from './messages';
import { ingestDocuments } from './pipeline';
import { applyR2Event, R2EventMessage } from './r2-events';
import { forgetSlices, ingestSlice, SLICE_LEASE_MS } from './slices';
import { alsoBuild, recordBuilt, retireStep } from './generations';
import { currentSettings, scopeTo } from '../retrieval/generations';

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
  const slices: { message: Message<unknown>; request: SliceMessage }[] = [];
  for (const message of batch.messages) {
    const ingest = IngestMessage.safeParse(message.body);
    const slice = ingest.success ? null : SliceMessage.safeParse(message.body);
    const retire = ingest.success || slice?.success ? null : RetireMessage.safeParse(message.body);
    const event = ingest.success || slice?.success || retire?.success ? null : R2EventMessage.safeParse(message.body);
    const kind = ingest.success ? 'ingest' : slice?.success ? 'slice' : retire?.success ? 'retire' : event?.success ? 'r2_event' : 'malformed';
    metrics.inc('rag_queue_deliveries_total', { kind });
    if (ingest.success) valid.push({ message, documentId: ingest.data.documentId, generation: ingest.data.generation });
    else if (slice?.success) slices.push({ message, request: slice.data });
    else if (retire?.success) {
      try {
        await retireStep(services, retire.data);
        message.ack();
      } catch (error) {
        console.error('ingest: removing generation', retire.data.generation, 'of', retire.data.namespace, 'failed', error);
        retry(message, retryDelaySeconds(message.attempts));
      }
    } else if (event?.success) {
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

  // Slices of large documents, one after another: each is bounded, and settles alone.
  for (const { message, request } of slices) {
    const [target] = await targetsOrRetry(services, [{ message, documentId: request.documentId, generation: request.generation }]);
    if (!target) continue;
    if (!target.scope) {
      // Its generation was retired, or its document deleted (whose slices then go too).
      if (!(await services.documents.get(request.documentId))) await forgetSlices(services, request.documentId);
      message.ack();
      continue;
    }
    let outcome: IngestOutcome;
    try {
      outcome = await ingestSlice(target.scope, request);
    } catch (error) {
      outcome = { status: 'retry', error, attempt: request.attempt };
    }
    await conclude(services, target, new Map([[request.documentId, outcome]]), { slice: true });
  }

  if (valid.length === 0) return;
  // The documents' rows, read once: which are large, and which namespace (generation) each is for.
  let documents: Map<string, DocumentRecord>;
  try {
    documents = await services.documents.getMany(valid.map((v) => v.documentId));
  } catch (error) {
    retryAll(valid, error);
    return;
  }
  if (!alone && batch.messages.length > 1) valid = await forwardLarge(valid, services, documents);

  for (const target of await targetsOrRetry(services, valid, documents)) {
    if (!target.scope) {
      for (const { message } of target.deliveries) message.ack();
      continue;
    }
    let outcomes: Map<string, IngestOutcome>;
    try {
      outcomes = await ingestDocuments(target.scope, [...new Set(target.deliveries.map((v) => v.documentId))]);
    } catch (error) {
      // The catalog itself could not be read or written: retry the whole group.
      outcomes = new Map(target.deliveries.map((v) => [v.documentId, { status: 'retry', error }]));
    }
    await conclude(services, target, outcomes);
  }
}

/**
 * Settles a target's messages by their documents' outcomes (counted in /metrics): documents
 * that became ready in a serving generation join a rebuild beside it first, and a building
 * generation records what its documents came to.
 */
async function conclude(services: Services, target: Target, outcomes: Map<string, IngestOutcome>, { slice = false } = {}): Promise<void> {
  for (const outcome of outcomes.values()) count(outcome);
  if (!target.building && target.namespace !== null) await joinBuild(services, target.namespace, outcomes);
  const scope = target.scope as Services;
  const results: Result[] = [];
  for (const { message, documentId } of target.deliveries) {
    const outcome = outcomes.get(documentId) ?? { status: 'gone' };
    results.push({ documentId, outcome, settled: await settle(scope, message, documentId, outcome, { slice }) });
  }
  await afterOutcomes(services, target, results);
}

function retryAll(deliveries: Delivery[], error: unknown): void {
  console.error('ingest: could not read the catalog for a batch', error);
  for (const { message } of deliveries) retry(message, retryDelaySeconds(message.attempts));
}

/** Deliveries for one index generation, and the services seen through it (null: nothing to do). */
interface Target {
  scope: Services | null;
  namespace: string | null;
  generation: number;
  /** A generation being built (not the serving one). */
  building: boolean;
  deliveries: Delivery[];
}

interface Result {
  documentId: string;
  outcome: IngestOutcome;
  settled: Settled;
}

/** The deliveries' targets; when the catalog cannot say (D1 failing), none, and every delivery is retried. */
async function targetsOrRetry(services: Services, deliveries: Delivery[], documents?: Map<string, DocumentRecord>): Promise<Target[]> {
  try {
    return await targets(services, deliveries, documents);
  } catch (error) {
    retryAll(deliveries, error);
    return [];
  }
}

/**
 * Groups deliveries by the index generation they are for: the one a message names (a rebuild's;
 * none when it was retired since), else the one serving the document's namespace. A namespace
 * ingested for the first time records the current settings as its generation 0's.
 */
async function targets(services: Services, deliveries: Delivery[], read?: Map<string, DocumentRecord>): Promise<Target[]> {
  const groups = new Map<string, Target>();
  const add = (key: string, target: Omit<Target, 'deliveries'>, delivery: Delivery) => {
    const group = groups.get(key) ?? { ...target, deliveries: [] };
    group.deliveries.push(delivery);
    groups.set(key, group);
  };
  const named = deliveries.filter((d) => d.generation !== undefined);
  const generations = await services.generations.named(named.map((d) => ({ documentId: d.documentId, generation: d.generation as number })));
  for (const delivery of named) {
    const generation = generations.get(`${delivery.documentId}\n${delivery.generation}`);
    if (!generation || generation.state === 'retired') add('none', { scope: null, namespace: null, generation: -1, building: false }, delivery);
    else {
      const target = { scope: scopeTo(services, generation), namespace: generation.namespace, generation: generation.generation, building: generation.state === 'building' };
      add(`${generation.namespace}\n${generation.generation}`, target, delivery);
    }
  }
  const serving = deliveries.filter((d) => d.generation === undefined);
  if (serving.length) {
    const documents = read ?? (await services.documents.getMany(serving.map((d) => d.documentId)));
    const namespaces = [...new Set([...documents.values()].map((d) => d.namespace))];
    const current = await services.generations.serving(namespaces);
    await services.generations.pin(namespaces.filter((n) => !current.has(n)), currentSettings(services));
    for (const delivery of serving) {
      const namespace = documents.get(delivery.documentId)?.namespace ?? null;
      const generation = namespace === null ? null : (current.get(namespace) ?? null);
      const target = { scope: scopeTo(services, generation), namespace, generation: generation?.generation ?? 0, building: false };
      add(`${namespace}\n${target.generation}`, target, delivery);
    }
  }
  return [...groups.values()];
}

/**
 * Documents that became ready in a namespace's serving generation are needed by a generation
 * being built beside it. Done before their messages are acknowledged: if it fails, they are
 * retried (their ingestion repeats no work), so no rebuild switches in without them.
 */
async function joinBuild(services: Services, namespace: string, outcomes: Map<string, IngestOutcome>): Promise<void> {
  const ready = [...outcomes].filter(([, outcome]) => outcome.status === 'ready').map(([id]) => ({ id, namespace }));
  if (ready.length === 0) return;
  try {
    await alsoBuild(services, ready);
  } catch (error) {
    for (const { id } of ready) outcomes.set(id, { status: 'retry', error });
  }
}

/**
 * In an index generation being built, documents done (or failed, or gone) are recorded, and the
 * last one switches it in.
 */
async function afterOutcomes(services: Services, target: Omit<Target, 'deliveries'>, results: Result[]): Promise<void> {
  if (target.namespace === null || !target.building) return;
  const namespace = target.namespace;
  try {
    for (const { documentId, outcome, settled } of results) {
      const built = outcome.status === 'ready' ? 'built' : outcome.status === 'gone' ? 'gone' : outcome.status === 'failed' || settled === 'failed' ? 'failed' : null;
      if (built) await recordBuilt(services, namespace, target.generation, documentId, built);
    }
  } catch (error) {
    // The sweeper re-sends what a building generation still waits for.
    console.error('ingest: could not record outcomes for the index generations of', namespace, error);
  }
}

function count(outcome: IngestOutcome): void {
  metrics.inc('rag_ingested_documents_total', { outcome: outcome.status });
  if (outcome.status === 'ready') {
    metrics.inc('rag_ingested_chunks_total', { how: 'embedded' }, outcome.embedded);
    metrics.inc('rag_ingested_chunks_total', { how: 'reused' }, outcome.chunkCount - outcome.embedded);
  }
}

/**
 * Acknowledges or retries one message by its document's outcome. A transient failure is
 * retried with backoff; a final one (refused, or out of attempts) fails the document, or keeps
 * its previous version if it had one. A slice's transient failure keeps its claim, so the
 * document's other slices stay done.
 */
async function settle(services: Services, message: Message<unknown>, documentId: string, outcome: IngestOutcome, { slice = false } = {}): Promise<Settled> {
  if (outcome.status === 'deferred') {
    // Another delivery holds the document: this one waits for its lease, failing nothing.
    retry(message, Math.min(outcome.retryAfterSeconds, MAX_DELAY_SECONDS));
    return 'retried';
  }
  if (outcome.status !== 'retry') {
    message.ack();
    return 'done';
  }
  const { attempt } = outcome;
  console.error('ingest: attempt', message.attempts, 'failed for', documentId, outcome.error);
  const reason = outcome.error instanceof AppError ? outcome.error.message : 'an internal error (see the Worker logs)';
  const refused = outcome.error instanceof AppError && !outcome.error.retryable;
  const final = refused || message.attempts >= MAX_ATTEMPTS;
  try {
    if (final) {
      // A claim that was taken over decides nothing: the claim holding the document does.
      if (attempt && !(await services.documents.holding(new Map([[documentId, attempt]]))).has(documentId)) {
        message.ack();
        return 'done';
      }
      // A document that was ready keeps its previous version (the failed attempt's staged
      // chunks were never activated); one that never was keeps nothing searchable.
      const kept = await services.documents.keepPreviousVersion(
        documentId,
        `Re-indexing failed (${reason}); the previous version is still searchable. Re-index it to try again.`,
        attempt,
      );
      if (!kept) {
        const document = await services.documents.get(documentId);
        if (document) await removeFromIndexes(services, document);
        await services.documents.markFailed(
          documentId,
          refused ? `Indexing failed: ${reason}` : `Indexing failed after ${message.attempts} attempts: ${reason}`,
          attempt,
        );
      }
      if (slice) await forgetSlices(services, documentId);
      if (refused) message.ack();
      else {
        metrics.inc('rag_queue_dead_lettered_total');
        message.retry(); // past max_retries: the queue moves it to the dead-letter queue
      }
      // Failed for good, even when a previous version is kept: a generation being built lacks it.
      return 'failed';
    }
    const delaySeconds = delayAfter(outcome.error, message.attempts);
    const note = `Attempt ${message.attempts} failed (${reason}); retrying in ${delaySeconds} s.`;
    if (slice && attempt) await services.slices.retrying(documentId, attempt, note, delaySeconds, SLICE_LEASE_MS);
    else await services.documents.markRetrying(documentId, note, delaySeconds, attempt);
    retry(message, delaySeconds);
    return 'retried';
  } catch (error) {
    console.error('ingest: could not record the failure of', documentId, error);
    retry(message, retryDelaySeconds(message.attempts));
    return 'retried';
  }
}

interface Delivery {
  message: Message<unknown>;
  documentId: string;
  /** The index generation the message is for; absent: the serving one. */
  generation?: number;
}

/** What settling did with a message: acked, retried, or let go after its document failed for good (or kept its previous version). */
type Settled = 'done' | 'retried' | 'failed';

/**
 * Sends the large documents of a batch to the queue for large documents and acknowledges
 * their messages here; returns the others. A document whose forwarding fails stays in this
 * batch, as without that queue.
 */
async function forwardLarge(valid: Delivery[], services: Services, documents: Map<string, DocumentRecord>): Promise<Delivery[]> {
  const { largeQueue } = services;
  if (!largeQueue) return valid;
  const kept: Delivery[] = [];
  for (const delivery of valid) {
    const size = documents.get(delivery.documentId)?.size ?? 0;
    if (size < LARGE_DOCUMENT_BYTES) {
      kept.push(delivery);
      continue;
    }
    try {
      await largeQueue.send({ type: 'ingest', documentId: delivery.documentId, ...(delivery.generation === undefined ? {} : { generation: delivery.generation }) });
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
    const ingest = IngestMessage.or(SliceMessage).safeParse(message.body);
    if (!ingest.success) {
      console.error('ingest: dead letter that is not an ingest message', message.id, JSON.stringify(message.body)?.slice(0, 500));
      message.ack();
      continue;
    }
    const document = await services.documents.get(ingest.data.documentId);
    // A slice's claim: a slice of a claim taken over since says nothing about the document.
    if (ingest.data.type === 'slice' && document && !(await services.documents.holding(new Map([[document.id, ingest.data.attempt]]))).has(document.id)) {
      message.ack();
      continue;
    }
    if (document && (document.status === 'queued' || document.status === 'processing')) {
      const reason = `Ingestion gave up after ${MAX_ATTEMPTS} attempts: ${document.error ?? 'its last attempt ended without a reason (it may have run out of memory or time)'}`;
      metrics.inc('rag_queue_dead_lettered_total');
      if (!(await services.documents.keepPreviousVersion(document.id, `${reason} The previous version is still searchable.`))) {
        await removeFromIndexes(services, document);
        await services.documents.markFailed(document.id, reason);
      }
      if (ingest.data.type === 'slice') await forgetSlices(services, document.id);
    }
    // A generation being built that waited for it goes on without it (and does not switch in).
    const { generation } = ingest.data;
    if (document && generation !== undefined) {
      const [named] = (await services.generations.named([{ documentId: document.id, generation }])).values();
      if (named?.state === 'building') await recordBuilt(services, named.namespace, generation, document.id, 'failed');
    }
    message.ack();
  }
}
