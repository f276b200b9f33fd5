/**
 * The σ² of each input that decorrelation (DMTN-021) takes: a σ-clipped mean of its variance plane
 * over pixels usable in both images. Sampled on a regular lattice anchored to the whole exposure
 * (≈250 000 pixels: a mean needs no more), so a tile contributes exactly the lattice pixels of its
 * core and the merged samples of all tiles are those of the whole image: the tiled pipeline and
 * subtract() on the whole exposure get the same two numbers.
 */
import type { Box } from '../image/box.ts';
import type { MaskedImage } from '../image/masked-image.ts';
import { maskOf } from '../image/mask.ts';
import { sigmaClippedStats } from '../image/stats.ts';

const UNUSABLE = maskOf('NO_DATA', 'SAT', 'BAD', 'EDGE');

export interface VarianceSamples {
  science: Float32Array;
  template: Float32Array;
}

/** Lattice step for an exposure: about 250 000 samples over it. */
export function latticeStep(exposure: Box): number {
  return Math.max(1, Math.floor(Math.sqrt((exposure.width * exposure.height) / 250_000)));
}

/** First coordinate ≥ from on the lattice that starts at origin with this step. */
function firstOnLattice(origin: number, from: number, step: number): number {
  return from + ((((origin - from) % step) + step) % step);
}

/**
 * Lattice samples of both variance planes inside `region` (parent coordinates; default: all that
 * the images hold), pixels where neither image is unusable and both variances are positive.
 */
export function varianceSamples(sci: MaskedImage, tpl: MaskedImage, exposure: Box, region?: Box): VarianceSamples {
  const step = latticeStep(exposure);
  const r = region ?? { x0: sci.x0, y0: sci.y0, width: sci.width, height: sci.height };
  const xa = firstOnLattice(exposure.x0, Math.max(r.x0, sci.x0), step);
  const ya = firstOnLattice(exposure.y0, Math.max(r.y0, sci.y0), step);
  const xb = Math.min(r.x0 + r.width, sci.x0 + sci.width);
  const yb = Math.min(r.y0 + r.height, sci.y0 + sci.height);
  const cap = Math.max(0, Math.ceil((xb - xa) / step)) * Math.max(0, Math.ceil((yb - ya) / step));
  const s = new Float32Array(cap);
  const t = new Float32Array(cap);
  let n = 0;
  for (let y = ya; y < yb; y += step) {
    const o = (y - sci.y0) * sci.width - sci.x0;
    for (let x = xa; x < xb; x += step) {
      const i = o + x;
      if (((sci.mask[i]! | tpl.mask[i]!) & UNUSABLE) !== 0) continue;
      const a = sci.variance[i]!;
      const b = tpl.variance[i]!;
      if (!(a > 0 && b > 0 && a < Infinity && b < Infinity)) continue;
      s[n] = a;
      t[n] = b;
      n++;
    }
  }
  return { science: s.slice(0, n), template: t.slice(0, n) };
}

/** 3σ-clipped mean (NaN when there is nothing). Sorted first: the sums, and so every bit, do not depend on the samples' order. */
export function clippedMean(samples: Float32Array): number {
  if (samples.length === 0) return NaN;
  return sigmaClippedStats(Float64Array.from(samples).sort(), { nSigma: 3, maxIter: 5 }).mean;
}

/** Both levels from merged samples (in any order). */
export function levelsOf(parts: readonly VarianceSamples[]): { science: number; template: number } {
  const cat = (k: keyof VarianceSamples) => {
    const out = new Float32Array(parts.reduce((a, p) => a + p[k].length, 0));
    let o = 0;
    for (const p of parts) { out.set(p[k], o); o += p[k].length; }
    return out;
  };
  return { science: clippedMean(cat('science')), template: clippedMean(cat('template')) };
}

/** The two levels of a whole exposure held in memory. */
export function varianceLevels(sci: MaskedImage, tpl: MaskedImage, exposure: Box): { science: number; template: number } {
  return levelsOf([varianceSamples(sci, tpl, exposure)]);
}
