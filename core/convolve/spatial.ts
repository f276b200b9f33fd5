/**
 * The fast engine: convolution of an image and its variance with the spatially varying kernel
 * K(x, y) = Σ_s f_s(x, y)·K_s, exactly (no piecewise-constant kernel), by FFTs over overlapping
 * square blocks.
 *
 *   image:    K(x)⊗T   = Σ_s f_s(x) · (K_s ⊗ T)(x)
 *   variance: K(x)²⊗V  = Σ_{s≤t} c_st f_s(x) f_t(x) · ((K_s∘K_t) ⊗ V)(x)   (c_ss = 1, c_st = 2)
 *
 * Each block of side N (a power of two) is transformed once with T in the real and V in the
 * imaginary part; each inverse transform then yields TWO outputs (one in the real part, one in the
 * imaginary), because every kernel is real. Per block: 1 forward + ⌈(S + S(S+1)/2)/2⌉ inverse
 * transforms (S spatial terms: 3 for order 1 → 5 inverse). The spatial factors f_s are products of
 * 1-D Chebyshev values in x and y, so each output is weighted by xw[x]·yw[y].
 *
 * Overlap-save: an N-block yields its central N − 2h columns and rows exactly (h = kernel
 * half-width); outside the image the input is zero. Output pixels within h of the image border
 * are EDGE (value and variance 0), as in the reference. The mask is the OR of the input mask over
 * the kernel footprint. Non-finite inputs must be filled before (see prepareForConvolution).
 */
import { createMaskedImage, type MaskedImage } from '../image/masked-image.ts';
import { maskBit } from '../image/mask.ts';
import { type KernelSolution, spatialKernelImages } from '../kernel/solution.ts';
import { basis1d, scaleToDomain, termPowers, type SpatialDomain, type SpatialType } from '../kernel/spatial.ts';
import { Fft2, nextPow2 } from './fft2d.ts';
import { orWindow } from './mask-window.ts';

/** A spatially varying kernel: K(x, y) = Σ_s f_s(x, y)·terms[s], f_s the grid's spatial functions. */
export interface SpatialKernel extends BlockGrid {
  /** Spatial term images K_s, size² each, [(v+h)·size + (u+h)] = K_s(u, v). */
  terms: Float64Array[];
}

export function spatialKernelOf(sol: KernelSolution): SpatialKernel {
  return { size: sol.basis.size, terms: spatialKernelImages(sol), type: sol.spatial.type, order: sol.spatial.kernelOrder, domain: sol.spatial.domain };
}

export interface ConvolveOptions {
  /** FFT block side (power of two); default: 256, or 512 for kernels wider than 64 px. */
  blockSize?: number;
  /** Also convolve the variance with K² (default true). */
  variance?: boolean;
}

