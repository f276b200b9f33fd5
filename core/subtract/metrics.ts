/**
 * Difference-image quality as defined in docs/METRICS.md: z = D/√V over valid pixels (finite, V > 0,
 * none of NO_DATA, EDGE, SAT, SAT_TEMPLATE, BAD), and over "source-free" pixels (valid and not
 * excluded, e.g. farther than 2×FWHM from every detection in either input).
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { maskOf } from '../image/mask.ts';
import { MAD_TO_SIGMA, medianInPlace, robustStd, WindowMedian } from '../image/stats.ts';
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
  const { width: w, height: h } = mi;
  const out = new Uint8Array(w * h);
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i];
    const r = typeof radius === 'number' ? radius : radius(i);
    const cx = p.x - mi.x0;
    const cy = p.y - mi.y0;
    const x0 = Math.max(0, Math.floor(cx - r));
    const x1 = Math.min(w - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const y1 = Math.min(h - 1, Math.ceil(cy + r));
    const r2 = r * r;
    for (let y = y0; y <= y1; y++) {
      const dy2 = (y - cy) ** 2;
      const row = y * w;
      for (let x = x0; x <= x1; x++) if ((x - cx) ** 2 + dy2 <= r2) out[row + x] = 1;
    }
  }
  return out;
}

export function noiseFidelity(diff: MaskedImage, exclude?: Uint8Array): NoiseFidelity {
  return fidelity(diff, exclude, undefined);
}

/** z = D/√V at the flagged-0 pixels of a row, 0 elsewhere. */
function zRowInto(out: Float64Array, row: number, image: Float32Array, variance: Float32Array, flags: Uint8Array, w: number): void {
  for (let x = 0; x < w; x++) {
    const i = row + x;
    out[x] = flags[i] === 0 ? image[i]! / Math.sqrt(variance[i]!) : 0;
  }
}

/** What computeQa takes from noiseFidelity's passes besides the fidelity itself. */
export interface QaSums {
  /** Σ|D| and the count over the QA's sky pixels: not excluded, none of INVALID_DIFF_BITS, V > 0. */
  skyAbs: number;
  nSky: number;
  /**
   * neighbourCorrelation (decorrelate.ts) of z = D/√V (as float32) over the sky pixels, with
   * the same sums in the same order, so the same value, without a z plane or a callback per pixel.
   */
  neighbourCorrelation: number;
}

/**
 * noiseFidelity plus computeQa's sky sums from the same passes. `exclude` is overwritten (it
 * ends up flagging the QA's sky pixels).
 */
export function noiseFidelityForQa(diff: MaskedImage, exclude: Uint8Array): { fidelity: NoiseFidelity; qa: QaSums } {
  const qa: QaSums = { skyAbs: 0, nSky: 0, neighbourCorrelation: NaN };
  return { fidelity: fidelity(diff, exclude, qa), qa };
}

/** Source-free and valid (noiseFidelity's z pixels), from the pixel's values and its exclusion flag. */
function sourceFree(v: number, x: number, mk: number, excluded: boolean): boolean {
  return !excluded && (mk & INVALID_DIFF_BITS) === 0 && v > 0 && Number.isFinite(v) && Number.isFinite(x);
}

/** Every `step`-th pixel's z among the source-free ones, sorted: a sample that places the median's window. */
function zSample(diff: MaskedImage, exclude: Uint8Array | undefined): Float64Array {
  const { image, variance, mask } = diff;
  const n = diff.width * diff.height;
  const step = Math.max(1, Math.floor(n / 16384));
  const out = new Float64Array(Math.ceil(n / step));
  let k = 0;
  for (let i = 0; i < n; i += step) {
    const v = variance[i]!;
    const x = image[i]!;
    if (sourceFree(v, x, mask[i]!, exclude !== undefined && exclude[i] !== 0)) out[k++] = x / Math.sqrt(v);
  }
  return out.subarray(0, k).sort();
}

/** Window around the middle of a sorted sample (±4 σ of the rank of its median), or undefined if too small. */
function middleWindow(sorted: Float64Array): { lo: number; hi: number; fraction: number } | undefined {
  const ns = sorted.length;
  if (ns < 256 || !Number.isFinite(sorted[0]) || !Number.isFinite(sorted[ns - 1])) return undefined;
  const d = Math.ceil(2 * Math.sqrt(ns));
  const half = ns >> 1;
  const lo = sorted[Math.max(0, half - d)];
  const hi = sorted[Math.min(ns - 1, half + d)];
  return { lo, hi, fraction: (2 * d + 1) / ns };
}

/** The first pass's counts and sums. */
interface FirstPass {
  m: number;
  /** z below the median's window. */
  below: number;
  sumV: number;
  sumD: number;
  sumZ: number;
  nFiniteZ: number;
  nValid: number;
  nArtefact: number;
  skyAbs: number;
  nSky: number;
  sumZ32: number;
}

