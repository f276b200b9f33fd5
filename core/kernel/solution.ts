/**
 * The kernel solution: everything needed to convolve and subtract anywhere in the exposure, as
 * plain JSON (basis spec, spatial model and its domain, coefficients, background, candidates with
 * their fate, QA). JSON numbers round-trip exactly in JavaScript, so parse(serialise(s)) evaluates
 * to bit-identical kernels.
 *
 * Kernel convention: K is size×size, element [(v+h)·size + (u+h)] = K(u, v), and
 * (K⊗T)(x, y) = Σ K(u, v)·T(x−u, y−v). The model is target ≈ K(x, y)⊗ref + B(x, y).
 */
import { type BasisSpec, basisCount, basisImages } from './basis.ts';
import type { KernelConfig } from './config.ts';
import { KernelError } from './errors.ts';
import { type SpatialDomain, type SpatialType, nSpatialTerms, spatialEvaluator } from './spatial.ts';

export type CandidateStatus = 'used' | 'rejected' | 'unused';

export interface CandidateReport {
  id: number;
  x: number;
  y: number;
  snr: number;
  cell: number;
  status: CandidateStatus;
  /** Why a candidate was rejected ('single-kernel residual', 'kernel-sum outlier', 'spatial residual', 'singular'). */
  reason?: string;
  /** Its own single-kernel fit: kernel sum and residual mean/std of D/σ over the fit region. */
  kernelSum?: number;
  kernelSumErr?: number;
  residualMean?: number;
  residualStd?: number;
  /** Residual mean/std of D/σ under the final spatial model (used candidates). */
  spatialMean?: number;
  spatialStd?: number;
}

export interface KernelSolutionQa {
  kernelSum: number;
  conditionNumber: number;
  solveMethod: 'cholesky' | 'eigen-truncated';
  rank: number;
  nUnknowns: number;
  nCandidates: number;
  nUsed: number;
  rejected: Record<string, number>;
  iterations: number;
  /** χ² per degree of freedom of the used candidates under the spatial model. */
  chi2PerDof: number;
  /** Regularisation strength actually applied (delta-function basis), else 0. */
  lambda: number;
  warnings: string[];
}

export interface KernelSolution {
  format: 'diffim-kernel-solution';
  version: 1;
  mode: 'convolveTemplate' | 'convolveScience';
  basis: BasisSpec;
  basisMode: string;
  spatial: { type: SpatialType; kernelOrder: number; bgOrder: number; domain: SpatialDomain };
  /** kernelCoefficients[i] = spatial coefficients of basis kernel i (kernel 0: one constant). */
  kernelCoefficients: number[][];
  /** Background polynomial coefficients (empty when the background is not fitted). */
  backgroundCoefficients: number[];
  kernelSum: number;
  /** PSF FWHMs measured on the inputs (pixels), and the ref variance factor q used for weights. */
  fwhm: { template: number; science: number };
  refVarianceFactor: number;
  candidates: CandidateReport[];
  qa: KernelSolutionQa;
  config: KernelConfig;
}

const basisCache = new WeakMap<BasisSpec, Float64Array[]>();

function cachedBasis(spec: BasisSpec): Float64Array[] {
  let b = basisCache.get(spec);
  if (!b) {
    b = basisImages(spec);
    basisCache.set(spec, b);
  }
  return b;
}

/**
 * The kernel image of each spatial term: K(x, y) = Σ_s f_s(x, y)·spatialImages[s]. The convolution
 * engine uses these: K⊗T = Σ_s f_s·(K_s⊗T).
 */
export function spatialKernelImages(sol: KernelSolution): Float64Array[] {
  const basis = cachedBasis(sol.basis);
  const ns = nSpatialTerms(sol.spatial.kernelOrder);
  const np = sol.basis.size * sol.basis.size;
  const out = Array.from({ length: ns }, () => new Float64Array(np));
  sol.kernelCoefficients.forEach((coefs, i) => {
    const img = basis[i]!;
    coefs.forEach((c, s) => {
      if (c === 0) return;
      const o = out[s]!;
      for (let p = 0; p < np; p++) o[p]! += c * img[p]!;
    });
  });
  return out;
}

