#!/usr/bin/env node
/**
 * Writes src/engines/local/int8-dot.wasm, the index's WebAssembly SIMD scan. Workers cannot
 * compile WebAssembly at run time, so the module ships pre-built; no toolchain is needed: this
 * script is its source, as WAT in the comments next to the bytes. Run `node scripts/build-int8-dot-wasm.mjs`.
 *
 * (func (export "scan") (param $q i32) (param $m i32) (param $rows i32) (param $stride i32) (param $out i32)
 *   For each of $rows rows of $stride int8 codes from $m (stride a multiple of 16, ≥ 16): the
 *   dot product with the $stride int16 query codes at $q, as an i32 stored at $out, $out + 4, …
 */
import { writeFileSync } from 'node:fs';

const leb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
const str = (s) => [...leb(s.length), ...Buffer.from(s)];
const [Q, M, ROWS, STRIDE, OUT, K, , ACC, R] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const get = (i) => [0x20, i], set = (i) => [0x21, i], tee = (i) => [0x22, i];
const simd = (op) => [0xfd, ...leb(op)];
const load128 = (offset) => [...simd(0x00), 0, ...leb(offset)]; // v128.load align=1
const code = [
  0x02, 0x40, //                                    block
  ...get(ROWS), 0x45, 0x0d, 0, //                     br_if 0 (rows == 0)
  0x03, 0x40, //                                      loop (rows)
  ...simd(0x0c), ...new Array(16).fill(0), ...set(ACC), // acc = v128.const 0
  0x41, 0, ...set(K), //                                k = 0
  0x03, 0x40, //                                        loop (16 codes at a time)
  ...get(M), ...get(K), 0x6a, ...load128(0), ...set(R), // r = v128.load(m + k)
  ...get(ACC),
  ...get(R), ...simd(0x87), //                            i16x8.extend_low_i8x16_s
  ...get(Q), ...get(K), 0x41, 1, 0x74, 0x6a, ...load128(0), // v128.load(q + 2k)
  ...simd(0xba), ...simd(0xae), //                        i32x4.dot_i16x8_s, i32x4.add
  ...get(R), ...simd(0x88), //                            i16x8.extend_high_i8x16_s
  ...get(Q), ...get(K), 0x41, 1, 0x74, 0x6a, ...load128(16), // v128.load(q + 2k + 16)
  ...simd(0xba), ...simd(0xae), ...set(ACC),
  ...get(K), 0x41, 16, 0x6a, ...tee(K), ...get(STRIDE), 0x49, 0x0d, 0, // br_if (k += 16) < stride
  0x0b, //                                              end
  ...get(OUT), //                                       i32.store(out, lanes summed)
  ...get(ACC), ...simd(0x1b), 0, ...get(ACC), ...simd(0x1b), 1, 0x6a,
  ...get(ACC), ...simd(0x1b), 2, 0x6a, ...get(ACC), ...simd(0x1b), 3, 0x6a,
  0x36, 2, 0,
  ...get(M), ...get(STRIDE), 0x6a, ...set(M), //        m += stride
  ...get(OUT), 0x41, 4, 0x6a, ...set(OUT), //           out += 4
  ...get(ROWS), 0x41, 1, 0x6b, ...tee(ROWS), 0x0d, 0, // br_if (rows -= 1)
  0x0b, 0x0b, 0x0b, //                                  end loop, end block, end func
];
const body = [2, 2, 0x7f, 2, 0x7b, ...code]; // locals: 2 × i32 (k, spare), 2 × v128 (acc, r)
const wasm = [
  0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
  ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]), // type: (i32 × 5) → ()
  ...section(2, [1, ...str('env'), ...str('memory'), 2, 0, 1]), // import env.memory, min 1 page
  ...section(3, [1, 0]),
  ...section(7, [1, ...str('scan'), 0, 0]),
  ...section(10, [1, ...leb(body.length), ...body]),
];
const file = new URL('../src/engines/local/int8-dot.wasm', import.meta.url);
writeFileSync(file, Uint8Array.from(wasm));
console.log(`wrote ${file.pathname} (${wasm.length} bytes)`);
