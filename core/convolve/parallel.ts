/**
 * Block rows split between this thread and one helper thread, synchronously: the planes live in
 * SharedArrayBuffers, the helper writes its rows in place and signals through Atomics, and this
 * thread blocks in Atomics.wait once its own rows are done (subtract() stays a plain function).
 * If the helper cannot start or fails, this thread computes its rows too: never a wrong result,
 * at worst no speed-up. The helper is started once and kept (unref'd) for later calls.
 */
import { Worker } from 'node:worker_threads';
import { blockConvolveRows, type BlockTask } from './spatial.ts';

let helper: Worker | null = null;
let broken = false;
/** How long to wait for the helper to pick a task up before doing its rows here. */
const START_TIMEOUT_MS = 30_000;

function getHelper(): Worker | null {
  if (broken) return null;
  if (!helper) {
    try {
      helper = new Worker(new URL('./block-worker-boot.mjs', import.meta.url));
      helper.unref();
      helper.on('error', () => { broken = true; helper = null; });
    } catch {
      broken = true;
      return null;
    }
  }
  return helper;
}

function shared(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(4 * n));
}

function toShared(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = shared(a.length);
  s.set(a);
  return s;
}

export function parallelBlockConvolve(t: BlockTask & { nRows: number }): Float32Array[] {
  const outs = Array.from({ length: t.nOut }, () => shared(t.W * t.H));
  const w = getHelper();
  const task: BlockTask = { ...t, inputs: t.inputs.map(toShared) };
  const split = Math.ceil(t.nRows / 2);
  if (!w) {
    blockConvolveRows(task, outs, 0, t.nRows);
    return outs;
  }
  // flag[0]: 0 posted, 1 started, 2 done, 3 failed.
  const flag = new Int32Array(new SharedArrayBuffer(4));
  w.postMessage({ task, outs, r0: split, r1: t.nRows, flag });
  blockConvolveRows(task, outs, 0, split);
  if (Atomics.wait(flag, 0, 0, START_TIMEOUT_MS) === 'timed-out' && Atomics.compareExchange(flag, 0, 0, 3) === 0) {
    broken = true; // never started: it would now find flag 3 and skip the task
  } else {
    while (Atomics.load(flag, 0) === 1) Atomics.wait(flag, 0, 1);
  }
  if (Atomics.load(flag, 0) !== 2) blockConvolveRows(task, outs, split, t.nRows);
  return outs;
}
