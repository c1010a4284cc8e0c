// The engine's keyword index and chunker, bundled from src/ by esbuild so Node scripts run
// the same code as the Worker.
import { build } from 'esbuild';

export async function engineModules() {
  const { outputFiles } = await build({
    stdin: {
      contents: `export * from './src/retrieval/keyword-index'; export { chunkSections } from './src/ingestion/chunker';`,
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
