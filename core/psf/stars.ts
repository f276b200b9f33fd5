/**
 * Star finding and PSF size measurement.
 *
 * findStars: background mesh → residual → small Gaussian smoothing → 3×3 local maxima whose
 * smoothed S/N (Σg·r / √Σg²·var, the exact S/N of the smoothed value) exceeds the threshold →
 * spurious peaks culled (a peak must rise ≥ 3σ above the saddle towards every brighter peak
 * near it: noise bumps on a bright star's wings or a galaxy's flat core are not sources) →
 * per-peak measurement on the UNSMOOTHED pixels: annulus sky, adaptive moments, aperture flux.
 * Saturated cores are found as connected SAT regions (one peak each, however flat or hollow the
 * plateau), so bright stars are flagged rather than silently missed.
 *
 * Blending is judged on the smoothed peak heights of the surviving peaks (another peak within
 * isolationRadius higher than 0.1× this one): for one PSF the height ratio is the flux ratio, and
 * unlike an aperture flux it is not inflated by the brighter star's own light spilling into the
 * fainter one's aperture. Only peaks within isolationRadius count (a distant second peak of a
 * large footprint does not make a star unusable in a crowded field).
 *
 * measurePsf: the stellar locus (the smallest well-populated cluster of sizes among clean stars:
 * stars share one size, galaxies and blends are larger and may outnumber them) refined by
 * median ± 3 robust σ, then medians.
 */
import { maskBit } from '../image/mask.ts';
import type { MaskedImage } from '../image/masked-image.ts';
import { checkBadBits, checkPlanes, clippedStats, DEFAULT_BAD_BITS, estimateBackground } from './background.ts';
import { PsfError } from './errors.ts';
import { momentsLocal } from './moments.ts';

/** FWHM / σ of a Gaussian, 2√(2 ln 2). */
export { FWHM_PER_SIGMA } from '../image/stats.ts';
import { FWHM_PER_SIGMA, median, medianInPlace } from '../image/stats.ts';

export interface StarFlags {
  /** Any SAT pixel (or value ≥ the saturation option) inside the aperture. */
  saturated: boolean;
  /** Any badBits pixel inside the aperture (badBits includes SAT by default). */
  masked: boolean;
  /** The aperture or the sky annulus reaches outside the image. */
  edge: boolean;
  /** Another peak within isolationRadius is brighter than 0.1× this one (peak heights of the smoothed image: for one PSF that is the flux ratio, and unlike aperture fluxes it is not inflated by the other star's own light). */
  blended: boolean;
  /** Adaptive moments did not converge to a positive-definite shape. */
  badShape: boolean;
}

export interface Star {
  /** Centroid, parent coordinates (pixel centres at integers): adaptive-moment centroid, or a 3×3 centroid if they failed. */
  x: number;
  y: number;
  /** Highest pixel above the local sky in the 3×3 around the detected peak. */
  peak: number;
  /** Aperture flux above the local sky, its 1σ error (variance plane + sky-level error), flux/fluxErr. */
  flux: number;
  fluxErr: number;
  snr: number;
  /** Local sky: 3σ-clipped median of the annulus. */
  sky: number;
  /** Adaptive second moments, px² (raw: include ≈1/12 px² of pixel integration); NaN if not converged. */
  ixx: number;
  iyy: number;
  ixy: number;
  /** 2.3548·√((ixx+iyy)/2), from the raw moments; NaN if not converged. */
  fwhm: number;
  flags: StarFlags;
  /** Detected peak pixel (parent coordinates). */
  peakX?: number;
  peakY?: number;
  /** S/N of the smoothed image at the peak (Infinity for a saturated core without usable variance). */
  detSnr?: number;
  /** Aperture radius and sky annulus radii used (px). */
  apRadius?: number;
  skyRadii?: [number, number];
  /** Clipped std of the annulus pixels and how many were used. */
  skyRms?: number;
  nSky?: number;
  /** Number of pixels summed in the aperture. */
  nAp?: number;
}

export interface FindStarsOptions {
  /** Detection threshold on the S/N of the smoothed image (σ from the variance plane); default 5. */
  threshold?: number;
  /** Only report stars whose detected peak lies in this parent-coordinate box (all pixels are still used for measurement and blending). */
  box?: { x0: number; y0: number; width: number; height: number };
  /** PSF FWHM guess in px; default: the stellar-locus size of the brightest peaks. */
  fwhmGuess?: number;
  /** Default DEFAULT_BAD_BITS (BAD, SAT, NO_DATA, EDGE, CR, INTRP, SUSPECT). */
  badBits?: number;
  /** Pixel values ≥ this count as saturated, as well as SAT-masked ones. */
  saturation?: number;
  /** Default 3 × FWHM guess. */
  isolationRadius?: number;
  /** Keep the N highest-S/N stars; default 20000. */
  maxStars?: number;
  /** Background mesh cell (px), grid anchored at parent (0,0); default 128. */
  cellSize?: number;
}

