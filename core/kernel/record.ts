/**
 * One kernel candidate's contribution to the fit, reduced to sufficient statistics.
 *
 * Around a star at integer centre (cx, cy) the image to convolve ("ref") is cut to a stamp of
 * 2·size+1 pixels; convolving it with each basis kernel is exact over the inner fit region of
 * 2·(h+1)+1 pixels (h = kernel half-width). Over that region, with weights w = 1/(V_tgt + q·V_ref)
 * (q ≈ ΣK², the variance the convolution leaves of the ref image) and columns c_i (the convolved
 * basis kernels, then a column of ones for the background), the record holds
 *
 *   M = Σ w c cᵀ,  B = Σ w c y,  yWy = Σ w y²,  g = Σ √w c,  s1 = Σ √w y,  n
 *
 * so that for ANY coefficient vector a the residual z = √w (y − c·a) has
 *   Σ z² = yWy − 2aᵀB + aᵀMa   and   Σ z = s1 − gᵀa,
 * i.e. the solver can fit, clip and judge candidates without pixels, and records from different
 * tiles combine by concatenation (the spatial system is a sum over records).
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { type BasisSpec, basisCount, basisImages, separableBasis, type SeparableBasis } from './basis.ts';
import { KernelError } from './errors.ts';

/** Where a candidate is: what selection decides and a record carries along. */
export interface CandidateSite {
  /** Stable id: the stamp centre's index in the full exposure (cy·exposureWidth + cx). */
  id: number;
  /** Star centroid (parent pixels) and the integer stamp centre. */
  x: number;
  y: number;
  cx: number;
  cy: number;
  snr: number;
  flux: number;
  /** Spatial cell, anchored to the full exposure. */
  cell: number;
}

export interface CandidateRecord extends CandidateSite {
  /** Number of columns: basis kernels (+1 for the background). */
  nc: number;
  M: Float64Array;
  B: Float64Array;
  yWy: number;
  g: Float64Array;
  s1: number;
  n: number;
}

/** Stamp half-width (pixels around the centre needed from the ref image) for a kernel size. */
export function stampHalfWidth(kernelSize: number): number {
  return kernelSize;
}

/** Half-width of the fit region, where the convolution of the stamp is exact. */
export function fitHalfWidth(kernelSize: number): number {
  return kernelSize - (kernelSize - 1) / 2;
}

/**
 * Builds records for one basis. Scratch buffers are allocated once and reused, so building
 * thousands of records allocates only the records themselves.
 *
 * Cost (Alard–Lupton, the common case) is two parts of similar size: the separable convolutions
 * (foldPowers: a row pass per Gaussian for all its x powers, then a column pass per x power for all
 * its y powers, the windows folded by tap symmetry) and the Gram matrix (gram: register-tiled dot
 * products). Both keep every sum in the order of a plain loop, so the grouping is free to change
 * for speed without changing a bit of the result; the one approximation is TAP_FLOOR.
 */
export class RecordBuilder {
  readonly spec: BasisSpec;
  readonly nb: number;
  readonly nc: number;
  readonly size: number;
  private readonly h: number;
  private readonly fh: number;
  private readonly S: number;
  private readonly F: number;
  private readonly sep: SeparableBasis | null;
  private readonly images: Float64Array[] | null;
  private readonly stamp: Float64Array;
  private readonly rows: Float64Array;
  /** nb × F² convolved basis, the background column of ones, then y (then zero padding). */
  private readonly cols: Float64Array;
  /** Row 0: √w; rows 1 … nc: w·c_k (zero-padded to whole tiles). */
  private readonly wrows: Float64Array;
  private readonly w: Float64Array;
  private readonly sw: Float64Array;
  /** Column nc of cols. */
  private readonly y: Float64Array;
  /** Gram tiles: G[r·nColsG + b] = Σ wrows[r]·cols[b]. */
  private readonly G: Float64Array;
  private readonly nRowsG: number;
  private readonly nColsG: number;
  private readonly dstScratch: Int32Array;
  /** Per Gaussian: the first tap index worth applying (outer taps below TAP_FLOOR are skipped). */
  private readonly kStart: Int32Array;
  /** Raw kernels of one Gaussian are ordered by total degree t, then y power: index of (t, py=0). */
  private readonly rawOffset: Int32Array;

