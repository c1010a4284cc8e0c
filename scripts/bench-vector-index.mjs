#!/usr/bin/env node
/**
 * The local vector index at the team benchmark's scale: 100,000 vectors of 384 dimensions in one
 * Durable Object. Runs test/local-vector-index-scale.test.ts (which CI runs at 20,000) with
 * VITE_VECTOR_BENCH_N, and prints its report lines: build time, load time, query latency
 * (median of 25), filtered query latency, recall@10 against brute force, memory per vector.
 *
 *   node scripts/bench-vector-index.mjs [vectors]     (default 100000; ≈ 2 minutes)
 */
import { spawnSync } from 'node:child_process';

const n = process.argv[2] ?? '100000';
const run = spawnSync('npx', ['vitest', 'run', 'test/local-vector-index-scale.test.ts'], {
  env: { ...process.env, VITE_VECTOR_BENCH_N: n, NO_COLOR: '1' },
  encoding: 'utf8',
  maxBuffer: 64 * 2 ** 20,
});
const out = `${run.stdout}\n${run.stderr}`;
const report = out.split('\n').filter((line) => line.includes('[vector-index '));
console.log(report.length ? report.join('\n') : out);
if (run.status !== 0) {
  console.error(out.split('\n').filter((l) => /FAIL|Error|expected|✗|×/.test(l)).join('\n'));
  process.exit(run.status ?? 1);
}
