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
import { termPowers } from '../kernel/spatial.ts';
import type { BlockGrid, ConvolutionJob } from './block.ts';
import { blockConvolveJs } from './block-js.ts';
import { blockConvolveWasm } from './block-wasm.ts';
import { orWindow } from './mask-window.ts';

export type { BlockGrid, ConvolutionJob } from './block.ts';
export { blockConvolveJs } from './block-js.ts';

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
  /** 'wasm' (default) or 'js': the reference engine, same results to rounding (tests, benchmarks). */
  engine?: 'wasm' | 'js';
}

function isZero(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

/**
 * Σ_jobs weight·(kernel ⊗ input) over the pixels at least h from the border of a W×H image at
 * parent (x0, y0), by overlap-save FFT blocks. Inputs are one or two planes (packed as the real and
 * imaginary parts of one transform); outputs are Float32 planes, zero within h of the border.
 * Runs on the WASM engine; blockConvolveJs is the same in plain JavaScript (the tests' oracle).
 */
export const blockConvolve = blockConvolveWasm;

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
  // The OR over the footprint inside, EDGE alone within h of the border.
  out.mask.set(orWindow(ref.mask, W, H, h));
  for (let y = 0; y < H; y++) {
    const o = y * W;
    if (y < h || y >= H - h) out.mask.fill(edge, o, o + W);
    else {
      out.mask.fill(edge, o, o + Math.min(h, W));
      out.mask.fill(edge, o + Math.max(0, W - h), o + W);
    }
  }
  const run = opts.engine === 'js' ? blockConvolveJs : blockConvolve;
  const [img, vr] = run(wantVar ? [ref.image, ref.variance] : [ref.image], W, H, ref.x0, ref.y0, kernel, spatialJobs(kernel, wantVar), 2, opts.blockSize);
  out.image = img!;
  out.variance = vr!;
  return out;
}