  constructor(spec: BasisSpec, readonly fitForBackground: boolean, readonly refVarianceFactor: number) {
    this.spec = spec;
    this.size = spec.size;
    this.h = (spec.size - 1) / 2;
    this.fh = fitHalfWidth(spec.size);
    this.S = 2 * stampHalfWidth(spec.size) + 1;
    this.F = 2 * this.fh + 1;
    this.nb = basisCount(spec);
    this.nc = this.nb + (fitForBackground ? 1 : 0);
    this.sep = spec.type === 'alard-lupton' ? separableBasis(spec) : null;
    this.images = spec.type === 'images' ? basisImages(spec) : null;
    const F2 = this.F * this.F;
    this.stamp = new Float64Array(this.S * this.S);
    const maxDeg = this.sep ? Math.max(...this.sep.gaussians.map((g) => g.degree)) : 0;
    this.rows = new Float64Array((maxDeg + 1) * this.S * this.F);
    this.nRowsG = Math.ceil((this.nc + 1) / GRAM_ROWS) * GRAM_ROWS;
    this.nColsG = this.nc + 1 + GRAM_COLS - 1; // a tile starting at the last used column runs 2 past it
    this.cols = new Float64Array(this.nColsG * F2);
    this.wrows = new Float64Array(this.nRowsG * F2);
    this.G = new Float64Array(this.nRowsG * this.nColsG);
    this.w = new Float64Array(F2);
    this.sw = this.wrows.subarray(0, F2);
    this.y = this.cols.subarray(this.nc * F2, (this.nc + 1) * F2);
    this.dstScratch = new Int32Array(maxDeg + 1);
    this.kStart = Int32Array.from(this.sep?.gaussians ?? [], (ga) => firstTap(ga.taps, this.h));
    this.rawOffset = Int32Array.from({ length: 12 }, (_, t) => (t * (t + 1)) / 2);
  }

