/**
 * Preconvolution and the score image: ip_diffim's AlardLuptonPreconvolveSubtractTask, with the
 * likelihood-image ("preConvMode") decorrelation of its DecorrelateALKernelTask (DMTN-179).
 *
 *   P = the science PSF, reflected (so convolving with P correlates with the PSF), unit sum
 *   K matches the template to P⊗S (target PSF ≈ √2 × the science's: a convolution, not a
 *       deconvolution, unless the template is more than √2 wider)
 *   score = P⊗S − (K⊗T + B),   V = P²⊗V_S + K(x)²⊗V_T   (both exact; K spatially varying)
 *
 * The score is a matched-filtered difference: its peaks are point sources and score/√V is their
 * S/N, so it is thresholded directly. With a noisy template the optimal statistic (Zackay, Ofek &
 * Gal-Yam 2016; DMTN-179) is the score corrected by
 *
 *   ĉ(k) = (σ_S² + κ²σ_T²) / (σ_S² + σ_T²|K̂(k)|²/|P̂(k)|²),   κ = ΣK
 *
 * — the square of the difference-image decorrelation ψ̂ for the effective kernel K/P, since a
 * matched filter of the whitened difference is ψ̂·conj(ψ̂P̂_S)·D̂. ĉ(0) = 1. One ĉ per exposure
 * from K at the centre and the σ-clipped mean variances, as ip_diffim does.
 *
 * ip_diffim convolves the raw score with c. Here c is folded into both convolutions instead,
 * score' = (c⊗P)⊗S − ((c⊗K(x))⊗T + B), so that the variance plane is exactly that of the image
 * produced: V' = (c⊗P)²⊗V_S + (c⊗K(x))²⊗V_T, c⊗K(x) = Σ_s f_s(x)·(c⊗K_s). The two differ only by
 * K's variation across c's footprint; B passes c unchanged (a smooth polynomial, Σc = 1).
 */
import { createMaskedImage, type MaskedImage } from '../image/masked-image.ts';
import { maskBit, maskOf } from '../image/mask.ts';
import { Fft2, nextPow2 } from '../convolve/fft2d.ts';
import type { SpatialKernel } from '../convolve/spatial.ts';
import type { SpatialDomain } from '../kernel/spatial.ts';
import { cropToUnitSum, type DecorrelationKernel } from './decorrelate.ts';

/** P(u, v) → P(−u, −v), renormalised to unit sum: convolving with it correlates with the PSF, so peaks stay on the PSF centroid even for asymmetric PSFs. */
export function preconvolutionKernel(psf: Float64Array, size: number): Float64Array {
  if (size % 2 !== 1 || psf.length !== size * size) throw new RangeError(`preconvolution needs an odd square PSF image, got ${psf.length} values for size ${size}`);
  const out = new Float64Array(size * size);
  let s = 0;
  for (let i = 0; i < out.length; i++) { out[i] = psf[out.length - 1 - i]!; s += out[i]!; }
  if (!(s > 0)) throw new RangeError(`the PSF image must have a positive sum, got ${s}`);
  for (let i = 0; i < out.length; i++) out[i]! /= s;
  return out;
}

/** Full 2-D convolution of two odd square kernels: side na + nb − 1 (direct: they are small). */
export function convolveKernels(a: Float64Array, na: number, b: Float64Array, nb: number): Float64Array {
  const m = na + nb - 1;
  const out = new Float64Array(m * m);
  for (let j = 0; j < na; j++) {
    for (let i = 0; i < na; i++) {
      const av = a[j * na + i]!;
      if (av === 0) continue;
      for (let q = 0; q < nb; q++) {
        const o = (j + q) * m + i;
        const bo = q * nb;
        for (let p = 0; p < nb; p++) out[o + p]! += av * b[bo + p]!;
      }
    }
  }
  return out;
}

/** A kernel constant over the image, in the convolution engine's form. */
export function constantKernel(k: Float64Array, size: number, domain: SpatialDomain): SpatialKernel {
  return { size, terms: [k], type: 'chebyshev1', order: 0, domain: { ...domain } };
}

