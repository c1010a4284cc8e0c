import { AppError, type ChatMessage, type ChatRequest, type CompletionModel, type ContextPassage } from '../domain';
import { countTokens, truncateToTokens } from '../text/tokens';
import { buildChatMessages, renderPassage, systemPrompt } from './prompt';

/**
 * Share of the window the prompt estimate may fill. `countTokens` estimates BERT WordPiece; the
 * BPE tokenizers of Llama and GPT spend more tokens on some text, so the estimate needs headroom.
 */
export const PROMPT_SHARE = 0.75;
/** Role markers the chat template adds, and the prompt's <documents>/"Question:" scaffolding. */
export const MESSAGE_OVERHEAD = 8;
/** Less room than this for the prompt leaves too little for passages: a misconfiguration. */
export const MIN_PROMPT_TOKENS = 1_000;

/** The prompt as sent, and the passages it holds (numbered from 1): all a citation may point at. */
export interface FittedPrompt {
  messages: ChatMessage[];
  passages: ContextPassage[];
}

type Window = Pick<CompletionModel, 'model' | 'contextWindow' | 'maxTokens'>;

/** Estimated tokens the prompt may take: the window's share, less the longest answer. */
export function promptBudget(chat: Window): number {
  const budget = Math.floor(chat.contextWindow * PROMPT_SHARE) - chat.maxTokens;
  if (budget < MIN_PROMPT_TOKENS) {
    throw new AppError('misconfigured', `LLM_MAX_TOKENS (${chat.maxTokens}) leaves too little of ${chat.model}'s ${chat.contextWindow}-token context for the passages.`);
  }
  return budget;
}

/**
 * The prompt (prompt.ts) cut to fit the model's window: the lowest-ranked passages go first, so
 * the numbers of those kept do not change; then the oldest turns of the conversation. The
 * client's instructions are never dropped (the prompt builder caps them).
 */
export function fitPrompt(request: ChatRequest, chat: Window): FittedPrompt {
  const system = systemPrompt(request.history);
  let left = promptBudget(chat) - countTokens(system) - countTokens(request.question) - 2 * MESSAGE_OVERHEAD;
  const passages: ContextPassage[] = [];
  for (const passage of request.passages) {
    // Counted as sent: delimiters, title and escapes included.
    const cost = countTokens(renderPassage(passage, passages.length + 1));
    if (cost > left) {
      // Always keep the best passage, cut to fit: an answer needs something to quote.
      if (passages.length === 0) {
        const frame = countTokens(renderPassage({ ...passage, text: '' }, 1));
        passages.push({ ...passage, text: truncateToTokens(passage.text, Math.max(0, left - frame)) });
      }
      break;
    }
    passages.push(passage);
    left -= cost;
  }
  const turns: ChatMessage[] = [];
  for (const message of request.history.filter((m) => m.role !== 'system').reverse()) {
    left -= countTokens(message.content) + MESSAGE_OVERHEAD;
    if (left < 0) break;
    turns.unshift(message);
  }
  const instructions = request.history.filter((m) => m.role === 'system');
  return { messages: buildChatMessages({ ...request, passages, history: [...instructions, ...turns] }), passages };
}