export interface PsfMeasurement {
  /** Median FWHM of the stars used (px, from raw moments), and σ = fwhm / 2.3548. */
  fwhm: number;
  sigma: number;
  /** Median raw adaptive moments of the stars used (px²) and the ellipticity they imply. */
  ixx: number;
  iyy: number;
  ixy: number;
  /** e1 = (ixx−iyy)/(ixx+iyy), e2 = 2ixy/(ixx+iyy). */
  e1: number;
  e2: number;
  /**
   * FWHM along the major and minor axes of the median moments (2.3548·√eigenvalue). `fwhm` is
   * their quadratic mean; headers that quote (FWHMx + FWHMy)/2 compare with their plain mean.
   */
  fwhmMajor?: number;
  fwhmMinor?: number;
  nStars: number;
  /** Clean stars in the S/N range, before the size (stellar-locus) cut. */
  nCandidates: number;
  stars: Star[];
  /** How many stars each cut affected (flags overlap). */
  counts: Record<string, number>;
  /** The FWHM guess findStars worked with. */
  fwhmGuess: number;
}

export interface MeasurePsfOptions extends FindStarsOptions {
  /** Aperture S/N range of usable stars, default [20, 1000]. */
  minSnr?: number;
  maxSnr?: number;
  /** Use at most this many candidates (highest S/N first); unlike findStars it limits the stars averaged, not the stars found. */
  maxStars?: number;
}

const SAT = maskBit('SAT');
/** Starting FWHM when nothing better is known. */
const DEFAULT_FWHM = 3;
/** Peaks within this many σ (smoothed noise) of the saddle towards a brighter peak are not separate sources. */
const SADDLE_SIGMA = 3;
/** Aperture radius, sky annulus radii in units of the FWHM guess. */
const AP_FWHM = 2;
const SKY_IN_FWHM = 3;
const SKY_OUT_FWHM = 5;
/** Converged centroids closer than this (px) are one object measured twice. */
const DUPLICATE_RADIUS = 1;

interface Peaks {
  /** Local pixel index of each peak. */
  idx: number[];
  /** Smoothed residual at the peak (for saturated cores: the largest nearby). */
  amp: number[];
  /** Smoothed S/N. */
  snr: number[];
  sat: boolean[];
}

function checkOptions(o: FindStarsOptions): void {
  const pos = (name: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new PsfError('BAD_ARGUMENT', `${name} must be a positive number, got ${v}`);
  };
  pos('threshold', o.threshold);
  pos('fwhmGuess', o.fwhmGuess);
  pos('isolationRadius', o.isolationRadius);
  if (o.saturation !== undefined && Number.isNaN(o.saturation)) throw new PsfError('BAD_ARGUMENT', 'saturation must be a number');
  if (o.maxStars !== undefined && !(Number.isInteger(o.maxStars) && o.maxStars >= 0)) {
    throw new PsfError('BAD_ARGUMENT', `maxStars must be a non-negative integer, got ${o.maxStars}`);
  }
  if (o.box !== undefined) {
    const b = o.box;
    if (![b.x0, b.y0, b.width, b.height].every(Number.isFinite) || b.width < 0 || b.height < 0) {
      throw new PsfError('BAD_ARGUMENT', `bad box ${JSON.stringify(b)}`);
    }
  }
}

/** Find and measure stars; sorted by aperture S/N, highest first (NaN last). */
export function findStars(mi: MaskedImage, opts: FindStarsOptions = {}): Star[] {
  return findStarsDetailed(mi, opts).stars;
}

function findStarsDetailed(mi: MaskedImage, opts: FindStarsOptions): { stars: Star[]; fwhmGuess: number } {
  checkPlanes(mi);
  checkOptions(opts);
  const threshold = opts.threshold ?? 5;
  const bad = checkBadBits(opts.badBits ?? DEFAULT_BAD_BITS);
  const maxStars = opts.maxStars ?? 20000;
  const { width: w, height: h } = mi;
  if (w === 0 || h === 0) return { stars: [], fwhmGuess: opts.fwhmGuess ?? DEFAULT_FWHM };

  const bg = estimateBackground(mi, { cellSize: opts.cellSize, badBits: bad });
  const { sm, peaks, noise } = detect(mi, bg.level, bad, threshold, opts.saturation);

  const fwhmGuess = opts.fwhmGuess ?? guessFwhm(mi, bg.level, peaks, bad);
  const isoR = opts.isolationRadius ?? 3 * fwhmGuess;
  const keep = cullSaddles(peaks, sm, noise, w, isoR);

  // Peaks inside the box (parent coordinates), in a deterministic order.
  const b = opts.box;
  const inBox: number[] = [];
  for (const k of keep) {
    const i = peaks.idx[k];
    const X = (i % w) + mi.x0;
    const Y = Math.floor(i / w) + mi.y0;
    if (b && !(X >= b.x0 && X < b.x0 + b.width && Y >= b.y0 && Y < b.y0 + b.height)) continue;
    inBox.push(k);
  }
  const blended = blendFlags(peaks, keep, inBox, w, isoR);

  const m = new Measurer(mi, bad, fwhmGuess, opts.saturation);
  const measured = inBox.map((k, j) => {
    const s = m.measure(peaks.idx[k], bg.level[peaks.idx[k]], peaks.snr[k]);
    s.flags.blended = blended[j];
    return s;
  });
  // Two peaks of one object (a galaxy's knots, a star's wing bump that passed the saddle test)
  // can converge to one centroid: keep only the brighter peak's entry, so no object is listed
  // twice. Its blended flag already records the second peak.
  const byAmp = inBox.map((_, j) => j).sort((a, b) => peaks.amp[inBox[b]] - peaks.amp[inBox[a]] || inBox[a] - inBox[b]);
  const taken = new Map<number, number[]>();
  const cellKey = (x: number, y: number) => Math.floor(y) * 1e7 + Math.floor(x);
  const stars: Star[] = [];
  const order: number[] = [];
  for (const j of byAmp) {
    const s = measured[j];
    if (!s.flags.badShape) {
      let dup = false;
      for (let dy = -1; dy <= 1 && !dup; dy++) {
        for (let dx = -1; dx <= 1 && !dup; dx++) {
          for (const o of taken.get(cellKey(s.x + dx, s.y + dy)) ?? []) {
            if (Math.hypot(measured[o].x - s.x, measured[o].y - s.y) < DUPLICATE_RADIUS) dup = true;
          }
        }
      }
      if (dup) continue;
      const key = cellKey(s.x, s.y);
      const list = taken.get(key);
      if (list) list.push(j);
      else taken.set(key, [j]);
    }
    stars.push(s);
    order.push(peaks.idx[inBox[j]]);
  }
  const perm = stars.map((_, i) => i);
  perm.sort((a, c) => {
    const sa = stars[a].snr;
    const sc = stars[c].snr;
    const na = Number.isNaN(sa);
    const nc = Number.isNaN(sc);
    if (na !== nc) return na ? 1 : -1;
    if (!na && sa !== sc) return sc - sa;
    return order[a] - order[c];
  });
  return { stars: perm.slice(0, maxStars).map((i) => stars[i]), fwhmGuess };
}

