import { DurableObject } from 'cloudflare:workers';
import { getServices } from './composition';
import { sweepGenerations, sweepOverdue } from './ingestion/sweeper';

/** How often the sweeper looks. */
export const SWEEP_EVERY_MS = 60_000;

/**
 * Nothing stays stuck: one Durable Object ("global") whose alarm runs `sweepOverdue` every
 * minute, in production and under `wrangler dev` alike. Alarms persist, so it goes on after a
 * restart without anyone calling anything; the first upload of each isolate arms it
 * (`armSweeper`), which costs one call per isolate.
 */
export class Sweeper extends DurableObject<Env> {
  /** Sets the alarm unless one is set. */
  async arm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + SWEEP_EVERY_MS);
  }

  override async alarm(): Promise<void> {
    try {
      const services = getServices(this.env);
      await sweepOverdue(services);
      await sweepGenerations(services);
    } finally {
      await this.ctx.storage.setAlarm(Date.now() + SWEEP_EVERY_MS);
    }
  }
}

let armed = false;

/** Arms the sweeper once per isolate. */
export async function armSweeper(namespace: DurableObjectNamespace<Sweeper>): Promise<void> {
  if (armed) return;
  await namespace.get(namespace.idFromName('global')).arm();
  armed = true;
}
