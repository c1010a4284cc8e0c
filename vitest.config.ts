import { readdir, readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { handleOpenAI } from './test/fakes/openai-server.ts';
import { validateOpenApi } from './test/tools/openapi-validator.mjs';
import { runPromtool } from './test/tools/promtool.mjs';

/** The shared sample files (real PDFs, DOCX, Markdown, text, SciFact), beside this repo. */
const SHARED_DATA = resolve(import.meta.dirname, '../shared/data');

/**
 * Tests run inside workerd, which has no host file system. This service binding serves
 * ../shared/data to them: `env.TEST_DATA.fetch('http://data/documents/pdf/x.pdf')`; a folder
 * answers with the JSON list of the files under it, relative to it.
 */
async function serveSharedData(request: Request): Promise<Response> {
  const path = decodeURIComponent(new URL(request.url).pathname);
  const file = resolve(SHARED_DATA, `.${path}`);
  if (!file.startsWith(SHARED_DATA)) return new Response('outside data dir', { status: 403 });
  try {
    if ((await stat(file)).isDirectory()) {
      const entries = await readdir(file, { recursive: true, withFileTypes: true });
      const files = entries.filter((e) => e.isFile()).map((e) => resolve(e.parentPath, e.name).slice(file.length + 1));
      return Response.json(files.sort());
    }
    return new Response(await readFile(file));
  } catch {
    return new Response(`no such file: ${path}`, { status: 404 });
  }
}

export default defineConfig(async () => ({
  plugins: [
    cloudflareTest({
      main: './src/index.ts',
      wrangler: { configPath: './wrangler.toml' },
      remoteBindings: false,
      miniflare: {
        serviceBindings: { TEST_DATA: serveSharedData, FAKE_OPENAI: handleOpenAI, PROMTOOL: runPromtool, OPENAPI_VALIDATOR: validateOpenApi },
        bindings: {
          TEST_MIGRATIONS: await readD1Migrations('./migrations'),
          CI: process.env.CI ?? '',
          // The metadata fields the tests filter on (wrangler.toml names a deployment's own).
          FILTERABLE_FIELDS: 'team,year,topic,lang,colour,shelf,area,draft,kind,tag',
        },
      },
    }),
  ],
  test: {
    // Only the Worker's tests run in workerd; scripts/ has its own (node --test).
    include: ['test/**/*.test.ts'],
    setupFiles: ['./test/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
}));
