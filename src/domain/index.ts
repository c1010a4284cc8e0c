/**
 * The domain: the types and interfaces every part of the engine shares. It imports nothing
 * from the rest of the project; everything else may import it.
 */
export * from './documents';
export * from './engine';
export * from './errors';
export * from './filter';
export * from './providers';
