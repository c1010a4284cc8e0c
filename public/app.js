// The playground: plain DOM, no framework, no CDN. Every call goes to this engine's API.
const $ = (id) => document.getElementById(id);
const KEY = 'rag-engine-key';
const state = { documents: new Map(), timer: null, asking: null };

/** Fetch with the key, if one was given (kept in sessionStorage: this tab only). */
function api(path, init = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = new Headers(init.headers);
  if (key) headers.set('Authorization', `Bearer ${key}`);
  return fetch(path, { ...init, headers });
}

async function problem(response) {
  try {
    return (await response.json()).error?.message ?? `${response.status}`;
  } catch {
    return `${response.status}`;
  }
}

const namespace = () => $('namespace-input').value.trim() || undefined;

// ── Key ────────────────────────────────────────────────────────────────────────────────
function askForKey(message) {
  $('key-section').hidden = false;
  $('documents-status').textContent = message;
  $('key-input').focus();
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $('key-input').value.trim());
  $('key-input').value = '';
  $('key-section').hidden = true;
  refresh();
});

// ── Documents ──────────────────────────────────────────────────────────────────────────
async function refresh() {
  const query = new URLSearchParams({ limit: '100' });
  if (namespace()) query.set('namespace', namespace());
  const response = await api(`/v1/documents?${query}`);
  if (response.status === 401 || response.status === 403) return askForKey(await problem(response));
  if (!response.ok) {
    $('documents-status').textContent = `Could not list documents: ${await problem(response)}`;
    return;
  }
  const { documents } = await response.json();
  state.documents = new Map(documents.map((d) => [d.id, d]));
  render(documents);
  const busy = documents.some((d) => d.status === 'queued' || d.status === 'processing');
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, busy ? 1000 : 5000);
}

function render(documents) {
  const list = $('documents');
  list.replaceChildren(
    ...documents.map((d) => {
      const item = document.createElement('li');
      item.dataset.id = d.id;
      const title = document.createElement('span');
      title.className = 'title';
      title.textContent = d.title;
      const status = document.createElement('span');
      status.className = `status ${d.status}`;
      status.textContent = d.status === 'ready' ? `ready · ${d.chunkCount} passages` : d.status;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'secondary';
      remove.textContent = 'Delete';
      remove.setAttribute('aria-label', `Delete ${d.title}`);
      remove.addEventListener('click', () => deleteDocument(d));
      item.append(title, status, remove);
      if (d.error) {
        const error = document.createElement('span');
        error.className = 'error';
        error.textContent = d.error;
        item.append(error);
      }
      return item;
    }),
  );
  $('documents-status').textContent = documents.length ? '' : 'No documents yet: upload one above.';
}

async function deleteDocument(d) {
  if (!confirm(`Delete "${d.title}" from the engine?`)) return;
  const response = await api(`/v1/documents/${d.id}`, { method: 'DELETE' });
  $('documents-status').textContent = response.ok ? `Deleted "${d.title}".` : `Could not delete: ${await problem(response)}`;
  refresh();
}

// ── Upload, with progress (XMLHttpRequest reports upload progress; fetch does not) ─────
$('upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const files = $('file-input').files;
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append('file', file, file.name);
  if (namespace()) form.append('namespace', namespace());
  const progress = $('upload-progress');
  const status = $('upload-status');
  progress.hidden = false;
  progress.value = 0;
  status.textContent = `Uploading ${files.length} file(s)…`;
  const request = new XMLHttpRequest();
  request.open('POST', '/v1/documents');
  const key = sessionStorage.getItem(KEY);
  if (key) request.setRequestHeader('Authorization', `Bearer ${key}`);
  request.upload.addEventListener('progress', (e) => {
    if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
  });
  request.addEventListener('load', () => {
    progress.hidden = true;
    let body = {};
    try {
      body = JSON.parse(request.responseText);
    } catch {}
    if (request.status === 202) {
      status.textContent = `Uploaded: ${body.documents.map((d) => `${d.title} (${d.duplicate ? 'already there' : d.status})`).join(', ')}.`;
      $('file-input').value = '';
    } else if (request.status === 401) {
      askForKey(body.error?.message ?? 'An API key is needed.');
    } else {
      status.textContent = `Upload refused: ${body.error?.message ?? request.status}`;
    }
    refresh();
  });
  request.addEventListener('error', () => {
    progress.hidden = true;
    status.textContent = 'Upload failed: the engine did not answer.';
  });
  request.send(form);
});

// ── Ask, with the answer streamed (server-sent events over fetch) ──────────────────────
$('ask-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const question = $('question-input').value.trim();
  if (!question) return;
  state.asking?.abort();
  const controller = (state.asking = new AbortController());
  const answer = $('answer');
  answer.textContent = '';
  $('citations').replaceChildren();
  $('passage-section').hidden = true;
  const response = await api('/v1/chat', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query: question, namespace: namespace(), stream: true }),
    signal: controller.signal,
  });
  if (!response.ok) {
    if (response.status === 401) return askForKey(await problem(response));
    answer.textContent = `Could not answer: ${await problem(response)}`;
    return;
  }
  let passages = [];
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      if (!data) continue;
      const payload = JSON.parse(data);
      if (name === 'passages') passages = payload;
      else if (name === 'delta') answer.textContent += payload.text;
      else if (name === 'done') showCitations(payload.citations, passages);
    }
  }
});

function showCitations(citations, passages) {
  const box = $('citations');
  box.replaceChildren(
    ...citations.map((citation) => {
      const button = document.createElement('button');
      button.type = 'button';
      const where = citation.page ? `, page ${citation.page}` : '';
      button.textContent = `[${citation.number}] ${citation.title}${where}`;
      button.addEventListener('click', () => openPassage(passages[citation.number - 1], citation));
      return button;
    }),
  );
}

/** The cited passage, and its document passage by passage with the cited one marked. */
async function openPassage(passage, citation) {
  $('passage-section').hidden = false;
  const where = [passage.position.page ? `page ${passage.position.page}` : null, ...(passage.position.headings ?? [])].filter(Boolean).join(' › ');
  $('passage-source').textContent = `${citation.title}${where ? ` — ${where}` : ''}`;
  $('passage-text').textContent = passage.text;
  $('passage-heading').focus();
  const list = $('document-passages');
  list.replaceChildren();
  const response = await api(`/v1/documents/${passage.documentId}/passages?limit=100`);
  if (!response.ok) return;
  const { passages } = await response.json();
  for (const p of passages) {
    const item = document.createElement('li');
    item.textContent = p.text;
    if (p.id === passage.id) {
      item.className = 'cited';
      item.setAttribute('aria-current', 'true');
    }
    list.append(item);
  }
}

$('namespace-input').addEventListener('change', refresh);
refresh();
