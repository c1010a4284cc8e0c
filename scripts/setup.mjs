#!/usr/bin/env node
// Creates the Cloudflare resources of the production environment, idempotently:
// D1 (and its migrations), the R2 bucket, the ingestion queue, its queue for large documents and its dead-letter queue,
// the Vectorize index with its metadata indexes, and the R2 event notification rule that
// sends object-create and object-delete events to the ingestion queue.
//
//   node scripts/setup.mjs [--dry-run] [--metadata-index field:type ...]
//
// --dry-run prints the wrangler commands without running them. A resource that already
// exists is left as it is. Run `npx wrangler login` first (or set CLOUDFLARE_API_TOKEN).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    'dry-run': { type: 'boolean', default: false },
    // Vectorize filters only on fields that have a metadata index, created before vectors.
    'metadata-index': { type: 'string', multiple: true, default: [] },
  },
});
const dryRun = args['dry-run'];
const CONFIG = new URL('../wrangler.toml', import.meta.url);
const toml = readFileSync(CONFIG, 'utf8');
const production = toml.slice(toml.indexOf('[env.production]'));

/** First value of `key = "…"` in the production section. */
function setting(key, fallback) {
  const match = production.match(new RegExp(`^${key}\\s*=\\s*"?([^"\\n#]+)"?`, 'm'));
  return match ? match[1].trim() : fallback;
}

const database = setting('database_name', 'rag-engine');
const bucket = setting('bucket_name', 'rag-engine-originals');
const queue = setting('queue', 'rag-engine-ingest');
const deadLetterQueue = setting('dead_letter_queue', 'rag-engine-ingest-dlq');
const index = setting('index_name', 'rag-engine');
const dimensions = setting('EMBEDDING_DIMENSIONS', '768');
const metadataIndexes = ['documentId:string', ...args['metadata-index']];

function wrangler(...command) {
  const line = `npx wrangler ${command.join(' ')}`;
  if (dryRun) {
    console.log(line);
    return '';
  }
  console.log(`$ ${line}`);
  try {
    return execFileSync('npx', ['wrangler', ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
    if (/already exists|already taken|duplicate/i.test(output)) {
      console.log('  (exists, kept)');
      return output;
    }
    process.stderr.write(output);
    throw new Error(`failed: ${line}`);
  }
}

// D1: create, then write its id into wrangler.toml so deploys bind the right database.
const created = wrangler('d1', 'create', database);
const listed = dryRun ? '[]' : wrangler('d1', 'list', '--json');
const id = created.match(/database_id\s*=\s*"([0-9a-f-]{36})"/)?.[1]
  ?? JSON.parse(listed).find((d) => d.name === database)?.uuid;
if (id) {
  const updated = toml.replace(
    /(\[\[env\.production\.d1_databases\]\][^[]*?database_id\s*=\s*")[0-9a-f-]{36}(")/,
    `$1${id}$2`,
  );
  writeFileSync(CONFIG, updated);
  console.log(`  wrangler.toml: [env.production] database_id = "${id}"`);
} else if (!dryRun) {
  throw new Error(`could not find the id of D1 database ${database}`);
}
wrangler('d1', 'migrations', 'apply', database, '--env', 'production', '--remote');

wrangler('r2', 'bucket', 'create', bucket);
wrangler('queues', 'create', deadLetterQueue);
wrangler('queues', 'create', queue);
wrangler('queues', 'create', `${queue}-large`);

wrangler('vectorize', 'create', index, `--dimensions=${dimensions}`, '--metric=cosine');
for (const spec of metadataIndexes) {
  const [property, type = 'string'] = spec.split(':');
  wrangler('vectorize', 'create-metadata-index', index, `--propertyName=${property}`, `--type=${type}`);
}

wrangler('r2', 'bucket', 'notification', 'create', bucket, '--event-type', 'object-create', '--event-type', 'object-delete', '--queue', queue);

console.log(dryRun ? '\n(dry run: nothing was created)' : '\nDone. Deploy with: npm run deploy');