  /**
   * The record of one candidate. `ref` is the image to convolve, `tgt` the image to match; both in
   * parent coordinates (x0/y0), covering the candidate's stamp. Throws BAD_INPUT if they do not.
   */
  build(ref: MaskedImage, tgt: MaskedImage, site: CandidateSite): CandidateRecord {
    const { S, F, fh, nb, nc } = this;
    const half = (S - 1) / 2;
    const rx0 = site.cx - half - ref.x0;
    const ry0 = site.cy - half - ref.y0;
    const tx0 = site.cx - fh - tgt.x0;
    const ty0 = site.cy - fh - tgt.y0;
    if (rx0 < 0 || ry0 < 0 || rx0 + S > ref.width || ry0 + S > ref.height || tx0 < 0 || ty0 < 0 || tx0 + F > tgt.width || ty0 + F > tgt.height) {
      throw new KernelError('BAD_INPUT', `candidate at (${site.cx}, ${site.cy}) needs a ${S}-pixel stamp that the images do not cover`);
    }
    // The stamp, non-finite values set to 0 (v − v is 0 exactly when v is finite).
    const stamp = this.stamp;
    for (let j = 0; j < S; j++) {
      const src = (ry0 + j) * ref.width + rx0;
      for (let i = 0; i < S; i++) {
        const v = ref.image[src + i]!;
        stamp[j * S + i] = v - v === 0 ? v : 0;
      }
    }
    // Weights and target values over the fit region.
    const F2 = F * F;
    const q = this.refVarianceFactor;
    const off = half - fh; // fit region offset inside the stamp (= h)
    let n = 0;
    for (let j = 0; j < F; j++) {
      const ti = (ty0 + j) * tgt.width + tx0;
      const ri = (ry0 + off + j) * ref.width + rx0 + off;
      for (let i = 0; i < F; i++) {
        const v = tgt.variance[ti + i]! + q * ref.variance[ri + i]!;
        const yv = tgt.image[ti + i]!;
        const ok = v > 0 && Number.isFinite(v) && Number.isFinite(yv);
        const w = ok ? 1 / v : 0;
        this.w[j * F + i] = w;
        this.sw[j * F + i] = Math.sqrt(w);
        this.y[j * F + i] = ok ? yv : 0;
        if (ok) n++;
      }
    }

    this.convolveColumns();
    if (this.fitForBackground) this.cols.fill(1, nb * F2, (nb + 1) * F2);

    const { cols, wrows, w, y, G } = this;
    // Row 0 of wrows is √w (already there), rows 1 … nc are w·c_k; column nc of cols is y. For
    // Alard–Lupton the raw columns are renormalised on the way: final_k = alpha_k·raw_k + beta_k·raw_0.
    const alpha = this.sep?.alpha;
    const beta = this.sep?.beta;
    for (let k = 0; k < nc; k++) {
      const o = k * F2;
      const ow = o + F2;
      if (alpha && beta && k > 0 && k < nb) {
        const a = alpha[k]!;
        const b = beta[k]!;
        for (let p = 0; p < F2; p++) {
          const c = a * cols[o + p]! + b * cols[p]!;
          cols[o + p] = c;
          wrows[ow + p] = c * w[p]!;
        }
      } else {
        for (let p = 0; p < F2; p++) wrows[ow + p] = cols[o + p]! * w[p]!;
      }
    }
    gram(wrows, cols, F2, this.nRowsG, nc + 1, this.nColsG, G);
    const nC = this.nColsG;
    const M = new Float64Array(nc * nc);
    const B = new Float64Array(nc);
    const g = new Float64Array(nc);
    for (let a = 0; a < nc; a++) {
      const ga = (a + 1) * nC;
      for (let b = a; b < nc; b++) {
        const s = G[ga + b]!;
        M[a * nc + b] = s;
        M[b * nc + a] = s;
      }
      B[a] = G[ga + nc]!;
      g[a] = G[a]!;
    }
    const s1 = G[nc]!;
    let yWy = 0;
    for (let p = 0; p < F2; p++) yWy += w[p]! * y[p]! * y[p]!;
    return { ...site, nc, M, B, yWy, g, s1, n };
  }

