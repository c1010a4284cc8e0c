/**
 * Every metric the engine exports, with its Prometheus type and help text. Counters and
 * histograms are kept per isolate and summed across isolates by the MetricsStore Durable
 * Object; gauges are read from the catalog when /metrics is scraped.
 */
export type MetricType = 'counter' | 'histogram' | 'gauge';

export interface MetricDefinition {
  type: MetricType;
  help: string;
  /** Histograms: upper bounds of the buckets, in seconds. */
  buckets?: readonly number[];
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export const METRICS = {
  rag_http_requests_total: { type: 'counter', help: 'HTTP requests by route, method and status.' },
  rag_http_request_duration_seconds: { type: 'histogram', help: 'HTTP request latency by route.', buckets: LATENCY_BUCKETS },
  rag_rate_limited_requests_total: { type: 'counter', help: 'Requests refused by a rate limit, by bucket kind (key, ip, failed_auth).' },
  rag_ingested_documents_total: { type: 'counter', help: 'Documents through ingestion, by outcome (ready, failed, retry, gone).' },
  rag_ingested_chunks_total: { type: 'counter', help: 'Chunks of documents that became ready, by whether they were embedded anew or reused.' },
  rag_queue_deliveries_total: { type: 'counter', help: 'Queue messages delivered to the consumer, by kind (ingest, r2_event, malformed; forwarded_large: sent on to the queue for large documents).' },
  rag_queue_retries_total: { type: 'counter', help: 'Queue messages sent back for a later attempt.' },
  rag_queue_dead_lettered_total: { type: 'counter', help: 'Queue messages that used their last attempt and go to the dead-letter queue.' },
  rag_provider_calls_total: { type: 'counter', help: 'Calls to outside providers, by provider and outcome (ok, error).' },
  rag_provider_retries_total: { type: 'counter', help: 'Retried attempts of provider calls, by provider.' },
  rag_provider_call_duration_seconds: { type: 'histogram', help: 'Provider call latency, retries included, by provider.', buckets: LATENCY_BUCKETS },
  rag_cache_requests_total: { type: 'counter', help: 'Cache lookups, by cache (embedding, response) and result (hit, miss).' },
  rag_index_documents: { type: 'gauge', help: 'Documents in the catalog, by namespace and status.' },
  rag_index_passages: { type: 'gauge', help: 'Passages (chunks) in the catalog, by namespace.' },
  rag_index_vectors: { type: 'gauge', help: 'Vectors in the vector index, by namespace (local index only; Vectorize counts per index).' },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRICS;
export type CounterName = { [K in MetricName]: (typeof METRICS)[K]['type'] extends 'counter' ? K : never }[MetricName];
export type HistogramName = { [K in MetricName]: (typeof METRICS)[K]['type'] extends 'histogram' ? K : never }[MetricName];
