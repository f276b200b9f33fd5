/**
 * The map steps by name, for a worker thread (or the calling thread when there is one worker).
 * A task is plain data — the step, its JSON arguments and the storage environment — exactly what
 * a Lambda would receive.
 */
import { convolveStep, type ConvolveResult } from '../pipeline/convolve.ts';
import { fitStep, type FitResult, type TileArgs } from '../pipeline/fit.ts';
import type { StepEnv } from '../pipeline/run.ts';

export interface MapTask {
  step: 'fit' | 'convolve';
  args: TileArgs;
  env: StepEnv;
}

export async function runMapTask(t: MapTask): Promise<FitResult | ConvolveResult> {
  return t.step === 'fit' ? fitStep(t.args, t.env) : convolveStep(t.args, t.env);
}

/** Errors cross the thread boundary as plain objects; the engine rebuilds the typed error. */
export interface TaskFailure {
  $failed: true;
  name: string;
  message: string;
  props: Record<string, unknown>;
}

export async function runMapTaskSafely(t: MapTask): Promise<FitResult | ConvolveResult | TaskFailure> {
  try {
    return await runMapTask(t);
  } catch (e) {
    const err = e as Error & Record<string, unknown>;
    const props: Record<string, unknown> = {};
    for (const k of Object.keys(err)) {
      try { props[k] = structuredClone(err[k]); } catch { /* not cloneable: dropped */ }
    }
    return { $failed: true, name: err?.name ?? 'Error', message: err?.message ?? String(e), props };
  }
}
