/**
 * Dipole fit on a merged footprint (ip_diffim's DipoleFitTask, on the difference image only): the
 * model is a positive and a negative PSF, D ≈ f₊·P(x − c₊) − f₋·P(x − c₋), fitted by weighted
 * least squares (1/V) over the footprint's pixels. The fluxes are linear given the positions, so
 * they are solved exactly at every step and Levenberg–Marquardt moves only the four coordinates.
 */
import type { PlaneView } from './measure.ts';
import type { PsfModel } from './psf-model.ts';
import type { DipoleFit } from './source.ts';

export interface DipoleRegion {
  /** Pixel indices (y·W + x) of the footprint. */
  pixels: Int32Array;
  xMin: number;
  yMin: number;
  xMax: number;
  yMax: number;
}

interface Eval {
  chi2: number;
  fp: number;
  fn: number;
  errP: number;
  errN: number;
  res: Float64Array;
}

export function fitDipole(img: PlaneView, psf: PsfModel, region: DipoleRegion, start: { pos: [number, number]; neg: [number, number] }, badBits: number): DipoleFit | null {
  const { xMin, yMin } = region;
  const w = region.xMax - xMin + 1;
  const h = region.yMax - yMin + 1;
  const W = img.width;
  // Usable pixels of the footprint, as offsets into the bounding box.
  const idx: number[] = [];
  const data: number[] = [];
  const wts: number[] = [];
  for (const p of region.pixels) {
    const v = img.variance[p]!;
    if ((img.mask[p]! & badBits) !== 0 || !(v > 0) || !Number.isFinite(img.image[p]!)) continue;
    const x = p % W;
    const y = (p - x) / W;
    idx.push((y - yMin) * w + (x - xMin));
    data.push(img.image[p]!);
    wts.push(1 / v);
  }
  const n = idx.length;
  if (n < 8) return null;
  const P1 = new Float64Array(w * h);
  const P2 = new Float64Array(w * h);

  const evaluate = (t: Float64Array): Eval | null => {
    psf.render(t[0]!, t[1]!, xMin, yMin, w, h, P1);
    psf.render(t[2]!, t[3]!, xMin, yMin, w, h, P2);
    let a11 = 0, a12 = 0, a22 = 0, b1 = 0, b2 = 0;
    for (let k = 0; k < n; k++) {
      const p = P1[idx[k]!]!;
      const q = -P2[idx[k]!]!;
      const wt = wts[k]!;
      a11 += wt * p * p; a12 += wt * p * q; a22 += wt * q * q;
      b1 += wt * p * data[k]!; b2 += wt * q * data[k]!;
    }
    const det = a11 * a22 - a12 * a12;
    if (!(det > 1e-12 * a11 * a22)) return null;
    const fp = (a22 * b1 - a12 * b2) / det;
    const fn = (a11 * b2 - a12 * b1) / det;
    const res = new Float64Array(n);
    let chi2 = 0;
    for (let k = 0; k < n; k++) {
      const r = (data[k]! - fp * P1[idx[k]!]! + fn * P2[idx[k]!]!) * Math.sqrt(wts[k]!);
      res[k] = r;
      chi2 += r * r;
    }
    return { chi2, fp, fn, errP: Math.sqrt(a22 / det), errN: Math.sqrt(a11 / det), res };
  };

  const t = Float64Array.from([start.pos[0], start.pos[1], start.neg[0], start.neg[1]]);
  let cur = evaluate(t);
  if (!cur) return null;
  let lambda = 1e-3;
  const step = 1e-3;
  const J = Array.from({ length: 4 }, () => new Float64Array(n));
  let converged = false;
  for (let iter = 0; iter < 50 && !converged; iter++) {
    for (let j = 0; j < 4; j++) {
      const tt = t.slice();
      tt[j]! += step;
      const e = evaluate(tt);
      if (!e) return null;
      for (let k = 0; k < n; k++) J[j]![k] = (e.res[k]! - cur.res[k]!) / step;
    }
    // Gauss–Newton normal equations on the residual vector, with Marquardt's diagonal damping.
    const A = new Float64Array(16);
    const g = new Float64Array(4);
    for (let a = 0; a < 4; a++) {
      for (let b = a; b < 4; b++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += J[a]![k]! * J[b]![k]!;
        A[a * 4 + b] = A[b * 4 + a] = s;
      }
      let s = 0;
      for (let k = 0; k < n; k++) s += J[a]![k]! * cur.res[k]!;
      g[a] = -s;
    }
    let improved = false;
    for (let tries = 0; tries < 10; tries++) {
      const M = A.slice();
      for (let a = 0; a < 4; a++) M[a * 5]! *= 1 + lambda;
      const dx = solve4(M, g);
      if (!dx) { lambda *= 10; continue; }
      const tt = t.slice();
      for (let a = 0; a < 4; a++) tt[a]! += dx[a]!;
      const e = evaluate(tt);
      if (e && e.chi2 < cur.chi2) {
        const gain = cur.chi2 - e.chi2;
        t.set(tt);
        cur = e;
        lambda = Math.max(1e-7, lambda / 10);
        improved = true;
        converged = gain < 1e-6 * Math.max(1, e.chi2) && Math.max(...dx.map(Math.abs)) < 1e-4;
        break;
      }
      lambda *= 10;
    }
    if (!improved) break;
  }
  const [px, py, nx, ny] = [t[0]!, t[1]!, t[2]!, t[3]!];
  const inside = (x: number, y: number) => x >= region.xMin - 0.5 && x <= region.xMax + 0.5 && y >= region.yMin - 0.5 && y <= region.yMax + 0.5;
  if (!inside(px, py) || !inside(nx, ny) || !Number.isFinite(cur.fp) || !Number.isFinite(cur.fn)) return null;
  return {
    posFlux: cur.fp,
    posFluxErr: cur.errP,
    negFlux: cur.fn,
    negFluxErr: cur.errN,
    posX: px,
    posY: py,
    negX: nx,
    negY: ny,
    separation: Math.hypot(px - nx, py - ny),
    orientation: (Math.atan2(py - ny, px - nx) * 180) / Math.PI,
    chi2dof: cur.chi2 / Math.max(1, n - 6),
  };
}

/** Solve the 4×4 system by Gaussian elimination with partial pivoting; null if singular. */
function solve4(M: Float64Array, b: Float64Array): number[] | null {
  const a = M.slice();
  const x = Array.from(b);
  for (let c = 0; c < 4; c++) {
    let piv = c;
    for (let r = c + 1; r < 4; r++) if (Math.abs(a[r * 4 + c]!) > Math.abs(a[piv * 4 + c]!)) piv = r;
    if (!(Math.abs(a[piv * 4 + c]!) > 1e-300)) return null;
    if (piv !== c) {
      for (let k = 0; k < 4; k++) [a[c * 4 + k], a[piv * 4 + k]] = [a[piv * 4 + k]!, a[c * 4 + k]!];
      [x[c], x[piv]] = [x[piv]!, x[c]!];
    }
    for (let r = c + 1; r < 4; r++) {
      const f = a[r * 4 + c]! / a[c * 4 + c]!;
      for (let k = c; k < 4; k++) a[r * 4 + k]! -= f * a[c * 4 + k]!;
      x[r]! -= f * x[c]!;
    }
  }
  for (let c = 3; c >= 0; c--) {
    let s = x[c]!;
    for (let k = c + 1; k < 4; k++) s -= a[c * 4 + k]! * x[k]!;
    x[c] = s / a[c * 4 + c]!;
  }
  return x.every(Number.isFinite) ? x : null;
}
