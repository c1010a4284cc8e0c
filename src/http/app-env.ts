import type { Services } from '../services';

/** Hono's typing of this app: the Worker's bindings and the per-request services. */
export interface AppEnv {
  Bindings: Env;
  Variables: { services: Services };
}
