import { env } from 'cloudflare:workers';
import { app } from './app';
import { loadConfig } from './config';
import { consumeDeadLetters, consumeIngestBatch } from './ingestion/consumer';
import { flushMetrics } from './observability/flush';
import { getServices } from './composition';

export { KeywordShard } from './engines/cloudflare/keyword-shard';
export { LocalVectorIndex } from './engines/local/vector-index';
export { MetricsStore } from './observability/metrics-store';
export { RateLimiter } from './security/rate-limiter';
export { Sweeper } from './sweeper';

// Validate the configuration when the Worker starts: a bad setting stops it here, with a
// message naming the setting, instead of failing request by request.
loadConfig(env);

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    try {
      if (batch.queue.endsWith('-dlq')) await consumeDeadLetters(batch, getServices(env));
      else await consumeIngestBatch(batch, getServices(env), { alone: batch.queue.endsWith('-large') });
    } finally {
      // A consumer invocation may be the isolate's last: send what it counted now.
      await flushMetrics(env.METRICS);
    }
  },
} satisfies ExportedHandler<Env>;