/**
 * noiseFidelity's passes, each a function of its own (V8 optimises small functions with one hot
 * loop sooner and keeps them optimised). The median and MAD of z are exact order statistics taken
 * without a z plane: a sample of z places a window around each, and a WindowMedian counts the
 * values below and keeps the few inside (z is recomputed for the MAD in the second pass). If
 * either falls outside its window, a third pass collects z and takes them directly.
 */
function fidelity(diff: MaskedImage, exclude: Uint8Array | undefined, qa: QaSums | undefined): NoiseFidelity {
  const n = diff.width * diff.height;
  const sample = zSample(diff, exclude);
  const medWin = middleWindow(sample);
  const zMedian = medWin ? new WindowMedian(medWin.lo, medWin.hi, 1.5 * medWin.fraction * n) : undefined;
  const f = firstPass(diff, exclude, zMedian, qa !== undefined);
  const m = f.m;
  // A non-finite z (overflow) is skipped by robustStd: leave that case to the third pass.
  const med = zMedian && f.nFiniteZ === m ? zMedian.result(m, f.below) : NaN;
  let madStream: WindowMedian | undefined;
  if (!Number.isNaN(med)) {
    const dev = sample.map((v) => Math.abs(v - med)).sort();
    const win = middleWindow(dev);
    if (win) madStream = new WindowMedian(win.lo, win.hi, 1.5 * win.fraction * n);
  }
  // Second pass: std(D) with ddof 1 as stats.std takes it (squared deviations from the mean, in
  // pixel order), |z − median| for the MAD and, for the QA, neighbourCorrelation's sums.
  const meanD = f.sumD / m;
  const second = { ss: 0, below: 0 };
  if (qa) {
    secondPassQa(diff, exclude!, meanD, med, madStream, f.sumZ32 / Math.max(1, f.nSky), qa, second);
    qa.skyAbs = f.skyAbs;
    qa.nSky = f.nSky;
  } else if (m - 1 > 0 || madStream) secondPass(diff, exclude, meanD, med, madStream, second);
  const stdD = m - 1 > 0 ? Math.sqrt(second.ss / (m - 1)) : NaN;
  const mad = madStream ? madStream.result(m, second.below) : NaN;
  let rstd: number;
  if (m === 0) rstd = NaN;
  else if (!Number.isNaN(mad)) rstd = MAD_TO_SIGMA * mad;
  else {
    // Third pass: all of z, then as robustStd takes it (it is ours to reorder: no copy).
    const zs = allZ(diff, exclude, qa !== undefined, m);
    if (f.nFiniteZ === m) {
      const med2 = medianInPlace(zs);
      for (let i = 0; i < m; i++) zs[i] = Math.abs(zs[i] - med2);
      rstd = MAD_TO_SIGMA * medianInPlace(zs);
    } else rstd = robustStd(zs);
  }
  return {
    n: m,
    robustStd: rstd,
    mean: m > 0 && f.nFiniteZ > 0 ? f.sumZ / f.nFiniteZ : NaN,
    varianceRatio: f.sumV / Math.max(1, m) / stdD ** 2,
    artefactRate: f.nValid > 0 ? f.nArtefact / f.nValid : NaN,
    nValid: f.nValid,
  };
}

/**
 * First pass: counts and sums in pixel order; z of the source-free pixels to the median's stream.
 * With `qa`, also the QA's sky pixels (not excluded, none of INVALID_DIFF_BITS, V > 0; finite
 * values not required), written into `exclude` as 0 (sky) / 1, with Σ|D| and Σz (z as float32).
 */
function firstPass(diff: MaskedImage, exclude: Uint8Array | undefined, zMedian: WindowMedian | undefined, qa: boolean): FirstPass {
  const { image, variance, mask } = diff;
  const n = diff.width * diff.height;
  let m = 0;
  let sumV = 0;
  let sumD = 0;
  let sumZ = 0;
  let nFiniteZ = 0;
  let nValid = 0;
  let nArtefact = 0;
  let skyAbs = 0;
  let nSky = 0;
  let sumZ32 = 0;
  let below = 0;
  // Without a stream, an empty window: nothing is pushed.
  const lo = zMedian ? zMedian.lo : Infinity;
  const hi = zMedian ? zMedian.hi : -Infinity;
  for (let i = 0; i < n; i++) {
    const v = variance[i]!;
    const x = image[i]!;
    const mk = mask[i]!;
    const excluded = exclude !== undefined && exclude[i] !== 0;
    if (qa) {
      const sky = !excluded && (mk & INVALID_DIFF_BITS) === 0 && v > 0;
      exclude![i] = sky ? 0 : 1;
      if (sky) {
        skyAbs += Math.abs(x);
        nSky++;
        sumZ32 += Math.fround(x / Math.sqrt(v));
      }
    }
    if ((mk & INVALID_DIFF_BITS) !== 0 || !(v > 0) || !Number.isFinite(v) || !Number.isFinite(x)) continue;
    nValid++;
    const zi = x / Math.sqrt(v);
    if (Math.abs(zi) > 5) nArtefact++;
    if (excluded) continue;
    m++;
    // The median's stream (both window compares without branching: most z fall outside).
    below += +(zi < lo);
    if ((+(zi >= lo) & +(zi <= hi)) !== 0) zMedian!.push(zi);
    if (zi - zi === 0) {
      sumZ += zi;
      nFiniteZ++;
    }
    sumD += x;
    sumV += v;
  }
  return { m, below, sumV, sumD, sumZ, nFiniteZ, nValid, nArtefact, skyAbs, nSky, sumZ32 };
}

