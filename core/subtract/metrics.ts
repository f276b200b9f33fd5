/**
 * Difference-image quality as defined in docs/METRICS.md: z = D/√V over valid pixels (finite, V > 0,
 * none of NO_DATA, EDGE, SAT, SAT_TEMPLATE, BAD), and over "source-free" pixels (valid and not
 * excluded, e.g. farther than 2×FWHM from every detection in either input).
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { maskOf } from '../image/mask.ts';
import { mean, robustStd, std } from '../image/stats.ts';
import { findStars } from '../psf/index.ts';

export const INVALID_DIFF_BITS = maskOf('NO_DATA', 'EDGE', 'SAT', 'SAT_TEMPLATE', 'BAD');

export interface NoiseFidelity {
  /** Source-free pixels used. */
  n: number;
  /** Robust std (1.4826 × MAD) and mean of z over source-free pixels. */
  robustStd: number;
  mean: number;
  /** Mean of V over source-free pixels ÷ the empirical variance of D there. */
  varianceRatio: number;
  /** Fraction of valid pixels with |z| > 5. */
  artefactRate: number;
  nValid: number;
}

/** Exclusion map: 1 within `radius` pixels of any of the (parent-coordinate) positions. */
export function exclusionMask(mi: MaskedImage, positions: ReadonlyArray<{ x: number; y: number }>, radius: number | ((i: number) => number)): Uint8Array {
  const out = new Uint8Array(mi.width * mi.height);
  positions.forEach((p, i) => {
    const r = typeof radius === 'number' ? radius : radius(i);
    const cx = p.x - mi.x0;
    const cy = p.y - mi.y0;
    const x0 = Math.max(0, Math.floor(cx - r));
    const x1 = Math.min(mi.width - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const y1 = Math.min(mi.height - 1, Math.ceil(cy + r));
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) out[y * mi.width + x] = 1;
  });
  return out;
}

export function noiseFidelity(diff: MaskedImage, exclude?: Uint8Array): NoiseFidelity {
  const n = diff.width * diff.height;
  const z = new Float64Array(n);
  const d = new Float64Array(n);
  let m = 0;
  let sumV = 0;
  let nValid = 0;
  let nArtefact = 0;
  for (let i = 0; i < n; i++) {
    const v = diff.variance[i]!;
    const x = diff.image[i]!;
    if ((diff.mask[i]! & INVALID_DIFF_BITS) !== 0 || !(v > 0) || !Number.isFinite(v) || !Number.isFinite(x)) continue;
    nValid++;
    const zi = x / Math.sqrt(v);
    if (Math.abs(zi) > 5) nArtefact++;
    if (exclude && exclude[i]) continue;
    z[m] = zi;
    d[m] = x;
    m++;
    sumV += v;
  }
  const zs = z.subarray(0, m);
  return {
    n: m,
    robustStd: robustStd(zs),
    mean: m > 0 ? mean(zs) : NaN,
    varianceRatio: sumV / Math.max(1, m) / std(d.subarray(0, m)) ** 2,
    artefactRate: nValid > 0 ? nArtefact / nValid : NaN,
    nValid,
  };
}

/**
 * noiseFidelity over METRICS.md's source-free pixels: farther than 2×FWHM from every ≥3σ
 * detection in either input image.
 */
export function sourceFreeFidelity(diff: MaskedImage, science: MaskedImage, template: MaskedImage, fwhm: number): NoiseFidelity {
  const det = [...findStars(science, { threshold: 3 }), ...findStars(template, { threshold: 3 })];
  return noiseFidelity(diff, exclusionMask(diff, det, 2 * fwhm));
}
