/**
 * PSF profiles and their pixel rendering.
 *
 * Shape convention, shared by Gaussian and Moffat so psfSigma, matchingKernel and rendering agree:
 * ellipticity e = 1 − b/a (axis ratio b/a), and fwhm is the GEOMETRIC MEAN of the major- and
 * minor-axis FWHMs. So with s = fwhm / 2.3548, the Gaussian axis sigmas are a = s/√(1−e),
 * b = s·√(1−e) (a·b = s²), rotated by the position angle θ (from +x toward +y):
 *   Σ = R(θ) diag(a², b²) R(θ)ᵀ.
 * With ρ² = qᵀΣ⁻¹q the profiles are exp(−ρ²/2) and (1 + kρ²)^−β, k = (2^{1/β} − 1)/(2 ln 2); both
 * fall to half maximum on the same ellipse, so a Moffat's "Gaussian with the same FWHM" is Σ.
 *
 * Pixel integration: the mean of a fixed 3×3 grid of midpoint samples per pixel (offsets −1/3, 0,
 * +1/3). This adds (1 − 1/9)/12 = 2/27 px² to each axis' second moment of the rendered image
 * (exact integration would add 1/12). The stamp is square with half-width ⌈5a⌉ (Gaussian) or the
 * radius holding 99.9% of the Moffat's flux, and is normalised to sum exactly 1.
 */
import { SimError } from './errors.ts';

export type Field = number | ((x: number, y: number) => number); // value at parent pixel (x, y)

export interface PsfSpec {
  profile: 'gaussian' | 'moffat';
  /** Pixels; geometric mean of the major- and minor-axis FWHMs. */
  fwhm: Field;
  /** e = 1 − b/a, in [0, 1); default 0. */
  ellipticity?: Field;
  /** Position angle of the major axis, radians from +x toward +y; default 0. */
  angle?: Field;
  /** Moffat β (> 1), default 3. */
  beta?: number;
}

export { FWHM_PER_SIGMA } from '../image/stats.ts';
import { FWHM_PER_SIGMA } from '../image/stats.ts';
/** Sub-samples per pixel along each axis. */
export const SUBPIXEL = 3;
/** Largest stamp half-width we render; beyond it a PSF is a configuration mistake. */
export const MAX_STAMP_RADIUS = 1024;
/** Largest stamp/kernel size a caller may request. */
const MAX_SIZE = 4097;

/** A PSF with its Fields evaluated at one position. */
export interface PsfParams {
  moffat: boolean;
  beta: number;
  fwhm: number;
  /** Covariance (px²) of the Gaussian with this shape and FWHM. */
  sxx: number;
  syy: number;
  sxy: number;
  /** Quadratic form of the profile's exponent: Gaussian −½Σ⁻¹, Moffat kΣ⁻¹ (entries xx, xy, yy). */
  qxx: number;
  qxy: number;
  qyy: number;
  /** Stamp half-width in pixels. */
  radius: number;
}

function field(f: Field | undefined, dflt: number, x: number, y: number, what: string): number {
  const v = f === undefined ? dflt : typeof f === 'number' ? f : f(x, y);
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new SimError(`PSF ${what} must be a finite number, got ${String(v)} at (${x}, ${y})`);
  }
  return v;
}

/** Evaluate a spec's Fields at (x, y) and derive everything rendering needs. */
export function evalPsf(spec: PsfSpec, x: number, y: number): PsfParams {
  if (spec === null || typeof spec !== 'object') throw new SimError('PSF spec must be an object');
  const moffat = spec.profile === 'moffat';
  if (!moffat && spec.profile !== 'gaussian') {
    throw new SimError(`PSF profile must be 'gaussian' or 'moffat', got ${String(spec.profile)}`);
  }
  const beta = spec.beta ?? 3;
  if (moffat && !(Number.isFinite(beta) && beta > 1)) {
    throw new SimError(`Moffat beta must be finite and > 1 (finite flux), got ${beta}`);
  }
  const fwhm = field(spec.fwhm, NaN, x, y, 'fwhm');
  if (!(fwhm > 0)) throw new SimError(`PSF fwhm must be > 0, got ${fwhm} at (${x}, ${y})`);
  const e = field(spec.ellipticity, 0, x, y, 'ellipticity');
  if (!(e >= 0 && e < 1)) throw new SimError(`PSF ellipticity must be in [0, 1), got ${e} at (${x}, ${y})`);
  const theta = field(spec.angle, 0, x, y, 'angle');

  const s2 = (fwhm / FWHM_PER_SIGMA) ** 2;
  const a2 = s2 / (1 - e);
  const b2 = s2 * (1 - e);
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  const sxx = a2 * c * c + b2 * s * s;
  const syy = a2 * s * s + b2 * c * c;
  const sxy = (a2 - b2) * c * s;
  // Σ⁻¹ = R diag(1/a², 1/b²) Rᵀ: no determinant division, so no cancellation at high e.
  let ixx = (c * c) / a2 + (s * s) / b2;
  let iyy = (s * s) / a2 + (c * c) / b2;
  let ixy = (1 / a2 - 1 / b2) * c * s;

  const a = Math.sqrt(a2);
  let rho: number; // ρ of the truncation ellipse
  if (moffat) {
    const k = (Math.pow(2, 1 / beta) - 1) / (2 * Math.LN2);
    // Flux outside ρ is (1 + kρ²)^(1−β): choose ρ where that is 1e-3.
    rho = Math.sqrt((Math.pow(1000, 1 / (beta - 1)) - 1) / k);
    ixx *= k;
    iyy *= k;
    ixy *= k;
  } else {
    rho = 5;
    ixx *= -0.5;
    iyy *= -0.5;
    ixy *= -0.5;
  }
  const radius = Math.ceil(rho * a);
  if (!(radius <= MAX_STAMP_RADIUS)) {
    throw new SimError(
      `PSF stamp half-width ${radius} px exceeds ${MAX_STAMP_RADIUS} (fwhm ${fwhm}, e ${e}` +
        (moffat ? `, beta ${beta}` : '') + `) at (${x}, ${y})`,
    );
  }
  return { moffat, beta, fwhm, sxx, syy, sxy, qxx: ixx, qxy: ixy, qyy: iyy, radius };
}