/** Second pass, plain: Σ(D − mean)² in pixel order, and |z − median| to the MAD's stream (into `out`). */
function secondPass(diff: MaskedImage, exclude: Uint8Array | undefined, meanD: number, med: number, madStream: WindowMedian | undefined, out: { ss: number; below: number }): void {
  const { image, variance, mask } = diff;
  const n = diff.width * diff.height;
  const lo = madStream ? madStream.lo : Infinity;
  const hi = madStream ? madStream.hi : -Infinity;
  let ss = 0;
  let below = 0;
  for (let i = 0; i < n; i++) {
    const v = variance[i]!;
    const x = image[i]!;
    if (!sourceFree(v, x, mask[i]!, exclude !== undefined && exclude[i] !== 0)) continue;
    ss += (x - meanD) * (x - meanD);
    const dev = Math.abs(x / Math.sqrt(v) - med);
    below += +(dev < lo);
    if ((+(dev >= lo) & +(dev <= hi)) !== 0) madStream!.push(dev);
  }
  out.ss = ss;
  out.below = below;
}

/**
 * Second pass for the QA: as secondPass, the source-free pixels now being the sky pixels with
 * finite values, plus neighbourCorrelation's sums over the sky pixels (into qa). z of the current
 * and the next row are computed once each.
 */
function secondPassQa(diff: MaskedImage, flags: Uint8Array, meanD: number, med: number, madStream: WindowMedian | undefined, meanZ32: number, qa: QaSums, out: { ss: number; below: number }): void {
  const { width: w, height: h, image, variance } = diff;
  const lo = madStream ? madStream.lo : Infinity;
  const hi = madStream ? madStream.hi : -Infinity;
  let below = 0;
  let ss = 0;
  let sxx = 0;
  let sxy = 0;
  let nPairs = 0;
  let zRow = new Float64Array(w);
  let zNext = new Float64Array(w);
  zRowInto(zRow, 0, image, variance, flags, w);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    if (y < h - 1) zRowInto(zNext, row + w, image, variance, flags, w);
    for (let c = 0; c < w; c++) {
      const i = row + c;
      if (flags[i] !== 0) continue;
      const x = image[i]!;
      if (!Number.isFinite(variance[i]!) || !Number.isFinite(x)) continue;
      ss += (x - meanD) * (x - meanD);
      const dev = Math.abs(zRow[c] - med);
      below += +(dev < lo);
      if ((+(dev >= lo) & +(dev <= hi)) !== 0) madStream!.push(dev);
    }
    if (y < h - 1) {
      // neighbourCorrelation's sums, on the float32 z plane it would be given.
      for (let c = 0; c < w - 1; c++) {
        const i = row + c;
        if (flags[i] !== 0) continue;
        const a = Math.fround(zRow[c]) - meanZ32;
        sxx += a * a;
        nPairs++;
        if (flags[i + 1] === 0) sxy += a * (Math.fround(zRow[c + 1]) - meanZ32);
        if (flags[i + w] === 0) sxy += a * (Math.fround(zNext[c]) - meanZ32);
      }
    }
    const t = zRow;
    zRow = zNext;
    zNext = t;
  }
  qa.neighbourCorrelation = nPairs > 0 ? sxy / (2 * sxx) : NaN;
  out.ss = ss;
  out.below = below;
}

/** z of every source-free pixel, in pixel order (`qaFlags`: exclude holds firstPass's QA sky flags). */
function allZ(diff: MaskedImage, exclude: Uint8Array | undefined, qaFlags: boolean, m: number): Float64Array {
  const { image, variance, mask } = diff;
  const n = diff.width * diff.height;
  const zs = new Float64Array(m);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const v = variance[i]!;
    const x = image[i]!;
    const free = qaFlags ? exclude![i] === 0 && Number.isFinite(v) && Number.isFinite(x) : sourceFree(v, x, mask[i]!, exclude !== undefined && exclude[i] !== 0);
    if (free) zs[k++] = x / Math.sqrt(v);
  }
  return zs;
}

/**
 * noiseFidelity over METRICS.md's source-free pixels: farther than 2×FWHM from every ≥3σ
 * detection in either input image.
 */
export function sourceFreeFidelity(diff: MaskedImage, science: MaskedImage, template: MaskedImage, fwhm: number): NoiseFidelity {
  const det = [...findStars(science, { threshold: 3 }), ...findStars(template, { threshold: 3 })];
  return noiseFidelity(diff, exclusionMask(diff, det, 2 * fwhm));
}
