import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { api } from './helpers';

/** The API description: valid OpenAPI 3.1 by a real validator, and complete: every route of the app. */
describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const response = await api('/openapi.json');
    expect(response.status).toBe(200);
    const document = await response.json();
    const verdict = (await (await env.OPENAPI_VALIDATOR.fetch('http://validator/', { method: 'POST', body: JSON.stringify(document) })).json()) as {
      valid: boolean;
      version: string;
      errors: unknown;
    };
    expect(verdict.errors).toBeNull();
    expect(verdict).toMatchObject({ valid: true, version: '3.1' });
  });

  it('describes every route the app serves, with its scope, errors and security', async () => {
    const document = (await (await api('/openapi.json')).json()) as {
      paths: Record<string, Record<string, { 'x-scope': string; security: unknown[]; responses: Record<string, unknown>; requestBody?: unknown }>>;
    };
    // Hono lists handlers and middleware; a route is a GET/POST/DELETE (or ALL, for /mcp) whose last handler answers.
    const served = new Set(
      app.routes
        .filter((r) => ['GET', 'POST', 'DELETE', 'ALL'].includes(r.method) && !r.path.includes('*'))
        .map((r) => `${r.method === 'ALL' ? 'POST' : r.method} ${r.path.replace(/:(\w+)/g, '{$1}').replace(/(.)\/$/, '$1')}`),
    );
    const described = new Set(Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`)));
    expect([...served].filter((route) => !described.has(route))).toEqual([]);
    expect([...described].filter((route) => !served.has(route))).toEqual([]);

    const query = document.paths['/v1/query']!.post!;
    expect(query['x-scope']).toBe('read');
    expect(query.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    expect(Object.keys(query.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '413', '415', '429', '503']));
    // The body is the schema that validates it: its caps are there.
    expect(JSON.stringify(query.requestBody)).toMatch(/"maxLength":\s*\d+/);
    expect(document.paths['/health']!.get!.security).toEqual([]);
    expect(document.paths['/v1/keys']!.post!['x-scope']).toBe('admin');
    expect(JSON.stringify(document.paths['/v1/chat/completions']!.post!.responses['400'])).toContain('OpenAIError');
  });
});

describe('GET /docs', () => {
  it('is a self-contained reference page listing every route', async () => {
    const response = await api('/docs');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await response.text();
    for (const route of ['POST /v1/documents', 'POST /v1/query', 'POST /v1/chat/completions', 'GET /v1/models', 'POST /mcp', 'DELETE /v1/keys/{id}']) {
      expect(html).toContain(`<code>${route}</code>`);
    }
    expect(html).not.toMatch(/<script|https?:\/\/(?!json-schema)/);
  });
});
