import { Hono } from 'hono';
import { z } from 'zod';
import type { AppEnv } from '../app-env';
import { describeRoute, openApiDocument } from '../openapi';

/** The API's description (OpenAPI 3.1) and a page that reads it, both public and self-contained. */
export const referenceRoutes = new Hono<AppEnv>();

referenceRoutes.get('/openapi.json', (c) => c.json(openApiDocument()));
referenceRoutes.get('/docs', (c) => c.html(referencePage(openApiDocument())));

const escape = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const pretty = (value: unknown) => `<pre>${escape(JSON.stringify(value, null, 2))}</pre>`;

type Operation = {
  summary: string;
  description?: string;
  parameters?: { name: string; in: string; required: boolean; schema: unknown }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }>;
};

/** The reference as HTML: every route, its scope, parameters, body and answers. No script, no style from elsewhere. */
function referencePage(document: Record<string, unknown>): string {
  const info = document.info as { title: string; description: string };
  const paths = document.paths as Record<string, Record<string, Operation>>;
  const sections = Object.entries(paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => {
      const parameters = op.parameters?.length
        ? `<h4>Parameters</h4><ul>${op.parameters
            .map((p) => `<li><code>${escape(p.name)}</code> (${p.in}${p.required ? ', required' : ''})${pretty(p.schema)}</li>`)
            .join('')}</ul>`
        : '';
      const body = op.requestBody
        ? `<h4>Body</h4>${Object.entries(op.requestBody.content).map(([type, { schema }]) => `<p><code>${escape(type)}</code></p>${pretty(schema)}`).join('')}`
        : '';
      const responses = `<h4>Answers</h4><ul>${Object.entries(op.responses)
        .map(([status, r]) => `<li><strong>${status}</strong> ${escape(r.description)}${r.content ? Object.values(r.content).map(({ schema }) => `<details><summary>shape</summary>${pretty(schema)}</details>`).join('') : ''}</li>`)
        .join('')}</ul>`;
      return `<section id="${escape(`${method}-${path}`)}"><h3><code>${method.toUpperCase()} ${escape(path)}</code> ${escape(op.summary)}</h3>${(op.description ?? '')
        .split('\n\n')
        .map((p) => `<p>${escape(p)}</p>`)
        .join('')}${parameters}${body}${responses}</section>`;
    }),
  );
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(info.title)}: API reference</title></head><body><main><h1>${escape(info.title)}: API reference</h1><p>${escape(info.description)}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Keys go in <code>Authorization: Bearer rag_…</code> or <code>X-API-Key</code>.</p>${sections.join('\n')}</main></body></html>`;
}

describeRoute({
  method: 'get',
  path: '/openapi.json',
  summary: 'This API description (OpenAPI 3.1)',
  access: 'public',
  responses: { 200: { description: 'The OpenAPI document.', schema: z.object({ openapi: z.literal('3.1.0') }).passthrough() } },
});
describeRoute({
  method: 'get',
  path: '/docs',
  summary: 'The API reference, for people',
  access: 'public',
  responses: { 200: { description: 'An HTML page.', contentType: 'text/html' } },
});
