import { currentSettings, scopeTo } from '../retrieval/generations';
import type { Services } from '../services';
import type { DocumentRecord } from '../storage/documents';
import { removeFromIndexes } from './indexing';
import { type RetireMessage, sendIngestMessages } from './messages';
import { forgetSlices } from './slices';

/**
 * Building index generations (see retrieval/generations.ts): a rebuild queues every document of
 * a namespace for the new generation; each outcome is recorded; when none is left to build (and
 * none failed) the new generation serves and the old one is retired, its data removed a page
 * at a time through the queue.
 */

/** Documents of a retired generation removed per queue message. */
const RETIRE_PAGE = 100;

/** Starts building a new generation of a namespace with the current settings; returns it and the documents queued. */
export async function startRebuild(services: Services, namespace: string): Promise<{ generation: number; queued: number }> {
  const settings = currentSettings(services);
  // A namespace never ingested since generations exist serves generation 0, with the settings it was built with.
  await services.generations.pin([namespace], settings);
  const { generation, documents, replaced } = await services.generations.startBuild(namespace, settings);
  if (replaced !== null) await services.queue.send({ type: 'retire', namespace, generation: replaced });
  await sendIngestMessages(services.queue, documents, generation);
  if (documents.length === 0) await switchWhenBuilt(services, namespace, generation);
  services.log.info('generations: building', { namespace, generation, documents: documents.length });
  return { generation, queued: documents.length };
}

/**
 * Records a document's outcome in the generation being built; the last one switches it in, at
 * once with an engine whose writes are visible at once. With one that applies them later
 * (Vectorize), the sweeper switches it in once they are (writeDelayMs after the last document),
 * so that the new generation never answers with vectors still missing.
 */
export async function recordBuilt(services: Services, namespace: string, generation: number, documentId: string, outcome: 'built' | 'failed' | 'gone'): Promise<void> {
  const pending = await services.generations.record(namespace, generation, documentId, outcome);
  if (pending === 0 && services.engine.limits.writeDelayMs === 0) await switchWhenBuilt(services, namespace, generation);
}

/** Makes a fully built generation the serving one, and queues the removal of the one before. */
export async function switchWhenBuilt(services: Services, namespace: string, generation: number): Promise<void> {
  const switched = await services.generations.switchTo(namespace, generation);
  if (!switched) return;
  services.log.info('generations: serving', { namespace, generation, retired: switched.retired });
  if (switched.retired !== null) await services.queue.send({ type: 'retire', namespace, generation: switched.retired });
}

/**
 * After documents became ready in the serving generation (new, or changed): a generation being
 * built beside it needs them too.
 */
export async function alsoBuild(services: Services, documents: Pick<DocumentRecord, 'id' | 'namespace'>[]): Promise<void> {
  const byNamespace = new Map<string, string[]>();
  for (const d of documents) byNamespace.set(d.namespace, [...(byNamespace.get(d.namespace) ?? []), d.id]);
  for (const [namespace, ids] of byNamespace) {
    const building = await services.generations.building(namespace);
    if (!building) continue;
    await services.generations.need(namespace, building.generation, ids);
    await sendIngestMessages(services.queue, ids, building.generation);
  }
}

/** Removes a deleted document from every generation of its namespace that holds data. */
export async function removeEverywhere(services: Services, document: Pick<DocumentRecord, 'id' | 'namespace'>): Promise<void> {
  const generations = await services.generations.holdingData(document.namespace);
  if (generations.length === 0) return removeFromIndexes(services, document);
  for (const generation of generations) await removeFromIndexes(scopeTo(services, generation), document);
}

/**
 * Deletes a document from every index generation, then from the catalog, then its slices if it
 * was being ingested: what the API's DELETE and an R2 delete event do (the original is the
 * caller's). Index entries first: a failure part-way leaves a document still listed, which can
 * be deleted again, never an orphan.
 */
export async function deleteDocument(services: Services, document: Pick<DocumentRecord, 'id' | 'namespace' | 'status'>): Promise<void> {
  await removeEverywhere(services, document);
  await services.documents.delete(document.id);
  // A document being ingested may have slices in R2 (a slice still queued would remove them too).
  if (document.status === 'processing') await forgetSlices(services, document.id);
}

/** Removes a page of a retired generation's documents; queues the next page, or forgets the generation after the last. */
export async function retireStep(services: Services, { namespace, generation }: RetireMessage): Promise<void> {
  const scope = scopeTo(services, { namespace, generation, settings: currentSettings(services) });
  const ids = await scope.chunks.documentsIn(namespace, RETIRE_PAGE);
  for (const id of ids) await removeFromIndexes(scope, { id, namespace });
  if (ids.length === RETIRE_PAGE) await services.queue.send({ type: 'retire', namespace, generation });
  else {
    await services.generations.drop(namespace, generation);
    services.log.info('generations: removed', { namespace, generation });
  }
}
