import { AppError } from '../domain/errors';
import { formatMs } from './resilience';

/** One server-sent event: its `event:` name (if any) and its `data:` lines joined by newlines. */
export interface ServerSentEvent {
  event?: string;
  data: string;
}

export interface SseOptions {
  /** Names the backend in errors, e.g. 'OpenAI chat'. */
  label: string;
  /** Longest silence between two reads before the stream is abandoned as stalled. */
  stallTimeoutMs: number;
}

/**
 * Parses a `text/event-stream` body (per the WHATWG spec: LF, CRLF or CR line ends,
 * comments, multi-line data, events split anywhere across network chunks, UTF-8 split
 * mid-character). A read that waits longer than `stallTimeoutMs` cancels the body and
 * throws a retryable `provider_timeout`; so does stopping early (the connection is freed).
 */
export async function* serverSentEvents(
  body: ReadableStream<Uint8Array>,
  options: SseOptions,
): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  let event: string | undefined;
  let done = false;
  try {
    while (!done) {
      const chunk = await readWithin(reader, options);
      done = chunk.done;
      buffer += chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
      // A trailing CR may be the first half of a CRLF: keep it until the next chunk.
      const lines = buffer.split(/\r\n|\n|\r(?!$)/);
      buffer = done ? '' : (lines.pop() ?? '');
      for (const line of lines) {
        if (line === '' || line === '\r') {
          if (data.length > 0) yield { event, data: data.join('\n') };
          data = [];
          event = undefined;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
      }
    }
    // The spec drops an event not followed by a blank line; callers detect the cut by its absence.
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  { label, stallTimeoutMs }: SseOptions,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer!: ReturnType<typeof setTimeout>;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new AppError('provider_timeout', `${label} stalled: no data for ${formatMs(stallTimeoutMs)} while streaming`, {
            retryable: true,
          }),
        ),
      stallTimeoutMs,
    );
  });
  try {
    return await Promise.race([reader.read(), stalled]);
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new AppError('provider_error', `${label} stream broke off`, { retryable: true, cause: error });
  } finally {
    clearTimeout(timer);
  }
}
