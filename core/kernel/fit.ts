/**
 * Fitting the matching kernel on whole images — the composition the pipeline splits into steps:
 *
 *   planFit        PSF FWHMs → convolution direction, basis, kernel size, weights   (plan)
 *   selectCandidates + buildRecords  per region of the image                        (fit, per tile)
 *   solveKernel    records → the one spatial solution                               (solve)
 */
import { type MaskedImage } from '../image/masked-image.ts';
import { findStars, psfFromStars, PsfError, type Star } from '../psf/index.ts';
import { chooseBasis, type BasisSpec } from './basis.ts';
import { FWHM_PER_SIGMA } from '../image/stats.ts';
import { type KernelConfig, type KernelPreset, resolveKernelConfig } from './config.ts';
import { KernelError } from './errors.ts';
import { type CandidateRecord, type CandidateSite, RecordBuilder } from './record.ts';
import { selectCandidates } from './select.ts';
import type { KernelSolution } from './solution.ts';
import { solveKernel } from './solve.ts';
import type { SpatialDomain } from './spatial.ts';

export interface FitPlan {
  config: KernelConfig;
  mode: 'convolveTemplate' | 'convolveScience';
  basis: BasisSpec;
  basisMode: string;
  domain: SpatialDomain;
  fwhm: { template: number; science: number };
  refVarianceFactor: number;
}

export interface PsfShape {
  fwhm: number;
  ixx: number;
  iyy: number;
}

/**
 * ΣK² of a unit-sum Gaussian of width σ sampled on the kernel grid: the fraction of the ref
 * image's variance that survives convolution, used in the fit weights before K is known.
 */
export function gaussianSumSquares(sigma: number, size: number): number {
  if (!(sigma > 0.3)) return 1;
  const h = (size - 1) / 2;
  let s = 0;
  let s2 = 0;
  for (let k = -h; k <= h; k++) {
    const g = Math.exp((-0.5 * k * k) / (sigma * sigma));
    s += g;
    s2 += g * g;
  }
  const oneD = s2 / (s * s);
  return oneD * oneD;
}

function sameGeometry(a: MaskedImage, b: MaskedImage): boolean {
  return a.width === b.width && a.height === b.height && a.x0 === b.x0 && a.y0 === b.y0;
}

/** ip_diffim's 'auto' rule: convolve the template unless its PSF is wider in both x and y. */
export function chooseMode(config: KernelConfig, template: PsfShape, science: PsfShape): 'convolveTemplate' | 'convolveScience' {
  if (config.mode !== 'auto') return config.mode;
  const xTest = template.ixx <= science.ixx;
  const yTest = template.iyy <= science.iyy;
  return xTest || yTest ? 'convolveTemplate' : 'convolveScience';
}

/** Measure a PSF from its stars, turning "no stars" into the kernel's typed error (with the counts). */
export function measureShape(stars: readonly Star[], which: 'template' | 'science'): PsfShape {
  try {
    const m = psfFromStars(stars);
    return { fwhm: m.fwhm, ixx: m.ixx, iyy: m.iyy };
  } catch (e) {
    if (e instanceof PsfError && e.code === 'NO_STARS') {
      throw new KernelError('NO_STARS', `no usable stars in the ${which} image to measure its PSF`, { ...(e.counts ?? {}) });
    }
    throw e;
  }
}

export function planFit(config: KernelConfig, domain: SpatialDomain, template: PsfShape, science: PsfShape): FitPlan {
  const mode = chooseMode(config, template, science);
  const [ref, tgt] = mode === 'convolveTemplate' ? [template, science] : [science, template];
  const choice = chooseBasis(config, ref.fwhm, tgt.fwhm);
  const sr = ref.fwhm / FWHM_PER_SIGMA;
  const st = tgt.fwhm / FWHM_PER_SIGMA;
  const sk = st > sr ? Math.sqrt(st * st - sr * sr) : 0;
  return {
    config,
    mode,
    basis: choice.spec,
    basisMode: choice.basisMode,
    domain: { ...domain },
    fwhm: { template: template.fwhm, science: science.fwhm },
    refVarianceFactor: gaussianSumSquares(sk, choice.spec.size),
  };
}

/** Records for the given sites; ref/tgt chosen by the plan's mode. */
export function buildRecords(plan: FitPlan, science: MaskedImage, template: MaskedImage, sites: readonly CandidateSite[]): CandidateRecord[] {
  const builder = new RecordBuilder(plan.basis, plan.config.fitForBackground, plan.refVarianceFactor);
  const [ref, tgt] = plan.mode === 'convolveTemplate' ? [template, science] : [science, template];
  return sites.map((s) => builder.build(ref, tgt, s));
}

export interface FitOptions {
  preset?: KernelPreset;
  config?: Partial<KernelConfig>;
  /** Skip PSF measurement with known shapes (e.g. from a PSF model). */
  templatePsf?: PsfShape;
  sciencePsf?: PsfShape;
  /** Stars detected on the template (default: detected here). */
  stars?: Star[];
}

/** Fit the spatially varying kernel matching template to science (or the reverse, by mode). */
export function fitKernel(science: MaskedImage, template: MaskedImage, opts: FitOptions = {}): KernelSolution {
  const config = resolveKernelConfig(opts.preset ?? 'default', opts.config ?? {});
  if (!sameGeometry(science, template)) {
    throw new KernelError('BAD_INPUT', `science (${science.width}×${science.height} at ${science.x0},${science.y0}) and template (${template.width}×${template.height} at ${template.x0},${template.y0}) must be on the same pixel grid`);
  }
  const domain: SpatialDomain = { x0: science.x0, y0: science.y0, width: science.width, height: science.height };
  // Template stars serve both its PSF and the candidates: detect once.
  const stars = opts.stars ?? findStars(template);
  const tShape = opts.templatePsf ?? measureShape(stars, 'template');
  const sShape = opts.sciencePsf ?? measureShape(findStars(science), 'science');
  const plan = planFit(config, domain, tShape, sShape);
  if (stars.length === 0) throw new KernelError('NO_STARS', 'no stars detected in the template', { stars: 0 });
  const sel = selectCandidates(stars, template, science, plan.basis.size, domain, config);
  if (sel.sites.length < config.minCandidates) {
    throw new KernelError('TOO_FEW_CANDIDATES', `only ${sel.sites.length} kernel candidate(s) pass selection, at least ${config.minCandidates} needed`, sel.counts);
  }
  const records = buildRecords(plan, science, template, sel.sites);
  return solveKernel(records, { ...plan, selectionCounts: sel.counts });
}
