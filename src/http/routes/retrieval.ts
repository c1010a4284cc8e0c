import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { cachedAnswer } from '../response-cache';
import { citationsOf, startAnswer } from '../../generation/answer';
import { search } from '../../retrieval/search';
import { atMost } from '../../ingestion/metadata-rules';
import type { AppEnv } from '../app-env';
import { guard, ROUTE_COST } from '../guard';
import { presentPassage } from '../present';
import { REQUEST_LIMITS as L } from '../../limits';
import { chatWithinTotal, QueryText, readJson, Retrieval, retrievalOptions } from '../validation';
import { describeRoute } from '../openapi';
import { CitationView, PassageView } from '../present';

const QueryBody = z.object({ query: QueryText, ...Retrieval });

const Message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(L.maxMessageChars, atMost(L.maxMessageChars)) });
const ChatBody = z
  .object({
    query: QueryText.optional(),
    messages: z.array(Message).min(1).max(L.maxChatMessages, atMost(L.maxChatMessages, 'messages')).optional(),
    stream: z.boolean().default(false),
    ...Retrieval,
  })
  .refine((b) => b.query !== undefined || b.messages?.some((m) => m.role === 'user'), {
    message: 'send "query", or "messages" with at least one user message',
  })
  .superRefine(chatWithinTotal((m: z.infer<typeof Message>) => m.content.length));

export const retrievalRoutes = new Hono<AppEnv>();

retrievalRoutes.post('/query', guard('read'), async (c) => {
  const { services, principal } = c.var;
  const body = await readJson(c, QueryBody);
  const options = retrievalOptions(body, services, principal);
  const passages = await cachedAnswer(c, { route: 'query', ...options, query: body.query }, async () =>
    (await search(services, { query: body.query, ...options })).map(presentPassage),
  );
  return c.json({ query: body.query, passages });
});

retrievalRoutes.post('/chat', guard('read', { cost: ROUTE_COST.chat }), async (c) => {
  const { services, principal } = c.var;
  const body = await readJson(c, ChatBody);
  const messages = body.messages ?? [{ role: 'user' as const, content: body.query ?? '' }];
  const options = retrievalOptions(body, services, principal);

  if (!body.stream) {
    return c.json(
      await cachedAnswer(c, { route: 'chat', ...options, messages }, async () => {
        const { passages, pieces, searchQuery } = await startAnswer(services, messages, options);
        let answer = '';
        for await (const piece of pieces) answer += piece;
        return { answer, citations: citationsOf(answer, passages), passages: passages.map(presentPassage), searchQuery };
      }),
    );
  }
  const { passages, pieces } = await startAnswer(services, messages, options);
  // Server-sent events: the passages first (so a client can show sources at once), then
  // the answer as it is produced, then the citations it made.
  return streamSSE(c, async (stream) => {
    await stream.writeSSE({ event: 'passages', data: JSON.stringify(passages.map(presentPassage)) });
    let answer = '';
    for await (const piece of pieces) {
      answer += piece;
      await stream.writeSSE({ event: 'delta', data: JSON.stringify({ text: piece }) });
    }
    await stream.writeSSE({ event: 'done', data: JSON.stringify({ answer, citations: citationsOf(answer, passages) }) });
  });
});

describeRoute({
  method: 'post',
  path: '/v1/query',
  summary: 'Search passages',
  access: 'read',
  body: QueryBody,
  responses: { 200: { description: 'The best passages, best first.', schema: z.object({ query: z.string(), passages: z.array(PassageView) }) } },
});
describeRoute({
  method: 'post',
  path: '/v1/chat',
  summary: 'Ask for a cited answer',
  description: 'With `stream: true`, server-sent events: `passages`, then `delta` pieces of the answer, then `done` with the citations.',
  access: 'read',
  body: ChatBody,
  responses: {
    200: {
      description: 'The answer, its citations, and the passages it was given.',
      schema: z.object({ answer: z.string(), citations: z.array(CitationView), passages: z.array(PassageView), searchQuery: z.string() }),
    },
  },
});