function isZero(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

/**
 * A convolution to accumulate: input `source` (index into the inputs, at most two) convolved with
 * a fixed kernel, weighted by c·Πx[ax](x)·Πy[ay](y) (1-D spatial basis values), added to output `target`.
 */
export interface ConvolutionJob {
  source: 0 | 1;
  kernel: Float64Array;
  target: number;
  c: number;
  ax: number[];
  ay: number[];
}

export interface BlockGrid {
  size: number;
  type: SpatialType;
  order: number;
  domain: SpatialDomain;
}

/**
 * Σ_jobs weight·(kernel ⊗ input) over the pixels at least h from the border of a W×H image at
 * parent (x0, y0), by overlap-save FFT blocks. Inputs are one or two planes (packed as the real and
 * imaginary parts of one transform); outputs are Float32 planes, zero within h of the border.
 */
export function blockConvolve(
  inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): Float32Array[] {
  const { size, order } = grid;
  const h = (size - 1) / 2;
  const outs = Array.from({ length: nOut }, () => new Float32Array(W * H));
  if (W <= 2 * h || H <= 2 * h || jobs.length === 0) return outs;
  const N = blockSize ?? Math.min(size > 64 ? 512 : 256, Math.max(nextPow2(Math.max(W, H) + 2 * h), nextPow2(4 * size)));
  if (!(N > 2 * h)) throw new RangeError(`block size ${N} must exceed the kernel size ${size}`);
  const L = N - 2 * h;
  const fft = new Fft2(N);
  const spectra = jobs.map((job) => fft.kernelSpectrum(job.kernel, size));
  const a = inputs[0]!;
  const b = inputs[1];
  const z = fft.create();
  const zs = fft.create();
  const hat = [fft.create(), fft.create()];
  const o = fft.create();
  const res = fft.create();
  const acc = Array.from({ length: nOut }, () => new Float64Array(L * L));
  const nb = order + 1;
  const bx = new Float64Array(L * nb);
  const by = new Float64Array(L * nb);
  const xw = new Float64Array(L);
  const yw = new Float64Array(L);
  const N2 = N * N;

  for (let cy = h; cy < H - h; cy += L) {
    const ly = Math.min(L, H - h - cy);
    for (let cx = h; cx < W - h; cx += L) {
      const lx = Math.min(L, W - h - cx);
      // Input window starts at (cx − h, cy − h); z index (i, j) ↔ image (cx − h + i, cy − h + j).
      z.fill(0);
      const jmax = Math.min(N, H - (cy - h));
      const imax = Math.min(N, W - (cx - h));
      for (let j = 0; j < jmax; j++) {
        const src = (cy - h + j) * W + (cx - h);
        const dst = 2 * j * N;
        for (let i = 0; i < imax; i++) z[dst + 2 * i] = a[src + i]!;
        if (b) for (let i = 0; i < imax; i++) z[dst + 2 * i + 1] = b[src + i]!;
      }
      fft.forward(z, zs, jmax);
      // Split the packed spectrum: Â(k) = (Z(k) + conj Z(−k))/2, B̂(k) = (Z(k) − conj Z(−k))/(2i).
      const ah = hat[0]!;
      const bh = hat[1]!;
      for (let p = 0; p < N; p++) {
        const np = (N - p) & (N - 1);
        for (let q = 0; q < N; q++) {
          const k = 2 * (p * N + q);
          const m = 2 * (np * N + ((N - q) & (N - 1)));
          const zr = zs[k]!, zi = zs[k + 1]!, mr = zs[m]!, mi = -zs[m + 1]!;
          ah[k] = 0.5 * (zr + mr);
          ah[k + 1] = 0.5 * (zi + mi);
          bh[k] = 0.5 * (zi - mi);
          bh[k + 1] = -0.5 * (zr - mr);
        }
      }
      for (let i = 0; i < lx; i++) basis1d(grid.type, order, scaleToDomain(grid.domain, cx + i + x0, 0)[0], bx, i * nb);
      for (let j = 0; j < ly; j++) basis1d(grid.type, order, scaleToDomain(grid.domain, 0, cy + j + y0)[1], by, j * nb);
      for (const t of acc) t.fill(0);
      // Two jobs per inverse transform: O = X_A·K_A + i·X_B·K_B (all kernels real).
      for (let q = 0; q < jobs.length; q += 2) {
        const A = jobs[q]!;
        const B = jobs[q + 1];
        const xa = hat[A.source]!;
        const ka = spectra[q]!;
        if (B) {
          const xb = hat[B.source]!;
          const kb = spectra[q + 1]!;
          for (let k = 0; k < 2 * N2; k += 2) {
            const ar = xa[k]! * ka[k]! - xa[k + 1]! * ka[k + 1]!;
            const ai = xa[k]! * ka[k + 1]! + xa[k + 1]! * ka[k]!;
            const br = xb[k]! * kb[k]! - xb[k + 1]! * kb[k + 1]!;
            const bi = xb[k]! * kb[k + 1]! + xb[k + 1]! * kb[k]!;
            o[k] = ar - bi;
            o[k + 1] = ai + br;
          }
        } else {
          for (let k = 0; k < 2 * N2; k += 2) {
            o[k] = xa[k]! * ka[k]! - xa[k + 1]! * ka[k + 1]!;
            o[k + 1] = xa[k]! * ka[k + 1]! + xa[k + 1]! * ka[k]!;
          }
        }
        fft.inverse(o, res, h, h + ly);
        for (let part = 0; part < (B ? 2 : 1); part++) {
          const job = part === 0 ? A : B!;
          for (let i = 0; i < lx; i++) {
            let w = job.c;
            for (const pw of job.ax) w *= bx[i * nb + pw]!;
            xw[i] = w;
          }
          for (let j = 0; j < ly; j++) {
            let w = 1;
            for (const pw of job.ay) w *= by[j * nb + pw]!;
            yw[j] = w;
          }
          const t = acc[job.target]!;
          for (let j = 0; j < ly; j++) {
            const wy = yw[j]!;
            if (wy === 0) continue;
            const ro = 2 * ((j + h) * N + h) + part;
            const ao = j * L;
            for (let i = 0; i < lx; i++) t[ao + i]! += wy * xw[i]! * res[ro + 2 * i]!;
          }
        }
      }
      for (let k = 0; k < nOut; k++) {
        const t = acc[k]!;
        const out = outs[k]!;
        for (let j = 0; j < ly; j++) {
          const po = (cy + j) * W + cx;
          const ao = j * L;
          for (let i = 0; i < lx; i++) out[po + i] = t[ao + i]!;
        }
      }
    }
  }
  return outs;
}

/** Jobs for K(x)⊗T (target 0) and, with `variance`, K(x)²⊗V (target 1), from the spatial terms. */
export function spatialJobs(kernel: SpatialKernel, variance: boolean): ConvolutionJob[] {
  const { terms, order } = kernel;
  const powers = termPowers(order);
  const jobs: ConvolutionJob[] = [];
  terms.forEach((k, s) => {
    if (!isZero(k)) jobs.push({ source: 0, kernel: k, target: 0, c: 1, ax: [powers[s]![0]], ay: [powers[s]![1]] });
  });
  if (variance) {
    for (let s = 0; s < terms.length; s++) {
      for (let t = s; t < terms.length; t++) {
        const a = terms[s]!;
        const b = terms[t]!;
        const p = new Float64Array(a.length);
        for (let i = 0; i < p.length; i++) p[i] = a[i]! * b[i]!;
        if (!isZero(p)) jobs.push({ source: 1, kernel: p, target: 1, c: s === t ? 1 : 2, ax: [powers[s]![0], powers[t]![0]], ay: [powers[s]![1], powers[t]![1]] });
      }
    }
  }
  return jobs;
}

export function convolveSpatial(ref: MaskedImage, kernel: SpatialKernel, opts: ConvolveOptions = {}): MaskedImage {
  const h = (kernel.size - 1) / 2;
  const { width: W, height: H } = ref;
  const wantVar = opts.variance ?? true;
  const out = createMaskedImage(W, H, ref.x0, ref.y0);
  const edge = maskBit('EDGE');
  const winMask = orWindow(ref.mask, W, H, h);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = y * W + x;
      out.mask[o] = x < h || y < h || x >= W - h || y >= H - h ? edge : winMask[o]!;
    }
  }
  const [img, vr] = blockConvolve(wantVar ? [ref.image, ref.variance] : [ref.image], W, H, ref.x0, ref.y0, kernel, spatialJobs(kernel, wantVar), 2, opts.blockSize);
  out.image = img!;
  out.variance = vr!;
  return out;
}
