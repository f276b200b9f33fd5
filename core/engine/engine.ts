/**
 * The local engine: plan → fit (map over tiles) → solve → convolve (map over tiles) → stitch, the
 * map steps on a worker-thread pool (piscina) sized to the cores, progress reported per phase.
 * The same step functions run one per Lambda on AWS; here a task is handed to a thread instead.
 * A failed run removes its work prefix and leaves nothing at the output location (stitch removes
 * what it wrote; the done-marker exists only after a complete run).
 */
import { availableParallelism } from 'node:os';
import { rm, rmdir } from 'node:fs/promises';
import { FitsError } from '../fits/index.ts';
import { ImageError } from '../image/masked-image.ts';
import { KernelError } from '../kernel/index.ts';
import { DetectError } from '../detect/index.ts';
import { PsfError } from '../psf/index.ts';
import { LocalStorage, StorageError } from '../storage/index.ts';
import { PipelineError } from '../pipeline/errors.ts';
import { planStep, type PlanArgs, type PlanResult } from '../pipeline/plan.ts';
import { solveStep, type SolveResult } from '../pipeline/solve.ts';
import { stitchStep, type StitchResult } from '../pipeline/stitch.ts';
import { locate, type StepEnv } from '../pipeline/run.ts';
import { runMapTask, type MapTask, type TaskFailure } from './steps.ts';

export type Phase = 'plan' | 'fit' | 'solve' | 'convolve' | 'stitch';

export interface ProgressEvent {
  phase: Phase;
  /** 'start' | 'tile' (one map task done) | 'end' */
  kind: 'start' | 'tile' | 'end';
  done: number;
  total: number;
  /** Milliseconds since the phase started. */
  ms: number;
  tile?: number;
}

export interface EngineOptions {
  /** Worker threads for the map steps (default: the machine's cores; 1 runs them on this thread). */
  workers?: number;
  env?: StepEnv;
  /** Keep the run's intermediate documents (default: removed after a successful run). */
  keepWork?: boolean;
  onProgress?: (e: ProgressEvent) => void;
}

export interface EngineResult {
  plan: PlanResult;
  solve: SolveResult;
  stitch: StitchResult;
  /** Wall time per phase, ms. */
  timingsMs: Record<Phase, number>;
  workers: number;
}

const ERROR_TYPES: Record<string, { prototype: Error }> = { FitsError, ImageError, KernelError, DetectError, PsfError, StorageError, PipelineError };

/** The typed error a worker reported, rebuilt on this thread (instanceof works; message and fields kept). */
function rebuild(f: TaskFailure): Error {
  const C = ERROR_TYPES[f.name];
  const e = (C ? Object.create(C.prototype) : new Error()) as Error & Record<string, unknown>;
  Object.defineProperty(e, 'message', { value: f.message, enumerable: false, writable: true });
  for (const [k, v] of Object.entries(f.props)) if (k !== 'name') e[k] = v;
  return e;
}

function isFailure(x: unknown): x is TaskFailure {
  return typeof x === 'object' && x !== null && (x as TaskFailure).$failed === true;
}

interface Pool {
  run(task: MapTask): Promise<unknown>;
  close(): Promise<void>;
}

async function makePool(workers: number): Promise<Pool> {
  if (workers <= 1) return { run: (t) => runMapTask(t), close: async () => undefined };
  const { Piscina } = await import('piscina');
  // Workers load the TypeScript worker through tsx, as the main thread does.
  const tsx = import.meta.resolve('tsx');
  const pool = new Piscina({
    filename: new URL('./worker.ts', import.meta.url).href,
    minThreads: workers, maxThreads: workers, idleTimeout: 60_000,
    execArgv: ['--import', tsx],
  });
  return {
    run: async (t) => {
      const r = await pool.run(t);
      if (isFailure(r)) throw rebuild(r);
      return r;
    },
    close: () => pool.destroy(),
  };
}

/** Remove every object under the run's work prefix (and, on a filesystem, its directory). */
export async function removeWork(work: string, env: StepEnv): Promise<void> {
  const { storage, key } = locate(work.replace(/\/+$/, '') + '/', env);
  const keys = await storage.list(key).catch(() => [] as string[]);
  await Promise.all(keys.map((k) => storage.delete(k).catch(() => undefined)));
  if (storage instanceof LocalStorage) {
    const dir = storage.url(key).replace(/\/+$/, '');
    await rm(dir, { recursive: true, force: true });
    await rmdir(dir.replace(/\/[^/]*$/, '')).catch(() => undefined); // .diffim-work, if now empty
  }
}

export async function runPipeline(args: PlanArgs, opts: EngineOptions = {}): Promise<EngineResult> {
  const env = opts.env ?? {};
  const workers = Math.max(1, Math.floor(opts.workers ?? availableParallelism()));
  const timings = {} as Record<Phase, number>;
  const emit = opts.onProgress ?? (() => undefined);
  const phase = async <T>(name: Phase, total: number, body: (tick: (tile: number) => void) => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    let done = 0;
    emit({ phase: name, kind: 'start', done: 0, total, ms: 0 });
    const r = await body((tile) => emit({ phase: name, kind: 'tile', done: ++done, total, ms: performance.now() - t0, tile }));
    timings[name] = performance.now() - t0;
    emit({ phase: name, kind: 'end', done: total, total, ms: timings[name] });
    return r;
  };
  const plan = await phase('plan', 1, () => planStep(args, env));
  const pool = await makePool(Math.min(workers, plan.tiles.length));
  try {
    // Every task settles before a failure is reported, so nothing is still writing when the work is removed.
    const map = (step: MapTask['step']) => phase(step, plan.tiles.length, async (tick) => {
      const settled = await Promise.allSettled(plan.tiles.map(async (tile) => {
        const r = await pool.run({ step, args: { work: plan.work, tile }, env });
        tick(tile);
        return r;
      }));
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
    });
    await map('fit');
    const solve = await phase('solve', 1, () => solveStep({ work: plan.work }, env));
    await map('convolve');
    const stitch = await phase('stitch', 1, () => stitchStep({ work: plan.work }, env));
    if (!opts.keepWork) await removeWork(plan.work, env);
    return { plan, solve, stitch, timingsMs: timings, workers: Math.min(workers, plan.tiles.length) };
  } catch (e) {
    await removeWork(plan.work, env).catch(() => undefined);
    throw e;
  } finally {
    await pool.close();
  }
}
