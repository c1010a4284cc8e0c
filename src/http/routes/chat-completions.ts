import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { cachedAnswer } from '../response-cache';
import { citationsOf, startAnswer } from '../../generation/answer';
import type { ChatMessage } from '../../domain';
import type { AppEnv } from '../app-env';
import { guard, ROUTE_COST } from '../guard';
import { REQUEST_LIMITS as L } from '../../limits';
import { atMost, chatWithinTotal, readJson, Retrieval, retrievalOptions } from '../validation';

/** A message's text length: a string's, or its parts' together. */
const contentChars = (content: string | { text?: string }[] | null) =>
  typeof content === 'string' ? content.length : (content ?? []).reduce((sum, part) => sum + (part.text?.length ?? 0), 0);

/** OpenAI's message content: a string, or parts of which the text ones are read. */
const Content = z
  .union([
    z.string(),
    z
      .array(z.object({ type: z.string().max(L.maxLabelChars, atMost(L.maxLabelChars)), text: z.string().optional() }))
      .max(L.maxContentParts, atMost(L.maxContentParts, 'parts')),
  ])
  .nullable()
  .refine((content) => contentChars(content) <= L.maxMessageChars, atMost(L.maxMessageChars));

/** OpenAI's chat completion request; the engine's retrieval fields may be added. */
const ChatCompletionsBody = z
  .object({
    model: z.string().max(L.maxLabelChars, atMost(L.maxLabelChars)).optional(),
    messages: z
      .array(z.object({ role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']), content: Content }))
      .min(1)
      .max(L.maxChatMessages, atMost(L.maxChatMessages, 'messages')),
    stream: z.boolean().default(false),
    ...Retrieval,
  })
  .refine((b) => b.messages.some((m) => m.role === 'user'), { message: 'messages: at least one user message is needed' })
  .superRefine(chatWithinTotal((m: { content: Parameters<typeof contentChars>[0] }) => contentChars(m.content)));

/**
 * The engine's messages. `system` and `developer` are both the client's instructions: the
 * prompt builder places them after the engine's rules, labelled as unable to override them
 * (generation/prompt.ts), so neither replaces the rules. Tool results are dropped.
 */
function toChatMessages(messages: z.infer<typeof ChatCompletionsBody>['messages']): ChatMessage[] {
  return messages
    .filter((m) => m.role !== 'tool')
    .map((m) => ({
      role: m.role === 'developer' ? 'system' : (m.role as ChatMessage['role']),
      content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((part) => part.text ?? '').join(''),
    }));
}

/**
 * `POST /v1/chat/completions` in OpenAI's format, so existing OpenAI clients and SDKs can
 * ask the engine: the answer comes from retrieval over the indexed documents, with [n]
 * citations; `citations` is an extra field that such clients ignore.
 */
export const chatCompletionsRoutes = new Hono<AppEnv>();

chatCompletionsRoutes.post('/', guard('read', { cost: ROUTE_COST.chat }), async (c) => {
  const { services, principal } = c.var;
  const body = await readJson(c, ChatCompletionsBody);
  const messages = toChatMessages(body.messages);
  const options = retrievalOptions(body, services, principal);
  const id = `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const model = services.chat.model;

  if (!body.stream) {
    // Cached: the answer and its citations; id and created are this response's own.
    const { answer, citations } = await cachedAnswer(c, { route: 'chat-completions', ...options, messages }, async () => {
      const { passages, pieces } = await startAnswer(services, messages, options);
      let answer = '';
      for await (const piece of pieces) answer += piece;
      return { answer, citations: citationsOf(answer, passages) };
    });
    return c.json({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
      citations,
    });
  }
  const { pieces } = await startAnswer(services, messages, options);
  const chunk = (delta: Record<string, string>, finish: string | null) =>
    JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] });
  return streamSSE(c, async (stream) => {
    await stream.writeSSE({ data: chunk({ role: 'assistant' }, null) });
    for await (const piece of pieces) await stream.writeSSE({ data: chunk({ content: piece }, null) });
    await stream.writeSSE({ data: chunk({}, 'stop') });
    await stream.writeSSE({ data: '[DONE]' });
  });
});
