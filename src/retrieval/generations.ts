import type { IndexSettings } from '../domain';
import { atGeneration } from '../engines/generation-engine';
import type { Services } from '../services';
import type { Generation } from '../storage/generations';

/**
 * Index generations. A namespace's index is built with settings (embedding model and
 * dimensions, chunk size and overlap). `POST /v1/reindex` builds a new generation with the
 * current settings beside the serving one, in engine namespaces of its own
 * (engines/generation-engine.ts), with chunk rows and ids of its own; queries keep using the
 * serving generation, embedded by its own model, and switch when every document is in the new
 * one; the old one is then removed. Until a namespace is first ingested into it serves
 * generation 0 with the current settings, which that ingestion records.
 */

/** The settings the configuration asks for. */
export function currentSettings(services: Services): IndexSettings {
  const { embedder, config } = services;
  return { model: embedder.model, dimensions: embedder.dimensions, chunkSize: config.CHUNK_SIZE, chunkOverlap: config.CHUNK_OVERLAP };
}

export function sameSettings(a: IndexSettings, b: IndexSettings): boolean {
  return a.model === b.model && a.dimensions === b.dimensions && a.chunkSize === b.chunkSize && a.chunkOverlap === b.chunkOverlap;
}

/**
 * The services seen through one index generation: its engine namespaces, chunk rows, embedder
 * and chunking. Null: generation 0 with the current settings, i.e. the services themselves.
 */
export function scopeTo(services: Services, generation: Generation | null): Services {
  if (generation === null) return services;
  const { settings } = generation;
  if (generation.generation === 0 && sameSettings(settings, currentSettings(services))) return services;
  return {
    ...services,
    config: { ...services.config, CHUNK_SIZE: settings.chunkSize, CHUNK_OVERLAP: settings.chunkOverlap },
    embedder: services.embedderFor(settings),
    engine: atGeneration(services.engine, generation.generation),
    chunks: services.chunks.at(generation.generation),
  };
}

/** The services of the generation serving a namespace (one catalog read). */
export async function servingScope(services: Services, namespace: string): Promise<Services> {
  return scopeTo(services, (await services.generations.serving([namespace])).get(namespace) ?? null);
}
