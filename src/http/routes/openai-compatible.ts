import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { cachedAnswer } from '../response-cache';
import { AppError } from '../../domain/errors';
import { type AnswerOutcome, citationsOf, startAnswer } from '../../generation/answer';
import type { ChatMessage } from '../../domain';
import { atMost } from '../../ingestion/metadata-rules';
import type { AppEnv } from '../app-env';
import { JSON_BODY_LIMIT, limitBody } from '../body-limit';
import { openAIError } from '../errors';
import { guard, ROUTE_COST } from '../guard';
import { REQUEST_LIMITS as L } from '../../limits';
import { chatWithinTotal, readJson, Retrieval, retrievalOptions } from '../validation';
import { describeRoute } from '../openapi';

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
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional().transform((t) => t ?? undefined),
    max_tokens: z.number().int().min(1).nullable().optional().transform((t) => t ?? undefined),
    /** OpenAI's newer name for max_tokens; wins when both are sent. */
    max_completion_tokens: z.number().int().min(1).nullable().optional().transform((t) => t ?? undefined),
    /** One answer per request: OpenAI's default, and all the engine gives. */
    n: z.literal(1).nullable().optional(),
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
 * The OpenAI-compatible routes, so existing OpenAI clients and SDKs (base URL: the engine's
 * `/v1`) can ask the engine: `GET /v1/models` and `POST /v1/chat/completions`, whose answers
 * come from retrieval over the indexed documents with [n] citations (`citations` is an extra
 * field such clients ignore). Errors here are in OpenAI's shape.
 */
export const openAIRoutes = new Hono<AppEnv>();
openAIRoutes.onError(openAIError);

/** The models a client may name: the configured chat model (`extractive` offline). */
function models(services: AppEnv['Variables']['services']) {
  return [{ id: services.chat.model, object: 'model' as const, created: 0, owned_by: 'rag-engine' }];
}

openAIRoutes.get('/models', guard('read'), (c) => c.json({ object: 'list', data: models(c.var.services) }));

openAIRoutes.get('/models/:id', guard('read'), (c) => {
  const model = models(c.var.services).find((m) => m.id === c.req.param('id'));
  if (!model) throw unknownModel(c.req.param('id'));
  return c.json(model);
});

const unknownModel = (id: string) =>
  new AppError('not_found', `The model "${id}" does not exist here; GET /v1/models lists the models this engine answers with.`);

openAIRoutes.post('/chat/completions', limitBody(JSON_BODY_LIMIT), guard('read', { cost: ROUTE_COST.chat }), async (c) => {
  const { services, principal } = c.var;
  const body = await readJson(c, ChatCompletionsBody);
  const model = services.chat.model;
  if (body.model !== undefined && body.model !== model) throw unknownModel(body.model);
  const messages = toChatMessages(body.messages);
  const options = retrievalOptions(body, services, principal);
  const sampling = { temperature: body.temperature, maxTokens: body.max_completion_tokens ?? body.max_tokens };
  const id = `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const usageOf = (o: AnswerOutcome) => ({ prompt_tokens: o.promptTokens, completion_tokens: o.completionTokens, total_tokens: o.promptTokens + o.completionTokens });

  if (!body.stream) {
    // Cached: the answer, its citations, how it ended and its usage; id and created are this response's own.
    const { answer, citations, finish, usage } = await cachedAnswer(c, { route: 'chat-completions', ...options, messages, sampling }, async () => {
      const stream = await startAnswer(services, messages, options, sampling);
      let answer = '';
      for await (const piece of stream.pieces) answer += piece;
      const outcome = stream.outcome();
      return { answer, citations: citationsOf(answer, stream.passages), finish: outcome.finish, usage: usageOf(outcome) };
    });
    return c.json({
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: finish }],
      usage,
      citations,
    });
  }
  const stream = await startAnswer(services, messages, options, sampling);
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra });
  const choice = (delta: Record<string, string>, finish: string | null) => ({ index: 0, delta, finish_reason: finish });
  return streamSSE(c, async (sse) => {
    await sse.writeSSE({ data: chunk([choice({ role: 'assistant' }, null)]) });
    for await (const piece of stream.pieces) await sse.writeSSE({ data: chunk([choice({ content: piece }, null)]) });
    const outcome = stream.outcome();
    await sse.writeSSE({ data: chunk([choice({}, outcome.finish)]) });
    // As OpenAI does: one more chunk, with no choices, carrying the usage.
    if (body.stream_options?.include_usage) await sse.writeSSE({ data: chunk([], { usage: usageOf(outcome) }) });
    await sse.writeSSE({ data: '[DONE]' });
  });
});

const Model = z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() });

describeRoute({
  method: 'get',
  path: '/v1/models',
  summary: 'The models chat completions answer with (OpenAI format)',
  access: 'read',
  openAIErrors: true,
  responses: { 200: { description: 'The model list.', schema: z.object({ object: z.literal('list'), data: z.array(Model) }) } },
});
describeRoute({
  method: 'get',
  path: '/v1/models/{id}',
  summary: 'One model (OpenAI format)',
  access: 'read',
  openAIErrors: true,
  responses: { 200: { description: 'The model.', schema: Model } },
});
describeRoute({
  method: 'post',
  path: '/v1/chat/completions',
  summary: 'A cited answer in OpenAI chat completion format',
  description: 'With `stream: true`, `chat.completion.chunk` server-sent events ending in `[DONE]`. Retrieval fields (`namespace`, `filter`, `topK`, `mode`) may be added.',
  access: 'read',
  openAIErrors: true,
  body: ChatCompletionsBody,
  responses: { 200: { description: 'A `chat.completion`, with an extra `citations` field.', schema: z.object({ object: z.literal('chat.completion') }).passthrough() } },
});
