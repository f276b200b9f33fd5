/**
 * Kernel bases. A basis is described by a small JSON-able spec and regenerated from it
 * deterministically, so a serialised solution carries its basis without the images.
 *
 * - Alard–Lupton: Gaussians × polynomials (u/h)^i (v/h)^j of degree ≤ d (h the half-width, so the
 *   polynomial runs over [-1, 1] edge to edge as in ip_diffim), each Gaussian normalised to unit sum.
 * - Delta-function: one kernel per pixel.
 * - Images: an explicit list (the PCA basis of a delta-function fit).
 *
 * All are renormalised as ip_diffim's renormalizeKernelList does: the first kernel sums to 1, every
 * other kernel is rescaled to unit sum minus the first (so it sums to 0) and to unit L2 norm. The
 * kernel sum — the photometric scale — is then the coefficient of the first kernel alone, which the
 * spatial model keeps constant over the exposure.
 */
import type { KernelConfig } from './config.ts';
import { KernelError } from './errors.ts';
import { FWHM_PER_SIGMA } from '../image/stats.ts';


export type BasisSpec =
  | { type: 'alard-lupton'; size: number; sigmas: number[]; degrees: number[] }
  | { type: 'delta-function'; size: number }
  | { type: 'images'; size: number; images: number[][] };

export interface BasisChoice {
  spec: BasisSpec;
  /** How the AL sigmas were chosen: from config values, or from the FWHMs (convolution / deconvolution). */
  basisMode: 'config' | 'convolution' | 'deconvolution' | 'delta-function';
}

/** Number of kernels in a basis. */
export function basisCount(spec: BasisSpec): number {
  switch (spec.type) {
    case 'alard-lupton': return spec.degrees.reduce((n, d) => n + ((d + 1) * (d + 2)) / 2, 0);
    case 'delta-function': return spec.size * spec.size;
    case 'images': return spec.images.length;
  }
}

/** The widths ip_diffim derives from the PSFs: σ_K = √(σ_tgt² − σ_ref²), a β ladder from max(minSig, σ_K/β). */
function basisSigmas(sigmaWide: number, sigmaNarrow: number, minSig: number, beta: number, nGauss: number): number[] {
  let sk = Math.sqrt(Math.max(0, sigmaWide * sigmaWide - sigmaNarrow * sigmaNarrow));
  if (sk < minSig) sk = minSig;
  const out = [nGauss > 1 ? Math.max(minSig, sk / beta) : sk];
  for (let i = 1; i < nGauss; i++) out.push(out[i - 1]! * beta);
  return out;
}

/**
 * Choose the basis for matching an image of PSF FWHM `fwhmConvolved` to one of `fwhmTarget`
 * (pixels). Without FWHMs (or scaleByFwhm false) the configured sigmas and kernelSize are used.
 */
export function chooseBasis(config: KernelConfig, fwhmConvolved?: number, fwhmTarget?: number): BasisChoice {
  if (config.kernelBasisSet === 'delta-function') {
    return { spec: { type: 'delta-function', size: config.kernelSize }, basisMode: 'delta-function' };
  }
  const degrees = [...config.alardDegGauss];
  const haveFwhm = fwhmConvolved !== undefined && fwhmTarget !== undefined && Number.isFinite(fwhmConvolved) && Number.isFinite(fwhmTarget) && fwhmConvolved > 0 && fwhmTarget > 0;
  if (!config.scaleByFwhm || !haveFwhm || fwhmConvolved === fwhmTarget) {
    return { spec: { type: 'alard-lupton', size: config.kernelSize, sigmas: [...config.alardSigGauss], degrees }, basisMode: 'config' };
  }
  const sc = fwhmConvolved / FWHM_PER_SIGMA;
  const st = fwhmTarget / FWHM_PER_SIGMA;
  const deconv = st < sc;
  const sigmas = deconv
    ? basisSigmas(sc, st, config.alardMinSigDeconv, config.alardGaussBeta, config.alardNGauss)
    : basisSigmas(st, sc, config.alardMinSig, config.alardGaussBeta, config.alardNGauss);
  let size = Math.trunc(config.kernelSizeFwhmScaling * sigmas[sigmas.length - 1]!);
  if (size % 2 === 0) size += 1;
  size = Math.min(config.kernelSizeMax, Math.max(size, config.kernelSizeMin));
  if (size % 2 === 0) size += 1; // an even clamp bound must not produce an even kernel
  return { spec: { type: 'alard-lupton', size, sigmas, degrees }, basisMode: deconv ? 'deconvolution' : 'convolution' };
}

/**
 * The separable raw Alard–Lupton kernels and the renormalisation that maps them to the final basis:
 * final_i = alpha_i · raw_i + beta_i · raw_0. raw_i(u, v) = tx[i](u) · ty[i](v).
 */
export interface SeparableBasis {
  size: number;
  /** Per Gaussian: taps[p] = g(u)·(u/h)^p for p = 0..degree (g normalised to unit sum). */
  gaussians: { sigma: number; degree: number; taps: Float64Array[] }[];
  /** Per raw kernel: which Gaussian and the x/y powers. */
  raw: { g: number; px: number; py: number }[];
  alpha: Float64Array;
  beta: Float64Array;
}

const FLOAT_EPS = 1.1920928955078125e-7; // float32 epsilon, ip_diffim's "is this sum zero" threshold

