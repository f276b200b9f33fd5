/**
 * The in-memory subtraction: science and template MaskedImages (same pixel grid) → difference,
 * matched images, kernel solution, background and QA. No files: the CLI and the pipeline build on
 * this. Steps: fill unusable pixels → fit the kernel (or take a given solution) → convolve with the
 * spatially varying kernel (core/convolve/spatial.ts, exact) → subtract → decorrelate → QA.
 *
 *   convolveTemplate:  D = S − (K⊗T + B)
 *   convolveScience:   D = ((K⊗S + B) − T) / ΣK          (science's photometric units)
 *
 * In both, D = matchedScience − matchedTemplate. Variances add (K²⊗V exactly); masks OR, the
 * template's SAT becoming SAT_TEMPLATE; DETECTED planes of the inputs are not carried over.
 *
 * With the kernel option `preconvolve` (core/subtract/preconvolve.ts) the science is first
 * convolved with its own reflected PSF P (an empirical PSF image, core/psf/psf-image.ts) and the
 * difference is the score image: D = P⊗S − (K⊗T + B), decorrelated as a likelihood image.
 */
import { createMaskedImage, type MaskedImage } from '../image/masked-image.ts';
import { maskBit, maskOf } from '../image/mask.ts';
import { findStars, psfImage, type PsfImage, type Star } from '../psf/index.ts';
import {
  fitKernel, kernelImageAt, KernelError, measureShape, resolveKernelConfig,
  type KernelConfig, type KernelPreset, type KernelSolution,
} from '../kernel/index.ts';
import { basis1d, scaleToDomain, termPowers } from '../kernel/spatial.ts';
import { blockConvolve, convolveSpatial, spatialKernelOf } from '../convolve/spatial.ts';
import { orWindow } from '../convolve/mask-window.ts';
import { decorrelationKernel, embedKernel, type DecorrelationKernel } from './decorrelate.ts';
import { addBackground, constantKernel, convolveKernels, convolveTerms, differenceOf, preconvolutionKernel, scoreCorrection } from './preconvolve.ts';
import { computeQa, type SubtractQa } from './qa.ts';
import { varianceLevels } from './variance-level.ts';
import { detectAndMeasure, gaussianPsf, type CelestialWcs, type DetectConfig, type DetectResult, type PsfModel } from '../detect/index.ts';
import { psfFromStars } from '../psf/index.ts';

export interface SubtractOptions {
  preset?: KernelPreset;
  /** Kernel configuration overrides (ip_diffim names; see core/kernel/config.ts). */
  kernel?: Partial<KernelConfig>;
  /** Whiten the difference's noise (DMTN-021). Default true, as ip_diffim's doDecorrelation. */
  decorrelate?: boolean;
  /** Use this solution instead of fitting (the tiled pipeline shares one). */
  solution?: KernelSolution;
  /** FFT block side for the convolution engine. */
  blockSize?: number;
  /** Stars already detected (parent coordinates); detected here otherwise. */
  templateStars?: Star[];
  scienceStars?: Star[];
  /** Preconvolution only: the science PSF image to use (the tiled pipeline shares one); built from the science stars otherwise. */
  sciencePsf?: PsfImage;
  /**
   * Detect and measure DIA sources on the difference (core/detect; configuration overrides when
   * an object). The returned difference then has the detection background subtracted and the
   * DETECTED / DETECTED_NEGATIVE planes set. Not for score images yet. Default false.
   */
  detect?: boolean | Partial<DetectConfig>;
  /**
   * σ² of the science and template inputs for decorrelation (σ-clipped means, in their own units;
   * see varianceLevels). The tiled pipeline merges them over all tiles; measured here otherwise.
   */
  inputVariances?: { science: number; template: number };
  /**
   * Second moments of the template's and the science's PSFs for detection (null: from the FWHM).
   * The tiled pipeline measures them once over all tiles' stars; from the given stars otherwise.
   */
  psfMoments?: { template: PsfMoments | null; science: PsfMoments | null };
  /** Sky coordinates of the sources (the science's WCS over these arrays' local pixels). */
  wcs?: CelestialWcs | null;
  /** Goes into the high bits of the source ids. */
  exposureId?: number | bigint;
  /** For the detection QA's limiting magnitude. */
  zeroPoint?: number;
}

