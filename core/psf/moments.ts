/**
 * Adaptive (elliptical-Gaussian-weighted, iterated) second moments, as SDSS "shape" and HSM
 * (Bernstein & Jarvis 2002; Hirata & Seljak 2003): the weight's covariance M is iterated until it
 * equals the covariance of the object as seen through the weight. For a Gaussian object of
 * covariance Q the weighted moments are m = (M⁻¹ + Q⁻¹)⁻¹, so Q can be solved for exactly
 * (Q⁻¹ = m⁻¹ − M⁻¹): that update converges in a handful of iterations on star-like profiles; when
 * noise makes it non-positive we fall back to the slower but always-valid M ← 2m. At convergence
 * M = 2m = Q, and M is what is reported.
 *
 * Pixel integration: a Gaussian of σ² integrated over square pixels and sampled at the pixel
 * centres has (to a very good approximation) moments σ² + 1/12 per axis. The moments here are the
 * RAW ones (no 1/12 subtracted), so PSF sizes of the two images compare like with like; a
 * caller wanting the intrinsic σ should subtract 1/12.
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { checkBadBits, checkPlanes, DEFAULT_BAD_BITS } from './background.ts';
import { PsfError } from './errors.ts';

export interface MomentsResult {
  /** Centroid (parent coordinates) where the weight was last centred. */
  x: number;
  y: number;
  /** Adaptive second moments, pixels² (raw: include the ≈1/12 of pixel integration); NaN unless ok. */
  ixx: number;
  iyy: number;
  ixy: number;
  /** Converged to a positive-definite shape near the starting point. */
  ok: boolean;
  /** Iterations used. */
  iterations?: number;
}

export interface AdaptiveMomentsOptions {
  /** Sky level subtracted from every pixel (default 0: the image is taken as sky-subtracted). */
  sky?: number;
  /** Iteration limit (default 50). */
  maxIter?: number;
  /** Starting weight σ in pixels (default 1.5). */
  sigmaGuess?: number;
  /** Pixels with these bits are left out of the sums (default DEFAULT_BAD_BITS). */
  badBits?: number;
}

const FAIL = (x: number, y: number, iterations: number): MomentsResult => ({
  x,
  y,
  ixx: NaN,
  iyy: NaN,
  ixy: NaN,
  ok: false,
  iterations,
});

/** Weight is negligible beyond 4σ (e^-8 ≈ 3e-4): Mahalanobis² cut. */
const CUT2 = 16;

/**
 * Adaptive moments about (x, y) in parent coordinates. `ok` is false (moments NaN, centroid the
 * last estimate) when the iteration does not converge, the shape stops being positive definite,
 * the weighted flux is not positive, or the centroid wanders off (more than max(3, 2σ) px: the
 * start was on the wing of something else).
 */
export function adaptiveMoments(mi: MaskedImage, x: number, y: number, opts: AdaptiveMomentsOptions = {}): MomentsResult {
  checkPlanes(mi);
  const sky = opts.sky ?? 0;
  const maxIter = opts.maxIter ?? 50;
  const sigmaGuess = opts.sigmaGuess ?? 1.5;
  const bad = checkBadBits(opts.badBits ?? DEFAULT_BAD_BITS);
  if (!Number.isFinite(x) || !Number.isFinite(y)) throw new PsfError('BAD_ARGUMENT', `position must be finite, got (${x}, ${y})`);
  if (!Number.isFinite(sky)) throw new PsfError('BAD_ARGUMENT', `sky must be finite, got ${sky}`);
  if (!Number.isInteger(maxIter) || maxIter < 1) throw new PsfError('BAD_ARGUMENT', `maxIter must be a positive integer, got ${maxIter}`);
  if (!(sigmaGuess > 0) || !Number.isFinite(sigmaGuess)) throw new PsfError('BAD_ARGUMENT', `sigmaGuess must be > 0, got ${sigmaGuess}`);
  const r = momentsLocal(mi, x - mi.x0, y - mi.y0, sky, sigmaGuess, maxIter, bad);
  r.x += mi.x0;
  r.y += mi.y0;
  return r;
}

