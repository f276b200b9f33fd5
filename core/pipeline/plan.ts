/**
 * plan (one call): read the two inputs' headers (ranged reads), check they are one pixel grid,
 * measure both PSFs from a few row bands, choose direction, basis and kernel size (planFit), and
 * lay the tile grid. Writes plan.json under the run's work prefix; returns its key and the tile ids.
 *
 * The run id is a digest of the inputs (file name, size, every header card) and the resolved
 * configuration: a rerun of the same job lands on the same keys and writes the same bytes.
 */
import { createHash } from 'node:crypto';
import { type FitsReader } from '../fits/index.ts';
import { describeExposure, readExposureBox, sampleBands, type DescribedExposure } from '../image/exposure-box.ts';
import { findStars, type Star } from '../psf/index.ts';
import { KernelError, measureShape, resolvedFwhmLimit, planFit, resolveKernelConfig, type KernelConfig, type KernelPreset } from '../kernel/index.ts';
import { resolveDetectConfig, type DetectConfig } from '../detect/index.ts';
import { prepareForConvolution } from '../subtract/subtract.ts';
import { PipelineError } from './errors.ts';
import { tileGrid } from './layout.ts';
import { headerExposureId, headerZeroPoint } from './provenance.ts';
import { openInput, putDoc, under, type Plan, type RunConfig, type StepEnv } from './run.ts';

export interface PipelineOptions {
  preset?: KernelPreset;
  kernel?: Partial<KernelConfig>;
  decorrelate?: boolean;
  /** false: no DIA detection; an object: detection configuration overrides. Default {}. */
  detect?: false | Partial<DetectConfig>;
  exposureId?: number;
  zeroPoint?: number;
  /** Tile core side in pixels, a multiple of the spatial cell (sizeCellX, sizeCellY). Default 2048. */
  tileSize?: number;
}

export interface PlanArgs {
  science: string;
  template: string;
  /** Output directory (path) or s3:// prefix. */
  out: string;
  options?: PipelineOptions;
  /** diffim version, for provenance. */
  version?: string;
}

export interface PlanResult {
  runId: string;
  work: string;
  tiles: number[];
}

export const DEFAULT_TILE_SIZE = 2048;

/** Rows of each band the PSFs are measured on, and how many bands (smaller images: all rows). */
const PSF_BANDS = 4;
const PSF_BAND_ROWS = 384;

export function resolveRunConfig(o: PipelineOptions): RunConfig {
  const preset = o.preset ?? 'default';
  const kernel = resolveKernelConfig(preset, o.kernel ?? {});
  if (kernel.preconvolve) throw new PipelineError('BAD_INPUT', 'preconvolution (the score image) runs in memory only: run diffim subtract without --tile-size/--workers');
  const tileSize = o.tileSize ?? DEFAULT_TILE_SIZE;
  if (!Number.isInteger(tileSize) || tileSize < kernel.sizeCellX || tileSize % kernel.sizeCellX !== 0 || tileSize % kernel.sizeCellY !== 0) {
    throw new PipelineError('BAD_INPUT', `tileSize must be a positive multiple of the spatial cell (${kernel.sizeCellX}×${kernel.sizeCellY} px), got ${tileSize}`);
  }
  const detect = o.detect === false ? null : resolveDetectConfig(o.detect ?? {});
  const exposureId = o.exposureId ?? 0;
  if (!Number.isSafeInteger(exposureId) || exposureId < 0) throw new PipelineError('BAD_INPUT', `exposureId must be a non-negative integer, got ${exposureId}`);
  return {
    preset, kernel, kernelOverrides: o.kernel ?? {}, decorrelate: o.decorrelate ?? true,
    detect, detectOverrides: o.detect === false ? null : (o.detect ?? {}),
    exposureId, zeroPoint: o.zeroPoint ?? null, tileSize,
  };
}

/**
 * Margins around a core. Fit: a candidate's stamp (kernelSize) plus the star finder's background
 * cell (128 px), so stars in the core are found and measured as on the whole image. Convolve: the
 * kernel and decorrelation footprints (2 × kernelSize), plus for detection two fine and four coarse
 * background cells (a core pixel's level comes from cells up to two away after the 3×3 filter).
 */
