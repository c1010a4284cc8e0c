import { env } from 'cloudflare:workers';
import { app } from './app';
import { loadConfig } from './config';
import { consumeIngestBatch } from './ingestion/consumer';
import { getServices } from './services';

export { LocalVectorIndex } from './providers/local-vector-index';
export { RateLimiter } from './security/rate-limiter';

// Validate the configuration when the Worker starts: a bad setting stops it here, with a
// message naming the setting, instead of failing request by request.
loadConfig(env);

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    await consumeIngestBatch(batch, getServices(env));
  },
} satisfies ExportedHandler<Env>;