/** The iteration in local coordinates; arguments already checked. */
export function momentsLocal(
  mi: MaskedImage,
  x: number,
  y: number,
  sky: number,
  sigmaGuess: number,
  maxIter: number,
  bad: number,
): MomentsResult {
  const { width: w, height: h, image, mask } = mi;
  const x0 = x;
  const y0 = y;
  const maxShift = Math.max(3, 2 * sigmaGuess);
  // Sizes beyond this are not star-like (and the window would be huge).
  const maxT = 2 * Math.max(100, 25 * sigmaGuess * sigmaGuess);
  let mxx = sigmaGuess * sigmaGuess;
  let myy = mxx;
  let mxy = 0;
  let xc = x;
  let yc = y;

  for (let iter = 1; iter <= maxIter; iter++) {
    const det = mxx * myy - mxy * mxy;
    if (!(det > 0) || !(mxx > 0)) return FAIL(xc, yc, iter);
    const ia = myy / det;
    const ib = -mxy / det;
    const ic = mxx / det;
    // Window: the bounding box of the 4σ ellipse.
    const rx = Math.sqrt(CUT2 * mxx);
    const ry = Math.sqrt(CUT2 * myy);
    const xa = Math.max(0, Math.ceil(xc - rx));
    const xb = Math.min(w - 1, Math.floor(xc + rx));
    const ya = Math.max(0, Math.ceil(yc - ry));
    const yb = Math.min(h - 1, Math.floor(yc + ry));
    let s0 = 0;
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let syy = 0;
    let sxy = 0;
    // Along a row the weight exp(−q/2) is updated by a ratio that itself changes by the
    // constant factor e^(−ia): two multiplies per pixel instead of an exp.
    const stepMul = Math.exp(-ia);
    for (let py = ya; py <= yb; py++) {
      const dy = py - yc;
      const row = py * w;
      const dx0 = xa - xc;
      let wt = Math.exp(-0.5 * (ia * dx0 * dx0 + 2 * ib * dx0 * dy + ic * dy * dy));
      let ratio = Math.exp(-ia * dx0 - ib * dy - 0.5 * ia);
      for (let px = xa; px <= xb; px++, wt *= ratio, ratio *= stepMul) {
        const dx = px - xc;
        const q = ia * dx * dx + 2 * ib * dx * dy + ic * dy * dy;
        if (q > CUT2) continue;
        const i = row + px;
        const v = image[i];
        if ((mask[i] & bad) !== 0 || v - v !== 0) continue;
        const wi = wt * (v - sky);
        s0 += wi;
        sx += wi * dx;
        sy += wi * dy;
        sxx += wi * dx * dx;
        syy += wi * dy * dy;
        sxy += wi * dx * dy;
      }
    }
    if (!(s0 > 0)) return FAIL(xc, yc, iter);
    const ux = sx / s0;
    const uy = sy / s0;
    // Weighted moments about the weighted centroid.
    const axx = sxx / s0 - ux * ux;
    const ayy = syy / s0 - uy * uy;
    const axy = sxy / s0 - ux * uy;
    const adet = axx * ayy - axy * axy;
    if (!(adet > 0) || !(axx > 0)) return FAIL(xc, yc, iter);
    // Exact Gaussian deconvolution of the weight: Q⁻¹ = m⁻¹ − M⁻¹.
    const qa = ayy / adet - ia;
    const qb = -axy / adet - ib;
    const qc = axx / adet - ic;
    const qdet = qa * qc - qb * qb;
    let nxx: number;
    let nyy: number;
    let nxy: number;
    if (qdet > 0 && qa > 0) {
      nxx = qc / qdet;
      nyy = qa / qdet;
      nxy = -qb / qdet;
    } else {
      nxx = 2 * axx;
      nyy = 2 * ayy;
      nxy = 2 * axy;
    }
    // Damp runaway growth (noise, a neighbour at the window edge): the 2m update never more
    // than doubles the size in one step.
    const tOld = mxx + myy;
    if (nxx + nyy > 4 * tOld) {
      nxx = 2 * axx;
      nyy = 2 * ayy;
      nxy = 2 * axy;
    }
    // Centroid: for a Gaussian matched by the weight the weighted mean moves half the offset.
    let dxs = 2 * ux;
    let dys = 2 * uy;
    const step = Math.hypot(dxs, dys);
    const maxStep = Math.max(1, Math.sqrt(tOld / 2));
    if (step > maxStep) {
      dxs *= maxStep / step;
      dys *= maxStep / step;
    }
    xc += dxs;
    yc += dys;
    const tNew = nxx + nyy;
    const dT = Math.abs(nxx - mxx) + Math.abs(nyy - myy) + 2 * Math.abs(nxy - mxy);
    mxx = nxx;
    myy = nyy;
    mxy = nxy;
    if (!(tNew > 0) || tNew > maxT) return FAIL(xc, yc, iter);
    if (Math.abs(xc - x0) > maxShift || Math.abs(yc - y0) > maxShift) return FAIL(xc, yc, iter);
    if (dT < 1e-5 * tNew && step < 1e-4) {
      if (!(mxx * myy - mxy * mxy > 0)) return FAIL(xc, yc, iter);
      return { x: xc, y: yc, ixx: mxx, iyy: myy, ixy: mxy, ok: true, iterations: iter };
    }
  }
  return FAIL(xc, yc, maxIter);
}