// ---------------------------------------------------------------------------------------------
// Detection

/**
 * Detection smoothing: a Gaussian of σ = 1 px, radius 3. Small enough not to merge neighbours,
 * wide enough to suppress single-pixel noise maxima; fixed (not matched to the PSF) so detection
 * is the same whatever FWHM guess is given, and the fixed radius lets the loops be unrolled.
 */
const SMOOTH_SIGMA = 1;
const K0 = 1;
const K1 = Math.exp(-0.5 / (SMOOTH_SIGMA * SMOOTH_SIGMA));
const K2 = Math.exp(-2 / (SMOOTH_SIGMA * SMOOTH_SIGMA));
const K3 = Math.exp(-4.5 / (SMOOTH_SIGMA * SMOOTH_SIGMA));
const KERNEL = [K0, K1, K2, K3];
const KR = 3;

/**
 * Separable convolution with KERNEL, zero outside the image; `tmp` and `out` are w·h buffers
 * (`out` may be `src`: the row pass reads src into tmp, the column pass writes out from tmp).
 */
function convolve(src: Float32Array, w: number, h: number, tmp: Float32Array, out: Float32Array): void {
  for (let y = 0; y < h; y++) convolveRow(src, tmp, y * w, w);
  for (let y = 0; y < h; y++) {
    if (y >= KR && y < h - KR) convolveColInterior(tmp, out, y * w, w);
    else convolveColEdge(tmp, out, y, w, h);
  }
}

function convolveRow(src: Float32Array, dst: Float32Array, row: number, w: number): void {
  // Interior: unrolled and branch-free (about 3× faster than a loop over the taps in V8).
  for (let i = row + KR, e = row + w - KR; i < e; i++) {
    dst[i] = K0 * src[i] + K1 * (src[i - 1] + src[i + 1]) + K2 * (src[i - 2] + src[i + 2]) + K3 * (src[i - 3] + src[i + 3]);
  }
  for (let x = 0; x < w; x++) {
    if (x === KR && w - KR > KR) x = w - KR;
    let acc = 0;
    for (let k = -KR; k <= KR; k++) if (x + k >= 0 && x + k < w) acc += KERNEL[k < 0 ? -k : k] * src[row + x + k];
    dst[row + x] = acc;
  }
}

function convolveColInterior(src: Float32Array, dst: Float32Array, o: number, w: number): void {
  const w2 = 2 * w;
  const w3 = 3 * w;
  for (let i = o, e = o + w; i < e; i++) {
    dst[i] = K0 * src[i] + K1 * (src[i - w] + src[i + w]) + K2 * (src[i - w2] + src[i + w2]) + K3 * (src[i - w3] + src[i + w3]);
  }
}

function convolveColEdge(src: Float32Array, dst: Float32Array, y: number, w: number, h: number): void {
  const o = y * w;
  for (let x = 0; x < w; x++) {
    let acc = 0;
    for (let k = -KR; k <= KR; k++) if (y + k >= 0 && y + k < h) acc += KERNEL[k < 0 ? -k : k] * src[o + k * w + x];
    dst[o + x] = acc;
  }
}

/** Σ over the 2-D kernel of its squared weights (separable: the square of the 1-D sum). */
const KERNEL_SQ_SUM = (K0 * K0 + 2 * (K1 * K1 + K2 * K2 + K3 * K3)) ** 2;

/** Usable for detection: finite value and variance > 0, none of `bits` set. */
function usable(image: Float32Array, variance: Float32Array, mask: Int32Array, i: number, bits: number): boolean {
  const v = image[i];
  const va = variance[i];
  return v - v === 0 && va > 0 && va - va === 0 && (mask[i] & bits) === 0;
}

/**
 * Residual above the background at usable pixels, 0 elsewhere (so they add nothing when
 * smoothed), and the smallest usable variance (a global bound for the peak scan).
 */
