import type { DocumentVersion, EngineQuery, IndexedChunk, SearchEngine } from '../domain';

/**
 * The engine namespace of a namespace's index generation: the namespace itself for generation
 * 0, else `<namespace>.g<n>` (a dot no API namespace has), shortened with a hash of the
 * namespace when that exceeds the engine's limit.
 */
export function generationNamespace(namespace: string, generation: number, maxBytes: number): string {
  if (generation === 0) return namespace;
  const suffix = `.g${generation}`;
  const name = `${namespace}${suffix}`;
  if (new TextEncoder().encode(name).byteLength <= maxBytes) return name;
  // FNV-1a of the namespace: two long namespaces sharing a prefix stay apart.
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(namespace)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  const tag = `~${hash.toString(16).padStart(8, '0')}${suffix}`;
  return `${namespace.slice(0, maxBytes - tag.length)}${tag}`;
}

/**
 * A search engine seen through one index generation: every namespace it is given is that
 * generation's engine namespace. Generation 0 is the engine itself.
 */
export function atGeneration(engine: SearchEngine, generation: number): SearchEngine {
  if (generation === 0) return engine;
  const at = (namespace: string) => generationNamespace(namespace, generation, engine.limits.maxNamespaceBytes);
  return {
    name: engine.name,
    dimensions: engine.dimensions,
    limits: engine.limits,
    capabilities: engine.capabilities,
    stage: (namespace: string, chunks: IndexedChunk[]) => engine.stage(at(namespace), chunks),
    activate: (namespace: string, versions: DocumentVersion[]) => engine.activate(at(namespace), versions),
    remove: (namespace: string, documentId: string) => engine.remove(at(namespace), documentId),
    search: (query: EngineQuery) => engine.search({ ...query, namespace: at(query.namespace) }),
    documentPassages: (namespace, documentId, page) => engine.documentPassages(at(namespace), documentId, page),
    count: (namespace: string) => engine.count(at(namespace)),
    misconfiguration: (namespace: string) => engine.misconfiguration(at(namespace)),
    lastWrite: () => engine.lastWrite(),
    isApplied: (write) => engine.isApplied(write),
  };
}
