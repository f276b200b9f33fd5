/**
 * What every step shares: where a run's documents live, the plan they all read, and opening the
 * two inputs. Steps receive and return small JSON (a Lambda payload); everything else is in
 * storage under the run's work prefix:
 *
 *   <out>/.diffim-work/<runId>/plan.json             plan
 *   <out>/.diffim-work/<runId>/fit/<tile>.json       fit, one per tile (records, stars, samples)
 *   <out>/.diffim-work/<runId>/solution.json         solve (the one kernel solution)
 *   <out>/.diffim-work/<runId>/context.json          solve (decorrelation σ², PSF moments)
 *   <out>/.diffim-work/<runId>/tiles/<tile>.planes   convolve (the core's IMAGE, MASK, VARIANCE, big-endian)
 *   <out>/.diffim-work/<runId>/tiles/<tile>.json     convolve (sources, QA partials, data sums)
 *   <out>/difference.fits, kernel.json, qa.json, sources.*   stitch; then <out>/_DONE last
 */
import { FitsReader } from '../fits/index.ts';
import { type ExposureLayout } from '../image/exposure-box.ts';
import type { Box } from '../image/box.ts';
import type { FitPlan, KernelConfig, KernelPreset } from '../kernel/index.ts';
import type { DetectConfig } from '../detect/index.ts';
import { joinKey, parseLocation, StorageByteSource, type LocationOptions, type Storage } from '../storage/index.ts';
import { decodeDoc, encodeDoc } from './codec.ts';
import { PipelineError } from './errors.ts';
import type { Tile } from './layout.ts';
import { isStorageError } from '../storage/index.ts';
import type { Card } from '../fits/index.ts';

/** How a step reaches storage: S3 client options (endpoint, region…); credentials come from the environment. */
export interface StepEnv {
  s3?: LocationOptions;
}

/** The run's configuration, resolved (every default filled in): part of the run id. */
export interface RunConfig {
  preset: KernelPreset;
  kernel: KernelConfig;
  /** Overrides as given (what qa.json reports). */
  kernelOverrides: Partial<KernelConfig>;
  decorrelate: boolean;
  detect: DetectConfig | null;
  detectOverrides: Partial<DetectConfig> | null;
  exposureId: number;
  zeroPoint: number | null;
  tileSize: number;
}

export interface InputInfo {
  /** Path or s3:// URL as given. */
  url: string;
  size: number;
  layout: ExposureLayout;
  warnings: string[];
}

export interface Plan {
  format: 'diffim-plan';
  version: 1;
  runId: string;
  diffim: string;
  science: InputInfo;
  template: InputInfo;
  /** The science header's cards (WCS, observation) for the outputs. */
  scienceHeader: Card[];
  exposure: Box;
  config: RunConfig;
  fit: FitPlan;
  /** Kernel candidates wider than this (FWHM, px) are resolved: one limit for every tile. */
  resolvedFwhmLimit: number;
  fitMargin: number;
  convolveMargin: number;
  tiles: Tile[];
  /** Output location (directory path or s3:// prefix) and the run's work prefix (a URL too). */
  out: string;
  work: string;
}

/** A location string → storage and key. */
export function locate(url: string, env: StepEnv): { storage: Storage; key: string } {
  return parseLocation(url, env.s3 ?? {});
}

/** Key of a document under a location given as a URL (directory-like). */
export function under(url: string, ...parts: string[]): string {
  return url.replace(/\/+$/, '') + '/' + parts.join('/');
}

export async function putDoc(url: string, doc: unknown, env: StepEnv): Promise<number> {
  const { storage, key } = locate(url, env);
  const bytes = encodeDoc(doc);
  await storage.put(key, bytes);
  return bytes.length;
}

/** An earlier step's output; a missing one is BAD_STATE naming the step's document. */
export async function getBytes(url: string, what: string, env: StepEnv): Promise<Uint8Array> {
  const { storage, key } = locate(url, env);
  try {
    return await storage.get(key);
  } catch (e) {
    if (isStorageError(e, 'NOT_FOUND')) throw new PipelineError('BAD_STATE', `${what} is missing at ${url}: the step that writes it has not run for this run id`);
    throw e;
  }
}

export async function getDoc<T>(url: string, what: string, env: StepEnv): Promise<T> {
  return decodeDoc<T>(await getBytes(url, what, env), `${what} (${url})`);
}

/** The run's kernel solution (solve's solution.json): its text, as kernel.json will hold it. */
export async function getSolutionText(work: string, env: StepEnv): Promise<string> {
  return new TextDecoder().decode(await getBytes(under(work, 'solution.json'), 'the kernel solution', env));
}

export async function readPlan(work: string, env: StepEnv): Promise<Plan> {
  const plan = await getDoc<Plan>(under(work, 'plan.json'), 'the plan', env);
  if (plan.format !== 'diffim-plan' || plan.version !== 1) throw new PipelineError('BAD_STATE', `${under(work, 'plan.json')} is not a diffim plan`);
  return plan;
}

export function tileOf(plan: Plan, id: number): Tile {
  const t = plan.tiles[id];
  if (!Number.isInteger(id) || !t) throw new PipelineError('BAD_STATE', `tile ${id} is not in the plan (it has ${plan.tiles.length})`);
  return t;
}

/** Open an input for ranged reads. */
export async function openInput(url: string, env: StepEnv): Promise<FitsReader> {
  const { storage, key } = locate(url, env);
  const src = await StorageByteSource.open(storage, key);
  return FitsReader.open(src);
}

export { joinKey };