  /**
   * Fill cols[k·F² …] with basis kernel k convolved with the stamp, over the fit region (for
   * Alard–Lupton the raw kernels: build() applies the renormalisation).
   */
  private convolveColumns(): void {
    const { S, F, h, nb, stamp, cols } = this;
    const F2 = F * F;
    const K = this.size;
    if (this.sep) {
      const sep = this.sep;
      const rows = this.rows;
      const h2 = 2 * h;
      const SF = S * F;
      const ro = this.rawOffset;
      const dst = this.dstScratch;
      let k0 = 0;
      for (let gi = 0; gi < sep.gaussians.length; gi++) {
        const ga = sep.gaussians[gi]!;
        const deg = ga.degree;
        const taps = ga.taps;
        const kFrom = this.kStart[gi]!;
        // Row pass: rows[p][iy][xf] = Σ_k taps_p[k]·stamp[iy][xf + 2h − k], for p = 0..deg — only
        // for the rows the column pass reads with this Gaussian's taps, iy ∈ [kFrom, S − kFrom).
        for (let p = 0; p <= deg; p++) dst[p] = p * SF + kFrom * F;
        foldPowers(stamp, rows, S - 2 * kFrom, S, 1, kFrom * S + h2, F, h, kFrom, taps, deg + 1, dst);
        // Column pass: for each x power px, the y powers py = 0..deg − px; raw kernel (px, py) is
        // number rawOffset[px + py] + py of this Gaussian.
        for (let px = 0; px <= deg; px++) {
          const n = deg - px + 1;
          for (let py = 0; py < n; py++) dst[py] = (k0 + ro[px + py]! + py) * F2;
          foldPowers(rows, cols, F, F, F, px * SF + h2 * F, F, h, kFrom, taps, n, dst);
        }
        k0 += ((deg + 1) * (deg + 2)) / 2;
      }
      // The renormalisation final_i = alpha_i·raw_i + beta_i·raw_0 is applied by build(), with the weights.
      return;
    }
    if (this.spec.type === 'delta-function') {
      // Column 0: the stamp itself (centre delta); column k: (shifted − unshifted)/√2.
      const c = (K * K - 1) / 2;
      for (let yf = 0; yf < F; yf++) for (let xf = 0; xf < F; xf++) cols[yf * F + xf] = stamp[(yf + h) * S + xf + h]!;
      let k = 1;
      for (let pix = 0; pix < K * K; pix++) {
        if (pix === c) continue;
        const u = (pix % K) - h;
        const v = Math.floor(pix / K) - h;
        const o = k * F2;
        for (let yf = 0; yf < F; yf++) {
          const so = (yf + h - v) * S + h - u;
          for (let xf = 0; xf < F; xf++) cols[o + yf * F + xf] = (stamp[so + xf]! - cols[yf * F + xf]!) * Math.SQRT1_2;
        }
        k++;
      }
      return;
    }
    // Explicit images: direct convolution.
    const images = this.images!;
    for (let k = 0; k < nb; k++) {
      const img = images[k]!;
      const o = k * F2;
      for (let yf = 0; yf < F; yf++) {
        for (let xf = 0; xf < F; xf++) {
          let s = 0;
          for (let v = -h; v <= h; v++) {
            const so = (yf + h - v) * S + xf + h;
            const ko = (v + h) * K + h;
            for (let u = -h; u <= h; u++) s += img[ko + u]! * stamp[so - u]!;
          }
          cols[o + yf * F + xf] = s;
        }
      }
    }
  }
}

/**
 * Outer taps of a narrow Gaussian vanish in the sums they enter: a tap below TAP_FLOOR × the centre
 * tap moves a convolved value by ~1e-20 of the largest pixel in its window, far below double
 * rounding, so those taps are skipped (σ = 0.7 in a 21-px kernel: |u| ≥ 7, 40 % of that Gaussian's
 * multiplies). Records change by ≲ 1e-15 relative (measured 4e-16 on the kernel bench).
 */
const TAP_FLOOR = 1e-20;

/** First tap index k (taps run over k = 0 … 2h, symmetric about h) whose magnitude in any power reaches TAP_FLOOR × the centre tap. */
function firstTap(taps: Float64Array[], h: number): number {
  const floor = TAP_FLOOR * Math.abs(taps[0]![h]!);
  for (let k = 0; k < h; k++) {
    for (const t of taps) if (Math.abs(t[k]!) >= floor || Math.abs(t[2 * h - k]!) >= floor) return k;
  }
  return h;
}

const GRAM_ROWS = 3;
const GRAM_COLS = 3;

/**
 * G[r·ncol + b] = Σ_p R[r][p]·C[b][p] (rows of length n) for r < nr and max(0, r − 1) ≤ b < nUsed —
 * what the record needs: row 0 (√w) against every column, row a + 1 (w·c_a) against columns b ≥ a.
 * Each entry is one running sum over p in order, exactly as a plain dot product; tiles of 3 rows ×
 * 3 columns share their loads (9 products per 6 loads). R has nr rows and C ncol columns, both
 * zero-padded, so the tiles at the edges need no remainder code.
 */
