/**
 * The decorrelation afterburner (Reiss & Lupton, DMTN-021). Convolving one image with K leaves the
 * difference's noise correlated: its power spectrum is σ_u² + σ_c²|K̂(k)|² (u: the unconvolved
 * image, c: the convolved one, in the difference's units). Convolving the difference with ψ,
 *
 *   ψ̂(k) = √((σ_u² + κ²σ_c²) / (σ_u² + σ_c²|K̂(k)|²)),   κ = ΣK,
 *
 * whitens it (ψ̂(0) = 1 keeps fluxes). One ψ for the exposure, from K at the centre and the two
 * σ-clipped mean variances, as ip_diffim does. The variance plane is rebuilt for independent input
 * pixels: V' = ψ²⊗V_u + (ψ⊗K)²⊗V_c.
 */
import { Fft2, nextPow2 } from '../convolve/fft2d.ts';

export interface DecorrelationKernel {
  /** ψ, size×size, [(v+h)·size + (u+h)], unit sum. */
  psi: Float64Array;
  size: number;
  /** ψ⊗K (size + kernelSize − 1 square), for the variance of the convolved image's noise. */
  psiK: Float64Array;
  psiKSize: number;
  varianceUnconvolved: number;
  varianceConvolved: number;
  /** Fraction of Σψ² lost by cropping ψ to `size` (reported in QA). */
  cropLoss: number;
}

/**
 * ψ for matching kernel `k` (size n, unit-free: κ = Σk) given the mean variances of the unconvolved
 * (σ_u²) and convolved (σ_c²) images in the difference's units. ψ is cropped to `size` (default n)
 * and renormalised to unit sum.
 */
export function decorrelationKernel(k: Float64Array, n: number, varU: number, varC: number, size = n): DecorrelationKernel {
  if (!(varU > 0) || !(varC >= 0) || !Number.isFinite(varU) || !Number.isFinite(varC)) throw new RangeError(`decorrelation needs positive mean variances, got ${varU}, ${varC}`);
  const hk = (n - 1) / 2;
  const N = nextPow2(4 * Math.max(n, size));
  const fft = new Fft2(N);
  let kappa = 0;
  for (const v of k) kappa += v;
  const spec = fft.kernelSpectrum(k, n);
  const z = fft.create();
  const num = varU + kappa * kappa * varC;
  for (let i = 0; i < spec.length; i += 2) {
    const p2 = spec[i]! * spec[i]! + spec[i + 1]! * spec[i + 1]!;
    spec[i] = Math.sqrt(num / (varU + varC * p2));
    spec[i + 1] = 0;
  }
  fft.inverse(spec, z);
  const h = (size - 1) / 2;
  const { kernel: psi, cropLoss } = cropToUnitSum(z, N, size);
  // ψ⊗K, directly (small).
  const m = size + n - 1;
  const hm = (m - 1) / 2;
  const psiK = new Float64Array(m * m);
  for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) {
    const a = psi[(v + h) * size + (u + h)]!;
    for (let q = -hk; q <= hk; q++) for (let p = -hk; p <= hk; p++) psiK[(v + q + hm) * m + (u + p + hm)]! += a * k[(q + hk) * n + (p + hk)]!;
  }
  return { psi, size, psiK, psiKSize: m, varianceUnconvolved: varU, varianceConvolved: varC, cropLoss };
}

/**
 * The central size×size of a real kernel given as an N×N complex image with its origin at (0, 0)
 * (an inverse FFT's output), renormalised to unit sum; cropLoss = the fraction of Σk² cut off.
 */
export function cropToUnitSum(z: Float64Array, N: number, size: number): { kernel: Float64Array; cropLoss: number } {
  const h = (size - 1) / 2;
  const kernel = new Float64Array(size * size);
  let total2 = 0;
  for (let i = 0; i < z.length; i += 2) total2 += z[i]! * z[i]!;
  let sum = 0;
  let kept2 = 0;
  for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) {
    const val = z[2 * (((v + N) % N) * N + ((u + N) % N))]!;
    kernel[(v + h) * size + (u + h)] = val;
    sum += val;
    kept2 += val * val;
  }
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= sum;
  return { kernel, cropLoss: 1 - kept2 / total2 };
}

/** Embed a size×size kernel at the centre of an m×m one (m ≥ size, both odd). */
export function embedKernel(k: Float64Array, size: number, m: number): Float64Array {
  const out = new Float64Array(m * m);
  const d = (m - size) / 2;
  for (let j = 0; j < size; j++) for (let i = 0; i < size; i++) out[(j + d) * m + i + d] = k[j * size + i]!;
  return out;
}

/** Neighbour-pixel correlation coefficient of z over the given pixels (x and y neighbours pooled). */
export function neighbourCorrelation(values: Float32Array | Float64Array, width: number, height: number, ok: (i: number) => boolean): number {
  let sxy = 0;
  let sxx = 0;
  let n = 0;
  let mean = 0;
  let cnt = 0;
  for (let i = 0; i < values.length; i++) if (ok(i)) { mean += values[i]!; cnt++; }
  mean /= Math.max(1, cnt);
  for (let y = 0; y < height - 1; y++) {
    for (let x = 0; x < width - 1; x++) {
      const i = y * width + x;
      if (!ok(i)) continue;
      const a = values[i]! - mean;
      sxx += a * a;
      n++;
      if (ok(i + 1)) sxy += a * (values[i + 1]! - mean);
      if (ok(i + width)) sxy += a * (values[i + width]! - mean);
    }
  }
  return n > 0 ? sxy / (2 * sxx) : NaN;
}

