/**
 * Measurements of one DIA source on a (background-subtracted) difference image: centroid, PSF
 * flux, circular apertures, second moments, pixel flags; and forced PSF photometry (with a local
 * constant background fitted alongside) at a given position on any image.
 *
 * PSF flux as LSST's PsfFlux: F = Σ P·D / Σ P², σ_F = √(Σ P²·V) / Σ P² over the PSF's stamp, P
 * of unit total flux centred on the centroid. Unweighted: weighting by a variance plane that
 * contains the source's own Poisson noise would bias bright fluxes.
 */
import type { PsfModel } from './psf-model.ts';

export interface PlaneView {
  image: Float32Array;
  variance: Float32Array;
  mask: Int32Array;
  width: number;
  height: number;
}

export interface PsfFit {
  flux: number;
  fluxErr: number;
  /** Pixels of the stamp that were off the image or had `badBits`. */
  nBad: number;
  noData: boolean;
}

/** Sub-pixel extremum of the smoothed image by a parabola through the 3 samples on each axis. */
export function quadraticCentroid(s: Float32Array, W: number, H: number, px: number, py: number): [number, number] {
  const p = py * W + px;
  const off = (a: number, b: number, c: number): number => {
    const den = a - 2 * b + c;
    if (den === 0 || !Number.isFinite(den)) return 0;
    const t = (0.5 * (a - c)) / den;
    return Math.abs(t) <= 1 ? t : 0;
  };
  const dx = px > 0 && px < W - 1 ? off(s[p - 1]!, s[p]!, s[p + 1]!) : 0;
  const dy = py > 0 && py < H - 1 ? off(s[p - W]!, s[p]!, s[p + W]!) : 0;
  return [px + dx, py + dy];
}

/** The PSF's stamp round (cx, cy), clipped to the image: [x0, y0, w, h] or null when off it. */
function stampBox(psf: PsfModel, cx: number, cy: number, W: number, H: number): { x0: number; y0: number; w: number; h: number; clipped: boolean } {
  const r = psf.radius;
  const ix = Math.round(cx);
  const iy = Math.round(cy);
  const x0 = Math.max(0, ix - r);
  const y0 = Math.max(0, iy - r);
  const x1 = Math.min(W - 1, ix + r);
  const y1 = Math.min(H - 1, iy + r);
  return { x0, y0, w: Math.max(0, x1 - x0 + 1), h: Math.max(0, y1 - y0 + 1), clipped: x0 !== ix - r || y0 !== iy - r || x1 !== ix + r || y1 !== iy + r };
}

/** LSST-style PSF flux at (cx, cy), local pixel coordinates. */
export function psfFlux(img: PlaneView, psf: PsfModel, cx: number, cy: number, badBits: number, noDataBit: number): PsfFit {
  const { x0, y0, w, h, clipped } = stampBox(psf, cx, cy, img.width, img.height);
  const P = psf.render(cx, cy, x0, y0, w, h);
  let pd = 0;
  let pp = 0;
  let ppv = 0;
  let nBad = clipped ? 1 : 0;
  let noData = false;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const q = (y0 + y) * img.width + x0 + x;
      const m = img.mask[q]!;
      const v = img.variance[q]!;
      const d = img.image[q]!;
      if ((m & noDataBit) !== 0) noData = true;
      if ((m & badBits) !== 0 || !(v >= 0) || !Number.isFinite(d)) { nBad++; continue; }
      const pv = P[y * w + x]!;
      pd += pv * d;
      pp += pv * pv;
      ppv += pv * pv * v;
    }
  }
  if (!(pp > 0)) return { flux: NaN, fluxErr: NaN, nBad, noData };
  return { flux: pd / pp, fluxErr: Math.sqrt(ppv) / pp, nBad, noData };
}

/**
 * Forced PSF photometry with a constant local background fitted at the same time (the inputs may
 * still carry sky): least squares of D ≈ F·P + b over the PSF stamp; σ_F from the variance plane.
 */
export function forcedPsfFlux(img: PlaneView, psf: PsfModel, cx: number, cy: number, badBits: number): { flux: number; fluxErr: number } {
  const { x0, y0, w, h } = stampBox(psf, cx, cy, img.width, img.height);
  const P = psf.render(cx, cy, x0, y0, w, h);
  // Normal equations of [P, 1]; the error of F from the sandwich (AᵀA)⁻¹ Aᵀ diag(V) A (AᵀA)⁻¹.
  let spp = 0, sp = 0, n = 0, spd = 0, sd = 0;
  let vpp = 0, vp = 0, v1 = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const q = (y0 + y) * img.width + x0 + x;
      const v = img.variance[q]!;
      const d = img.image[q]!;
      if ((img.mask[q]! & badBits) !== 0 || !(v >= 0) || !Number.isFinite(d)) continue;
      const p = P[y * w + x]!;
      spp += p * p; sp += p; n++; spd += p * d; sd += d;
      vpp += p * p * v; vp += p * v; v1 += v;
    }
  }
  const det = spp * n - sp * sp;
  if (!(det > 0) || n < 3) return { flux: NaN, fluxErr: NaN };
  // F = (n·Σpd − Σp·Σd)/det: the row of (AᵀA)⁻¹ for F is (n, −Σp)/det.
  const a = n / det;
  const b = -sp / det;
  const flux = a * spd + b * sd;
  const varF = a * a * vpp + 2 * a * b * vp + b * b * v1;
  return { flux, fluxErr: Math.sqrt(Math.max(0, varF)) };
}