function gram(R: Float64Array, C: Float64Array, n: number, nr: number, nUsed: number, ncol: number, G: Float64Array): void {
  for (let r0 = 0; r0 < nr; r0 += 3) {
    const ra = r0 * n;
    const rb = ra + n;
    const rc = rb + n;
    for (let b0 = Math.max(0, r0 - 1); b0 < nUsed; b0 += 3) {
      const c0 = b0 * n;
      const c1 = c0 + n;
      const c2 = c1 + n;
      let s00 = 0, s01 = 0, s02 = 0, s10 = 0, s11 = 0, s12 = 0, s20 = 0, s21 = 0, s22 = 0;
      for (let p = 0; p < n; p++) {
        const x = R[ra + p]!;
        const y = R[rb + p]!;
        const z = R[rc + p]!;
        const u0 = C[c0 + p]!;
        const u1 = C[c1 + p]!;
        const u2 = C[c2 + p]!;
        s00 += x * u0; s01 += x * u1; s02 += x * u2;
        s10 += y * u0; s11 += y * u1; s12 += y * u2;
        s20 += z * u0; s21 += z * u1; s22 += z * u2;
      }
      const g0 = r0 * ncol + b0;
      G[g0] = s00; G[g0 + 1] = s01; G[g0 + 2] = s02;
      const g1 = g0 + ncol;
      G[g1] = s10; G[g1 + 1] = s11; G[g1 + 2] = s12;
      const g2 = g1 + ncol;
      G[g2] = s20; G[g2 + 1] = s21; G[g2 + 2] = s22;
    }
  }
}

/**
 * One pass of the separable convolution with the polynomial-Gaussian taps of powers 0 … n−1.
 * Output row r, column x (x < nx) of power p is
 *
 *   dst[dOff[p] + r·nx + x] = Σ_{k=kFrom}^{2h−kFrom} taps_p[k] · src[base − k·step],  base = start + r·rowStride + x,
 *
 * i.e. a row pass (step 1) or a column pass (step = row length). Taps of even/odd p are even/odd in
 * k − h, so the window is folded — a = src[base − k·step], b = src[base − (2h − k)·step] — and
 * a + b serves the even powers, a − b the odd ones. Up to five powers share one sweep, and 2–4
 * adjacent outputs share the tap loads (the last group of a row overlapping the one before, so any
 * nx ≥ 4 works); every output is summed in the same order (centre tap first, then k = kFrom … h−1)
 * whatever the grouping, so the result does not depend on it.
 */
function foldPowers(
  src: Float64Array, dst: Float64Array, nRows: number, rowStride: number, step: number, start: number, nx: number,
  h: number, kFrom: number, taps: Float64Array[], n: number, dOff: Int32Array,
): void {
  // Every sweep starts at an even power (the fold functions take slot 0 as even): 4s, then the rest.
  for (let p = 0; p < n;) {
    const left = n - p;
    if (left === 5) {
      fold5(src, dst, nRows, rowStride, step, start, nx, h, kFrom, taps[p]!, taps[p + 1]!, taps[p + 2]!, taps[p + 3]!, taps[p + 4]!,
        dOff[p]!, dOff[p + 1]!, dOff[p + 2]!, dOff[p + 3]!, dOff[p + 4]!);
      p += 5;
    } else if (left >= 4) {
      fold4(src, dst, nRows, rowStride, step, start, nx, h, kFrom, taps[p]!, taps[p + 1]!, taps[p + 2]!, taps[p + 3]!, dOff[p]!, dOff[p + 1]!, dOff[p + 2]!, dOff[p + 3]!);
      p += 4;
    } else if (left === 3) {
      fold3(src, dst, nRows, rowStride, step, start, nx, h, kFrom, taps[p]!, taps[p + 1]!, taps[p + 2]!, dOff[p]!, dOff[p + 1]!, dOff[p + 2]!);
      p += 3;
    } else if (left === 2) {
      fold2(src, dst, nRows, rowStride, step, start, nx, h, kFrom, taps[p]!, taps[p + 1]!, dOff[p]!, dOff[p + 1]!);
      p += 2;
    } else {
      fold1(src, dst, nRows, rowStride, step, start, nx, h, kFrom, taps[p]!, dOff[p]!);
      p += 1;
    }
  }
}

