/**
 * A fake OpenAI API for the adapter tests. It runs in Node (vitest.config.ts binds it as
 * the FAKE_OPENAI service), answers in OpenAI's exact JSON and SSE shapes, and is no
 * kinder than the real one: it checks the API key, enforces the documented limits,
 * returns embeddings out of order (the contract is `index`), splits the event stream at
 * arbitrary bytes (mid-event, mid-character), and can be told to fail:
 *
 * - by model name: `fault-429` (Retry-After: 1), `fault-quota` (429 insufficient_quota),
 *   `fault-500`/`fault-502`/`fault-503`/`fault-504` (502 is an HTML page, as from a proxy),
 *   `fault-malformed` (broken JSON), `fault-shape` (JSON of the wrong shape),
 *   `fault-dimensions` (vectors of the wrong size), `fault-hang` (no answer for HANG_MS),
 *   `fault-stall` (chat: a few pieces, then silence), `fault-truncated` (chat: the stream
 *   ends without `data: [DONE]`). After the fault the model answers normally.
 * - per request headers: `x-fault-times` (how many requests fail first, default 1),
 *   `x-fault-retry-after` / `x-fault-retry-after-ms` (the 429's headers), `x-fake-reply`
 *   (URI-encoded: the chat answer to stream instead of fakeAnswer's, e.g. what a model
 *   that obeyed an injected document would write).
 *
 * Counters and a log of requests are kept per `x-test-scenario` header, so tests running
 * at once do not see each other; `GET /__requests` returns the scenario's log.
 */

export const FAKE_OPENAI_KEY = 'sk-test-fake-4f9c2a7e61d04b8a';
/** How long `fault-hang` and `fault-stall` stay silent: longer than any test's timeout. */
export const HANG_MS = 5_000;

const EMBEDDING_MODELS: Record<string, number> = {
  'text-embedding-3-small': 1536,
  'text-embedding-3-large': 3072,
  'text-embedding-ada-002': 1536,
};
const MAX_INPUTS = 2048;

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: 'present' | 'missing';
  body: unknown;
}

interface Scenario {
  counts: Map<string, number>;
  requests: RecordedRequest[];
}
const scenarios = new Map<string, Scenario>();

