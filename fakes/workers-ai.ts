import type { AiRunner } from '../src/providers/workers-ai-errors';

/**
 * A stand-in for the Workers AI binding (`env.AI`), which does not run locally. It answers as
 * the real service does, shapes, limits and error texts included, and is never kinder:
 *  - embeddings (`{ text }`): `{ shape: [n, dims], data }` with the model's dimension; by
 *    default unit vectors derived from a hash of model and text (same text, same vector, but
 *    no similarity between related texts: set `embedding` for that); more than 100 texts, an
 *    empty or non-string list → 5006 schema error;
 *  - chat (`{ messages, stream }`): without `stream`, `{ response, usage }`; with it, a
 *    `ReadableStream<Uint8Array>` of `data: {"response":"…","p":"…"}` events (`p` is padding),
 *    a `usage` event and `data: [DONE]`, cut into small chunks that split lines and UTF-8
 *    characters; OpenAI-format models stream `choices[0].delta.content`. Answers stop at
 *    `max_tokens` pieces, or at 256 (Workers AI's default) when none is given;
 *  - reranking (`{ query, contexts, top_k? }`): `{ response: [{ id, score }] }`, best first. The
 *    real bge-reranker is a cross-encoder reading query and passage together; the fake scores
 *    each pair by lexical overlap (a sigmoid of how many of the passage's words occur in the
 *    query), deterministically and from that pair alone, so a relevant passage honestly
 *    outscores an unrelated one and a score does not depend on the rest of the batch (set
 *    `rerankScore` to score otherwise);
 *  - an unknown model → `5007: No such model`; a call whose signal is aborted rejects.
 * Faults are scripted per call: `failNext`, `respondNext`, `delayNext`/`hangNext`, `streamFault`.
 */
export class FakeAi implements AiRunner {
  /** Every call that reached the "service", in order, failed ones included. */
  readonly calls: { model: string; inputs: Record<string, unknown> }[] = [];
  /** Composes the chat answer; by default it quotes and cites every passage it was given. */
  chatReply: (messages: { role: string; content: string }[]) => string | Promise<string> = defaultReply;
  /** Scores one (query, passage) pair for reranking; by default a sigmoid of their word overlap. */
  rerankScore: (query: string, text: string) => number = overlapScore;
  /** Embeds one text at the model's dimension; by default a random unit vector seeded by model and text. */
  embedding: (text: string, dimensions: number, model: string) => ArrayLike<number> = (text, dims, model) => unitVector(`${model}\u0000${text}`, dims);
  /** Bytes per stream chunk: small, so that events and characters arrive split. */
  chunkBytes = 7;
  #script: Step[] = [];

  /** The next `count` calls reject with `new Error(message)`, as the binding throws. */
  failNext(count: number, message: string): this {
    for (let i = 0; i < count; i++) this.#script.push({ kind: 'fail', message });
    return this;
  }

  /** The next call resolves to `value` as is (a malformed answer). */
  respondNext(value: unknown): this {
    this.#script.push({ kind: 'respond', value });
    return this;
  }

  /** The next call answers only after `ms` (or rejects when its signal aborts first). */
  delayNext(ms: number): this {
    this.#script.push({ kind: 'delay', ms });
    return this;
  }

  /** The next `count` calls never answer unless their signal aborts. */
  hangNext(count = 1): this {
    for (let i = 0; i < count; i++) this.#script.push({ kind: 'delay', ms: Infinity });
    return this;
  }

  /** The next chat stream stalls after its first chunk, or ends without `[DONE]`. */
  streamFault(fault: 'stall' | 'truncate'): this {
    this.#script.push({ kind: 'stream', fault });
    return this;
  }

  async run(model: string, inputs: Record<string, unknown>, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    this.calls.push({ model, inputs });
    const step = this.#script.shift();
    const { signal } = options;
    if (signal?.aborted) throw abortError(signal);
    if (step?.kind === 'delay') await wait(step.ms, signal);
    if (step?.kind === 'fail') throw aiError(step.message);
    if (step?.kind === 'respond') return step.value;
    if (model in EMBEDDING_DIMENSIONS) return embed(model, inputs, this.embedding);
    if (model === RERANKER) return rerank(inputs, this.rerankScore);
    if (CHAT_MODELS.has(model) || OPENAI_FORMAT_MODELS.has(model)) {
      return this.#chat(model, inputs, step?.kind === 'stream' ? step.fault : undefined, signal);
    }
    throw aiError(`5007: No such model ${model} or task`);
  }

  async #chat(model: string, inputs: Record<string, unknown>, fault: 'stall' | 'truncate' | undefined, signal?: AbortSignal): Promise<unknown> {
    const messages = inputs.messages;
    if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== 'string' || typeof m?.content !== 'string')) {
      throw schemaError("required properties at '/' are 'prompt', Type mismatch of '/messages'");
    }
    const limit = typeof inputs.max_tokens === 'number' ? inputs.max_tokens : DEFAULT_MAX_TOKENS;
    const pieces = ((await this.chatReply(messages)).match(/\s*\S+/g) ?? []).slice(0, limit);
    const usage = { prompt_tokens: JSON.stringify(messages).length >> 2, completion_tokens: pieces.length, total_tokens: 0 };
    if (inputs.stream !== true) return { response: pieces.join(''), usage };
    const openAi = OPENAI_FORMAT_MODELS.has(model);
    const events: object[] = pieces.map((piece, i) =>
      openAi
        ? { id: 'chatcmpl-fake', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] }
        : { response: piece, p: 'abcdefghijklmnopqrstuvwxyz0123456789'.slice(0, (i * 7) % 37) },
    );
    events.push(openAi ? { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage } : { response: '', usage });
    let text = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('');
    if (fault !== 'truncate') text += 'data: [DONE]\n\n';
    else text = text.slice(0, Math.floor(text.length / 2));
    const bytes = new TextEncoder().encode(text);
    let offset = 0;
    const size = this.chunkBytes;
    const stall = new AbortController(); // a stalled stream still ends when its reader cancels
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (offset > 0 && fault === 'stall') await wait(Infinity, AbortSignal.any([stall.signal, ...(signal ? [signal] : [])])).catch(() => {});
        if (offset >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
      },
      cancel() {
        stall.abort();
      },
    });
  }
}

