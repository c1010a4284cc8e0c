// The playground in a real browser: headless Chromium (Debian package `chromium`; set
// CHROMIUM_PATH elsewhere) drives upload → ready → ask → citation → delete against the engine
// under `wrangler dev` with fresh local state, and saves screenshots in e2e-screenshots/.
//   npm run test:e2e
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const root = new URL('../..', import.meta.url).pathname;
const PORT = 8799;
const BASE = `http://127.0.0.1:${PORT}`;
const SAMPLE = join(root, '../shared/data/documents/txt/ocrmypdf__linn.txt');
const SHOTS = join(root, 'e2e-screenshots');
const quiet = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', CI: 'true' };
const state = mkdtempSync(join(tmpdir(), 'rag-e2e-'));
let engine;
let browser;
let page;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const wrangler = join(root, 'node_modules/.bin/wrangler');
  const migrate = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state], { cwd: root, env: quiet, encoding: 'utf8' });
  assert.equal(migrate.status, 0, migrate.stderr);
  engine = spawn(wrangler, ['dev', '--ip', '127.0.0.1', '--port', String(PORT), '--persist-to', state], { cwd: root, env: quiet, stdio: 'ignore', detached: true });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${BASE}/health`)).ok) break;
    } catch {}
    assert.ok(i < 120, 'the engine did not start within 60 s');
    await new Promise((r) => setTimeout(r, 500));
  }
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('dialog', (dialog) => dialog.accept());
});

after(async () => {
  await browser?.close();
  if (engine) process.kill(-engine.pid, 'SIGTERM');
  rmSync(state, { recursive: true, force: true });
});

test('upload → ready → ask → citation → delete, in Chromium', async () => {
  await page.goto(BASE);
  await page.getByText('No documents yet').waitFor();

  // Upload, by its labelled control; the list shows it queued, then ready.
  await page.getByLabel('Files (text, Markdown, PDF, DOCX)').setInputFiles(SAMPLE);
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByRole('status').filter({ hasText: 'Uploaded: ocrmypdf__linn.txt' }).waitFor();
  const item = page.locator('#documents li', { hasText: 'ocrmypdf__linn.txt' });
  await item.locator('.status.ready').waitFor({ timeout: 60_000 });
  await page.screenshot({ path: join(SHOTS, '1-ready.png'), fullPage: true });

  // Ask, with the keyboard: the answer streams in, with citations.
  await page.getByLabel('Question').fill('How many tracks does each LinnSequencer sequence have?');
  await page.getByLabel('Question').press('Tab');
  await page.keyboard.press('Enter');
  await page.locator('#citations button').first().waitFor();
  const answer = await page.locator('#answer').textContent();
  assert.match(answer, /32[\s\S]*\[1\]/);
  await page.screenshot({ path: join(SHOTS, '2-answer.png'), fullPage: true });

  // The citation opens its passage, and its document with the passage marked.
  await page.locator('#citations button').first().click();
  await page.locator('#passage-section').waitFor();
  assert.match(await page.locator('#passage-source').textContent(), /ocrmypdf__linn\.txt/);
  assert.match(await page.locator('#passage-text').textContent(), /LinnSequencer|tracks/);
  await page.getByText('The whole document, passage by passage').click();
  await page.locator('#document-passages li.cited').waitFor();
  await page.screenshot({ path: join(SHOTS, '3-citation.png'), fullPage: true });

  // Readable at phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 800 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375), 'the page scrolls sideways at 375 px');
  await page.screenshot({ path: join(SHOTS, '4-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1100, height: 900 });

  // Delete: gone from the list and from search.
  await item.getByRole('button', { name: 'Delete ocrmypdf__linn.txt' }).click();
  await page.getByText('No documents yet').waitFor();
  const search = await (await fetch(`${BASE}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'LinnSequencer tracks' }) })).json();
  assert.deepEqual(search.passages, []);
  await page.screenshot({ path: join(SHOTS, '5-deleted.png'), fullPage: true });
});

test('with auth on, the page asks for a key and keeps it for the tab only', async () => {
  // The same page against a second engine would need another wrangler dev; the key flow is
  // checked against this one's API by a refusing fetch instead: a 401 shows the key form.
  await page.route('**/v1/documents?*', (route) => route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unauthorized', message: 'An API key is required.' } }) }));
  await page.goto(BASE);
  await page.getByLabel('This engine needs an API key (kept for this browser tab only)').waitFor();
  await page.getByLabel('This engine needs an API key (kept for this browser tab only)').fill('rag_000000000000_test');
  await page.unroute('**/v1/documents?*');
  await page.getByRole('button', { name: 'Use key' }).click();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('rag-engine-key')), 'rag_000000000000_test');
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  await page.screenshot({ path: join(SHOTS, '6-key.png'), fullPage: true });
});