function residual(mi: MaskedImage, level: Float32Array, bits: number): { r: Float32Array; minVar: number } {
  const { image, variance, mask } = mi;
  const r = new Float32Array(image.length);
  let minVar = Infinity;
  for (let i = 0; i < r.length; i++) {
    if (!usable(image, variance, mask, i, bits)) continue;
    r[i] = image[i] - level[i];
    if (variance[i] < minVar) minVar = variance[i];
  }
  return { r, minVar };
}

/** Noise of the smoothed residual at pixel i: √Σ g²·var over the usable pixels under the kernel. */
function smoothedNoise(mi: MaskedImage, i: number, bits: number): number {
  const { width: w, height: h, image, variance, mask } = mi;
  const x = i % w;
  const y = (i - x) / w;
  let s = 0;
  for (let ky = Math.max(-KR, -y); ky <= Math.min(KR, h - 1 - y); ky++) {
    const gy = KERNEL[ky < 0 ? -ky : ky];
    const row = (y + ky) * w;
    for (let kx = Math.max(-KR, -x); kx <= Math.min(KR, w - 1 - x); kx++) {
      const j = row + x + kx;
      if (!usable(image, variance, mask, j, bits)) continue;
      const gx = KERNEL[kx < 0 ? -kx : kx];
      s += gy * gy * gx * gx * variance[j];
    }
  }
  return Math.sqrt(s);
}

interface SatCores {
  /** Representative pixel and amplitude of each saturated core, in index order. */
  idx: number[];
  amp: number[];
  /** 1 on and around each core: ordinary maxima there are the core's rim, not sources. */
  near: Uint8Array | undefined;
}

/**
 * Saturated cores: 8-connected regions of SAT-masked (or ≥ saturation) pixels, one peak each at
 * the region's pixel nearest its centroid — however flat, hollow or bled the plateau is.
 */
function saturatedCores(mi: MaskedImage, sm: Float32Array, saturation: number | undefined): SatCores {
  const { width: w, height: h, image, mask } = mi;
  const n = w * h;
  const sat = saturation ?? Infinity;
  const out: SatCores = { idx: [], amp: [], near: undefined };
  let label: Uint8Array | undefined;
  const stack: number[] = [];
  const pix: number[] = [];
  for (let i = 0; i < n; i++) {
    if (((mask[i] & SAT) === 0 && !(image[i] >= sat)) || (label !== undefined && label[i])) continue;
    label ??= new Uint8Array(n);
    const near = (out.near ??= new Uint8Array(n));
    label[i] = 1;
    stack.push(i);
    pix.length = 0;
    let sx = 0;
    let sy = 0;
    let xa = w;
    let xb = -1;
    let ya = h;
    let yb = -1;
    while (stack.length) {
      const j = stack.pop()!;
      pix.push(j);
      const x = j % w;
      const y = (j - x) / w;
      sx += x;
      sy += y;
      if (x < xa) xa = x;
      if (x > xb) xb = x;
      if (y < ya) ya = y;
      if (y > yb) yb = y;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++) {
          const k = yy * w + xx;
          if (!label[k] && ((mask[k] & SAT) !== 0 || image[k] >= sat)) {
            label[k] = 1;
            stack.push(k);
          }
        }
      }
    }
    const cx = sx / pix.length;
    const cy = sy / pix.length;
    let best = pix[0];
    let bestD = Infinity;
    for (const j of pix) {
      const x = j % w;
      const d = (x - cx) ** 2 + ((j - x) / w - cy) ** 2;
      if (d < bestD || (d === bestD && j < best)) {
        bestD = d;
        best = j;
      }
    }
    // Mark the core and a margin (plateau rim, bleed trail ends) and take the largest smoothed
    // value there as its amplitude.
    const grow = KR;
    let amp = -Infinity;
    for (let y = Math.max(0, ya - grow); y <= Math.min(h - 1, yb + grow); y++) {
      for (let x = Math.max(0, xa - grow); x <= Math.min(w - 1, xb + grow); x++) {
        near[y * w + x] = 1;
        if (sm[y * w + x] > amp) amp = sm[y * w + x];
      }
    }
    out.idx.push(best);
    out.amp.push(amp > 0 ? amp : Infinity);
  }
  // Regions are found in scan order of their first pixel; sort by representative pixel.
  const order = out.idx.map((_, k) => k).sort((a, b) => out.idx[a] - out.idx[b]);
  return { idx: order.map((k) => out.idx[k]), amp: order.map((k) => out.amp[k]), near: out.near };
}

/**
 * 3×3 local maxima of the smoothed residual with smoothed S/N ≥ threshold, on usable pixels and
 * away from saturated cores. Equal values go to the lower pixel index, so a flat top yields one
 * peak. Appends to `peaks`/`noise` in index order.
 */
