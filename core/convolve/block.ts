/**
 * What both block-convolution engines (block-js.ts, the reference; block-wasm.ts, the fast one)
 * share: the job description and the choice of block side. The maths is in spatial.ts.
 */
import type { SpatialDomain, SpatialType } from '../kernel/spatial.ts';
import { nextPow2 } from './fft2d.ts';

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

/** Block side N (a power of two > size − 1): the caller's, or 256 (512 for kernels wider than 64 px), less for small images. */
export function blockSide(size: number, W: number, H: number, blockSize?: number): number {
  const h = (size - 1) / 2;
  const N = blockSize ?? Math.min(size > 64 ? 512 : 256, Math.max(nextPow2(Math.max(W, H) + 2 * h), nextPow2(4 * size)));
  if (!(N > 2 * h)) throw new RangeError(`block size ${N} must exceed the kernel size ${size}`);
  return N;
}
