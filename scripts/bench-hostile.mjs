#!/usr/bin/env node
// What each hostile file costs before it is refused: the time and the peak memory of one
// parseDocument call (src/ingestion/parsers/index.ts) on each bomb of test/hostile/bombs.ts
// (BOMBS: the hostile files of test/hostile-files.test.ts and test/hostile-pdf.test.ts), and on
// a normal PDF and DOCX from ../shared/data/documents as a baseline. Prints a Markdown table.
//
// How: esbuild bundles the parsers and test/hostile/bombs.ts for Node (the .bcmap character
// maps with the `binary` loader; pdf.js comes from unpdf, which runs in Node) into a temp
// directory. For each case this process generates the file and writes it there, then runs a
// child process of the same Node (this script with --child), which loads the bundle, parses a
// tiny file of the same type (so loading pdf.js and the first run's compilation are not
// counted), reads the file, records process.resourceUsage().maxRSS and the time, runs
// parseDocument with the default limits (src/limits.ts) and reports:
//   ms        the parseDocument call's wall-clock time;
//   outcome   the UnreadableDocumentError message (cut to ~80 characters), "parsed: N sections",
//             or any other error, named;
//   peak MiB  the peak RSS growth: maxRSS after the call − maxRSS before it (the file already
//             read). maxRSS is a high-water mark, so memory freed before the call and reused
//             during it is not counted: the growth is a lower bound on what the call used (the
//             progress lines on stderr say by how much maxRSS exceeded the RSS before the call);
//   RSS MiB   the child's maxRSS after the call (Node, bundle, pdf.js, the file and the parse).
// Linux starts a child's maxRSS at the RSS of the process that forked it, so the children are
// not forked from this process (which grows as it generates the files) but from a launcher
// (this script with --launcher) started before anything is loaded, smaller than any child.
// One child per case, one at a time, each killed after --timeout-seconds (120); the temp
// directory is removed at the end. This is Node, not workerd: the parsers' code is the same,
// but the platform's (DecompressionStream, memory accounting) is not, and a Worker's 128 MB
// counts the isolate's heap rather than a process's RSS. The figures are relative, not a quota.
//
// Usage: node scripts/bench-hostile.mjs [--only REGEX] [--data DIR] [--timeout-seconds 120]
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `usage: node scripts/bench-hostile.mjs [--only REGEX] [--data DIR] [--timeout-seconds 120]
  Measures the time and peak memory (RSS) of parseDocument on each hostile file of
  test/hostile/bombs.ts, and on a normal PDF and DOCX, each in its own Node process.
  --only REGEX           only the cases whose name matches (case-insensitive)
  --data DIR             the sample documents for the baseline (default ../shared/data/documents)
  --timeout-seconds N    kill a case's process after N seconds (default 120)`;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCRIPT = fileURLToPath(import.meta.url);
const BASELINE = [
  { file: 'pdf/pdfjs__tracemonkey.pdf', type: 'pdf' },
  { file: 'docx/unstructured__contains-pictures.docx', type: 'docx' },
];
const MiB = 1024 * 1024;
/** Costs the summary calls out. */
const TOO_SLOW_MS = 5_000;
const TOO_BIG_MIB = 200;

if (process.argv[2] === '--child') await child(...process.argv.slice(3));
else if (process.argv[2] === '--launcher') launcher();
else await main();

