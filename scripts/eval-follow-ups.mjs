#!/usr/bin/env node
// Follow-up questions: retrieval of the right document for the second turn of two-turn
// conversations (scripts/data/follow-ups.json), among all the readable sample documents, searched alone (POST /v1/query, as before
// follow-ups were rewritten) and as part of the conversation (POST /v1/chat with the first
// turn, its answer and the follow-up: the engine makes it standalone first).
//
//   node scripts/eval-follow-ups.mjs [--url http://127.0.0.1:8787] [--data ../shared/data] [--top-k 1]
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { authHeaders, commandLine, sleep } from './eval.mjs';

const args = commandLine(
  {
    url: { type: 'string', default: 'http://127.0.0.1:8787' },
    data: { type: 'string', default: new URL('../../shared/data', import.meta.url).pathname },
    namespace: { type: 'string', default: 'follow-ups' },
    'top-k': { type: 'string', default: '1' },
  },
  'usage: node scripts/eval-follow-ups.mjs [--url URL] [--data DIR] [--namespace ns] [--top-k 1] [--api-key K]',
);
const topK = Number(args['top-k']);
const { conversations } = JSON.parse(readFileSync(new URL('./data/follow-ups.json', import.meta.url), 'utf8'));
const post = async (path, body) => {
  const response = await fetch(`${args.url}${path}`, { method: 'POST', headers: { ...authHeaders, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
};

// The documents, among every readable sample document as distractors (an identical re-upload is the same document).
const samples = JSON.parse(readFileSync(new URL('../test/sample-documents.json', import.meta.url), 'utf8'));
const files = [...new Set([...conversations.map((c) => c.document), ...Object.keys(samples.readable)])];
const form = new FormData();
for (const file of files) form.append('file', new Blob([readFileSync(join(args.data, 'documents', file))]), basename(file));
form.append('namespace', args.namespace);
const uploaded = await fetch(`${args.url}/v1/documents`, { method: 'POST', body: form, headers: { ...authHeaders } });
if (!uploaded.ok) throw new Error(`upload: ${uploaded.status} ${await uploaded.text()}`);
const idOf = new Map();
const { documents } = await uploaded.json();
files.forEach((file, i) => idOf.set(file, documents[i].id));
for (const id of idOf.values()) {
  for (;;) {
    const d = await (await fetch(`${args.url}/v1/documents/${id}`, { headers: { ...authHeaders } })).json();
    if (d.status === 'ready') break;
    if (d.status === 'failed') throw new Error(`${id} failed: ${d.error}`);
    await sleep(300);
  }
}

const documentsOf = (passages) => [...new Set(passages.map((p) => p.documentId))].slice(0, topK);
let alone = 0;
let rewritten = 0;
console.log(`| document | follow-up | alone | in conversation | searched by |`);
console.log(`|---|---|---|---|---|`);
for (const c of conversations) {
  const target = idOf.get(c.document);
  const first = await post('/v1/chat', { query: c.first, namespace: args.namespace, topK });
  const single = await post('/v1/query', { query: c.second, namespace: args.namespace, topK });
  const chat = await post('/v1/chat', {
    messages: [
      { role: 'user', content: c.first },
      { role: 'assistant', content: first.answer },
      { role: 'user', content: c.second },
    ],
    namespace: args.namespace,
    topK,
  });
  const hitAlone = documentsOf(single.passages).includes(target);
  const hitChat = documentsOf(chat.passages).includes(target);
  alone += hitAlone;
  rewritten += hitChat;
  console.log(`| ${basename(c.document)} | ${c.second} | ${hitAlone ? 'yes' : 'no'} | ${hitChat ? 'yes' : 'no'} | ${chat.searchQuery} |`);
}
console.log(`\nright document in the top ${topK}: alone ${alone}/${conversations.length}, in conversation ${rewritten}/${conversations.length}`);
