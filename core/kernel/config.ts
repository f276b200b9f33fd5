/**
 * The PSF-matching configuration: one schema, keys named as in LSST ip_diffim (PsfMatchConfig,
 * PsfMatchConfigAL/DF) so users can carry settings across, documented defaults, and three presets.
 * `resolveKernelConfig` merges a preset with overrides and rejects bad values naming the key.
 */
import { KernelError } from './errors.ts';
import { type MaskPlane, isMaskPlane } from '../image/mask.ts';

export type KernelBasisSet = 'alard-lupton' | 'delta-function';
export type SpatialModelType = 'chebyshev1' | 'polynomial';
export type ConvolutionMode = 'convolveTemplate' | 'convolveScience' | 'auto';
export type KernelPreset = 'default' | 'delta-function' | 'snap';

export interface KernelConfig {
  /** Which image is convolved: the template (default), the science, or by PSF width (ip_diffim's rule). */
  mode: ConvolutionMode;
  /**
   * Preconvolution (ip_diffim's AlardLuptonPreconvolveSubtractTask): the science is convolved with
   * its own reflected PSF (an empirical PSF image), the template is matched to that (a target PSF
   * ≈ √2 × the science's, so no deconvolution when the template is as wide as the science), and
   * the output is the score image P⊗S − (K⊗T + B), the likelihood image for point sources: detect
   * on it directly, without further smoothing. Default false. Needs mode convolveTemplate.
   */
  preconvolve: boolean;
  kernelBasisSet: KernelBasisSet;
  /** Kernel width/height in pixels (odd); replaced from the two FWHMs when scaleByFwhm. */
  kernelSize: number;
  scaleByFwhm: boolean;
  /** kernelSize = this × the widest basis sigma, made odd, clamped to [kernelSizeMin, kernelSizeMax]. */
  kernelSizeFwhmScaling: number;
  kernelSizeMin: number;
  kernelSizeMax: number;
  /** Alard–Lupton basis: number of Gaussians, polynomial degree of each, sigmas used when not scaled by FWHM. */
  alardNGauss: number;
  alardDegGauss: number[];
  alardSigGauss: number[];
  /** Ratio between successive basis sigmas when they are derived from the FWHMs. */
  alardGaussBeta: number;
  /** Smallest basis sigma (px) when convolving; when deconvolving (target PSF narrower), alardMinSigDeconv. */
  alardMinSig: number;
  alardMinSigDeconv: number;
  /**
   * Laplacian regularisation of the kernel (Becker et al. 2012). ip_diffim applies it to the
   * delta-function basis only; we apply it to Alard–Lupton too, because kernel components finer
   * than the template PSF are invisible to the fit and otherwise come out as noise (measured on
   * core/sim pairs: 1.5–4.5 % L2 kernel error without, 1.1–1.3 % with, same difference image).
   */
  useRegularization: boolean;
  /** centralDifference: Laplacian stencil; forwardDifference: the differences of forwardRegularizationOrders (0 = the values: a ridge). */
  regularizationType: 'centralDifference' | 'forwardDifference';
  forwardRegularizationOrders: number[];
  centralRegularizationStencil: 5 | 9;
  regularizationBorderPenalty: number;
  /** absolute: λ = lambdaValue; relative: λ = lambdaScaling × trace(M)/trace(H) (N.R. 18.5.8). */
  lambdaType: 'absolute' | 'relative';
  lambdaValue: number;
  lambdaScaling: number;
  /** Replace the basis by the mean and principal components of the single-candidate kernels (plus the joint-fit kernel, see solve.ts) for the spatial fit. */
  usePcaForSpatialKernel: boolean;
  numPrincipalComponents: number;
  /** Spatial model of the kernel coefficients and of the background, over the exposure's bounding box. */
  spatialModelType: SpatialModelType;
  spatialKernelOrder: number;
  spatialBgOrder: number;
  fitForBackground: boolean;
  /** Candidate selection. Cells are anchored to the full exposure, so every tile agrees. */
  sizeCellX: number;
  sizeCellY: number;
  nStarPerCell: number;
  maxCandidates: number;
  minCandidates: number;
  candidateSnrMin: number;
  candidateSnrMax: number;
  /**
   * Refuse stars with a detected neighbour (ip_diffim's isolated-star selection). Off by default:
   * static neighbours inside a stamp are fitted by the same kernel, and in crowded fields isolation
   * leaves too few candidates (pydia pairA: 40 of 1726 stars, robust std(z) 1.45; without: 221, 1.06).
   */
  rejectBlendedCandidates: boolean;
  /** Mask planes that disqualify a candidate stamp (in either image). */
  badMaskPlanes: MaskPlane[];
  /** Clipping (ip_diffim's visitors). */
  singleKernelClipping: boolean;
  kernelSumClipping: boolean;
  spatialKernelClipping: boolean;
  maxKsumSigma: number;
  candidateResidualMeanMax: number;
  candidateResidualStdMax: number;
  maxSpatialIterations: number;
  /** Largest condition number accepted for a Cholesky solve; beyond it a truncated eigen solve is used. */
  maxConditionNumber: number;
}

