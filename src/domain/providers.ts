/**
 * The interfaces of the outside services the engine calls: embedding models, chat models and
 * rerankers. Every implementation is batch-first and turns its backend's failures into
 * `AppError`s (retryable or not).
 */

/** Turns texts into vectors of a fixed dimension. */
export interface EmbeddingProvider {
  /** Identifies the model; stored with each chunk so a model change is detectable. */
  readonly model: string;
  readonly dimensions: number;
  /** Most texts accepted by one `embed` call. */
  readonly maxBatchSize: number;
  /** One vector per text, in order. */
  embed(texts: string[]): Promise<Float32Array[]>;
}

/** A passage an answer is drawn from, numbered from 1 in the order given. */
export interface ContextPassage {
  text: string;
  title: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A question to answer from passages: what generation/ turns into a prompt, or quotes from. */
export interface ChatRequest {
  /** The user's question (the last user message). */
  question: string;
  /**
   * Earlier turns, oldest first, without the question. `system` messages here are the
   * client's instructions: the prompt puts them after the engine's rules, never in their place.
   */
  history: ChatMessage[];
  passages: ContextPassage[];
}

/**
 * A language model behind an API (Workers AI, OpenAI). It only completes messages: generation/
 * builds the prompt, fits it to the window, answers without a call when there is nothing to
 * answer from, and checks the citations. An answer with no text, or one that cannot be read,
 * is a retryable `provider_error` from every implementation.
 */
export interface CompletionModel {
  readonly model: string;
  /** Tokens of prompt and answer together, for generation/ to fit the prompt. */
  readonly contextWindow: number;
  /** Longest answer in tokens. */
  readonly maxTokens: number;
  /**
   * Yields the completion of `messages` in pieces; joined, they are the whole answer. `options`
   * override the configured temperature and answer length for this call (`maxTokens` at most
   * the model's `maxTokens`, which the prompt was fitted for).
   */
  complete(messages: ChatMessage[], options?: CompletionOptions): AsyncIterable<string>;
}

/** A request's own sampling settings (OpenAI's `temperature`, `max_tokens`). */
export interface CompletionOptions {
  temperature?: number;
  maxTokens?: number;
}

/**
 * CHAT_PROVIDER=extractive, the offline default: no model at all. generation/ answers by quoting
 * the passages (generation/extractive-answerer.ts), which takes the question and passages, not a
 * prompt, so there is nothing here to call.
 */
export interface NoChatModel {
  readonly model: 'extractive';
}

/** What answers questions, as the composition root chose it; generation/ tells the two apart. */
export type ChatModel = CompletionModel | NoChatModel;

export interface Reranker {
  readonly model: string;
  /** Most passages scored in one call. */
  readonly maxBatchSize: number;
  /** One relevance score per text, in the order given (higher is more relevant). */
  score(query: string, texts: string[]): Promise<number[]>;
}

/** Reorders passages by relevance to a query (a cross-encoder), after fusion. */
