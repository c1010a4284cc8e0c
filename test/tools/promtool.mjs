import { spawn } from 'node:child_process';

/**
 * Runs in Node, beside workerd (a service binding of vitest.config.ts): `promtool check
 * metrics` on the POSTed exposition text. Answers JSON `{ available, code, output }`;
 * `available` is false when promtool is not installed (Debian package `prometheus`).
 * @param {Request} request
 */
export async function runPromtool(request) {
  const text = await request.text();
  const result = await new Promise((resolve) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk.toString()));
    child.stderr.on('data', (chunk) => (output += chunk.toString()));
    child.on('error', () => resolve({ available: false, code: null, output: 'promtool is not installed' }));
    child.on('close', (code) => resolve({ available: true, code, output }));
    child.stdin.on('error', () => undefined); // promtool missing: the write fails too
    child.stdin.end(text);
  });
  return Response.json(result);
}
