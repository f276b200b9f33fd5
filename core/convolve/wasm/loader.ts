/**
 * Loads the WASM engine synchronously (blockConvolve is synchronous), once per thread.
 *
 * A missing or stale build is an error naming the file and the command that builds it, not a
 * silent fall-back to the JS engine: the outputs would be the same, but 3× slower without a word.
 */
import { existsSync, readFileSync } from 'node:fs';
import { buildCommand, digestFile, sourceDigest, wasmFile } from './source.ts';

/** The little of the WebAssembly API used here (the project's type libraries do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

export interface EngineExports {
  memory: WasmMemory;
  heapBase(): number;
  fftSetup(side: number, rowStride: number, twiddles: number, scratch: number): void;
  stripWidth(): number;
  forward2d(src: number, tmp: number, dst: number): void;
  inverse2d(src: number, dst: number, x0: number, nx: number): void;
  blockSetup(
    z: number, x: number, specZ: number, specA: number, specB: number, a: number, b: number, planes: number,
    acc: number, accRows: number, stage: number, stageStride: number, nOut: number,
    jobs: number, nJobs: number, h: number,
  ): void;
  kernelSpectrum(k: number, size: number, dst: number, scale: number): void;
  block(cx: number, cy: number, lx: number, ly: number, rows: number): void;
}

let compiled: object | null = null;
let engine: EngineExports | null = null;

export function loadEngine(): EngineExports {
  if (engine) return engine;
  compiled ??= compile();
  engine = new (wasmApi().Instance)(compiled, {}).exports as EngineExports;
  return engine;
}

function compile(): object {
  if (!existsSync(wasmFile)) throw new Error(`diffim: the WASM convolution engine ${wasmFile} is missing; build it with \`${buildCommand}\``);
  const want = sourceDigest();
  if (want !== null) {
    const have = existsSync(digestFile) ? readFileSync(digestFile, 'utf8').trim() : '';
    if (have !== want) throw new Error(`diffim: the WASM convolution engine ${wasmFile} is older than its sources; rebuild it with \`${buildCommand}\``);
  }
  return new (wasmApi().Module)(readFileSync(wasmFile));
}

function wasmApi(): WasmApi {
  return (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
}

/**
 * A WebAssembly memory never shrinks: drop an instance whose memory grew past `limit` bytes (big
 * blocks, many jobs) so that the GC can take it back. The compiled module, with its optimised
 * code, is kept; the next call instantiates it afresh.
 */
export function releaseLargeMemory(limit = 256 * 2 ** 20): void {
  if (engine && engine.memory.buffer.byteLength > limit) engine = null;
}