export async function handleOpenAI(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const id = request.headers.get('x-test-scenario') ?? '';
  let scenario = scenarios.get(id);
  if (!scenario) scenarios.set(id, (scenario = { counts: new Map(), requests: [] }));
  if (request.method === 'GET' && url.pathname === '/__requests') return Response.json(scenario.requests);

  const text = await request.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const authorization = request.headers.get('authorization');
  scenario.requests.push({ method: request.method, path: url.pathname, authorization: authorization ? 'present' : 'missing', body });

  if (!authorization) {
    return error(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.");
  }
  const key = authorization.replace(/^Bearer\s+/i, '');
  if (key !== FAKE_OPENAI_KEY) {
    // As OpenAI does: the key's start and end are echoed back, which an adapter must not pass on.
    const masked = `${key.slice(0, 8)}${'*'.repeat(Math.max(0, key.length - 12))}${key.slice(-4)}`;
    return error(401, `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', null, 'invalid_api_key');
  }
  if (request.method !== 'POST' || !['/v1/embeddings', '/v1/chat/completions'].includes(url.pathname)) {
    return error(404, `Invalid URL (${request.method} ${url.pathname})`);
  }
  if (body === undefined || typeof body !== 'object' || body === null) {
    return error(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)");
  }
  const fields = body as Record<string, unknown>;
  const model = fields.model;
  if (typeof model !== 'string' || !model) return error(400, 'you must provide a model parameter');

  const fault = model.startsWith('fault-') ? model.slice('fault-'.length) : undefined;
  if (fault) {
    const counter = `${url.pathname} ${model}`;
    const seen = scenario.counts.get(counter) ?? 0;
    scenario.counts.set(counter, seen + 1);
    const times = Number(request.headers.get('x-fault-times') ?? 1);
    if (seen < times) {
      const response = await injectFault(fault, request.headers, url.pathname, fields);
      if (response) return response;
    }
  }
  const reply = request.headers.get('x-fake-reply');
  return url.pathname === '/v1/embeddings'
    ? embeddings(fields, fault)
    : chatCompletions(fields, fault, scenario.counts, reply === null ? undefined : decodeURIComponent(reply));
}

async function injectFault(fault: string, headers: Headers, path: string, fields: Record<string, unknown>): Promise<Response | undefined> {
  switch (fault) {
    case '429': {
      const response = error(429, `Rate limit reached for ${fields.model} in organization org-fake on requests per min (RPM): Limit 3000, Used 3000, Requested 1. Please try again in 20ms. Visit https://platform.openai.com/account/rate-limits to learn more.`, 'requests', null, 'rate_limit_exceeded');
      response.headers.set('retry-after', headers.get('x-fault-retry-after') ?? '1');
      const ms = headers.get('x-fault-retry-after-ms');
      if (ms) response.headers.set('retry-after-ms', ms);
      return response;
    }
    case 'quota':
      return error(429, 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.', 'insufficient_quota', null, 'insufficient_quota');
    case '500':
      return error(500, 'The server had an error while processing your request. Sorry about that!', 'server_error');
    case '502':
      return new Response('<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>', { status: 502, headers: { 'content-type': 'text/html' } });
    case '503':
      return error(503, 'The engine is currently overloaded, please try again later.', 'server_error');
    case '504':
      return error(504, 'Gateway timeout.', 'server_error');
    case 'malformed':
      return path === '/v1/embeddings'
        ? new Response('{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.009', { headers: { 'content-type': 'application/json' } })
        : sse(['{"id":"chatcmpl-fake","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel']);
    case 'shape':
      return Response.json({ object: 'list', data: 'not a list', model: fields.model });
    case 'hang':
      await sleep(HANG_MS);
      return undefined;
    default:
      return undefined; // stall, truncated, dimensions: shaped in the normal answer
  }
}

function embeddings(fields: Record<string, unknown>, fault: string | undefined): Response {
  const model = fields.model as string;
  const full = fault ? 1536 : EMBEDDING_MODELS[model];
  if (full === undefined) return modelNotFound(model);
  const input = typeof fields.input === 'string' ? [fields.input] : fields.input;
  if (!Array.isArray(input) || input.length === 0 || input.some((t) => typeof t !== 'string' || t === '')) {
    return error(400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", 'invalid_request_error', null, null);
  }
  if (input.length > MAX_INPUTS) {
    return error(400, `Invalid 'input': maximum length ${MAX_INPUTS}, but got an array with length ${input.length} instead.`, 'invalid_request_error', 'input', 'array_above_max_length');
  }
  let dimensions = full;
  if (fields.dimensions !== undefined) {
    if (model === 'text-embedding-ada-002') return error(400, 'This model does not support specifying dimensions.', 'invalid_request_error', null, null);
    const asked = fields.dimensions;
    if (typeof asked !== 'number' || !Number.isInteger(asked) || asked < 1 || asked > full) {
      return error(400, `Invalid value for 'dimensions' = ${String(asked)}. Must be between 1 and ${full}.`, 'invalid_request_error', 'dimensions', 'invalid_value');
    }
    dimensions = asked;
  }
  const format = fields.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    return error(400, `Invalid value for 'encoding_format': expected 'float' or 'base64', got '${String(format)}'.`, 'invalid_request_error', 'encoding_format', 'invalid_value');
  }
  if (fault === 'dimensions') dimensions = Math.max(1, dimensions >> 1);
  const data = input.map((text, index) => {
    const vector = fakeEmbedding(text, dimensions);
    return { object: 'embedding', index, embedding: format === 'base64' ? toBase64(vector) : [...vector] };
  });
  const tokens = input.reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
  // Reversed on purpose: OpenAI says to order by `index`, and a fake in order would hide a bug.
  return Response.json({ object: 'list', data: data.reverse(), model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

/** The fake's embedding of a text: deterministic, unit length, as float32. */
export function fakeEmbedding(text: string, dimensions: number): Float32Array {
  let seed = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) seed = Math.imul(seed ^ text.charCodeAt(i), 0x01000193);
  const vector = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    vector[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
    norm += vector[i]! * vector[i]!;
  }
  for (let i = 0; i < dimensions; i++) vector[i]! /= Math.sqrt(norm);
  return vector;
}

function toBase64(vector: Float32Array): string {
  const bytes = new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

function chatCompletions(fields: Record<string, unknown>, fault: string | undefined, counts: Map<string, number>, reply?: string): Response {
  const model = fields.model as string;
  if (!fault && !/^(gpt-|o\d|chatgpt-)/.test(model)) return modelNotFound(model);
  const messages = fields.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    return error(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", 'invalid_request_error', 'messages', 'empty_array');
  }
  for (const [i, m] of messages.entries()) {
    if (typeof m !== 'object' || m === null || !ROLES.includes(m.role) || typeof m.content !== 'string') {
      return error(400, `Invalid value for 'messages[${i}]'.`, 'invalid_request_error', `messages[${i}]`, 'invalid_value');
    }
  }
  const temperature = fields.temperature ?? 1;
  if (typeof temperature !== 'number' || temperature < 0 || temperature > 2) {
    return error(400, `Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got ${String(temperature)} instead.`, 'invalid_request_error', 'temperature', 'decimal_above_max_value');
  }
  const maxTokens = fields.max_tokens;
  if (maxTokens !== undefined && (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1)) {
    return error(400, `Invalid 'max_tokens': integer below minimum value.`, 'invalid_request_error', 'max_tokens', 'integer_below_min_value');
  }
  const answer = reply ?? fakeAnswer(messages as { role: string; content: string }[]);
  const id = `chatcmpl-fake${counts.size}${Date.now()}`;
  const created = Math.floor(Date.now() / 1000);
  if (fields.stream !== true) {
    return Response.json({
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: answer, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 100, completion_tokens: answer.length >> 2, total_tokens: 100 + (answer.length >> 2) },
    });
  }
  const chunk = (delta: object, finish: string | null) =>
    JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const words = answer.split(/(?= )/);
  const events = [chunk({ role: 'assistant', content: '', refusal: null }, null), ...words.map((w) => chunk({ content: w }, null))];
  if (fault === 'stall' || fault === 'truncated') return sse(events.slice(0, 4), fault === 'stall');
  return sse([...events, chunk({}, 'stop'), '[DONE]']);
}

/**
 * The fake model: it quotes the first sentence of each of the first two numbered
 * passages (`<passage number="n" …>` blocks) in the last user message and cites them
 * ("…" and "café" test UTF-8 splits).
 */
export function fakeAnswer(messages: { role: string; content: string }[]): string {
  const prompt = messages.findLast((m) => m.role === 'user')?.content ?? '';
  const quotes: string[] = [];
  for (const match of prompt.matchAll(/^<passage number="(\d+)"[^\n]*\n([^\n]*)/gm)) {
    if (quotes.length === 2) break;
    const sentence = (match[2] ?? '').split(/(?<=[.!?])\s/)[0]?.trim();
    if (sentence) quotes.push(`${sentence.replace(/[.!?]$/, '')} [${match[1]}].`);
  }
  return quotes.length ? `From the café’s notes … ${quotes.join(' ')}` : 'I could not find that in the documents.';
}

/** An event stream written in odd-sized byte slices, so events and characters split anywhere. */
function sse(datas: string[], stallAtEnd = false): Response {
  const bytes = new TextEncoder().encode(datas.map((d) => `data: ${d}\n\n`).join(''));
  const sizes = [7, 1, 23, 2, 61, 5, 13];
  let offset = 0;
  let turn = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (offset >= bytes.length) {
        if (stallAtEnd) await new Promise<void>((resolve) => (timer = unref(setTimeout(resolve, HANG_MS))));
        controller.close();
        return;
      }
      let end = Math.min(bytes.length, offset + sizes[turn++ % sizes.length]!);
      // Cut inside every multi-byte character, right after its lead byte.
      const lead = bytes.subarray(offset, end).findIndex((byte) => byte >= 0xc0);
      if (lead >= 0) end = offset + lead + 1;
      controller.enqueue(bytes.slice(offset, end));
      offset = end;
      // A timer (not a microtask) keeps a slice from being merged with the next on the wire;
      // every few slices, and at each cut character, is enough and keeps the tests quick.
      if (lead >= 0 || turn % 4 === 0) await sleep(0);
    },
    cancel() {
      clearTimeout(timer);
    },
  });
  return new Response(stream, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } });
}

function error(status: number, message: string, type = 'invalid_request_error', param: string | null = null, code: string | null = null): Response {
  return Response.json({ error: { message, type, param, code } }, { status });
}

function modelNotFound(model: string): Response {
  return error(404, `The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', null, 'model_not_found');
}

const sleep = (ms: number) => new Promise<void>((resolve) => unref(setTimeout(resolve, ms)));

/** Node's timers keep the process alive; a hanging fake must not keep vitest from exiting. */
function unref<T>(timer: T): T {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}