function scanMaxima(
  mi: MaskedImage,
  sm: Float32Array,
  bits: number,
  threshold: number,
  minVar: number,
  near: Uint8Array | undefined,
  peaks: Peaks,
  noise: number[],
): void {
  const { width: w, height: h, image, variance, mask } = mi;
  const cheap = 0.5 * threshold * Math.sqrt(KERNEL_SQ_SUM);
  // The per-pixel bound below with the smallest variance in the image: most sky pixels fail it
  // before any neighbour is compared.
  const floor = Math.max(0, cheap * Math.sqrt(minVar));
  for (let y = 0; y < h; y++) {
    const row = y * w;
    const interiorRow = y > 0 && y < h - 1;
    for (let x = 0; x < w; x++) {
      const i = row + x;
      const v = sm[i];
      if (!(v > floor)) continue;
      let isMax: boolean;
      if (interiorRow && x > 0 && x < w - 1) {
        isMax =
          v > sm[i - w - 1] && v > sm[i - w] && v > sm[i - w + 1] && v > sm[i - 1] &&
          v >= sm[i + 1] && v >= sm[i + w - 1] && v >= sm[i + w] && v >= sm[i + w + 1];
      } else {
        isMax = true;
        for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1) && isMax; yy++) {
          for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++) {
            const j = yy * w + xx;
            if (j !== i && (sm[j] > v || (sm[j] === v && j < i))) {
              isMax = false;
              break;
            }
          }
        }
      }
      if (!isMax || (near !== undefined && near[i]) || !usable(image, variance, mask, i, bits)) continue;
      // Cheap bound first, from this pixel's own variance: it would take a variance over 4× the
      // kernel-weighted mean around the pixel to reject a real detection here, and it spares the
      // exact sum on the many noise maxima.
      if (v < cheap * Math.sqrt(variance[i])) continue;
      const nz = smoothedNoise(mi, i, bits);
      if (!(nz > 0) || v < threshold * nz) continue;
      peaks.idx.push(i);
      peaks.amp.push(v);
      peaks.snr.push(v / nz);
      peaks.sat.push(false);
      noise.push(nz);
    }
  }
}

function detect(
  mi: MaskedImage,
  level: Float32Array,
  bad: number,
  threshold: number,
  saturation: number | undefined,
): { sm: Float32Array; peaks: Peaks; noise: number[] } {
  const { width: w, height: h } = mi;
  // SAT must not stop detection (saturated stars are flagged, not missed); other bad pixels do.
  const bits = bad & ~SAT;
  const { r, minVar } = residual(mi, level, bits);
  // Smoothed in place (rows into a scratch buffer, columns back into r).
  const sm = r;
  convolve(r, w, h, new Float32Array(w * h), sm);
  const cores = saturatedCores(mi, sm, saturation);
  const found: Peaks = { idx: [], amp: [], snr: [], sat: [] };
  const foundNoise: number[] = [];
  scanMaxima(mi, sm, bits, threshold, minVar, cores.near, found, foundNoise);

  // Merge the saturated cores into index order with the ordinary maxima.
  const peaks: Peaks = { idx: [], amp: [], snr: [], sat: [] };
  const noise: number[] = [];
  for (let a = 0, b = 0; a < found.idx.length || b < cores.idx.length; ) {
    if (b >= cores.idx.length || (a < found.idx.length && found.idx[a] < cores.idx[b])) {
      peaks.idx.push(found.idx[a]);
      peaks.amp.push(found.amp[a]);
      peaks.snr.push(found.snr[a]);
      peaks.sat.push(false);
      noise.push(foundNoise[a]);
      a++;
    } else {
      const i = cores.idx[b];
      const amp = cores.amp[b];
      const nz = smoothedNoise(mi, i, bits);
      peaks.idx.push(i);
      peaks.amp.push(amp);
      peaks.snr.push(nz > 0 && Number.isFinite(amp) ? amp / nz : Infinity);
      peaks.sat.push(true);
      noise.push(nz);
      b++;
    }
  }
  return { sm, peaks, noise };
}

/** Peak order: brightest (smoothed amplitude) first, ties by pixel index. */
function byAmplitude(peaks: Peaks): number[] {
  const o = peaks.idx.map((_, k) => k);
  o.sort((a, b) => (peaks.amp[b] !== peaks.amp[a] ? (peaks.amp[b] > peaks.amp[a] ? 1 : -1) : peaks.idx[a] - peaks.idx[b]));
  return o;
}

/** Spatial hash of peak numbers by cell of side `cell` px. */
class PeakGrid {
  private readonly cells = new Map<number, number[]>();
  constructor(
    private readonly cell: number,
    private readonly w: number,
    private readonly pos: number[],
  ) {}
  private key(cx: number, cy: number): number {
    return cy * 1e6 + cx;
  }
  add(k: number): void {
    const i = this.pos[k];
    const x = i % this.w;
    const key = this.key(Math.floor(x / this.cell), Math.floor((i - x) / this.w / this.cell));
    let list = this.cells.get(key);
    if (!list) this.cells.set(key, (list = []));
    list.push(k);
  }
  /** Peaks within `radius` (≤ cell) of peak pixel i, excluding `self`. */
  near(i: number, radius: number, self: number, out: number[]): number[] {
    out.length = 0;
    const x = i % this.w;
    const y = (i - x) / this.w;
    const cx = Math.floor(x / this.cell);
    const cy = Math.floor(y / this.cell);
    const r2 = radius * radius;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const list = this.cells.get(this.key(cx + dx, cy + dy));
        if (!list) continue;
        for (const k of list) {
          if (k === self) continue;
          const j = this.pos[k];
          const xx = j % this.w;
          const yy = (j - xx) / this.w;
          if ((xx - x) ** 2 + (yy - y) ** 2 <= r2) out.push(k);
        }
      }
    }
    return out;
  }
}

/**
 * Drop peaks that do not rise SADDLE_SIGMA smoothed-noise σ above the lowest point on the
 * straight path to a brighter surviving peak within `radius`. Saturated cores always survive.
 * Returns the surviving peak numbers in index order.
 */
