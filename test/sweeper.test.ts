import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { getServices } from '../src/composition';
import type { Sweeper } from '../src/sweeper';
import { uploadText, waitUntilSettled } from './helpers';

/**
 * The sweeper: documents left queued with no message (a restart of `wrangler dev` drops the
 * local queue; a send can fail) or processing under a dead claim are re-queued by its alarm,
 * which the first upload arms and which re-arms itself.
 */
const services = getServices(env);
const sweeper = () => env.SWEEPER.get(env.SWEEPER.idFromName('global')) as DurableObjectStub<Sweeper>;

async function strand(namespace: string, text: string): Promise<string> {
  const id = crypto.randomUUID().replaceAll('-', '');
  const r2Key = `originals/${namespace}/${id}`;
  await services.originals.put(r2Key, text);
  // In the catalog, queued, but no message was ever sent (as after a restart).
  await services.documents.enqueue([{ id, namespace, title: 'Stranded', filename: null, type: 'txt', size: text.length, r2Key, metadata: {} }]);
  return id;
}

describe('the sweeper', () => {
  it('is armed by the first upload, and its alarm re-queues what nothing works on, then re-arms', async () => {
    const first = await uploadText({ text: 'Skuas chase other seabirds for their catch.', namespace: 'sweep' });
    await waitUntilSettled(first.id);
    expect(await runInDurableObject(sweeper(), (_, state) => state.storage.getAlarm())).not.toBeNull();

    const queued = await strand('sweep', 'Fulmars glide on stiff wings over the swell.');
    const dead = await strand('sweep', 'Eiders dive for mussels in cold water.');
    // One claimed by an invocation that died: its lease ran out.
    await env.DB.prepare(`UPDATE documents SET status = 'processing', attempt = 'dead', lease_until = ? WHERE id = ?`).bind(Date.now() - 1, dead).run();
    // Overdue by more than a minute.
    await env.DB.prepare('UPDATE documents SET due_at = ? WHERE id = ?').bind(Date.now() - 120_000, queued).run();
    // A queued document whose message is not overdue yet is left alone.
    const fresh = await strand('sweep', 'Petrels patter on the water as they feed.');

    expect(await runDurableObjectAlarm(sweeper())).toBe(true);
    for (const id of [queued, dead]) expect(await waitUntilSettled(id), id).toMatchObject({ status: 'ready' });
    expect(await services.documents.get(fresh)).toMatchObject({ status: 'queued' });
    // Re-armed for the next minute.
    expect(await runInDurableObject(sweeper(), (_, state) => state.storage.getAlarm())).toBeGreaterThan(Date.now());
  });
});