// ---------------------------------------------------------------------------------------------

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        only: { type: 'string' },
        data: { type: 'string', default: join(ROOT, '../shared/data/documents') },
        'timeout-seconds': { type: 'string', default: '120' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const timeoutMs = Number(args['timeout-seconds']) * 1000;
  if (!(timeoutMs > 0)) {
    console.error(`--timeout-seconds must be a positive number\n${USAGE}`);
    process.exit(2);
  }
  const only = args.only ? new RegExp(args.only, 'i') : null;

  // First, while this process is small (see the header): the launcher, in its own process
  // group so that one kill ends it and the child it is running.
  const launched = spawn(process.execPath, [SCRIPT, '--launcher'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
  let stopping = false;
  const measure = (file, type) =>
    new Promise((resolve, reject) => {
      launched.once('message', resolve);
      launched.once('exit', () => stopping || reject(new Error('the launcher process ended')));
      launched.send({ args: [SCRIPT, '--child', bundle, file, type], timeoutMs });
    }).finally(() => launched.removeAllListeners('exit'));
  const dir = await mkdtemp(join(tmpdir(), 'bench-hostile-'));
  const bundle = join(dir, 'engine.mjs');
  const cleanUp = async () => {
    try {
      process.kill(-launched.pid, 'SIGKILL');
    } catch {} // already gone
    await rm(dir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      stopping = true;
      console.error(`\n${signal}: stopped`);
      cleanUp().finally(() => process.exit(130));
    });
  }
  try {
    await bundleEngine(bundle);
    const engine = await import(pathToFileURL(bundle).href);

    /** @type {{ name: string; type: string; make: () => Uint8Array | Promise<Uint8Array> }[]} */
    const cases = [];
    for (const { file, type } of BASELINE) {
      const path = join(args.data, file);
      if (existsSync(path)) cases.push({ name: `baseline: ${basename(file)}`, type, make: () => readFile(path) });
      else console.error(`(baseline ${path} not found: skipped)`);
    }
    cases.push(...engine.bombs.BOMBS);
    const selected = cases.filter((c) => !only || only.test(c.name));
    if (selected.length === 0) throw new Error(`no case matches --only ${args.only}`);

    const { PDF_LIMITS: pdf, ZIP_LIMITS: zip } = engine;
    console.error(
      `Node ${process.version}; limits: PDF ${pdf.maxStreamBytes / MiB} MiB a stream, ${pdf.maxInflatedBytes / MiB} MiB a document, ` +
        `${pdf.maxPages} pages, ${pdf.maxTextChars.toLocaleString('en-US')} characters; DOCX ${zip.maxInflatedBytes / MiB} MiB, ratio ${zip.maxCompressionRatio}:1`,
    );
    const rows = [];
    for (const [i, c] of selected.entries()) {
      const bytes = await c.make();
      const file = join(dir, `case-${i}.${c.type}`);
      await writeFile(file, bytes);
      process.stderr.write(`[${i + 1}/${selected.length}] ${c.name} (${mib(bytes.length)} MiB) … `);
      const result = await measure(file, c.type);
      await rm(file, { force: true });
      const slack = result.slackMiB > 0 ? ` (maxRSS was ${result.slackMiB} MiB above the RSS before the call)` : '';
      process.stderr.write(`${result.ms === undefined ? '-' : Math.round(result.ms)} ms, +${result.peakMiB ?? '-'} MiB${slack}\n`);
      rows.push({ ...c, size: bytes.length, ...result });
    }
    console.log(table(rows));
    const costly = rows.filter((r) => r.ms > TOO_SLOW_MS || r.peakMiB > TOO_BIG_MIB || r.ms === undefined);
    console.log(
      costly.length
        ? `\nOver ${TOO_SLOW_MS / 1000} s or ${TOO_BIG_MIB} MiB (or no result): ${costly.map((r) => r.name).join('; ')}`
        : `\nNo case took over ${TOO_SLOW_MS / 1000} s or grew the RSS by over ${TOO_BIG_MIB} MiB.`,
    );
  } finally {
    await cleanUp();
  }
}

/** The parsers, the limits and the bomb generators, bundled for Node into `outfile`. */
async function bundleEngine(outfile) {
  const { build } = await import('esbuild');
  await build({
    stdin: {
      contents: [
        `export { parseDocument } from './src/ingestion/parsers';`,
        `export { UnreadableDocumentError } from './src/domain/errors';`,
        `export { PDF_LIMITS, ZIP_LIMITS } from './src/limits';`,
        `export * as bombs from './test/hostile/bombs';`,
      ].join('\n'),
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    loader: { '.bcmap': 'binary' }, // pdf.js character maps (Data modules in the Worker)
    outfile,
    logLevel: 'error',
  });
}

/** In the launcher: runs each child it is sent and sends back its report. */
function launcher() {
  process.on('message', async ({ args, timeoutMs }) => {
    process.send(await report(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs));
  });
  process.on('disconnect', () => process.exit(0));
}

/** Waits for a child's JSON report (its last stdout line), or kills it after `timeoutMs`. */
function report(child, timeoutMs) {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-2000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').at(-1);
      try {
        if (line) return resolve(JSON.parse(line));
      } catch {}
      const why = timedOut
        ? `killed after ${timeoutMs / 1000} s`
        : `process ended (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').at(-1) ?? ''}`;
      resolve({ outcome: cut(why) });
    });
  });
}

function table(rows) {
  const lines = [
    '| case | type | file MiB | outcome | ms | peak MiB | RSS MiB |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const cells = [r.name, r.type, mib(r.size), r.outcome, r.ms === undefined ? '–' : Math.round(r.ms), r.peakMiB ?? '–', r.rssMiB ?? '–'];
    lines.push(`| ${cells.map((c) => String(c).replaceAll('|', '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

function mib(bytes) {
  return (bytes / MiB).toFixed(bytes < MiB ? 3 : 1);
}

/** `s` cut to about `n` characters. */
function cut(s, n = 80) {
  return s.length > n ? `${s.slice(0, n - 1).trimEnd()}…` : s;
}

// ---------------------------------------------------------------------------------------------

/** In the child: parse one file and print { outcome, ms, peakMiB, rssMiB, slackMiB } as one JSON line. */
async function child(bundle, file, type) {
  const engine = await import(pathToFileURL(bundle).href);
  const { bombs } = engine;
  const warmUp = {
    pdf: () => bombs.onePage(bombs.text('Warm up.')),
    docx: () => bombs.docx(bombs.WORD(bombs.para('Warm up.'))),
    md: () => new TextEncoder().encode('# Warm up\n\nText.'),
    txt: () => new TextEncoder().encode('Warm up.'),
  };
  await engine.parseDocument(warmUp[type](), type);
  const read = await readFile(file);
  // A plain Uint8Array over the file (Buffer's slice() is a view, not the copy pdf.js needs).
  const bytes = new Uint8Array(read.buffer, read.byteOffset, read.byteLength);
  const before = process.resourceUsage().maxRSS; // KiB
  const slack = before - process.memoryUsage.rss() / 1024; // freed since the high-water mark: reusable unseen
  const started = performance.now();
  let outcome;
  try {
    const doc = await engine.parseDocument(bytes, type);
    outcome = `parsed: ${doc.sections.length} section${doc.sections.length === 1 ? '' : 's'}`;
  } catch (error) {
    outcome = error instanceof engine.UnreadableDocumentError ? cut(error.message) : cut(`threw ${error?.name}: ${error?.message}`);
  }
  const ms = performance.now() - started;
  const after = process.resourceUsage().maxRSS;
  const result = { outcome, ms, peakMiB: Math.round((after - before) / 1024), rssMiB: Math.round(after / 1024), slackMiB: Math.round(slack / 1024) };
  // pdf.js may leave timers behind: exit once the line is out.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}
