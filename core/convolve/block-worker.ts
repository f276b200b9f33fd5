/** The helper thread of parallel.ts: convolves the block rows it is given, in place, then signals. */
import { parentPort } from 'node:worker_threads';
import { blockConvolveRows, type BlockTask } from './spatial.ts';

parentPort!.on('message', (m: { task: BlockTask; outs: Float32Array[]; r0: number; r1: number; flag: Int32Array }) => {
  if (Atomics.compareExchange(m.flag, 0, 0, 1) !== 0) return; // the caller gave up on us
  let ok = false;
  try {
    blockConvolveRows(m.task, m.outs, m.r0, m.r1);
    ok = true;
  } finally {
    Atomics.store(m.flag, 0, ok ? 2 : 3);
    Atomics.notify(m.flag, 0);
  }
});