function cullSaddles(peaks: Peaks, sm: Float32Array, noise: number[], w: number, radius: number): number[] {
  const order = byAmplitude(peaks);
  const grid = new PeakGrid(Math.max(1, Math.ceil(radius)), w, peaks.idx);
  const alive = new Uint8Array(peaks.idx.length);
  const near: number[] = [];
  for (const p of order) {
    const i = peaks.idx[p];
    let ok = true;
    if (!peaks.sat[p]) {
      const px = i % w;
      const py = (i - px) / w;
      const a = peaks.amp[p];
      for (const q of grid.near(i, radius, p, near)) {
        const j = peaks.idx[q];
        const qx = j % w;
        const qy = (j - qx) / w;
        const steps = Math.ceil(2 * Math.hypot(qx - px, qy - py));
        let lo = a;
        for (let s = 1; s < steps && lo > a - SADDLE_SIGMA * noise[p]; s++) {
          const t = s / steps;
          const v = sm[Math.round(py + t * (qy - py)) * w + Math.round(px + t * (qx - px))];
          if (v < lo) lo = v;
        }
        if (a - lo < SADDLE_SIGMA * noise[p]) {
          ok = false;
          break;
        }
      }
    }
    if (ok) {
      alive[p] = 1;
      grid.add(p);
    }
  }
  const out: number[] = [];
  for (let k = 0; k < alive.length; k++) if (alive[k]) out.push(k);
  return out;
}

/** blended[j] for each peak inBox[j]: a surviving peak within radius brighter than 0.1× it. */
function blendFlags(peaks: Peaks, keep: number[], inBox: number[], w: number, radius: number): boolean[] {
  const grid = new PeakGrid(Math.max(1, Math.ceil(radius)), w, peaks.idx);
  for (const k of keep) grid.add(k);
  const near: number[] = [];
  return inBox.map((p) => {
    const a = peaks.amp[p];
    for (const q of grid.near(peaks.idx[p], radius, p, near)) if (peaks.amp[q] > 0.1 * a) return true;
    return false;
  });
}

/**
 * FWHM guess from the brightest unsaturated peaks away from the edges: their adaptive moments
 * (sky from the background mesh), then the stellar-locus size, so a field of galaxies with a few
 * stars still gives the stars' size.
 */
function guessFwhm(mi: MaskedImage, level: Float32Array, peaks: Peaks, bad: number): number {
  const { width: w, height: h } = mi;
  const order = byAmplitude(peaks);
  const sizes: number[] = [];
  let tried = 0;
  for (const k of order) {
    if (tried >= 100) break;
    if (peaks.sat[k]) continue;
    const i = peaks.idx[k];
    const x = i % w;
    const y = (i - x) / w;
    if (x < 8 || y < 8 || x >= w - 8 || y >= h - 8) continue;
    tried++;
    const m = momentsLocal(mi, x, y, level[i], 1.5, 50, bad);
    if (m.ok) sizes.push(FWHM_PER_SIGMA * Math.sqrt((m.ixx + m.iyy) / 2));
  }
  if (sizes.length === 0) return DEFAULT_FWHM;
  return stellarLocus(sizes).centre;
}

// ---------------------------------------------------------------------------------------------
// Measurement

class Measurer {
  private readonly ap: number;
  private readonly rIn: number;
  private readonly rOut: number;
  private readonly sigma: number;
  private readonly buf: Float64Array;
  private readonly scratch: Float64Array;

  constructor(
    private readonly mi: MaskedImage,
    private readonly bad: number,
    fwhm: number,
    private readonly saturation: number | undefined,
  ) {
    this.sigma = fwhm / FWHM_PER_SIGMA;
    this.ap = AP_FWHM * fwhm;
    this.rIn = SKY_IN_FWHM * fwhm;
    this.rOut = SKY_OUT_FWHM * fwhm;
    const side = 2 * Math.ceil(this.rOut) + 3;
    this.buf = new Float64Array(side * side);
    this.scratch = new Float64Array(side * side);
  }