export function separableBasis(spec: BasisSpec & { type: 'alard-lupton' }): SeparableBasis {
  const size = spec.size;
  if (size % 2 !== 1 || size < 3) throw new KernelError('BAD_CONFIG', `kernel size must be odd and ≥ 3, got ${size}`);
  const h = (size - 1) / 2;
  const gaussians = spec.sigmas.map((sigma, gi) => {
    const degree = spec.degrees[gi]!;
    const g = new Float64Array(size);
    let s = 0;
    for (let k = 0; k < size; k++) {
      const u = k - h;
      g[k] = Math.exp((-0.5 * u * u) / (sigma * sigma));
      s += g[k]!;
    }
    for (let k = 0; k < size; k++) g[k]! /= s;
    const taps: Float64Array[] = [];
    for (let p = 0; p <= degree; p++) {
      const t = new Float64Array(size);
      for (let k = 0; k < size; k++) t[k] = g[k]! * ((k - h) / h) ** p;
      taps.push(t);
    }
    return { sigma, degree, taps };
  });
  const raw: { g: number; px: number; py: number }[] = [];
  gaussians.forEach((ga, gi) => {
    for (let t = 0; t <= ga.degree; t++) for (let j = 0; j <= t; j++) raw.push({ g: gi, px: t - j, py: j });
  });
  const n = raw.length;
  const alpha = new Float64Array(n);
  const beta = new Float64Array(n);
  alpha[0] = 1;
  // Sums and norms of raw kernels are separable: Σ = Σx·Σy, and the final norm needs the cross term with raw_0.
  const sum1 = (t: Float64Array) => t.reduce((a, b) => a + b, 0);
  const dot1 = (a: Float64Array, b: Float64Array) => { let s = 0; for (let k = 0; k < size; k++) s += a[k]! * b[k]!; return s; };
  const r0 = raw[0]!;
  const t0x = gaussians[r0.g]!.taps[r0.px]!;
  const t0y = gaussians[r0.g]!.taps[r0.py]!;
  for (let i = 1; i < n; i++) {
    const r = raw[i]!;
    const tx = gaussians[r.g]!.taps[r.px]!;
    const ty = gaussians[r.g]!.taps[r.py]!;
    const s = sum1(tx) * sum1(ty);
    let a = 1;
    let b = 0;
    if (Math.abs(s) > FLOAT_EPS) { a = 1 / s; b = -1; }
    // ‖a·raw_i + b·raw_0‖² from separable inner products.
    const ii = dot1(tx, tx) * dot1(ty, ty);
    const i0 = dot1(tx, t0x) * dot1(ty, t0y);
    const oo = dot1(t0x, t0x) * dot1(t0y, t0y);
    const norm = Math.sqrt(a * a * ii + 2 * a * b * i0 + b * b * oo);
    alpha[i] = a / norm;
    beta[i] = b / norm;
  }
  return { size, gaussians, raw, alpha, beta };
}

/** The final (renormalised) basis kernels as size×size images, element [(v+h)·size + (u+h)] = K(u, v). */
export function basisImages(spec: BasisSpec): Float64Array[] {
  const size = spec.size;
  const np = size * size;
  if (spec.type === 'alard-lupton') {
    const sb = separableBasis(spec);
    const rawImg = sb.raw.map((r) => {
      const tx = sb.gaussians[r.g]!.taps[r.px]!;
      const ty = sb.gaussians[r.g]!.taps[r.py]!;
      const img = new Float64Array(np);
      for (let j = 0; j < size; j++) for (let i = 0; i < size; i++) img[j * size + i] = tx[i]! * ty[j]!;
      return img;
    });
    return rawImg.map((img, k) => {
      if (k === 0) return img;
      const out = new Float64Array(np);
      const a = sb.alpha[k]!;
      const b = sb.beta[k]!;
      for (let p = 0; p < np; p++) out[p] = a * img[p]! + b * rawImg[0]![p]!;
      return out;
    });
  }
  if (spec.type === 'delta-function') {
    const c = (np - 1) / 2;
    const out: Float64Array[] = [];
    const first = new Float64Array(np);
    first[c] = 1;
    out.push(first);
    for (let p = 0; p < np; p++) {
      if (p === c) continue;
      const img = new Float64Array(np);
      img[p] = Math.SQRT1_2;
      img[c] = -Math.SQRT1_2;
      out.push(img);
    }
    return out;
  }
  return spec.images.map((im) => {
    if (im.length !== np) throw new KernelError('BAD_SOLUTION', `basis image has ${im.length} values, expected ${np}`);
    return Float64Array.from(im);
  });
}

/** Pixel index (in the size×size image) of delta-function basis kernel k ≥ 1. */
export function deltaPixel(size: number, k: number): number {
  const c = (size * size - 1) / 2;
  return k - 1 < c ? k - 1 : k;
}

/** Renormalise explicit kernel images the ip_diffim way (first sums to 1; others zero-sum, unit norm). */
export function renormalizeImages(images: Float64Array[]): Float64Array[] {
  if (images.length === 0) return [];
  const np = images[0]!.length;
  const s0 = images[0]!.reduce((a, b) => a + b, 0);
  if (!(Math.abs(s0) > FLOAT_EPS)) throw new KernelError('SINGULAR', 'first basis kernel sums to zero and cannot carry the flux scale');
  const first = images[0]!.map((v) => v / s0);
  const out = [first];
  for (let k = 1; k < images.length; k++) {
    const img = Float64Array.from(images[k]!);
    const s = img.reduce((a, b) => a + b, 0);
    if (Math.abs(s) > FLOAT_EPS) for (let p = 0; p < np; p++) img[p] = img[p]! / s - first[p]!;
    let n2 = 0;
    for (let p = 0; p < np; p++) n2 += img[p]! * img[p]!;
    const n = Math.sqrt(n2);
    if (n > 0) for (let p = 0; p < np; p++) img[p]! /= n;
    out.push(img);
  }
  return out;
}