/** The kernel at parent pixel (x, y). */
export function kernelImageAt(sol: KernelSolution, x: number, y: number): Float64Array {
  const basis = cachedBasis(sol.basis);
  const f = spatialEvaluator(sol.spatial.type, sol.spatial.kernelOrder, sol.spatial.domain)(x, y);
  const np = sol.basis.size * sol.basis.size;
  const out = new Float64Array(np);
  sol.kernelCoefficients.forEach((coefs, i) => {
    let a = 0;
    for (let s = 0; s < coefs.length; s++) a += coefs[s]! * f[s]!;
    if (a === 0) return;
    const img = basis[i]!;
    for (let p = 0; p < np; p++) out[p]! += a * img[p]!;
  });
  return out;
}

/** The fitted background B as a function of parent (x, y) (0 when not fitted); build once, call per pixel. */
export function backgroundEvaluator(sol: KernelSolution): (x: number, y: number) => number {
  const coefs = sol.backgroundCoefficients;
  if (coefs.length === 0) return () => 0;
  const f = spatialEvaluator(sol.spatial.type, sol.spatial.bgOrder, sol.spatial.domain);
  const terms = new Float64Array(coefs.length);
  return (x, y) => {
    f(x, y, terms);
    let s = 0;
    for (let t = 0; t < coefs.length; t++) s += coefs[t]! * terms[t]!;
    return s;
  };
}

/** The fitted background B at parent pixel (x, y) (0 when not fitted). */
export function backgroundAt(sol: KernelSolution, x: number, y: number): number {
  return backgroundEvaluator(sol)(x, y);
}

export function serializeSolution(sol: KernelSolution): string {
  return JSON.stringify(sol, null, 1);
}

function bad(why: string): never {
  throw new KernelError('BAD_SOLUTION', `kernel solution: ${why}`);
}

/** Parse and check a serialised solution (shape and counts, so evaluation cannot go out of range). */
export function parseSolution(text: string): KernelSolution {
  let s: KernelSolution;
  try {
    s = JSON.parse(text) as KernelSolution;
  } catch (e) {
    bad(`not JSON (${(e as Error).message})`);
  }
  if (!s || typeof s !== 'object' || s.format !== 'diffim-kernel-solution') bad('missing format "diffim-kernel-solution"');
  if (s.version !== 1) bad(`unsupported version ${JSON.stringify(s.version)}`);
  const b = s.basis;
  if (!b || !Number.isInteger(b.size) || b.size < 1 || b.size % 2 !== 1 || b.size > 201) bad('basis.size must be an odd integer ≤ 201');
  if (!['alard-lupton', 'delta-function', 'images'].includes(b.type)) bad(`unknown basis type ${JSON.stringify(b.type)}`);
  if (b.type === 'alard-lupton' && (!Array.isArray(b.sigmas) || !Array.isArray(b.degrees) || b.sigmas.length !== b.degrees.length || b.degrees.some((d) => !Number.isInteger(d) || d < 0 || d > 10) || b.sigmas.some((x) => !(x > 0)))) bad('alard-lupton basis needs matching sigmas and degrees');
  if (b.type === 'images' && (!Array.isArray(b.images) || b.images.some((im) => !Array.isArray(im) || im.length !== b.size * b.size))) bad('images basis needs size² values per image');
  const sp = s.spatial;
  if (!sp || !['chebyshev1', 'polynomial'].includes(sp.type) || !Number.isInteger(sp.kernelOrder) || sp.kernelOrder < 0 || sp.kernelOrder > 10 || !Number.isInteger(sp.bgOrder) || sp.bgOrder < 0 || sp.bgOrder > 10) bad('bad spatial model');
  const d = sp.domain;
  if (!d || ![d.x0, d.y0, d.width, d.height].every(Number.isFinite) || d.width < 1 || d.height < 1) bad('bad spatial domain');
  const nb = basisCount(b);
  const ns = nSpatialTerms(sp.kernelOrder);
  if (!Array.isArray(s.kernelCoefficients) || s.kernelCoefficients.length !== nb) bad(`expected ${nb} kernel coefficient rows`);
  s.kernelCoefficients.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== (i === 0 ? 1 : ns) || row.some((v) => typeof v !== 'number' || !Number.isFinite(v))) bad(`kernel coefficient row ${i} must have ${i === 0 ? 1 : ns} finite numbers`);
  });
  if (!Array.isArray(s.backgroundCoefficients) || (s.backgroundCoefficients.length !== 0 && s.backgroundCoefficients.length !== nSpatialTerms(sp.bgOrder)) || s.backgroundCoefficients.some((v) => typeof v !== 'number' || !Number.isFinite(v))) bad('bad background coefficients');
  if (s.mode !== 'convolveTemplate' && s.mode !== 'convolveScience') bad(`bad mode ${JSON.stringify(s.mode)}`);
  return s;
}