  measure(i: number, bgLevel: number, detSnr: number): Star {
    const { mi, bad, ap, rIn, rOut } = this;
    const { width: w, height: h, image, mask, variance, x0, y0 } = mi;
    const px = i % w;
    const py = (i - px) / w;

    // Sky: clipped median of the annulus about the detected peak.
    let n = 0;
    const ri = Math.ceil(rOut);
    for (let y = Math.max(0, py - ri); y <= Math.min(h - 1, py + ri); y++) {
      const dy2 = (y - py) ** 2;
      for (let x = Math.max(0, px - ri); x <= Math.min(w - 1, px + ri); x++) {
        const d2 = dy2 + (x - px) ** 2;
        if (d2 < rIn * rIn || d2 > rOut * rOut) continue;
        const j = y * w + x;
        const v = image[j];
        if (v - v === 0 && (mask[j] & bad) === 0) this.buf[n++] = v;
      }
    }
    let sky = bgLevel;
    let skyRms = NaN;
    let nSky = 0;
    if (n >= 10) {
      const c = clippedStats(this.buf, n, this.scratch);
      sky = c.median;
      skyRms = c.std;
      nSky = c.n;
    }

    const m = momentsLocal(mi, px, py, sky, this.sigma, 50, bad);
    let xc: number;
    let yc: number;
    if (m.ok) {
      xc = m.x;
      yc = m.y;
    } else {
      // 3×3 centroid of the positive residual: good enough to place the aperture.
      let s = 0;
      let sx = 0;
      let sy = 0;
      for (let y = Math.max(0, py - 1); y <= Math.min(h - 1, py + 1); y++) {
        for (let x = Math.max(0, px - 1); x <= Math.min(w - 1, px + 1); x++) {
          const v = image[y * w + x] - sky;
          if (v > 0) {
            s += v;
            sx += v * (x - px);
            sy += v * (y - py);
          }
        }
      }
      xc = s > 0 ? px + sx / s : px;
      yc = s > 0 ? py + sy / s : py;
    }

    // Aperture about the centroid.
    let flux = 0;
    let varSum = 0;
    let nAp = 0;
    let saturated = false;
    let masked = false;
    const ra = Math.ceil(ap) + 1;
    for (let y = Math.max(0, Math.floor(yc) - ra); y <= Math.min(h - 1, Math.ceil(yc) + ra); y++) {
      const dy2 = (y - yc) ** 2;
      for (let x = Math.max(0, Math.floor(xc) - ra); x <= Math.min(w - 1, Math.ceil(xc) + ra); x++) {
        if (dy2 + (x - xc) ** 2 > ap * ap) continue;
        const j = y * w + x;
        const v = image[j];
        const mk = mask[j];
        if ((mk & SAT) !== 0 || (this.saturation !== undefined && v >= this.saturation)) saturated = true;
        if ((mk & bad) !== 0) masked = true;
        if (v - v !== 0) continue;
        flux += v - sky;
        nAp++;
        const va = variance[j];
        if (va > 0 && va - va === 0) varSum += va;
      }
    }
    // The sky level's own error enters every aperture pixel coherently; the variance of a median
    // is π/2 times that of a mean.
    const skyVar = nSky > 0 ? ((Math.PI / 2) * skyRms * skyRms) / nSky : 0;
    const fluxErr = Math.sqrt(varSum + nAp * nAp * skyVar);
    let peak = -Infinity;
    for (let y = Math.max(0, py - 1); y <= Math.min(h - 1, py + 1); y++) {
      for (let x = Math.max(0, px - 1); x <= Math.min(w - 1, px + 1); x++) {
        const v = image[y * w + x];
        if (v - sky > peak) peak = v - sky;
      }
    }
    const edge = xc - rOut < 0 || yc - rOut < 0 || xc + rOut > w - 1 || yc + rOut > h - 1;
    const fwhm = m.ok ? FWHM_PER_SIGMA * Math.sqrt((m.ixx + m.iyy) / 2) : NaN;
    return {
      x: xc + x0,
      y: yc + y0,
      peak,
      flux,
      fluxErr,
      snr: fluxErr > 0 ? flux / fluxErr : NaN,
      sky,
      ixx: m.ixx,
      iyy: m.iyy,
      ixy: m.ixy,
      fwhm,
      flags: { saturated, masked, edge, blended: false, badShape: !(fwhm > 0) },
      peakX: px + x0,
      peakY: py + y0,
      detSnr,
      apRadius: ap,
      skyRadii: [rIn, rOut],
      skyRms,
      nSky,
      nAp,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// PSF from the stars

/** Half-width (in ln size) of the window that finds the stellar locus. */
const LOCUS_WINDOW = 0.15;
/** A cluster of sizes counts as the locus candidate if it holds this fraction of the largest cluster (and ≥ 3). */
const LOCUS_MIN_FRACTION = 0.1;

/**
 * The stellar locus among sizes. Stars share one size; galaxies and blends are larger and spread
 * out, and in a deep high-latitude field they can outnumber the stars, so the locus is not simply
 * the densest size: it is the SMALLEST cluster (±15 % window of ln size, at a local maximum of
 * the count) holding at least max(3, 10 % of the largest cluster). That cluster is then refined
 * to median ± 3 robust σ of its members (σ floored at 1 %, the window capped at ±25 % so a galaxy
 * tail cannot widen it without bound). Returns the centre (a size) and the accepted range.
 */
export function stellarLocus(sizes: number[]): { centre: number; lo: number; hi: number } {
  const ls = sizes.filter((s) => s > 0 && Number.isFinite(s)).map(Math.log).sort((a, b) => a - b);
  const n = ls.length;
  if (n === 0) return { centre: NaN, lo: NaN, hi: NaN };
  // Count (and a triangular-kernel density, to place the centre) in the window about each size.
  const count = new Int32Array(n);
  const dens = new Float64Array(n);
  for (let i = 0, a = 0, b = 0; i < n; i++) {
    while (ls[a] < ls[i] - LOCUS_WINDOW) a++;
    while (b < n && ls[b] <= ls[i] + LOCUS_WINDOW) b++;
    count[i] = b - a;
    let d = 0;
    for (let j = a; j < b; j++) d += 1 - Math.abs(ls[j] - ls[i]) / LOCUS_WINDOW;
    dens[i] = d;
  }
  let cMax = 0;
  for (const c of count) if (c > cMax) cMax = c;
  const need = Math.min(cMax, Math.max(3, LOCUS_MIN_FRACTION * cMax));
  // First size (smallest) whose window is populated enough, then climb to the density peak of
  // that cluster (while the density keeps rising within the window).
  let i0 = 0;
  while (i0 < n - 1 && count[i0] < need) i0++;
  let best = i0;
  for (let j = i0 + 1; j < n && ls[j] <= ls[i0] + 2 * LOCUS_WINDOW; j++) {
    if (dens[j] > dens[best] + 1e-9) best = j;
  }
  let centre = ls[best];
  let half = LOCUS_WINDOW;
  const sel = new Float64Array(n);
  const dev = new Float64Array(n);
  for (let iter = 0; iter < 20; iter++) {
    let m = 0;
    for (const v of ls) if (Math.abs(v - centre) <= half) sel[m++] = v;
    if (m === 0) break;
    const med = medianInPlace(sel.subarray(0, m));
    for (let j = 0; j < m; j++) dev[j] = Math.abs(sel[j] - med);
    const sigma = 1.4826 * medianInPlace(dev.subarray(0, m));
    const nextHalf = Math.min(0.25, Math.max(3 * sigma, 0.03));
    const done = med === centre && nextHalf === half;
    centre = med;
    half = nextHalf;
    if (done) break;
  }
  return { centre: Math.exp(centre), lo: Math.exp(centre - half), hi: Math.exp(centre + half) };
}

function medianOf(values: number[]): number {
  return median(Float64Array.from(values));
}

/**
 * The PSF size and shape from clean, isolated, unsaturated stars with aperture S/N in
 * [minSnr, maxSnr] on the stellar locus (resolved objects — galaxies, unflagged blends — lie
 * above it and are rejected). Throws PsfError NO_STARS, with the counts, when fewer than 3 remain.
 */
export function measurePsf(mi: MaskedImage, opts: MeasurePsfOptions = {}): PsfMeasurement {
  const { minSnr, maxSnr, maxStars, ...findOpts } = opts;
  checkSelection(minSnr, maxSnr, maxStars);
  const { stars, fwhmGuess } = findStarsDetailed(mi, findOpts);
  return psfFromStars(stars, { minSnr, maxSnr, maxStars }, fwhmGuess);
}

function checkSelection(minSnr = 20, maxSnr = 1000, maxStars?: number): void {
  if (!(minSnr >= 0) || !(maxSnr > minSnr)) throw new PsfError('BAD_ARGUMENT', `need 0 ≤ minSnr < maxSnr, got [${minSnr}, ${maxSnr}]`);
  if (maxStars !== undefined && !(Number.isInteger(maxStars) && maxStars >= 0)) {
    throw new PsfError('BAD_ARGUMENT', `maxStars must be a non-negative integer, got ${maxStars}`);
  }
}

/**
 * measurePsf's selection and medians over stars already found (findStars' output), so a caller
 * that needs the star list too detects once.
 */
export function psfFromStars(
  stars: readonly Star[],
  opts: { minSnr?: number; maxSnr?: number; maxStars?: number } = {},
  fwhmGuess = NaN,
): PsfMeasurement {
  const { minSnr = 20, maxSnr = 1000, maxStars } = opts;
  checkSelection(minSnr, maxSnr, maxStars);
  const counts: Record<string, number> = {
    peaks: stars.length,
    saturated: 0,
    masked: 0,
    edge: 0,
    blended: 0,
    badShape: 0,
    snrLow: 0,
    snrHigh: 0,
    candidates: 0,
    sizeOutliers: 0,
    used: 0,
  };
  let candidates: Star[] = [];
  for (const s of stars) {
    const f = s.flags;
    if (f.saturated) counts.saturated++;
    if (f.masked) counts.masked++;
    if (f.edge) counts.edge++;
    if (f.blended) counts.blended++;
    if (f.badShape) counts.badShape++;
    const low = !(s.snr >= minSnr);
    const high = s.snr > maxSnr;
    if (low) counts.snrLow++;
    if (high) counts.snrHigh++;
    if (f.saturated || f.masked || f.edge || f.blended || f.badShape || low || high) continue;
    candidates.push(s);
  }
  if (maxStars !== undefined) candidates = candidates.slice(0, maxStars); // already by S/N
  counts.candidates = candidates.length;
  const locus = stellarLocus(candidates.map((s) => s.fwhm));
  const used = candidates.filter((s) => s.fwhm >= locus.lo && s.fwhm <= locus.hi);
  counts.sizeOutliers = candidates.length - used.length;
  counts.used = used.length;
  if (used.length < 3) {
    const why = Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ');
    throw new PsfError('NO_STARS', `fewer than 3 usable stars (${why})`, counts);
  }
  const fwhm = medianOf(used.map((s) => s.fwhm));
  const ixx = medianOf(used.map((s) => s.ixx));
  const iyy = medianOf(used.map((s) => s.iyy));
  const ixy = medianOf(used.map((s) => s.ixy));
  const half = (ixx + iyy) / 2;
  const d = Math.hypot((ixx - iyy) / 2, ixy);
  return {
    fwhm,
    sigma: fwhm / FWHM_PER_SIGMA,
    ixx,
    iyy,
    ixy,
    e1: (ixx - iyy) / (ixx + iyy),
    e2: (2 * ixy) / (ixx + iyy),
    fwhmMajor: FWHM_PER_SIGMA * Math.sqrt(half + d),
    fwhmMinor: FWHM_PER_SIGMA * Math.sqrt(Math.max(0, half - d)),
    nStars: used.length,
    nCandidates: candidates.length,
    stars: used,
    counts,
    fwhmGuess,
  };
}