/** Fraction of pixel (x, y) inside the circle of radius r round (cx, cy), by 8×8 sub-samples on the rim. */
function coverage(x: number, y: number, cx: number, cy: number, r: number): number {
  const dx = Math.abs(x - cx);
  const dy = Math.abs(y - cy);
  const far = Math.hypot(dx + 0.5, dy + 0.5);
  if (far <= r) return 1;
  const near = Math.hypot(Math.max(0, dx - 0.5), Math.max(0, dy - 0.5));
  if (near >= r) return 0;
  let inside = 0;
  const r2 = r * r;
  for (let j = 0; j < 8; j++) {
    const yy = y - 0.5 + (j + 0.5) / 8 - cy;
    for (let i = 0; i < 8; i++) {
      const xx = x - 0.5 + (i + 0.5) / 8 - cx;
      if (xx * xx + yy * yy <= r2) inside++;
    }
  }
  return inside / 64;
}

/** Circular aperture flux and its error; `edge` when the circle leaves the image or covers bad pixels. */
export function apertureFlux(img: PlaneView, cx: number, cy: number, r: number, badBits: number): { flux: number; fluxErr: number; edge: boolean } {
  const xa = Math.floor(cx - r - 0.5);
  const xb = Math.ceil(cx + r + 0.5);
  const ya = Math.floor(cy - r - 0.5);
  const yb = Math.ceil(cy + r + 0.5);
  let f = 0;
  let v = 0;
  let edge = false;
  for (let y = ya; y <= yb; y++) {
    for (let x = xa; x <= xb; x++) {
      const c = coverage(x, y, cx, cy, r);
      if (c === 0) continue;
      if (x < 0 || y < 0 || x >= img.width || y >= img.height) { edge = true; continue; }
      const q = y * img.width + x;
      if ((img.mask[q]! & badBits) !== 0) { edge = true; continue; }
      f += c * img.image[q]!;
      v += c * c * img.variance[q]!;
    }
  }
  return { flux: f, fluxErr: Math.sqrt(v), edge };
}

/**
 * Second moments of the signal (sign s = ±1) by a Gaussian weight of σ_w round (cx, cy), corrected
 * for the weight: for a Gaussian source, C = (M⁻¹ − σ_w⁻²·I)⁻¹. NaN when noise makes it undefined.
 */
export function weightedMoments(img: PlaneView, cx: number, cy: number, sigmaW: number, sign: number, badBits: number): [number, number, number] {
  const r = Math.ceil(4 * sigmaW);
  const ix = Math.round(cx);
  const iy = Math.round(cy);
  let s0 = 0, sxx = 0, syy = 0, sxy = 0;
  const k = -0.5 / (sigmaW * sigmaW);
  for (let y = Math.max(0, iy - r); y <= Math.min(img.height - 1, iy + r); y++) {
    const dy = y - cy;
    for (let x = Math.max(0, ix - r); x <= Math.min(img.width - 1, ix + r); x++) {
      const q = y * img.width + x;
      if ((img.mask[q]! & badBits) !== 0) continue;
      const dx = x - cx;
      const w = Math.exp(k * (dx * dx + dy * dy)) * sign * img.image[q]!;
      s0 += w;
      sxx += w * dx * dx;
      syy += w * dy * dy;
      sxy += w * dx * dy;
    }
  }
  if (!(s0 > 0)) return [NaN, NaN, NaN];
  const mxx = sxx / s0, myy = syy / s0, mxy = sxy / s0;
  const det = mxx * myy - mxy * mxy;
  if (!(det > 0)) return [NaN, NaN, NaN];
  // M⁻¹ − W⁻¹, then invert.
  const w2 = 1 / (sigmaW * sigmaW);
  const a = myy / det - w2;
  const b = -mxy / det;
  const c = mxx / det - w2;
  const d2 = a * c - b * b;
  if (!(d2 > 0) || !(a > 0)) return [NaN, NaN, NaN];
  return [c / d2, a / d2, -b / d2];
}