function fold1(src: Float64Array, dst: Float64Array, nRows: number, rowStride: number, step: number, start: number, nx: number, h: number, kFrom: number,
  t0: Float64Array, d0: number): void {
  const c0 = t0[h]!;
  const span = 2 * h * step;
  const hs = h * step;
  for (let r = 0; r < nRows; r++) {
    const rb = start + r * rowStride;
    const ob = r * nx;
    for (let x = 0; x < nx; x += 4) {
      if (x > nx - 4) x = nx - 4; // the last group of four overlaps the one before
      const base = rb + x;
      const lo = base - span;
      const mi = base - hs;
      let s0 = c0 * src[mi]!;
      let s1 = c0 * src[mi + 1]!;
      let s2 = c0 * src[mi + 2]!;
      let s3 = c0 * src[mi + 3]!;
      for (let k = kFrom, ks = kFrom * step; k < h; k++, ks += step) {
        const i1 = base - ks;
        const i2 = lo + ks;
        const u0 = t0[k]!;
        s0 += u0 * (src[i1]! + src[i2]!);
        s1 += u0 * (src[i1 + 1]! + src[i2 + 1]!);
        s2 += u0 * (src[i1 + 2]! + src[i2 + 2]!);
        s3 += u0 * (src[i1 + 3]! + src[i2 + 3]!);
      }
      const o = d0 + ob + x;
      dst[o] = s0;
      dst[o + 1] = s1;
      dst[o + 2] = s2;
      dst[o + 3] = s3;
    }
  }
}

function fold2(src: Float64Array, dst: Float64Array, nRows: number, rowStride: number, step: number, start: number, nx: number, h: number, kFrom: number,
  t0: Float64Array, t1: Float64Array, d0: number, d1: number): void {
  const c0 = t0[h]!;
  const span = 2 * h * step;
  const hs = h * step;
  for (let r = 0; r < nRows; r++) {
    const rb = start + r * rowStride;
    const ob = r * nx;
    for (let x = 0; x < nx; x += 4) {
      if (x > nx - 4) x = nx - 4; // the last group of four overlaps the one before
      const base = rb + x;
      const lo = base - span;
      const mi = base - hs;
      let s0 = c0 * src[mi]!, s1 = c0 * src[mi + 1]!, s2 = c0 * src[mi + 2]!, s3 = c0 * src[mi + 3]!;
      let q0 = 0, q1 = 0, q2 = 0, q3 = 0;
      for (let k = kFrom, ks = kFrom * step; k < h; k++, ks += step) {
        const i1 = base - ks;
        const i2 = lo + ks;
        const u0 = t0[k]!;
        const u1 = t1[k]!;
        const a0 = src[i1]!, b0 = src[i2]!, a1 = src[i1 + 1]!, b1 = src[i2 + 1]!;
        const a2 = src[i1 + 2]!, b2 = src[i2 + 2]!, a3 = src[i1 + 3]!, b3 = src[i2 + 3]!;
        s0 += u0 * (a0 + b0); q0 += u1 * (a0 - b0);
        s1 += u0 * (a1 + b1); q1 += u1 * (a1 - b1);
        s2 += u0 * (a2 + b2); q2 += u1 * (a2 - b2);
        s3 += u0 * (a3 + b3); q3 += u1 * (a3 - b3);
      }
      const o = ob + x;
      dst[d0 + o] = s0; dst[d0 + o + 1] = s1; dst[d0 + o + 2] = s2; dst[d0 + o + 3] = s3;
      dst[d1 + o] = q0; dst[d1 + o + 1] = q1; dst[d1 + o + 2] = q2; dst[d1 + o + 3] = q3;
    }
  }
}

