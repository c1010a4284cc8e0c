import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Context } from 'hono';
import { Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../domain/errors';
import { citationsOf, startAnswer } from '../../generation/answer';
import { atMost } from '../../ingestion/metadata-rules';
import { REQUEST_LIMITS as L } from '../../limits';
import { search } from '../../retrieval/search';
import type { AppEnv } from '../app-env';
import { JSON_BODY_LIMIT, limitBody } from '../body-limit';
import { chargeMore, guard, ROUTE_COST } from '../guard';
import { servingScope } from '../../retrieval/generations';
import { presentDocument, presentPassage } from '../present';
import { listingNamespace, visibleDocument } from '../tenancy';
import { QueryText, Retrieval, retrievalOptions, validate } from '../validation';
import { describeRoute } from '../openapi';

/**
 * The engine as a Model Context Protocol server (Streamable HTTP, stateless: each POST is one
 * exchange answered as JSON), for agents. Its tools do what the HTTP API does, under the same
 * key, scopes, namespaces and rate limits: the request's principal is the key's. A tool's
 * refusal (a namespace the key lacks, an unknown document) is a tool error the agent can read,
 * not an HTTP error.
 */
export const mcpRoutes = new Hono<AppEnv>();

mcpRoutes.all('/', limitBody(JSON_BODY_LIMIT), guard('read'), async (c) => {
  const server = new McpServer({ name: 'rag-engine', version: '1.0.0' });
  registerTools(server, c);
  // Stateless: no session id, no server-initiated stream (GET answers 405).
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  await server.connect(transport);
  return transport.handleRequest(c.req.raw);
});

const asJson = (value: unknown): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(value) }],
  structuredContent: value as Record<string, unknown>,
});

/** Runs a tool, turning the engine's refusals into tool errors with their message. */
async function tool(work: () => Promise<unknown>): Promise<CallToolResult> {
  try {
    return asJson(await work());
  } catch (error) {
    if (error instanceof AppError && error.status < 500) return { isError: true, content: [{ type: 'text', text: error.message }] };
    throw error;
  }
}

function registerTools(server: McpServer, c: Context<AppEnv>): void {
  const { services, principal } = c.var;
  const { topK, namespace, filter, mode } = Retrieval;
  const retrievalOf = (input: Record<string, unknown>) =>
    retrievalOptions(validate(z.object({ topK, namespace, filter, mode }), input), services, principal);

  server.registerTool(
    'search',
    {
      title: 'Search passages',
      description: 'Finds the passages of the indexed documents that best match a query (hybrid vector and keyword search), with their document, title and place.',
      inputSchema: { query: QueryText, topK, namespace, filter, mode },
      annotations: { readOnlyHint: true },
    },
    (input) =>
      tool(async () => {
        const passages = await search(services, { query: input.query, ...retrievalOf(input) });
        return { query: input.query, passages: passages.map(presentPassage) };
      }),
  );

  server.registerTool(
    'ask',
    {
      title: 'Ask for a cited answer',
      description: 'Answers a question from the indexed documents only, citing the passages it used as [n]; says so when they do not contain the answer.',
      inputSchema: { question: QueryText, topK, namespace, filter, mode },
      annotations: { readOnlyHint: true },
    },
    (input) =>
      tool(async () => {
        await chargeMore(c, 'read', ROUTE_COST.chat - 1); // an answer costs what /v1/chat does
        const { passages, pieces } = await startAnswer(services, [{ role: 'user', content: input.question }], retrievalOf(input));
        let answer = '';
        for await (const piece of pieces) answer += piece;
        return { answer, citations: citationsOf(answer, passages), passages: passages.map(presentPassage) };
      }),
  );

  server.registerTool(
    'list_documents',
    {
      title: 'List documents',
      description: 'Lists the documents of a namespace, newest first, with their status (queued, processing, ready, failed).',
      inputSchema: {
        namespace,
        status: z.enum(['queued', 'processing', 'ready', 'failed']).optional(),
        limit: z.number().int().min(1).max(L.maxPageSize, atMost(L.maxPageSize, 'documents a page')).default(20),
        cursor: z.string().regex(/^\d+$/).optional(),
      },
      annotations: { readOnlyHint: true },
    },
    (input) =>
      tool(async () => {
        const page = await services.documents.list({
          namespace: listingNamespace(principal, input.namespace, services.config),
          status: input.status,
          limit: input.limit,
          cursor: input.cursor === undefined ? undefined : Number(input.cursor),
        });
        return { documents: page.documents.map((d) => presentDocument(d)), nextCursor: page.nextCursor };
      }),
  );

  server.registerTool(
    'get_document_passages',
    {
      title: 'Read a document',
      description: "A document's passages in order (its searchable text, with pages and headings), a page at a time.",
      inputSchema: {
        documentId: z.string().min(1).max(64),
        from: z.number().int().min(0).default(0),
        limit: z.number().int().min(1).max(100).default(20),
      },
      annotations: { readOnlyHint: true },
    },
    (input) =>
      tool(async () => {
        const document = await visibleDocument(c, input.documentId);
        const { engine } = await servingScope(services, document.namespace);
        const passages = await engine.documentPassages(document.namespace, document.id, { from: input.from, limit: input.limit });
        return {
          document: presentDocument(document),
          passages: passages.map((p) => ({ id: p.id, text: p.text, position: p.position, page: p.page, headings: p.headings })),
          nextFrom: passages.length === input.limit ? input.from + input.limit : null,
        };
      }),
  );
}

describeRoute({
  method: 'post',
  path: '/mcp',
  summary: 'Model Context Protocol (Streamable HTTP, stateless)',
  description: 'JSON-RPC messages of the Model Context Protocol; tools `search`, `ask`, `list_documents`, `get_document_passages`.',
  access: 'read',
  body: z.object({ jsonrpc: z.literal('2.0') }).passthrough(),
  responses: { 200: { description: 'The JSON-RPC answer.', schema: z.object({ jsonrpc: z.literal('2.0') }).passthrough() } },
});