/** What preconvolution used (set only when the difference is a score image). */
export interface PreconvolutionInfo {
  /** The science PSF image. */
  psf: PsfImage;
  /** The preconvolution kernel P: the PSF image reflected, unit sum, size². */
  kernel: Float64Array;
  size: number;
  /** FWHM (px) the kernel fit aimed at: √2 × the science's. */
  targetFwhm: number;
}

export interface SubtractResult {
  difference: MaskedImage;
  /** What was subtracted from the matched science: K⊗T + B (convolveTemplate) or T/ΣK (convolveScience). */
  matchedTemplate: MaskedImage;
  /** S (convolveTemplate: the science input itself, not a copy) or (K⊗S + B)/ΣK (convolveScience). */
  matchedScience: MaskedImage;
  kernel: KernelSolution;
  /** The fitted differential background B, per pixel (zeros when not fitted). */
  background: Float32Array;
  /** Decorrelation ψ; for a score image the score correction c (see preconvolve.ts) in the same form. */
  decorrelation: DecorrelationKernel | null;
  qa: SubtractQa;
  /** DIA sources and detection QA, when asked for. */
  detection?: DetectResult;
  /** Set when the science was preconvolved: `difference` is then the score image, `matchedScience` P⊗S and `matchedTemplate` K⊗T + B (both before the score correction). */
  preconvolution?: PreconvolutionInfo;
}

export interface PsfMoments { ixx: number; iyy: number; ixy: number }

const UNUSABLE = maskOf('NO_DATA');
const NOT_CARRIED = maskOf('DETECTED', 'DETECTED_NEGATIVE');

/**
 * A copy in which non-finite values or variances (and negative variances) are 0 with NO_DATA set,
 * so nothing non-finite spreads through a convolution. The input is returned when already clean.
 */
export function prepareForConvolution(mi: MaskedImage): MaskedImage {
  const n = mi.width * mi.height;
  let clean = true;
  for (let i = 0; i < n; i++) {
    const v = mi.variance[i]!;
    if (!Number.isFinite(mi.image[i]!) || !Number.isFinite(v) || v < 0) { clean = false; break; }
  }
  if (clean) return mi;
  const out = { ...mi, image: mi.image.slice(), variance: mi.variance.slice(), mask: mi.mask.slice() };
  for (let i = 0; i < n; i++) {
    const v = out.variance[i]!;
    if (!Number.isFinite(out.image[i]!) || !Number.isFinite(v) || v < 0) {
      out.image[i] = 0;
      out.variance[i] = 0;
      out.mask[i]! |= UNUSABLE;
    }
  }
  return out;
}

/** The background polynomial over the whole image, evaluated row by row (separable 1-D bases). */
export function backgroundImage(sol: KernelSolution, width: number, height: number, x0: number, y0: number): Float32Array {
  const out = new Float32Array(width * height);
  const coefs = sol.backgroundCoefficients;
  if (coefs.length === 0) return out;
  const { type, bgOrder: order, domain } = sol.spatial;
  const nb = order + 1;
  const bx = new Float64Array(nb * width);
  for (let x = 0; x < width; x++) basis1d(type, order, scaleToDomain(domain, x + x0, 0)[0], bx, x * nb);
  const by = new Float64Array(nb);
  const powers = termPowers(order);
  // Per row, the polynomial in x: c[a] = Σ over terms (a, j) of coef·T_j(y).
  const c = new Float64Array(nb);
  for (let y = 0; y < height; y++) {
    basis1d(type, order, scaleToDomain(domain, 0, y + y0)[1], by);
    c.fill(0);
    powers.forEach(([a, j], k) => { c[a]! += coefs[k]! * by[j]!; });
    const o = y * width;
    for (let x = 0; x < width; x++) {
      let s = 0;
      for (let a = 0; a < nb; a++) s += c[a]! * bx[x * nb + a]!;
      out[o + x] = s;
    }
  }
  return out;
}

function sameGrid(a: MaskedImage, b: MaskedImage): boolean {
  return a.width === b.width && a.height === b.height && a.x0 === b.x0 && a.y0 === b.y0;
}

/** The kernel at the centre of the solution's domain (the whole exposure, whatever part of it is held). */
function centreKernel(sol: KernelSolution): Float64Array {
  const d = sol.spatial.domain;
  return kernelImageAt(sol, Math.round(d.x0 + (d.width - 1) / 2), Math.round(d.y0 + (d.height - 1) / 2));
}

