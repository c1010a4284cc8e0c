import { describe, expect, it } from 'vitest';
import { api, postJson, query, uploadFiles, uploadText, waitUntilSettled } from './helpers';

const LIGHTHOUSE = `# Lighthouse keeping

## Lamps
The lighthouse at Cape Wrath burns paraffin in a Fresnel lens that turns every thirty seconds.
Keepers trimmed the wicks at dusk and polished the brass each morning.

## Fog signals
When fog rolls in, a compressed-air foghorn sounds twice every ninety seconds.`;

describe('from upload to cited answer', () => {
  it('ingests, finds, cites and forgets a document', async () => {
    const [uploaded] = await uploadFiles([{ name: 'lighthouse.md', bytes: new TextEncoder().encode(LIGHTHOUSE) }], {
      metadata: JSON.stringify({ topic: 'maritime' }),
    });
    expect(uploaded?.status).toBe('queued');
    const id = uploaded!.id;

    const document = await waitUntilSettled(id);
    expect(document).toMatchObject({ status: 'ready', error: null, title: 'lighthouse.md' });
    expect(document.chunkCount).toBeGreaterThan(0);

    for (const mode of ['hybrid', 'vector', 'keyword']) {
      const passages = await query({ query: 'How often does the foghorn sound?', mode });
      expect(passages[0]?.documentId, mode).toBe(id);
      expect(passages[0]?.text).toContain('foghorn');
    }
    const [top] = await query({ query: 'foghorn in fog', topK: 1, filter: { topic: 'maritime' } });
    expect(top?.position.headings).toEqual(['Lighthouse keeping', 'Fog signals']);
    expect(await query({ query: 'foghorn in fog', filter: { topic: 'aviation' } })).toEqual([]);

    const chat = await postJson('/v1/chat', { query: 'What does the lighthouse at Cape Wrath burn?' });
    expect(chat.status).toBe(200);
    const answer = (await chat.json()) as {
      answer: string;
      citations: { number: number; documentId: string }[];
      passages: { number: number; text: string }[];
    };
    expect(answer.answer).toMatch(/paraffin.*\[1\]/);
    expect(answer.citations[0]).toMatchObject({ number: 1, documentId: id });
    expect(answer.passages[0]?.text).toContain('paraffin');

    const deleted = await api(`/v1/documents/${id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect((await api(`/v1/documents/${id}`)).status).toBe(404);
    for (const mode of ['hybrid', 'vector', 'keyword']) {
      expect(await query({ query: 'foghorn paraffin lighthouse', mode })).toEqual([]);
    }
  });

  it('streams a chat answer as server-sent events', async () => {
    const doc = await uploadText({ text: 'Basalt columns form when thick lava cools and contracts slowly.', title: 'Geology' });
    await waitUntilSettled(doc.id);
    const response = await postJson('/v1/chat', { query: 'How do basalt columns form?', stream: true });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const body = await response.text();
    const events = [...body.matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => ({ event: m[1], data: JSON.parse(m[2]!) }));
    expect(events[0]?.event).toBe('passages');
    expect(events.some((e) => e.event === 'delta')).toBe(true);
    const done = events.at(-1)!;
    expect(done.event).toBe('done');
    expect(done.data.answer).toContain('[1]');
    expect(done.data.citations[0].documentId).toBe(doc.id);
  });

  it('treats an identical re-upload as the same document', async () => {
    const first = await uploadText({ text: 'Tardigrades survive the vacuum of space.', title: 'Water bears' });
    await waitUntilSettled(first.id);
    const again = await uploadText({ text: 'Tardigrades survive the vacuum of space.', title: 'Water bears' });
    expect(again).toMatchObject({ id: first.id, duplicate: true, status: 'ready' });
  });
});