type Step =
  | { kind: 'fail'; message: string }
  | { kind: 'respond'; value: unknown }
  | { kind: 'delay'; ms: number }
  | { kind: 'stream'; fault: 'stall' | 'truncate' };

/** https://developers.cloudflare.com/workers-ai/models/ (each model's "Output Dimensions"). */
const EMBEDDING_DIMENSIONS: Record<string, number> = {
  '@cf/baai/bge-small-en-v1.5': 384,
  '@cf/baai/bge-base-en-v1.5': 768,
  '@cf/baai/bge-large-en-v1.5': 1024,
  '@cf/baai/bge-m3': 1024,
};
/** Texts per embedding call (the binding validates `text` against the model's schema). */
const MAX_TEXTS = 100;
const RERANKER = '@cf/baai/bge-reranker-base';
const CHAT_MODELS = new Set(['@cf/meta/llama-3.3-70b-instruct-fp8-fast', '@cf/meta/llama-3.1-8b-instruct-fast', '@cf/meta/llama-3.1-8b-instruct-fp8']);
const OPENAI_FORMAT_MODELS = new Set(['@cf/zai-org/glm-4.7-flash', '@cf/google/gemma-4-26b-a4b-it']);
/** Text generation's `max_tokens` default (e.g. the llama-3.3-70b-instruct-fp8-fast page). */
const DEFAULT_MAX_TOKENS = 256;

function embed(model: string, inputs: Record<string, unknown>, embedding: FakeAi['embedding']) {
  const text = typeof inputs.text === 'string' ? [inputs.text] : inputs.text;
  if (!Array.isArray(text) || text.length === 0 || text.some((t) => typeof t !== 'string')) {
    throw schemaError("required properties at '/' are 'requests', Type mismatch of '/text'");
  }
  if (text.length > MAX_TEXTS) throw schemaError(`required properties at '/' are 'requests', Array at '/text' exceeds maxItems ${MAX_TEXTS}`);
  const dims = EMBEDDING_DIMENSIONS[model] as number;
  return { shape: [text.length, dims], data: text.map((t: string) => Array.from(embedding(t, dims, model))), pooling: 'mean' };
}

function rerank(inputs: Record<string, unknown>, score: FakeAi['rerankScore']) {
  const { query, contexts, top_k } = inputs as { query?: unknown; contexts?: unknown; top_k?: unknown };
  if (typeof query !== 'string' || !Array.isArray(contexts) || contexts.some((c) => typeof c?.text !== 'string')) {
    throw schemaError("required properties at '/' are 'query', 'contexts'");
  }
  const scored = contexts.map((c: { text: string }, id) => ({ id, score: score(query, c.text) }));
  scored.sort((a, b) => b.score - a.score);
  return { response: typeof top_k === 'number' ? scored.slice(0, top_k) : scored };
}

function overlapScore(query: string, text: string): number {
  const words = new Set(query.toLowerCase().match(/\w+/g) ?? []);
  const overlap = (text.toLowerCase().match(/\w+/g) ?? []).filter((w) => words.has(w)).length;
  // A sigmoid of the overlap, nudged by a hash so that ties still order deterministically.
  return 1 / (1 + Math.exp(2 - overlap - (hash(text) % 100) / 1000));
}

/** Quotes the first sentence of each numbered passage (`<passage number="n" …>`) in the last message and cites it. */
export function defaultReply(messages: { role: string; content: string }[]): string {
  const prompt = messages.at(-1)?.content ?? '';
  const quotes = [...prompt.matchAll(/^<passage number="(\d+)"[^\n]*\n([^\n.!?]+)/gm)].map((m) => `${m[2]!.trim()} [${m[1]}].`);
  return quotes.length > 0 ? `According to the documents — ${quotes.join(' ')}` : 'I could not find that in the documents.';
}

function unitVector(seed: string, dims: number): number[] {
  let state = hash(seed) || 1;
  const values = Array.from({ length: dims }, () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32 - 0.5;
  });
  const norm = Math.hypot(...values);
  return values.map((v) => v / norm);
}

function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The binding throws plain Errors named AiError whose message starts with the internal code. */
function aiError(message: string): Error {
  const error = new Error(message);
  error.name = 'AiError';
  return error;
}

/** Input that fails the model's JSON schema, worded as the binding words it. */
function schemaError(detail: string): Error {
  return aiError(`5006: Error: oneOf at '/' not met, 0 matches: ${detail}`);
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

function wait(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = Number.isFinite(ms) ? setTimeout(resolve, ms) : undefined;
    signal?.addEventListener('abort', () => {
      if (timer !== undefined) clearTimeout(timer);
      reject(abortError(signal));
    }, { once: true });
  });
}