const BASE: KernelConfig = {
  mode: 'convolveTemplate',
  preconvolve: false,
  kernelBasisSet: 'alard-lupton',
  kernelSize: 21,
  scaleByFwhm: true,
  kernelSizeFwhmScaling: 6,
  kernelSizeMin: 21,
  kernelSizeMax: 35,
  alardNGauss: 3,
  alardDegGauss: [4, 2, 2],
  alardSigGauss: [0.7, 1.5, 3.0],
  alardGaussBeta: 2,
  alardMinSig: 0.7,
  alardMinSigDeconv: 0.4,
  useRegularization: true,
  regularizationType: 'centralDifference',
  forwardRegularizationOrders: [1, 2],
  centralRegularizationStencil: 5,
  regularizationBorderPenalty: 3,
  lambdaType: 'relative',
  lambdaValue: 0.2,
  lambdaScaling: 1e-3,
  usePcaForSpatialKernel: false,
  numPrincipalComponents: 5,
  spatialModelType: 'chebyshev1',
  spatialKernelOrder: 1,
  spatialBgOrder: 2,
  fitForBackground: true,
  sizeCellX: 128,
  sizeCellY: 128,
  nStarPerCell: 5,
  maxCandidates: 1000,
  minCandidates: 3,
  candidateSnrMin: 10,
  candidateSnrMax: 500,
  rejectBlendedCandidates: false,
  badMaskPlanes: ['NO_DATA', 'BAD', 'SAT', 'EDGE', 'CR', 'SAT_TEMPLATE'],
  singleKernelClipping: true,
  kernelSumClipping: true,
  spatialKernelClipping: true,
  maxKsumSigma: 3,
  candidateResidualMeanMax: 0.25,
  candidateResidualStdMax: 1.5,
  maxSpatialIterations: 3,
  maxConditionNumber: 5e7,
};

/** Presets: AlardLuptonSubtract's defaults, the delta-function basis, and snap pairs (same PSF, seconds apart). */
export const PRESETS: Readonly<Record<KernelPreset, Partial<KernelConfig>>> = Object.freeze({
  default: {},
  'delta-function': {
    kernelBasisSet: 'delta-function',
    scaleByFwhm: false,
    kernelSize: 15,
    usePcaForSpatialKernel: true,
    lambdaScaling: 1e-4,
    maxConditionNumber: 5e6,
  },
  snap: {
    alardNGauss: 2,
    alardDegGauss: [4, 2],
    alardSigGauss: [1.0, 2.5],
    scaleByFwhm: false,
    kernelSize: 11,
    spatialKernelOrder: 0,
    spatialBgOrder: 0,
    fitForBackground: false,
    spatialKernelClipping: false,
    // No regularisation (as ip_diffim: its Alard–Lupton snap basis is unregularised). A snap kernel
    // is nearly a delta function, which is what the Laplacian penalty fights: on core/sim 512²
    // same-PSF pairs (FWHM 3.5, sub-pixel shift) it pulled the kernel sum 0.09–0.21 % low and left
    // |z| > 5 residuals at bright stars (1e-4 of pixels); without it the sum is within 0.11 %, the
    // artefacts are gone, and on 3.0 → 4.0 pairs the kernel L2 error drops from 3.6–4.0 % to 1.5–1.7 %.
    useRegularization: false,
  },
});

function fail(key: string, why: string): never {
  throw new KernelError('BAD_CONFIG', `kernel config ${key}: ${why}`);
}

function checkInt(c: KernelConfig, key: keyof KernelConfig, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(key, `must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
}

function checkNum(c: KernelConfig, key: keyof KernelConfig, min: number, max = Infinity, openMin = false): void {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (openMin && v === min) || v > max) {
    fail(key, `must be a number ${openMin ? '>' : '≥'} ${min}${max < Infinity ? ` and ≤ ${max}` : ''}, got ${JSON.stringify(v)}`);
  }
}

function checkBool(c: KernelConfig, key: keyof KernelConfig): void {
  if (typeof c[key] !== 'boolean') fail(key, `must be true or false, got ${JSON.stringify(c[key])}`);
}

function checkChoice(c: KernelConfig, key: keyof KernelConfig, allowed: readonly unknown[]): void {
  if (!allowed.includes(c[key])) fail(key, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(c[key])}`);
}

/** The preset's configuration with `overrides` applied, validated. Unknown keys are refused. */
export function resolveKernelConfig(preset: KernelPreset = 'default', overrides: Partial<KernelConfig> = {}): KernelConfig {
  if (!Object.hasOwn(PRESETS, preset)) fail('preset', `must be one of ${Object.keys(PRESETS).join(', ')}, got ${JSON.stringify(preset)}`);
  for (const k of Object.keys(overrides)) if (!Object.hasOwn(BASE, k)) fail(k, 'is not a kernel configuration key');
  const c: KernelConfig = { ...BASE, ...PRESETS[preset], ...overrides };
  validateKernelConfig(c);
  return c;
}

