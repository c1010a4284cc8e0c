// The engine's keyword index and chunker, bundled from src/ by esbuild so Node scripts run
// the same code as the Worker.
import { build } from 'esbuild';

export async function engineModules() {
  const { outputFiles } = await build({
    stdin: {
      contents: `export * from './src/engines/keyword-index'; export * from './src/engines/feedback'; export { keywordTerms } from './src/text/keyword-terms'; export { chunkSections } from './src/ingestion/chunker';`,
      resolveDir: new URL('../..', import.meta.url).pathname,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    write: false,
  });
  return import(`data:text/javascript;base64,${Buffer.from(outputFiles[0].text).toString('base64')}`);
}

/**
 * A BEIR corpus as the engine's passages: its default chunking (CHUNK_SIZE 512, CHUNK_OVERLAP
 * 50, src/config.ts) of each document's text, with the title as context.
 */
export function corpusPassages(engine, corpus) {
  const passages = [];
  for (const doc of corpus) {
    for (const chunk of engine.chunkSections([{ text: doc.text }], { chunkSize: 512, chunkOverlap: 50 })) {
      passages.push({ corpusId: String(doc._id), text: chunk.text, context: doc.title ?? '' });
    }
  }
  return passages;
}