export function subtract(science: MaskedImage, template: MaskedImage, opts: SubtractOptions = {}): SubtractResult {
  if (!sameGrid(science, template)) {
    throw new KernelError('BAD_INPUT', `science (${science.width}×${science.height} at ${science.x0},${science.y0}) and template (${template.width}×${template.height} at ${template.x0},${template.y0}) must be on the same pixel grid`);
  }
  const timings: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (name: string) => { const t = performance.now(); timings[name] = t - t0; t0 = t; };
  const sci = prepareForConvolution(science);
  const tpl = prepareForConvolution(template);
  lap('prepare');
  const config = resolveKernelConfig(opts.preset ?? 'default', opts.kernel ?? {});
  const preconvolve = wantsPreconvolution(config, opts);
  const tStars = opts.templateStars ?? findStars(tpl);
  const sStars = opts.scienceStars ?? findStars(sci);
  lap('detect');
  if (preconvolve) return subtractPreconvolved(sci, tpl, opts, tStars, sStars, timings, lap);
  const sol = opts.solution ?? fitKernel(sci, tpl, { preset: opts.preset, config: opts.kernel, stars: tStars, sciencePsf: measureShape(sStars, 'science') });
  lap('fit');

  const convolveTemplate = sol.mode === 'convolveTemplate';
  const [ref, other] = convolveTemplate ? [tpl, sci] : [sci, tpl];
  const { width: W, height: H, x0, y0 } = science;
  const conv = convolveSpatial(ref, spatialKernelOf(sol), { blockSize: opts.blockSize });
  lap('convolve');
  const bg = backgroundImage(sol, W, H, x0, y0);
  const k = sol.kernelSum;
  const sat = maskBit('SAT');
  const satT = maskBit('SAT_TEMPLATE');
  const edge = maskBit('EDGE');
  const tplBits = (m: number) => ((m & sat) !== 0 ? (m & ~sat) | satT : m);
  const diff = createMaskedImage(W, H, x0, y0);
  // The matched images reuse planes where they can (the science itself, the convolution output
  // updated in place): at 4096² each MaskedImage is 200 MB.
  const mS = convolveTemplate ? sci : conv;
  const mT = convolveTemplate ? conv : createMaskedImage(W, H, x0, y0);
  for (let i = 0; i < W * H; i++) {
    const cm = conv.mask[i]!;
    const isEdge = (cm & edge) !== 0;
    let sMask: number;
    if (convolveTemplate) {
      sMask = sci.mask[i]! & ~NOT_CARRIED;
      mT.image[i] = conv.image[i]! + bg[i]!;
      mT.mask[i] = tplBits(cm) & ~NOT_CARRIED;
    } else {
      mS.image[i] = isEdge ? 0 : (conv.image[i]! + bg[i]!) / k;
      mS.variance[i] = conv.variance[i]! / (k * k);
      sMask = mS.mask[i] = cm & ~NOT_CARRIED;
      mT.image[i] = tpl.image[i]! / k;
      mT.variance[i] = tpl.variance[i]! / (k * k);
      mT.mask[i] = tplBits(tpl.mask[i]!) & ~NOT_CARRIED;
    }
    diff.mask[i] = sMask | mT.mask[i]!;
    if ((diff.mask[i]! & edge) !== 0) {
      // No full kernel footprint: not a difference. Finite, flagged, with the unconvolved variance.
      diff.image[i] = 0;
      diff.variance[i] = convolveTemplate ? mS.variance[i]! : mT.variance[i]!;
    } else {
      diff.image[i] = mS.image[i]! - mT.image[i]!;
      diff.variance[i] = mS.variance[i]! + mT.variance[i]!;
    }
  }
  lap('difference');

  let decorrelation: DecorrelationKernel | null = null;
  let difference = diff;
  if (opts.decorrelate ?? true) {
    const iv = opts.inputVariances ?? varianceLevels(sci, tpl, sol.spatial.domain);
    // In the difference's units: the unconvolved image's variance and the convolved image's.
    const [vU, vC] = convolveTemplate ? [iv.science, iv.template] : [iv.template / (k * k), iv.science / (k * k)];
    const kc = centreKernel(sol);
    decorrelation = decorrelationKernel(kc, sol.basis.size, vU, vC);
    difference = applyDecorrelation(diff, convolveTemplate ? sci.variance : tpl.variance, convolveTemplate ? tpl.variance : sci.variance, convolveTemplate ? 1 : 1 / (k * k), decorrelation, opts.blockSize);
    lap('decorrelate');
  }
  let detection: DetectResult | undefined;
  if (opts.detect) {
    // The difference has the PSF of the image that was not convolved (convolved by ψ when decorrelated).
    const pm = opts.psfMoments;
    const psfU = convolveTemplate ? starPsf(sStars, sol.fwhm.science, pm?.science) : starPsf(tStars, sol.fwhm.template, pm?.template);
    // The raw science keeps its own PSF: the unconvolved one in convolveTemplate, else measured apart.
    const psfS = convolveTemplate ? psfU : starPsf(sStars, sol.fwhm.science, pm?.science);
    const m = psfU.moments;
    const diffPsf = decorrelation ? gaussianPsf({ ...m, kernel: { values: decorrelation.psi, size: decorrelation.size } }) : psfU.model;
    detection = detectAndMeasure({
      difference,
      psf: diffPsf,
      science: { image: sci, psf: psfS.model },
      matchedTemplate: { image: mT, psf: psfU.model },
      wcs: opts.wcs, exposureId: opts.exposureId, zeroPoint: opts.zeroPoint,
      config: typeof opts.detect === 'object' ? opts.detect : {},
    });
    difference = detection.difference;
    lap('detectSources');
  }
  const qa = computeQa({ difference, science: sci, sol, templateStars: tStars, scienceStars: sStars, decorrelation, timings });
  lap('qa');
  return { difference, matchedTemplate: mT, matchedScience: mS, kernel: sol, background: bg, decorrelation, qa, ...(detection ? { detection } : {}) };
}

