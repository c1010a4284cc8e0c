import { env, exports } from 'cloudflare:workers';
import { expect, it } from 'vitest';
it('answers', async () => {
  const res = await exports.default.fetch('http://x/');
  expect(await res.text()).toBe('ok');
  const f = await env.TEST_DATA.fetch('http://data/documents/pdf/ocrmypdf__invalid.pdf');
  expect((await f.arrayBuffer()).byteLength).toBe(44);
});
