import { terms } from '../text/analyze';
import type { EmbeddingProvider } from '../domain';

/** Feature weights, relative to a word (unigram) feature. */
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 0.25;

/**
 * The offline embedder: a deterministic "hashing trick" vector of stemmed words, word
 * bigrams and character trigrams, with sublinear term frequency, L2-normalised. No model
 * weights and no network; it finds lexical matches (including misspellings and word
 * variants through the trigrams) but not synonyms. Same text, same vector, always.
 */
export class LocalEmbedder implements EmbeddingProvider {
  readonly model: string;
  readonly dimensions: number;
  readonly maxBatchSize = 1000;

  constructor(options: { dimensions: number; model?: string }) {
    this.dimensions = options.dimensions;
    this.model = options.model ?? 'local-hash-v1';
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return texts.map((text) => this.embedOne(text));
  }

  embedOne(text: string): Float32Array {
    const counts = new Map<string, number>();
    const add = (feature: string, weight: number) => counts.set(feature, (counts.get(feature) ?? 0) + weight);
    const list = terms(text);
    for (let i = 0; i < list.length; i++) {
      const term = list[i] as string;
      add(`w:${term}`, 1);
      if (i > 0) add(`b:${list[i - 1]} ${term}`, BIGRAM_WEIGHT);
      if (term.length > 4) {
        const padded = `<${term}>`;
        for (let j = 0; j + 3 <= padded.length; j++) add(`t:${padded.slice(j, j + 3)}`, TRIGRAM_WEIGHT);
      }
    }
    const vector = new Float32Array(this.dimensions);
    for (const [feature, weight] of counts) {
      const hash = fnv1a(feature);
      // The sign bit spreads collisions around zero instead of piling them up.
      const sign = hash & 0x80000000 ? -1 : 1;
      // Sublinear frequency: a word said ten times is not ten times as telling.
      const tf = weight <= 1 ? weight : 1 + Math.log(weight);
      vector[(hash & 0x7fffffff) % this.dimensions]! += sign * tf;
    }
    return normalize(vector);
  }
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  if (sum === 0) return vector;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i]! *= scale;
  return vector;
}