/**
 * Preconvolution is asked for by the kernel option; a given solution says how it was fitted, and
 * must agree with an explicit option (a kernel matched to P⊗S is wrong for S, and the reverse).
 */
function wantsPreconvolution(config: KernelConfig, opts: SubtractOptions): boolean {
  if (!opts.solution) return config.preconvolve;
  const fitted = opts.solution.config?.preconvolve === true;
  const asked = opts.kernel?.preconvolve;
  if (asked !== undefined && asked !== fitted) {
    throw new KernelError('BAD_INPUT', `the given kernel solution was fitted ${fitted ? 'with' : 'without'} preconvolution, but preconvolve is ${asked}`);
  }
  return fitted;
}

/**
 * The score image (see preconvolve.ts): P⊗S − (K⊗T + B), K fitted between the template and P⊗S;
 * with decorrelation, the likelihood-image correction c folded into both convolutions.
 */
function subtractPreconvolved(
  sci: MaskedImage, tpl: MaskedImage, opts: SubtractOptions, tStars: Star[], sStars: Star[],
  timings: Record<string, number>, lap: (name: string) => void,
): SubtractResult {
  const { width: W, height: H, x0, y0 } = sci;
  const domain = { x0, y0, width: W, height: H };
  const blockSize = opts.blockSize;
  // Measured first when needed (a shared solution and PSF need no science stars): it turns
  // "no stars" into the kernel's typed error with the counts.
  const sShape = opts.solution && opts.sciencePsf ? null : measureShape(sStars, 'science');
  const psf = opts.sciencePsf ?? psfImage(sci, sStars);
  const pk = preconvolutionKernel(psf.image, psf.size);
  lap('psf');
  const mS = convolveSpatial(sci, constantKernel(pk, psf.size, domain), { blockSize });
  lap('preconvolve');
  // Second moments add under convolution: P⊗S has twice the science's (ip_diffim: FWHM × √2).
  const target = sShape && { fwhm: Math.SQRT2 * sShape.fwhm, ixx: 2 * sShape.ixx, iyy: 2 * sShape.iyy };
  const sol = opts.solution ?? fitKernel(mS, tpl, { preset: opts.preset, config: opts.kernel, stars: tStars, sciencePsf: target! });
  if (sol.mode !== 'convolveTemplate') throw new KernelError('BAD_INPUT', `preconvolution matches the template to the preconvolved science; the solution's mode is ${sol.mode}`);
  lap('fit');
  const sk = spatialKernelOf(sol);
  const bg = backgroundImage(sol, W, H, x0, y0);
  const mT = addBackground(convolveSpatial(tpl, sk, { blockSize }), bg);
  lap('convolve');
  let score = differenceOf(mS, mT, sci.variance);
  lap('difference');
  let decorrelation: DecorrelationKernel | null = null;
  if (opts.decorrelate ?? true) {
    // σ² of the inputs before any convolution (ip_diffim's svar, tvar), in their own units: κ is in K.
    const iv = opts.inputVariances ?? varianceLevels(sci, tpl, domain);
    const [vS, vT] = [iv.science, iv.template];
    const kc = centreKernel(sol);
    decorrelation = scoreCorrection(kc, sol.basis.size, pk, psf.size, vS, vT);
    const c = decorrelation.psi;
    const nc = decorrelation.size;
    const a = convolveSpatial(sci, constantKernel(convolveKernels(c, nc, pk, psf.size), nc + psf.size - 1, domain), { blockSize });
    const t = addBackground(convolveSpatial(tpl, convolveTerms(sk, c, nc), { blockSize }), bg);
    score = differenceOf(a, t, sci.variance);
    lap('decorrelate');
  }
  const qa = computeQa({ difference: score, science: mS, sol, templateStars: tStars, scienceStars: sStars, decorrelation, timings });
  qa.warnings.push(...psf.warnings);
  if (opts.detect) qa.warnings.push('DIA source detection is not run on score images yet: no sources were measured');
  lap('qa');
  return {
    difference: score, matchedTemplate: mT, matchedScience: mS, kernel: sol, background: bg, decorrelation, qa,
    preconvolution: { psf, kernel: pk, size: psf.size, targetFwhm: target?.fwhm ?? sol.fwhm.science },
  };
}

