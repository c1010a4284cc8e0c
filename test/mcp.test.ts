import { exports } from 'cloudflare:workers';
import { env } from 'cloudflare:workers';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { uploadText, waitUntilSettled } from './helpers';

/**
 * The official MCP client SDK against the engine's `/mcp` endpoint (Streamable HTTP): the
 * client's requests go to the engine's fetch handler, as over the network.
 */
const NAMESPACE = 'mcp';
let documentId: string;

async function connect(fetch: (request: Request) => Promise<Response>, headers: Record<string, string> = {}) {
  const client = new Client({ name: 'test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL('http://rag.test/mcp'), {
    fetch: (url, init) => fetch(new Request(url, init)),
    requestInit: { headers },
  });
  await client.connect(transport);
  return client;
}
const engine = (request: Request) => exports.default.fetch(request);
const text = (result: unknown) => JSON.parse(((result as { content: { text: string }[] }).content[0] as { text: string }).text);

beforeAll(async () => {
  const doc = await uploadText({
    namespace: NAMESPACE,
    title: 'Lighthouse log',
    text: '# Keeping the light\n\nKeepers trimmed the wick every four hours.\n\n# Fuel\n\nThe lamp burned whale oil until 1880, then kerosene.',
    filename: 'log.md',
  });
  documentId = doc.id;
  await waitUntilSettled(doc.id);
});

describe('the MCP server at /mcp, with the official client', () => {
  it('lists its tools', async () => {
    const client = await connect(engine);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['ask', 'get_document_passages', 'list_documents', 'search']);
    expect(tools.find((t) => t.name === 'search')?.inputSchema.required).toEqual(['query']);
  });

  it('searches passages', async () => {
    const client = await connect(engine);
    const result = await client.callTool({ name: 'search', arguments: { query: 'what fuel did the lamp burn', namespace: NAMESPACE, topK: 3 } });
    expect(result.isError).toBeFalsy();
    const { passages } = text(result);
    expect(passages[0]).toMatchObject({ documentId, title: 'Lighthouse log' });
    expect(passages[0].text).toContain('whale oil');
  });

  it('answers with citations', async () => {
    const client = await connect(engine);
    const { answer, citations } = text(await client.callTool({ name: 'ask', arguments: { question: 'What did the lamp burn until 1880?', namespace: NAMESPACE } }));
    expect(answer).toMatch(/whale oil.*\[1\]/s);
    expect(citations[0]).toMatchObject({ number: 1, documentId });
  });

  it('lists documents and reads one, in order', async () => {
    const client = await connect(engine);
    const { documents } = text(await client.callTool({ name: 'list_documents', arguments: { namespace: NAMESPACE } }));
    expect(documents.map((d: { id: string }) => d.id)).toContain(documentId);
    const read = text(await client.callTool({ name: 'get_document_passages', arguments: { documentId } }));
    expect(read.document).toMatchObject({ id: documentId, status: 'ready' });
    expect(read.passages.map((p: { text: string }) => p.text).join('\n')).toMatch(/trimmed the wick[\s\S]*whale oil/);
    const unknown = await client.callTool({ name: 'get_document_passages', arguments: { documentId: 'f'.repeat(32) } });
    expect(unknown.isError).toBe(true);
  });

  it('takes the same keys, scopes and namespaces as the HTTP API', async () => {
    const admin = 'b'.repeat(43);
    const authEnv = { ...env, AUTH_ENABLED: 'true', ADMIN_API_KEY: admin } as unknown as Env;
    const withAuth = (request: Request) => Promise.resolve(app.fetch(request, authEnv));
    await expect(connect(withAuth)).rejects.toThrow(/401|API key/i);

    const created = await app.fetch(
      new Request('http://rag.test/v1/keys', {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'agent', scopes: ['read'], namespaces: ['elsewhere'] }),
      }),
      authEnv,
    );
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    const client = await connect(withAuth, { authorization: `Bearer ${key}` });
    const denied = await client.callTool({ name: 'search', arguments: { query: 'lamp fuel', namespace: NAMESPACE } });
    expect(denied.isError).toBe(true);
    expect(JSON.stringify(denied.content)).toMatch(/namespace/);
    // Its own namespace is its default: it sees nothing of the other tenant's document.
    expect(text(await client.callTool({ name: 'search', arguments: { query: 'lamp fuel whale oil' } })).passages).toEqual([]);
    const hidden = await client.callTool({ name: 'get_document_passages', arguments: { documentId } });
    expect(hidden.isError).toBe(true);
  });
});