/** Whether no Field of the spec is a function (then one evaluation serves every position). */
export function isConstantPsf(spec: PsfSpec): boolean {
  return typeof spec.fwhm !== 'function' && typeof spec.ellipticity !== 'function' && typeof spec.angle !== 'function';
}

let scratch = new Float64Array(0);
const xs = new Float64Array(3 * (2 * MAX_STAMP_RADIUS + 1));
const ys = new Float64Array(3 * (2 * MAX_STAMP_RADIUS + 1));

/**
 * Render a unit-flux PSF whose centre sits (fx, fy) from the central pixel of a (2R+1)² stamp,
 * R = p.radius. Returns a shared scratch buffer (valid until the next call): element
 * [j*(2R+1) + i] is pixel (i − R, j − R) relative to the central pixel; sums to 1.
 */
export function renderUnitStamp(p: PsfParams, fx: number, fy: number): Float64Array {
  const r = p.radius;
  const d = 2 * r + 1;
  const n = d * d;
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, 2 * scratch.length));
  const buf = scratch;
  // Sample coordinates relative to the PSF centre, SUBPIXEL per pixel along each axis.
  for (let i = 0; i < d; i++) {
    const c = i - r;
    xs[3 * i] = c - 1 / 3 - fx;
    xs[3 * i + 1] = c - fx;
    xs[3 * i + 2] = c + 1 / 3 - fx;
    ys[3 * i] = c - 1 / 3 - fy;
    ys[3 * i + 1] = c - fy;
    ys[3 * i + 2] = c + 1 / 3 - fy;
  }
  const qxx = p.qxx;
  const qxy2 = 2 * p.qxy;
  const qyy = p.qyy;
  let total = 0;
  if (!p.moffat) {
    for (let j = 0; j < d; j++) {
      for (let i = 0; i < d; i++) {
        let s = 0;
        for (let sy = 3 * j; sy < 3 * j + 3; sy++) {
          const dy = ys[sy];
          const cy = qyy * dy * dy;
          const cxy = qxy2 * dy;
          for (let sx = 3 * i; sx < 3 * i + 3; sx++) {
            const dx = xs[sx];
            s += Math.exp((qxx * dx + cxy) * dx + cy);
          }
        }
        buf[j * d + i] = s;
        total += s;
      }
    }
  } else {
    const beta = p.beta;
    // Small integer β (the default 3) by repeated multiplication: pow dominates otherwise.
    const ipow = Number.isInteger(beta) && beta <= 8 ? beta : 0;
    for (let j = 0; j < d; j++) {
      for (let i = 0; i < d; i++) {
        let s = 0;
        for (let sy = 3 * j; sy < 3 * j + 3; sy++) {
          const dy = ys[sy];
          const cy = 1 + qyy * dy * dy;
          const cxy = qxy2 * dy;
          for (let sx = 3 * i; sx < 3 * i + 3; sx++) {
            const dx = xs[sx];
            const t = (qxx * dx + cxy) * dx + cy;
            if (ipow !== 0) {
              let q = t;
              for (let k = 1; k < ipow; k++) q *= t;
              s += 1 / q;
            } else {
              s += Math.pow(t, -beta);
            }
          }
        }
        buf[j * d + i] = s;
        total += s;
      }
    }
  }
  const inv = 1 / total;
  for (let k = 0; k < n; k++) buf[k] *= inv;
  return buf;
}

/** Throws unless size is an odd positive integer of sane magnitude. */
export function checkOddSize(size: number, what: string): void {
  if (!Number.isInteger(size) || size < 1 || size % 2 !== 1 || size > MAX_SIZE) {
    throw new SimError(`${what} size must be an odd integer in [1, ${MAX_SIZE}], got ${size}`);
  }
}

/**
 * size×size PSF (Fields evaluated at (x, y)) centred on the central pixel, exactly as a unit-flux
 * star at an integer position is rendered. When size < the star stamp (2R+1) the cut-out is
 * renormalised so it still sums to 1.
 */
export function renderPsfStamp(spec: PsfSpec, x: number, y: number, size: number): Float64Array {
  checkOddSize(size, 'PSF stamp');
  const p = evalPsf(spec, x, y);
  const buf = renderUnitStamp(p, 0, 0);
  const r = p.radius;
  const d = 2 * r + 1;
  const h = (size - 1) / 2;
  const out = new Float64Array(size * size);
  const m = Math.min(h, r);
  let sum = 0;
  for (let v = -m; v <= m; v++) {
    for (let u = -m; u <= m; u++) {
      const val = buf[(v + r) * d + (u + r)];
      out[(v + h) * size + (u + h)] = val;
      sum += val;
    }
  }
  if (h < r) for (let k = 0; k < out.length; k++) out[k] /= sum;
  return out;
}