function fold3(src: Float64Array, dst: Float64Array, nRows: number, rowStride: number, step: number, start: number, nx: number, h: number, kFrom: number,
  t0: Float64Array, t1: Float64Array, t2: Float64Array, d0: number, d1: number, d2: number): void {
  const c0 = t0[h]!;
  const c2 = t2[h]!;
  const span = 2 * h * step;
  const hs = h * step;
  for (let r = 0; r < nRows; r++) {
    const rb = start + r * rowStride;
    const ob = r * nx;
    for (let x = 0; x < nx; x += 2) {
      if (x === nx - 1) x--; // odd width: the last pair overlaps the one before
      const base = rb + x;
      const lo = base - span;
      const m = src[base - hs]!;
      const mm = src[base + 1 - hs]!;
      let s0 = c0 * m, s1 = 0, s2 = c2 * m;
      let q0 = c0 * mm, q1 = 0, q2 = c2 * mm;
      for (let k = kFrom, ks = kFrom * step; k < h; k++, ks += step) {
        const i1 = base - ks;
        const i2 = lo + ks;
        const a = src[i1]!;
        const b = src[i2]!;
        const aa = src[i1 + 1]!;
        const bb = src[i2 + 1]!;
        const e = a + b;
        const ee = aa + bb;
        const d = a - b;
        const dd = aa - bb;
        const u0 = t0[k]!;
        const u1 = t1[k]!;
        const u2 = t2[k]!;
        s0 += u0 * e; s1 += u1 * d; s2 += u2 * e;
        q0 += u0 * ee; q1 += u1 * dd; q2 += u2 * ee;
      }
      const o = ob + x;
      dst[d0 + o] = s0; dst[d1 + o] = s1; dst[d2 + o] = s2;
      dst[d0 + o + 1] = q0; dst[d1 + o + 1] = q1; dst[d2 + o + 1] = q2;
    }
  }
}

function fold4(src: Float64Array, dst: Float64Array, nRows: number, rowStride: number, step: number, start: number, nx: number, h: number, kFrom: number,
  t0: Float64Array, t1: Float64Array, t2: Float64Array, t3: Float64Array, d0: number, d1: number, d2: number, d3: number): void {
  const c0 = t0[h]!;
  const c2 = t2[h]!;
  const span = 2 * h * step;
  const hs = h * step;
  for (let r = 0; r < nRows; r++) {
    const rb = start + r * rowStride;
    const ob = r * nx;
    for (let x = 0; x < nx; x += 2) {
      if (x === nx - 1) x--; // odd width: the last pair overlaps the one before
      const base = rb + x;
      const lo = base - span;
      const m = src[base - hs]!;
      const mm = src[base + 1 - hs]!;
      let s0 = c0 * m, s1 = 0, s2 = c2 * m, s3 = 0;
      let q0 = c0 * mm, q1 = 0, q2 = c2 * mm, q3 = 0;
      for (let k = kFrom, ks = kFrom * step; k < h; k++, ks += step) {
        const i1 = base - ks;
        const i2 = lo + ks;
        const a = src[i1]!;
        const b = src[i2]!;
        const aa = src[i1 + 1]!;
        const bb = src[i2 + 1]!;
        const e = a + b;
        const ee = aa + bb;
        const d = a - b;
        const dd = aa - bb;
        const u0 = t0[k]!;
        const u1 = t1[k]!;
        const u2 = t2[k]!;
        const u3 = t3[k]!;
        s0 += u0 * e; s1 += u1 * d; s2 += u2 * e; s3 += u3 * d;
        q0 += u0 * ee; q1 += u1 * dd; q2 += u2 * ee; q3 += u3 * dd;
      }
      const o = ob + x;
      dst[d0 + o] = s0; dst[d1 + o] = s1; dst[d2 + o] = s2; dst[d3 + o] = s3;
      dst[d0 + o + 1] = q0; dst[d1 + o + 1] = q1; dst[d2 + o + 1] = q2; dst[d3 + o + 1] = q3;
    }
  }
}

