import { env, exports } from 'cloudflare:workers';

const BASE = 'http://rag.test';

/** Calls the Worker's HTTP API as a client would. */
export function api(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, init));
}

export function postJson(path: string, body: unknown): Promise<Response> {
  return api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** A file from ../shared/data (served by the TEST_DATA binding, see vitest.config.ts). */
export async function sampleFile(path: string): Promise<Uint8Array> {
  const response = await env.TEST_DATA.fetch(`http://data/${path}`);
  if (!response.ok) throw new Error(`sample file ${path}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

export interface UploadedDocument {
  id: string;
  title: string;
  status: string;
  duplicate: boolean;
}

export async function uploadFiles(
  files: { name: string; bytes: Uint8Array }[],
  fields: Record<string, string> = {},
): Promise<UploadedDocument[]> {
  const form = new FormData();
  for (const file of files) form.append('file', new File([file.bytes], file.name));
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  const response = await api('/v1/documents', { method: 'POST', body: form });
  if (response.status !== 202) throw new Error(`upload: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { documents: UploadedDocument[] }).documents;
}

export async function uploadText(body: Record<string, unknown>): Promise<UploadedDocument> {
  const response = await postJson('/v1/documents', body);
  if (response.status !== 202) throw new Error(`upload: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { documents: UploadedDocument[] }).documents[0] as UploadedDocument;
}

export interface DocumentView {
  id: string;
  status: string;
  error: string | null;
  chunkCount: number;
  title: string;
  namespace: string;
  filename: string | null;
  type: string;
  metadata: Record<string, unknown>;
}

/** Polls a document until ingestion settles (ready or failed), through the real queue. */
export async function waitUntilSettled(id: string, timeoutMs = 30_000): Promise<DocumentView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await api(`/v1/documents/${id}`);
    const document = (await response.json()) as DocumentView;
    if (document.status === 'ready' || document.status === 'failed') return document;
    if (Date.now() > deadline) throw new Error(`document ${id} still ${document.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface PassageView {
  number: number;
  id: string;
  documentId: string;
  title: string;
  text: string;
  score: number;
  position: { index: number; page: number | null; headings: string[] | null };
}

export async function query(body: Record<string, unknown>): Promise<PassageView[]> {
  const response = await postJson('/v1/query', body);
  if (response.status !== 200) throw new Error(`query: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { passages: PassageView[] }).passages;
}