/**
 * A Gaussian PSF model from the stars' median moments (or the given ones); from the FWHM the fit
 * used when the stars do not give a PSF (too few clean ones).
 */
function starPsf(stars: readonly Star[], fwhm: number, given?: PsfMoments | null): { model: PsfModel; moments: PsfMoments } {
  let moments = given === undefined ? starMoments(stars) : given;
  if (!moments) {
    const s2 = (fwhm / 2.3548200450309493) ** 2;
    moments = { ixx: s2, iyy: s2, ixy: 0 };
  }
  return { model: gaussianPsf(moments), moments };
}

/** The stars' median PSF moments (psfFromStars), or null when too few clean stars give none. */
export function starMoments(stars: readonly Star[]): PsfMoments | null {
  try {
    const m = psfFromStars(stars);
    return { ixx: m.ixx, iyy: m.iyy, ixy: m.ixy };
  } catch {
    return null;
  }
}

/**
 * D' = ψ⊗D; V' = ψ²⊗V_u + (ψ⊗K)²⊗V_c (both input variances times `scale` = the difference's units);
 * mask OR-ed over ψ's footprint, so the EDGE border grows by ψ's half-width.
 */
export function applyDecorrelation(diff: MaskedImage, varU: Float32Array, varC: Float32Array, scale: number, dk: DecorrelationKernel, blockSize?: number): MaskedImage {
  const { width: W, height: H, x0, y0 } = diff;
  const m = dk.psiKSize;
  const hm = (m - 1) / 2;
  const psi = embedKernel(dk.psi, dk.size, m);
  const psi2 = psi.map((v) => v * v * scale);
  const psiK2 = dk.psiK.map((v) => v * v * scale);
  const grid = { size: m, type: 'polynomial' as const, order: 0, domain: { x0, y0, width: W, height: H } };
  const [img, vu] = blockConvolve([diff.image, varU], W, H, x0, y0, grid, [
    { source: 0, kernel: psi, target: 0, c: 1, ax: [0], ay: [0] },
    { source: 1, kernel: psi2, target: 1, c: 1, ax: [0], ay: [0] },
  ], 2, blockSize);
  const [vc] = blockConvolve([varC], W, H, x0, y0, grid, [{ source: 0, kernel: psiK2, target: 0, c: 1, ax: [0], ay: [0] }], 1, blockSize);
  const out = createMaskedImage(W, H, x0, y0);
  const hp = (dk.size - 1) / 2;
  const win = orWindow(diff.mask, W, H, hp);
  const edge = maskBit('EDGE');
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const mk = win[i]!;
      out.mask[i] = mk;
      if ((mk & edge) !== 0 || x < hm || y < hm || x >= W - hm || y >= H - hm) {
        out.mask[i] = mk | edge;
        out.image[i] = 0;
        out.variance[i] = diff.variance[i]!;
      } else {
        out.image[i] = img![i]!;
        out.variance[i] = vu![i]! + vc![i]!;
      }
    }
  }
  return out;
}