function fold5(src: Float64Array, dst: Float64Array, nRows: number, rowStride: number, step: number, start: number, nx: number, h: number, kFrom: number,
  t0: Float64Array, t1: Float64Array, t2: Float64Array, t3: Float64Array, t4: Float64Array, d0: number, d1: number, d2: number, d3: number, d4: number): void {
  const c0 = t0[h]!;
  const c2 = t2[h]!;
  const c4 = t4[h]!;
  const span = 2 * h * step;
  const hs = h * step;
  for (let r = 0; r < nRows; r++) {
    const rb = start + r * rowStride;
    const ob = r * nx;
    for (let x = 0; x < nx; x += 2) {
      if (x === nx - 1) x--; // odd width: the last pair overlaps the one before
      const base = rb + x;
      const lo = base - span;
      const m = src[base - hs]!;
      const mm = src[base + 1 - hs]!;
      let s0 = c0 * m, s1 = 0, s2 = c2 * m, s3 = 0, s4 = c4 * m;
      let q0 = c0 * mm, q1 = 0, q2 = c2 * mm, q3 = 0, q4 = c4 * mm;
      for (let k = kFrom, ks = kFrom * step; k < h; k++, ks += step) {
        const i1 = base - ks;
        const i2 = lo + ks;
        const a = src[i1]!;
        const b = src[i2]!;
        const aa = src[i1 + 1]!;
        const bb = src[i2 + 1]!;
        const e = a + b;
        const ee = aa + bb;
        const d = a - b;
        const dd = aa - bb;
        const u0 = t0[k]!;
        const u1 = t1[k]!;
        const u2 = t2[k]!;
        const u3 = t3[k]!;
        const u4 = t4[k]!;
        s0 += u0 * e; s1 += u1 * d; s2 += u2 * e; s3 += u3 * d; s4 += u4 * e;
        q0 += u0 * ee; q1 += u1 * dd; q2 += u2 * ee; q3 += u3 * dd; q4 += u4 * ee;
      }
      const o = ob + x;
      dst[d0 + o] = s0; dst[d1 + o] = s1; dst[d2 + o] = s2; dst[d3 + o] = s3; dst[d4 + o] = s4;
      dst[d0 + o + 1] = q0; dst[d1 + o + 1] = q1; dst[d2 + o + 1] = q2; dst[d3 + o + 1] = q3; dst[d4 + o + 1] = q4;
    }
  }
}


/** Re-express a record in a new basis: a_old = T·a_new (T is nbOld × nbNew, row-major); the background column maps to itself. */
export function transformRecord(rec: CandidateRecord, T: Float64Array, nbOld: number, nbNew: number, fitForBackground: boolean): CandidateRecord {
  const ncOld = rec.nc;
  const ncNew = nbNew + (fitForBackground ? 1 : 0);
  // Full transform with the background column appended.
  const Te = new Float64Array(ncOld * ncNew);
  for (let i = 0; i < nbOld; i++) for (let j = 0; j < nbNew; j++) Te[i * ncNew + j] = T[i * nbNew + j]!;
  if (fitForBackground) Te[nbOld * ncNew + nbNew] = 1;
  // MT = M·Te (ncOld × ncNew), then M' = Teᵀ·MT.
  const MT = new Float64Array(ncOld * ncNew);
  for (let i = 0; i < ncOld; i++) {
    for (let k = 0; k < ncOld; k++) {
      const m = rec.M[i * ncOld + k]!;
      if (m === 0) continue;
      const tk = k * ncNew;
      const oi = i * ncNew;
      for (let j = 0; j < ncNew; j++) MT[oi + j]! += m * Te[tk + j]!;
    }
  }
  const M = new Float64Array(ncNew * ncNew);
  for (let a = 0; a < ncNew; a++) {
    for (let b = a; b < ncNew; b++) {
      let s = 0;
      for (let i = 0; i < ncOld; i++) s += Te[i * ncNew + a]! * MT[i * ncNew + b]!;
      M[a * ncNew + b] = s;
      M[b * ncNew + a] = s;
    }
  }
  const B = new Float64Array(ncNew);
  const g = new Float64Array(ncNew);
  for (let a = 0; a < ncNew; a++) {
    let sb = 0;
    let sg = 0;
    for (let i = 0; i < ncOld; i++) {
      sb += Te[i * ncNew + a]! * rec.B[i]!;
      sg += Te[i * ncNew + a]! * rec.g[i]!;
    }
    B[a] = sb;
    g[a] = sg;
  }
  return { ...rec, nc: ncNew, M, B, g };
}

