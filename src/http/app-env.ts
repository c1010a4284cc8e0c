import type { Principal } from '../security/principal';
import type { LimitView } from '../security/rate-limiter';
import type { Services } from '../services';

/** Hono's typing of this app: the Worker's bindings and the per-request services. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    services: Services;
    /** This request's id: the client's X-Request-Id when it sent a usable one. */
    requestId: string;
    /** Who is asking; set by `guard` on every route that has one. */
    principal: Principal;
    /** The bucket this request was charged to, for the RateLimit headers; null when none was. */
    rateLimit: LimitView | null;
  };
}