/** c⊗K(x) for a spatially varying K: the same spatial functions, each term convolved with c. */
export function convolveTerms(k: SpatialKernel, c: Float64Array, nc: number): SpatialKernel {
  return { ...k, size: k.size + nc - 1, terms: k.terms.map((t) => convolveKernels(c, nc, t, k.size)) };
}

/**
 * The score correction c (size², unit sum) for matching kernel `k` (n², at the centre, sum κ),
 * preconvolution kernel `p` (m²), and the mean variances of the science and template before any
 * convolution. Returned in the DecorrelationKernel form QA reads: psi = c, psiK = c⊗k.
 */
export function scoreCorrection(k: Float64Array, n: number, p: Float64Array, m: number, varS: number, varT: number, size = Math.max(n, m)): DecorrelationKernel {
  if (!(varS > 0) || !(varT >= 0) || !Number.isFinite(varS) || !Number.isFinite(varT)) throw new RangeError(`the score correction needs positive mean variances, got ${varS}, ${varT}`);
  const N = nextPow2(4 * Math.max(n, m, size));
  const fft = new Fft2(N);
  let kappa = 0;
  for (const v of k) kappa += v;
  const kh = fft.kernelSpectrum(k, n);
  const ph = fft.kernelSpectrum(p, m);
  const num = varS + kappa * kappa * varT;
  // |P̂| → 0 at frequencies the PSF does not pass: ĉ → 0 there (as ip_diffim's `tiny` guard), harmless, the signal is 0 too.
  const tiny = 1e-300;
  const spec = fft.create();
  for (let i = 0; i < spec.length; i += 2) {
    const k2 = kh[i]! * kh[i]! + kh[i + 1]! * kh[i + 1]!;
    const p2 = Math.max(ph[i]! * ph[i]! + ph[i + 1]! * ph[i + 1]!, tiny);
    spec[i] = num / (varS + (varT * k2) / p2);
  }
  const z = fft.create();
  fft.inverse(spec, z);
  const { kernel: c, cropLoss } = cropToUnitSum(z, N, size);
  return { psi: c, size, psiK: convolveKernels(c, size, k, n), psiKSize: size + n - 1, varianceUnconvolved: varS, varianceConvolved: varT, cropLoss };
}

const NOT_CARRIED = maskOf('DETECTED', 'DETECTED_NEGATIVE');

/** In place: the convolved template plus the background B, its SAT renamed SAT_TEMPLATE, DETECTED dropped. */
export function addBackground(conv: MaskedImage, bg: Float32Array): MaskedImage {
  const sat = maskBit('SAT');
  const satT = maskBit('SAT_TEMPLATE');
  for (let i = 0; i < conv.image.length; i++) {
    conv.image[i]! += bg[i]!;
    let m = conv.mask[i]! & ~NOT_CARRIED;
    if ((m & sat) !== 0) m = (m & ~sat) | satT;
    conv.mask[i] = m;
  }
  return conv;
}

/**
 * a − t with V = V_a + V_t and the masks OR-ed (DETECTED dropped). Where either lacks a full kernel
 * footprint (EDGE) the value is 0 and the variance `edgeVariance` (finite, so the plane stays usable).
 */
export function differenceOf(a: MaskedImage, t: MaskedImage, edgeVariance: Float32Array): MaskedImage {
  const out = createMaskedImage(a.width, a.height, a.x0, a.y0);
  const edge = maskBit('EDGE');
  for (let i = 0; i < out.image.length; i++) {
    const m = (a.mask[i]! | t.mask[i]!) & ~NOT_CARRIED;
    out.mask[i] = m;
    if ((m & edge) !== 0) {
      out.image[i] = 0;
      out.variance[i] = edgeVariance[i]!;
    } else {
      out.image[i] = a.image[i]! - t.image[i]!;
      out.variance[i] = a.variance[i]! + t.variance[i]!;
    }
  }
  return out;
}