export function validateKernelConfig(c: KernelConfig): void {
  checkChoice(c, 'mode', ['convolveTemplate', 'convolveScience', 'auto']);
  checkChoice(c, 'kernelBasisSet', ['alard-lupton', 'delta-function']);
  checkChoice(c, 'spatialModelType', ['chebyshev1', 'polynomial']);
  checkChoice(c, 'lambdaType', ['absolute', 'relative']);
  checkChoice(c, 'centralRegularizationStencil', [5, 9]);
  checkChoice(c, 'regularizationType', ['centralDifference', 'forwardDifference']);
  if (!Array.isArray(c.forwardRegularizationOrders) || c.forwardRegularizationOrders.length === 0 || c.forwardRegularizationOrders.some((o) => o !== 0 && o !== 1 && o !== 2)) fail('forwardRegularizationOrders', `must list orders from 0, 1, 2, got ${JSON.stringify(c.forwardRegularizationOrders)}`);
  checkInt(c, 'kernelSize', 3, 101);
  if (c.kernelSize % 2 !== 1) fail('kernelSize', `must be odd, got ${c.kernelSize}`);
  checkInt(c, 'kernelSizeMin', 3, 101);
  checkInt(c, 'kernelSizeMax', 3, 101);
  if (c.kernelSizeMin > c.kernelSizeMax) fail('kernelSizeMin', `must be ≤ kernelSizeMax (${c.kernelSizeMax})`);
  checkNum(c, 'kernelSizeFwhmScaling', 0, 100, true);
  checkBool(c, 'preconvolve');
  if (c.preconvolve && c.mode !== 'convolveTemplate') fail('preconvolve', `needs mode convolveTemplate (the template is matched to the preconvolved science), got mode ${JSON.stringify(c.mode)}`);
  for (const k of ['rejectBlendedCandidates', 'scaleByFwhm', 'useRegularization', 'usePcaForSpatialKernel', 'fitForBackground', 'singleKernelClipping', 'kernelSumClipping', 'spatialKernelClipping'] as const) checkBool(c, k);
  checkInt(c, 'alardNGauss', 1, 10);
  for (const key of ['alardDegGauss', 'alardSigGauss'] as const) {
    const arr = c[key];
    if (!Array.isArray(arr) || arr.length !== c.alardNGauss) fail(key, `must list alardNGauss (${c.alardNGauss}) values, got ${JSON.stringify(arr)}`);
  }
  c.alardDegGauss.forEach((d) => { if (!Number.isInteger(d) || d < 0 || d > 10) fail('alardDegGauss', `degrees must be integers in [0, 10], got ${JSON.stringify(c.alardDegGauss)}`); });
  c.alardSigGauss.forEach((s) => { if (!(typeof s === 'number' && s > 0 && Number.isFinite(s))) fail('alardSigGauss', `sigmas must be positive, got ${JSON.stringify(c.alardSigGauss)}`); });
  checkNum(c, 'alardGaussBeta', 1, 10, true);
  checkNum(c, 'alardMinSig', 0, 50, true);
  checkNum(c, 'alardMinSigDeconv', 0, 50, true);
  checkNum(c, 'regularizationBorderPenalty', 0, 1e6);
  checkNum(c, 'lambdaValue', 0, 1e12);
  checkNum(c, 'lambdaScaling', 0, 1e6);
  checkInt(c, 'numPrincipalComponents', 1, 50);
  checkInt(c, 'spatialKernelOrder', 0, 6);
  checkInt(c, 'spatialBgOrder', 0, 6);
  checkInt(c, 'sizeCellX', 16, 1 << 16);
  checkInt(c, 'sizeCellY', 16, 1 << 16);
  checkInt(c, 'nStarPerCell', 1, 1000);
  checkInt(c, 'maxCandidates', 1, 100000);
  checkInt(c, 'minCandidates', 1, 1000);
  checkNum(c, 'candidateSnrMin', 0);
  checkNum(c, 'candidateSnrMax', 0);
  if (c.candidateSnrMax <= c.candidateSnrMin) fail('candidateSnrMax', `must exceed candidateSnrMin (${c.candidateSnrMin})`);
  if (!Array.isArray(c.badMaskPlanes)) fail('badMaskPlanes', 'must be a list of mask-plane names');
  for (const p of c.badMaskPlanes) if (!isMaskPlane(p)) fail('badMaskPlanes', `unknown mask plane ${JSON.stringify(p)}`);
  checkNum(c, 'maxKsumSigma', 0, 1e6, true);
  checkNum(c, 'candidateResidualMeanMax', 0, 1e6, true);
  checkNum(c, 'candidateResidualStdMax', 0, 1e6, true);
  checkInt(c, 'maxSpatialIterations', 1, 20);
  checkNum(c, 'maxConditionNumber', 1, Infinity, true);
}