export function margins(kernelSize: number, detect: DetectConfig | null): { fit: number; convolve: number } {
  const det = detect ? 4 * detect.finalBackgroundBinSize + 4 * detect.initialBackgroundBinSize : 0;
  return { fit: kernelSize + 128, convolve: 2 * kernelSize + det };
}

async function measureStars(r: FitsReader, d: DescribedExposure): Promise<Star[]> {
  const L = d.layout;
  const stars: Star[] = [];
  for (const [y0, y1] of sampleBands(L.height, PSF_BANDS, PSF_BAND_ROWS)) {
    const mi = prepareForConvolution(await readExposureBox(r, L, { x0: L.x0, y0: L.y0 + y0, width: L.width, height: y1 - y0 }));
    stars.push(...findStars(mi));
  }
  return stars;
}

/** The last component of a path or URL. */
export function fileName(url: string): string {
  return url.replace(/\/+$/, '').replace(/^.*\//, '');
}

function digest(parts: unknown[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : JSON.stringify(p)).update('\0');
  return h.digest('hex').slice(0, 20);
}

export async function planStep(args: PlanArgs, env: StepEnv = {}): Promise<PlanResult> {
  let config = resolveRunConfig(args.options ?? {});
  const readers: FitsReader[] = [];
  try {
    readers.push(await openInput(args.science, env));
    readers.push(await openInput(args.template, env));
    const [rs, rt] = readers as [FitsReader, FitsReader];
    const ds = await describeExposure(rs);
    const dt = await describeExposure(rt);
    const a = ds.layout;
    const b = dt.layout;
    if (a.width !== b.width || a.height !== b.height || a.x0 !== b.x0 || a.y0 !== b.y0) {
      throw new KernelError('BAD_INPUT', `science ${args.science} is ${a.width}×${a.height} at (${a.x0}, ${a.y0}) but template ${args.template} is ${b.width}×${b.height} at (${b.x0}, ${b.y0}): they must be on the same pixel grid (register and crop them first)`);
    }
    const exposure = { x0: a.x0, y0: a.y0, width: a.width, height: a.height };
    // Unless given, the exposure id and zero point come from the science header, as in memory.
    const o = args.options ?? {};
    config = { ...config, exposureId: o.exposureId ?? headerExposureId(ds.header) ?? 0, zeroPoint: o.zeroPoint ?? headerZeroPoint(ds.header) ?? null };
    const tStars = await measureStars(rt, dt);
    const tShape = measureShape(tStars, 'template');
    const sShape = measureShape(await measureStars(rs, ds), 'science');
    const fit = planFit(config.kernel, exposure, tShape, sShape);
    const m = margins(fit.basis.size, config.detect);
    const sizes = [await rs.source.size(), await rt.source.size()];
    const headerBytes = (r: FitsReader) => r.hdus.map((h) => h.header.cards.map((c) => `${c.key}=${String(c.value)}`).join('\n')).join('\f');
    // Names, not locations: the same files run from a disk or from a bucket are the same run.
    const runId = digest([args.version ?? '', fileName(args.science), sizes[0], headerBytes(rs), fileName(args.template), sizes[1], headerBytes(rt), config]);
    const work = under(args.out, '.diffim-work', runId);
    const plan: Plan = {
      format: 'diffim-plan', version: 1, runId, diffim: args.version ?? '',
      science: { url: args.science, size: sizes[0]!, layout: a, warnings: ds.warnings },
      template: { url: args.template, size: sizes[1]!, layout: b, warnings: dt.warnings },
      scienceHeader: ds.header.cards,
      exposure, config, fit, resolvedFwhmLimit: resolvedFwhmLimit(tStars, config.kernel), fitMargin: m.fit, convolveMargin: m.convolve,
      tiles: tileGrid(exposure, config.tileSize, m.fit, m.convolve),
      out: args.out, work,
    };
    await putDoc(under(work, 'plan.json'), plan, env);
    return { runId, work, tiles: plan.tiles.map((t) => t.id) };
  } finally {
    await Promise.all(readers.map((r) => r.close().catch(() => undefined)));
  }
}
