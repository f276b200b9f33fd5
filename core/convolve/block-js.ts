/**
 * The reference block-convolution engine in plain JavaScript on fft.js (see spatial.ts for the
 * maths). blockConvolve runs the WASM engine (block-wasm.ts); this one is kept as its oracle in
 * tests and as the baseline of benchmarks.
 */
import { basis1d, scaleToDomain } from '../kernel/spatial.ts';
import { blockSide, type BlockGrid, type ConvolutionJob } from './block.ts';
import { Fft2 } from './fft2d.ts';

/**
 * Σ_jobs weight·(kernel ⊗ input) over the pixels at least h from the border of a W×H image at
 * parent (x0, y0), by overlap-save FFT blocks. Inputs are one or two planes (packed as the real and
 * imaginary parts of one transform); outputs are Float32 planes, zero within h of the border.
 */
export function blockConvolveJs(
  inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): Float32Array[] {
  return run(Float32Array, inputs, W, H, x0, y0, grid, jobs, nOut, blockSize);
}

/** The same with Float64 outputs (no final rounding to float32): for comparing engines closely. */
export function blockConvolveJsF64(
  inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): Float64Array[] {
  return run(Float64Array, inputs, W, H, x0, y0, grid, jobs, nOut, blockSize);
}

function run<T extends Float32Array | Float64Array>(
  Plane: new (n: number) => T, inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): T[] {
  const { size, order } = grid;
  const h = (size - 1) / 2;
  const outs = Array.from({ length: nOut }, () => new Plane(W * H));
  if (W <= 2 * h || H <= 2 * h || jobs.length === 0) return outs;
  const N = blockSide(size, W, H, blockSize);
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
