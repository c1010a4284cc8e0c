// @ts-expect-error -- workerd provides node:async_hooks (nodejs_compat); the project has no @types/node.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Unzlib } from 'fflate';
import type { PDF_LIMITS } from '../../limits';

export type PdfLimits = { readonly [K in keyof typeof PDF_LIMITS]: number };

/**
 * Bounds on decoding. A few KB of deflated zeros inflate to megabytes (deflate reaches
 * ~1,030:1), and pdf.js keeps every stream it decodes whole, with no limit of its own and its
 * stream classes private to its bundle. So two guards sit on the globals pdf.js uses, and act
 * only inside `parsePdf` (an AsyncLocalStorage context: pdf.js runs in this isolate, in promise
 * callbacks of the call); elsewhere both behave as the platform's.
 *
 * - DecompressionStream, which pdf.js uses for Flate streams it can read asynchronously (page
 *   content, forms, fonts, CMaps). workerd's inflates all it is given at once, whether or not
 *   the output is read (measured: ~1 GB resident for a 1 MB bomb though reading stopped at
 *   32 MB). Here fflate inflates a few KB at a time as pdf.js reads, and the stream ends at
 *   `maxStreamBytes`, or once the document has inflated `maxInflatedBytes`; pdf.js reads the
 *   cut stream (bounded work) and the parser fails the document after the page. Corrupt data
 *   ends where its output ended instead of failing, because on a failure pdf.js would decode
 *   the stream again with its own inflater; "brotli" (PDF 2.0's BrotliDecode: workerd lacks
 *   it, and pdf.js would decode it whole in JavaScript) yields nothing and fails the document.
 * - TypedArray.prototype.set, for what pdf.js decodes itself, synchronously: object streams,
 *   XMP metadata, Flate with a predictor, LZW, RunLength. Its decoders grow their buffer by
 *   doubling (allocate twice the size, `set` the old bytes in), so refusing a `set` into an
 *   array larger than `maxStreamBytes` stops such a stream at that size, as an error pdf.js
 *   passes on. Only arrays over 64 KB pay for the context lookup.
 */
export interface InflationBudget {
  limits: PdfLimits;
  /** Bytes inflated so far in this document. */
  total: number;
  exceeded: 'stream' | 'total' | 'brotli' | null;
  /** Streams whose data turned out corrupt part-way (not merely truncated). */
  damaged: number;
}

export const inflationBudgets: { run<R>(store: InflationBudget, fn: () => R): R; getStore(): InflationBudget | undefined } =
  new AsyncLocalStorage();

/** Compressed bytes inflated at a time: at most ~4 MB of output (deflate's ~1,030:1). */
const INFLATE_SLICE = 4 * 1024;

let guardsInstalled = false;

export function installGuards(): void {
  if (guardsInstalled) return;
  guardsInstalled = true;
  const scope = globalThis as unknown as { DecompressionStream: typeof DecompressionStream };
  const Platform = scope.DecompressionStream;
  const Guarded = function DecompressionStream(format: string) {
    const budget = inflationBudgets.getStore();
    if (budget && format === 'deflate') return boundedInflation(budget);
    if (budget && format === 'brotli') {
      budget.exceeded ??= 'brotli';
      return new TransformStream({ transform: () => undefined });
    }
    return new Platform(format as ConstructorParameters<typeof Platform>[0]);
  } as unknown as typeof DecompressionStream;
  Guarded.prototype = Platform.prototype; // `instanceof DecompressionStream` still holds
  scope.DecompressionStream = Guarded;

  type TypedArraySet = (this: ArrayBufferView, source: ArrayLike<number>, offset?: number) => void;
  const typedArray = Object.getPrototypeOf(Uint8Array.prototype) as { set: TypedArraySet };
  const platformSet = typedArray.set;
  Object.defineProperty(typedArray, 'set', {
    value: function set(this: ArrayBufferView, source: ArrayLike<number>, offset?: number): void {
      const budget = this.byteLength > 65_536 ? inflationBudgets.getStore() : undefined;
      if (budget && this.byteLength > budget.limits.maxStreamBytes) {
        budget.exceeded ??= 'stream';
        throw new RangeError(`A PDF stream grew past ${budget.limits.maxStreamBytes} bytes.`);
      }
      platformSet.call(this, source, offset);
    },
    writable: true,
    configurable: true,
  });
}

/** A zlib DecompressionStream that inflates only as its output is read, and stops at the budget. */
function boundedInflation(budget: InflationBudget): ReadableWritablePair<Uint8Array, BufferSource> {
  const { maxStreamBytes, maxInflatedBytes } = budget.limits;
  const input: Uint8Array[] = [];
  let inputDone = false;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const writable = new WritableStream<BufferSource>({
    write(chunk) {
      input.push(ArrayBuffer.isView(chunk) ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) : new Uint8Array(chunk));
      notify();
    },
    close() {
      inputDone = true;
      notify();
    },
  });
  let inflated = 0;
  let output: Uint8Array[] = [];
  let done = false; // no more output: the input ended or was corrupt, or the budget ran out
  const inflater = new Unzlib((data) => output.push(data));
  let pending: Uint8Array | undefined;
  let at = 0;
  const readable = new ReadableStream<Uint8Array>(
    {
      // Each call ends by enqueueing or closing: a pull that does neither stalls the reader.
      async pull(controller) {
        for (;;) {
          for (let chunk = output.shift(); chunk; chunk = output.shift()) {
            if (chunk.byteLength === 0) continue;
            const room = Math.min(maxStreamBytes - inflated, maxInflatedBytes - budget.total);
            if (chunk.byteLength > room) {
              budget.exceeded ??= maxStreamBytes - inflated <= maxInflatedBytes - budget.total ? 'stream' : 'total';
              if (room > 0) controller.enqueue(chunk.subarray(0, room));
              budget.total += Math.max(0, room);
              done = true;
              output = [];
              return controller.close();
            }
            inflated += chunk.byteLength;
            budget.total += chunk.byteLength;
            return controller.enqueue(chunk);
          }
          if (done) return controller.close();
          if (!pending || at >= pending.length) {
            pending = input.shift();
            at = 0;
          }
          if (!pending) {
            if (!inputDone) {
              await new Promise<void>((resolve) => (wake = resolve));
              continue;
            }
            // All input is in. Data that stops short (truncated, or no checksum) keeps what
            // inflated, as pdf.js's own inflater would.
            done = true;
            try {
              inflater.push(new Uint8Array(0), true);
            } catch {}
            continue;
          }
          try {
            inflater.push(pending.subarray(at, (at += INFLATE_SLICE)));
          } catch {
            // Corrupt data (an invalid code or distance): what inflated before it stands.
            done = true;
            budget.damaged++;
          }
        }
      },
      cancel() {
        done = true;
        output = [];
      },
    },
    { highWaterMark: 0 },
  );
  return { readable, writable };
}

