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
  private readonly cols: Float64Array; // nb × F² convolved basis
  private readonly wcols: Float64Array;
  private readonly w: Float64Array;
  private readonly sw: Float64Array;
  private readonly y: Float64Array;
  private readonly even: Float64Array;
  private readonly odd: Float64Array;
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
    this.cols = new Float64Array(this.nc * F2);
    this.wcols = new Float64Array(this.nc * F2);
    this.w = new Float64Array(F2);
    this.sw = new Float64Array(F2);
    this.y = new Float64Array(F2);
    this.even = new Float64Array(this.h + 1);
    this.odd = new Float64Array(this.h + 1);
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
    const stamp = this.stamp;
    for (let j = 0; j < S; j++) {
      const src = (ry0 + j) * ref.width + rx0;
      for (let i = 0; i < S; i++) stamp[j * S + i] = ref.image[src + i]!;
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
    for (let p = 0; p < S * S; p++) if (!Number.isFinite(stamp[p]!)) stamp[p] = 0;

    this.convolveColumns();
    if (this.fitForBackground) this.cols.fill(1, nb * F2, (nb + 1) * F2);

    const { cols, wcols, w, sw, y } = this;
    for (let k = 0; k < nc; k++) {
      const o = k * F2;
      for (let p = 0; p < F2; p++) wcols[o + p] = cols[o + p]! * w[p]!;
    }
    const M = new Float64Array(nc * nc);
    const B = new Float64Array(nc);
    const g = new Float64Array(nc);
    for (let a = 0; a < nc; a++) {
      const oa = a * F2;
      for (let b = a; b < nc; b++) {
        const ob = b * F2;
        let s = 0;
        for (let p = 0; p < F2; p++) s += wcols[oa + p]! * cols[ob + p]!;
        M[a * nc + b] = s;
        M[b * nc + a] = s;
      }
      let sb = 0;
      let sg = 0;
      for (let p = 0; p < F2; p++) {
        sb += wcols[oa + p]! * y[p]!;
        sg += sw[p]! * cols[oa + p]!;
      }
      B[a] = sb;
      g[a] = sg;
    }
    let yWy = 0;
    let s1 = 0;
    for (let p = 0; p < F2; p++) {
      yWy += w[p]! * y[p]! * y[p]!;
      s1 += sw[p]! * y[p]!;
    }
    return { ...site, nc, M, B, yWy, g, s1, n };
  }

  /** Fill cols[k·F² …] with basis kernel k convolved with the stamp, over the fit region. */
  private convolveColumns(): void {
    const { S, F, h, nb, stamp, cols } = this;
    const F2 = F * F;
    const K = this.size;
    if (this.sep) {
      const sep = this.sep;
      const rows = this.rows;
      const even = this.even;
      const odd = this.odd;
      const h2 = 2 * h;
      let k0 = 0;
      for (const ga of sep.gaussians) {
        const deg = ga.degree;
        const taps = ga.taps;
        // Row pass, all powers at once: rows[p][iy][xf] = Σ_k taps_p[k]·stamp[iy][xf + 2h − k].
        // Taps are even/odd in u = k − h for even/odd p, so fold the window: half the multiplies.
        for (let iy = 0; iy < S; iy++) {
          const so = iy * S;
          for (let xf = 0; xf < F; xf++) {
            const base = so + xf + h2;
            for (let k = 0; k < h; k++) {
              const a = stamp[base - k]!;
              const b = stamp[base - h2 + k]!;
              even[k] = a + b;
              odd[k] = a - b;
            }
            const mid = stamp[base - h]!;
            for (let p = 0; p <= deg; p++) {
              const t = taps[p]!;
              let sum = 0;
              if ((p & 1) === 0) {
                sum = t[h]! * mid;
                for (let k = 0; k < h; k++) sum += t[k]! * even[k]!;
              } else {
                for (let k = 0; k < h; k++) sum += t[k]! * odd[k]!;
              }
              rows[p * S * F + iy * F + xf] = sum;
            }
          }
        }
        // Column pass: for each x power, fold the column window once and apply every y power.
        for (let px = 0; px <= deg; px++) {
          const ro = px * S * F;
          for (let yf = 0; yf < F; yf++) {
            for (let xf = 0; xf < F; xf++) {
              const base = ro + (yf + h2) * F + xf;
              for (let k = 0; k < h; k++) {
                const a = rows[base - k * F]!;
                const b = rows[base - (h2 - k) * F]!;
                even[k] = a + b;
                odd[k] = a - b;
              }
              const mid = rows[base - h * F]!;
              for (let py = 0; py + px <= deg; py++) {
                const t = taps[py]!;
                let sum = 0;
                if ((py & 1) === 0) {
                  sum = t[h]! * mid;
                  for (let k = 0; k < h; k++) sum += t[k]! * even[k]!;
                } else {
                  for (let k = 0; k < h; k++) sum += t[k]! * odd[k]!;
                }
                cols[(k0 + this.rawOffset[px + py]! + py) * F2 + yf * F + xf] = sum;
              }
            }
          }
        }
        k0 += ((deg + 1) * (deg + 2)) / 2;
      }
      // Renormalise: final_i = alpha_i·raw_i + beta_i·raw_0.
      for (let i = 1; i < nb; i++) {
        const a = sep.alpha[i]!;
        const b = sep.beta[i]!;
        const o = i * F2;
        for (let p = 0; p < F2; p++) cols[o + p] = a * cols[o + p]! + b * cols[p]!;
      }
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
