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
import { backgroundMesh, type BackgroundMesh, checkBadBits, checkPlanes, clippedStatsNear, DEFAULT_BAD_BITS, levelAt, levelRow } from './background.ts';
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

  // The background as its mesh: levels are taken a row at a time (detection) or at a peak.
  const mesh = backgroundMesh(mi, { cellSize: opts.cellSize, badBits: bad });
  const rowVals = new Float64Array(mesh.ncx);
  const levelOf = (i: number) => levelAt(mesh, i % w, Math.floor(i / w), rowVals);
  const { sm, peaks, noise } = detect(mi, mesh, bad, threshold, opts.saturation);

  const ampOrder = byAmplitude(peaks);
  const fwhmGuess = opts.fwhmGuess ?? guessFwhm(mi, levelOf, peaks, ampOrder, bad);
  const isoR = opts.isolationRadius ?? 3 * fwhmGuess;
  const keep = cullSaddles(peaks, ampOrder, sm, noise, w, h, isoR);

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
  const blended = blendFlags(peaks, keep, inBox, w, h, isoR);

  const m = new Measurer(mi, bad, fwhmGuess, opts.saturation, mesh.rms);
  // Measured tile by tile (64 px squares, in raster order): neighbouring stars share most of the
  // pixels their annuli and apertures read, so these stay in cache. The order changes nothing else.
  const tiles = Math.ceil(w / 64);
  const tileOf = (j: number) => {
    const i = peaks.idx[inBox[j]];
    const x = i % w;
    return Math.floor((i - x) / w / 64) * tiles + Math.floor(x / 64);
  };
  const tileKey = new Float64Array(inBox.length);
  for (let j = 0; j < inBox.length; j++) tileKey[j] = tileOf(j);
  const seq = inBox.map((_, j) => j).sort((a, c) => tileKey[a] - tileKey[c] || a - c);
  const measured: Star[] = new Array(inBox.length);
  for (const j of seq) {
    const i = peaks.idx[inBox[j]];
    const s = m.measure(i, levelOf(i), peaks.snr[inBox[j]]);
    s.flags.blended = blended[j];
    measured[j] = s;
  }
  // Two peaks of one object (a galaxy's knots, a star's wing bump that passed the saddle test)
  // can converge to one centroid: keep only the brighter peak's entry, so no object is listed
  // twice. Its blended flag already records the second peak.
  const ampJ = new Float64Array(inBox.length);
  for (let j = 0; j < inBox.length; j++) ampJ[j] = peaks.amp[inBox[j]];
  // inBox is in index order, so comparing j compares the pixel indices.
  const byAmp = inBox.map((_, j) => j).sort((a, b) => ampJ[b] - ampJ[a] || a - b);
  const taken = new PointGrid(measured, w, h);
  const stars: Star[] = [];
  const order: number[] = [];
  for (const j of byAmp) {
    const s = measured[j];
    if (!s.flags.badShape) {
      if (taken.within(s.x, s.y, DUPLICATE_RADIUS)) continue;
      taken.add(j);
    }
    stars.push(s);
    order.push(peaks.idx[inBox[j]]);
  }
  const snr = new Float64Array(stars.length);
  for (let i = 0; i < stars.length; i++) snr[i] = stars[i].snr;
  const perm = stars.map((_, i) => i);
  perm.sort((a, c) => {
    const sa = snr[a];
    const sc = snr[c];
    const na = sa !== sa;
    const nc = sc !== sc;
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

/** Rows of row-smoothed residual kept: the column pass makes two output rows from eight. */
const RING = 8;

/** Row pass of the smoothing: src[so..so+w) into dst[d..d+w), zero outside the row. */
function convolveRow(src: Float32Array, so: number, dst: Float32Array, d: number, w: number): void {
  // Interior: unrolled and branch-free, the seven taps kept in locals as the window slides (each
  // value is loaded once; 2× faster in V8 than reloading them).
  if (w > 2 * KR) {
    let a0 = src[so];
    let a1 = src[so + 1];
    let a2 = src[so + 2];
    let a3 = src[so + 3];
    let a4 = src[so + 4];
    let a5 = src[so + 5];
    for (let x = KR, e = w - KR; x < e; x++) {
      const a6 = src[so + x + 3];
      dst[d + x] = K0 * a3 + K1 * (a2 + a4) + K2 * (a1 + a5) + K3 * (a0 + a6);
      a0 = a1;
      a1 = a2;
      a2 = a3;
      a3 = a4;
      a4 = a5;
      a5 = a6;
    }
  }
  for (let x = 0; x < w; x++) {
    if (x === KR && w - KR > KR) x = w - KR;
    let acc = 0;
    for (let k = -KR; k <= KR; k++) if (x + k >= 0 && x + k < w) acc += KERNEL[k < 0 ? -k : k] * src[so + x + k];
    dst[d + x] = acc;
  }
}

/** residualRow's other results: the row's smallest usable variance, and whether it may hold a saturated pixel. */
const rowStats = { minVar: Infinity, maybeSat: false };

/**
 * Residual of the row at `row` above the background into res (0 at unusable pixels). Also notes
 * whether a pixel may be SAT-masked or +Infinity (≥ the default saturation level), so that
 * firstSaturated need only look at such rows: the planes are read here anyway.
 */
function residualRow(image: Float32Array, variance: Float32Array, mask: Int32Array, bits: number, row: number, lev: Float32Array, res: Float32Array, w: number): void {
  let minVar = Infinity;
  let anyMask = 0;
  let high = false;
  for (let x = 0; x < w; x++) {
    const i = row + x;
    const v = image[i];
    const va = variance[i];
    const mk = mask[i];
    anyMask |= mk;
    if (v - v === 0 && va > 0 && va - va === 0 && (mk & bits) === 0) {
      res[x] = v - lev[x];
      if (va < minVar) minVar = va;
    } else {
      res[x] = 0;
      // +Infinity is never usable, so the test costs only here.
      if (v === Infinity) high = true;
    }
  }
  rowStats.minVar = minVar;
  rowStats.maybeSat = high || (anyMask & SAT) !== 0;
}

/** First pixel of row `row` that is SAT-masked or ≥ sat (saturatedCores' test), or −1. */
function firstSaturated(image: Float32Array, mask: Int32Array, row: number, w: number, sat: number): number {
  for (let i = row, e = row + w; i < e; i++) if ((mask[i] & SAT) !== 0 || image[i] >= sat) return i;
  return -1;
}

/**
 * Column pass for image row y from the ring of row-smoothed rows (row r at (r mod RING)·w), zero
 * outside the image.
 */
function convolveCol(ring: Float32Array, out: Float32Array, y: number, w: number, h: number): void {
  const o = y * w;
  if (y >= KR && y < h - KR) {
    const r0 = (y % RING) * w;
    const m1 = ((y - 1) % RING) * w;
    const p1 = ((y + 1) % RING) * w;
    const m2 = ((y - 2) % RING) * w;
    const p2 = ((y + 2) % RING) * w;
    const m3 = ((y - 3) % RING) * w;
    const p3 = ((y + 3) % RING) * w;
    for (let x = 0; x < w; x++) {
      out[o + x] = K0 * ring[r0 + x] + K1 * (ring[m1 + x] + ring[p1 + x]) + K2 * (ring[m2 + x] + ring[p2 + x]) + K3 * (ring[m3 + x] + ring[p3 + x]);
    }
    return;
  }
  for (let x = 0; x < w; x++) {
    let acc = 0;
    for (let k = -KR; k <= KR; k++) if (y + k >= 0 && y + k < h) acc += KERNEL[k < 0 ? -k : k] * ring[((y + k) % RING) * w + x];
    out[o + x] = acc;
  }
}

/**
 * Column pass for interior rows y and y + 1 at once: they share six of their eight input rows,
 * each loaded once (the sums are convolveCol's, term for term).
 */
function convolveColPair(ring: Float32Array, out: Float32Array, y: number, w: number): void {
  const o = y * w;
  const a = ((y - 3) % RING) * w;
  const b = ((y - 2) % RING) * w;
  const c = ((y - 1) % RING) * w;
  const d = (y % RING) * w;
  const e = ((y + 1) % RING) * w;
  const f = ((y + 2) % RING) * w;
  const g = ((y + 3) % RING) * w;
  const k = ((y + 4) % RING) * w;
  for (let x = 0; x < w; x++) {
    const va = ring[a + x];
    const vb = ring[b + x];
    const vc = ring[c + x];
    const vd = ring[d + x];
    const ve = ring[e + x];
    const vf = ring[f + x];
    const vg = ring[g + x];
    const vk = ring[k + x];
    out[o + x] = K0 * vd + K1 * (vc + ve) + K2 * (vb + vf) + K3 * (va + vg);
    out[o + w + x] = K0 * ve + K1 * (vd + vf) + K2 * (vc + vg) + K3 * (vb + vk);
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
 * the region's pixel nearest its centroid — however flat, hollow or bled the plateau is. `start`
 * is the first such pixel (the detection pass records it, so the pixels before are not rescanned).
 */
function saturatedCores(mi: MaskedImage, sm: Float32Array, saturation: number | undefined, start: number): SatCores {
  const { width: w, height: h, image, mask } = mi;
  const n = w * h;
  const sat = saturation ?? Infinity;
  const out: SatCores = { idx: [], amp: [], near: undefined };
  if (start < 0) return out;
  const label = new Uint8Array(n);
  const near = (out.near = new Uint8Array(n));
  const stack: number[] = [];
  const pix: number[] = [];
  for (let i = start; i < n; i++) {
    if (((mask[i] & SAT) === 0 && !(image[i] >= sat)) || label[i]) continue;
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

/** Growable list of candidate maxima (pixel, smoothed value, smoothed noise). */
class Maxima {
  idx = new Int32Array(1024);
  amp = new Float64Array(1024);
  noise = new Float64Array(1024);
  n = 0;
  push(i: number, v: number, nz: number): void {
    if (this.n === this.idx.length) {
      const grow = <T extends Int32Array | Float64Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(2 * a.length);
        b.set(a);
        return b;
      };
      this.idx = grow(this.idx);
      this.amp = grow(this.amp);
      this.noise = grow(this.noise);
    }
    this.idx[this.n] = i;
    this.amp[this.n] = v;
    this.noise[this.n++] = nz;
  }
}

/**
 * 3×3 local maxima in row y of the smoothed residual, on usable pixels, passing the per-pixel
 * S/N bounds below; equal values go to the lower pixel index, so a flat top yields one peak.
 * `pre` is a lower bound every accepted value meets (it only skips pixels early).
 */
function scanRow(mi: MaskedImage, sm: Float32Array, y: number, bits: number, threshold: number, cheap: number, pre: number, out: Maxima): void {
  const { width: w, height: h, image, variance, mask } = mi;
  const row = y * w;
  const interiorRow = y > 0 && y < h - 1;
  for (let x = 0; x < w; x++) {
    const i = row + x;
    const v = sm[i];
    // `pre` first: on sky pixels it fails predictably, while v > 0 is a coin toss.
    if (!(v >= pre) || !(v > 0)) continue;
    let isMax: boolean;
    if (interiorRow && x > 0 && x < w - 1) {
      // All eight tests at once, without branches: in a star's wings they would mispredict.
      isMax =
        (+(v > sm[i - w - 1]) & +(v > sm[i - w]) & +(v > sm[i - w + 1]) & +(v > sm[i - 1]) &
          +(v >= sm[i + 1]) & +(v >= sm[i + w - 1]) & +(v >= sm[i + w]) & +(v >= sm[i + w + 1])) !== 0;
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
    if (!isMax || !usable(image, variance, mask, i, bits)) continue;
    // Cheap bound first, from this pixel's own variance: it would take a variance over 4× the
    // kernel-weighted mean around the pixel to reject a real detection here, and it spares the
    // exact sum on the many noise maxima.
    if (v < cheap * Math.sqrt(variance[i])) continue;
    const nz = smoothedNoise(mi, i, bits);
    if (!(nz > 0) || v < threshold * nz) continue;
    out.push(i, v, nz);
  }
}

/**
 * Detection in one pass down the image: each row's residual above the background (usable pixels;
 * 0 elsewhere, so they add nothing when smoothed) is smoothed along the row into a ring of RING
 * rows, the column pass writes the smoothed image `sm` RING/2 rows behind, and the maxima scan
 * follows one row behind that. Only `sm` is image-sized (the background level, the residual and
 * the row-smoothed image never are), and the scan finds its rows still in cache.
 *
 * A peak is a 3×3 maximum of sm with smoothed S/N ≥ threshold, on a usable pixel, away from
 * saturated cores, and above `cheap`·√(smallest usable variance in the image) — a bound only
 * known at the end, so it and the saturated-core test filter the scan's candidates afterwards.
 * Saturated cores are merged in; all in index order.
 */
function detect(
  mi: MaskedImage,
  mesh: BackgroundMesh,
  bad: number,
  threshold: number,
  saturation: number | undefined,
): { sm: Float32Array; peaks: Peaks; noise: number[] } {
  const { width: w, height: h, image, variance, mask } = mi;
  // SAT must not stop detection (saturated stars are flagged, not missed); other bad pixels do.
  const bits = bad & ~SAT;
  const sat = saturation ?? Infinity;
  const cheap = 0.5 * threshold * Math.sqrt(KERNEL_SQ_SUM);
  const sm = new Float32Array(w * h);
  const ring = new Float32Array(RING * w);
  const res = new Float32Array(w);
  const lev = new Float32Array(w);
  const rowVals = new Float64Array(mesh.ncx);
  const found = new Maxima();
  let minVar = Infinity;
  let firstSat = -1;
  // sm rows [0, made) are done, rows [0, scanned) scanned.
  let made = 0;
  let scanned = 0;
  for (let t = 0; t < h; t++) {
    {
      levelRow(mesh, t, lev, 0, rowVals);
      const row = t * w;
      residualRow(image, variance, mask, bits, row, lev, res, w);
      if (rowStats.minVar < minVar) minVar = rowStats.minVar;
      // A finite saturation level can be reached by usable pixels too: then every row is looked at.
      if (firstSat < 0 && (rowStats.maybeSat || sat !== Infinity)) firstSat = firstSaturated(image, mask, row, w, sat);
      convolveRow(res, 0, ring, (t % RING) * w, w);
    }
    // Rows whose inputs (up to 3 below them) have been row-smoothed: in pairs where both are
    // interior, else one at a time.
    const last = t === h - 1;
    while (made < h && (Math.min(h - 1, made + KR) <= t)) {
      if (made >= KR && made + 1 < h - KR && made + 1 + KR <= t) {
        convolveColPair(ring, sm, made, w);
        made += 2;
      } else if (made + 1 + KR > t && !last && made >= KR && made + 1 < h - KR) {
        break; // wait for the pair's last input row
      } else {
        convolveCol(ring, sm, made, w, h);
        made++;
      }
    }
    // Every usable pixel of a scanned row is in minVar already (rows ≤ t), so its own cheap
    // bound (which an accepted peak meets) is at least cheap·√minVar. A row is scanned once the
    // row below it is smoothed.
    const pre = cheap * Math.sqrt(minVar);
    while (scanned < h && (scanned + 1 < made || made === h)) scanRow(mi, sm, scanned++, bits, threshold, cheap, pre, found);
  }
  const floor = Math.max(0, cheap * Math.sqrt(minVar));
  const cores = saturatedCores(mi, sm, saturation, firstSat);
  const near = cores.near;

  // Keep the candidates above the floor and off the cores, and merge the cores in, in index order.
  const peaks: Peaks = { idx: [], amp: [], snr: [], sat: [] };
  const noise: number[] = [];
  for (let a = 0, b = 0; a < found.n || b < cores.idx.length; ) {
    if (b >= cores.idx.length || (a < found.n && found.idx[a] < cores.idx[b])) {
      const i = found.idx[a];
      const v = found.amp[a];
      const nz = found.noise[a];
      a++;
      if (!(v > floor) || (near !== undefined && near[i])) continue;
      peaks.idx.push(i);
      peaks.amp.push(v);
      peaks.snr.push(v / nz);
      peaks.sat.push(false);
      noise.push(nz);
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

/**
 * Peak numbers bucketed by square cells of side ≥ `radius`, as linked lists in typed arrays; the
 * cells are made larger on big images so the table stays ≤ 64 k cells.
 */
class PeakGrid {
  private readonly cell: number;
  private readonly ncx: number;
  private readonly heads: Int32Array;
  private readonly next: Int32Array;
  private readonly px: Int32Array;
  private readonly py: Int32Array;

  constructor(radius: number, w: number, h: number, pos: readonly number[]) {
    this.cell = Math.max(1, Math.ceil(radius), Math.ceil(Math.sqrt((w * h) / 65536)));
    this.ncx = Math.ceil(w / this.cell);
    this.heads = new Int32Array(this.ncx * Math.ceil(h / this.cell)).fill(-1);
    this.next = new Int32Array(pos.length);
    this.px = new Int32Array(pos.length);
    this.py = new Int32Array(pos.length);
    for (let k = 0; k < pos.length; k++) {
      this.px[k] = pos[k] % w;
      this.py[k] = (pos[k] - this.px[k]) / w;
    }
  }
  add(k: number): void {
    const c = Math.floor(this.py[k] / this.cell) * this.ncx + Math.floor(this.px[k] / this.cell);
    this.next[k] = this.heads[c];
    this.heads[c] = k;
  }
  /** Added peaks within `radius` (≤ the cell side) of peak `self`, excluding it, into `out` (any order). */
  near(self: number, radius: number, out: number[]): number[] {
    out.length = 0;
    const x = this.px[self];
    const y = this.py[self];
    const cx = Math.floor(x / this.cell);
    const cy = Math.floor(y / this.cell);
    const nrows = this.heads.length / this.ncx;
    const r2 = radius * radius;
    for (let gy = Math.max(0, cy - 1); gy <= Math.min(nrows - 1, cy + 1); gy++) {
      for (let gx = Math.max(0, cx - 1); gx <= Math.min(this.ncx - 1, cx + 1); gx++) {
        for (let k = this.heads[gy * this.ncx + gx]; k >= 0; k = this.next[k]) {
          if (k !== self && (this.px[k] - x) ** 2 + (this.py[k] - y) ** 2 <= r2) out.push(k);
        }
      }
    }
    return out;
  }
}

/**
 * Drop peaks that do not rise SADDLE_SIGMA smoothed-noise σ above the lowest point on the
 * straight path to a brighter surviving peak within `radius`. Saturated cores always survive.
 * `order` is byAmplitude(peaks). Returns the surviving peak numbers in index order.
 */
function cullSaddles(peaks: Peaks, order: readonly number[], sm: Float32Array, noise: number[], w: number, h: number, radius: number): number[] {
  const grid = new PeakGrid(radius, w, h, peaks.idx);
  const alive = new Uint8Array(peaks.idx.length);
  const near: number[] = [];
  for (const p of order) {
    const i = peaks.idx[p];
    let ok = true;
    if (!peaks.sat[p]) {
      const px = i % w;
      const py = (i - px) / w;
      const a = peaks.amp[p];
      for (const q of grid.near(p, radius, near)) {
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
function blendFlags(peaks: Peaks, keep: number[], inBox: number[], w: number, h: number, radius: number): boolean[] {
  const grid = new PeakGrid(radius, w, h, peaks.idx);
  for (const k of keep) grid.add(k);
  const near: number[] = [];
  return inBox.map((p) => {
    const a = peaks.amp[p];
    for (const q of grid.near(p, radius, near)) if (peaks.amp[q] > 0.1 * a) return true;
    return false;
  });
}

/**
 * Measured positions (parent coordinates) bucketed by cells of ≥ 1 px, as linked lists in typed
 * arrays, for the duplicate test; the table covers the image plus a margin (a centroid may sit a
 * few px outside it) and positions beyond are kept in a plain list.
 */
class PointGrid {
  private readonly cell: number;
  private readonly gx0: number;
  private readonly gy0: number;
  private readonly ncx: number;
  private readonly ncy: number;
  private readonly heads: Int32Array;
  private readonly next: Int32Array;
  private readonly outside: number[] = [];

  constructor(
    private readonly pts: readonly { x: number; y: number }[],
    w: number,
    h: number,
  ) {
    const margin = 16;
    this.cell = Math.max(1, Math.ceil(Math.sqrt(((w + 2 * margin) * (h + 2 * margin)) / 65536)));
    let x0 = Infinity;
    let y0 = Infinity;
    for (const p of pts) {
      if (p.x < x0) x0 = p.x;
      if (p.y < y0) y0 = p.y;
    }
    this.gx0 = Number.isFinite(x0) ? Math.floor(x0) - 2 : 0;
    this.gy0 = Number.isFinite(y0) ? Math.floor(y0) - 2 : 0;
    this.ncx = Math.ceil((w + 2 * margin) / this.cell);
    this.ncy = Math.ceil((h + 2 * margin) / this.cell);
    this.heads = new Int32Array(this.ncx * this.ncy).fill(-1);
    this.next = new Int32Array(pts.length);
  }
  private cellOf(x: number, y: number): number {
    const cx = Math.floor((x - this.gx0) / this.cell);
    const cy = Math.floor((y - this.gy0) / this.cell);
    return cx >= 0 && cy >= 0 && cx < this.ncx && cy < this.ncy ? cy * this.ncx + cx : -1;
  }
  add(k: number): void {
    const p = this.pts[k];
    // Non-finite positions can never be within a distance of anything: not stored.
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) return;
    const c = this.cellOf(p.x, p.y);
    if (c < 0) this.outside.push(k);
    else {
      this.next[k] = this.heads[c];
      this.heads[c] = k;
    }
  }
  /** Whether an added point lies closer than r (≤ 1 cell) to (x, y). */
  within(x: number, y: number, r: number): boolean {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
    const pts = this.pts;
    for (const k of this.outside) if (Math.hypot(pts[k].x - x, pts[k].y - y) < r) return true;
    const cx0 = Math.max(0, Math.floor((x - r - this.gx0) / this.cell));
    const cx1 = Math.min(this.ncx - 1, Math.floor((x + r - this.gx0) / this.cell));
    const cy0 = Math.max(0, Math.floor((y - r - this.gy0) / this.cell));
    const cy1 = Math.min(this.ncy - 1, Math.floor((y + r - this.gy0) / this.cell));
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        for (let k = this.heads[cy * this.ncx + cx]; k >= 0; k = this.next[k]) {
          if (Math.hypot(pts[k].x - x, pts[k].y - y) < r) return true;
        }
      }
    }
    return false;
  }
}

/**
 * FWHM guess from the brightest unsaturated peaks away from the edges: their adaptive moments
 * (sky from the background mesh), then the stellar-locus size, so a field of galaxies with a few
 * stars still gives the stars' size.
 */
function guessFwhm(mi: MaskedImage, levelOf: (i: number) => number, peaks: Peaks, order: readonly number[], bad: number): number {
  const { width: w, height: h } = mi;
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
    const m = momentsLocal(mi, x, y, levelOf(i), 1.5, 50, bad);
    if (m.ok) sizes.push(FWHM_PER_SIGMA * Math.sqrt((m.ixx + m.iyy) / 2));
  }
  if (sizes.length === 0) return DEFAULT_FWHM;
  return stellarLocus(sizes).centre;
}

// ---------------------------------------------------------------------------------------------
// Measurement

/** diskRow's result: first and last x of the row's run. */
const span = new Int32Array(2);

/**
 * The x in [xa, xb] that the disk test `dy2 + (x − c)² ≤ r2` keeps, into `span`; false when none.
 * The computed test is monotone on either side of c, so they form one run: found from the
 * analytic ends, each checked and moved with the test itself, so exactly the same pixels pass as
 * when every pixel is tested.
 */
function diskRow(c: number, dy2: number, r2: number, xa: number, xb: number): boolean {
  if (xa > xb) return false;
  // The test is loosest at floor(c) or ceil(c) (clamped to the range): if both fail, all do.
  let m = Math.min(xb, Math.max(xa, Math.floor(c)));
  if (dy2 + (m - c) ** 2 > r2) {
    m = Math.min(xb, Math.max(xa, Math.ceil(c)));
    if (dy2 + (m - c) ** 2 > r2) return false;
  }
  const half = Math.sqrt(Math.max(0, r2 - dy2));
  let lo = Math.min(m, Math.max(xa, Math.ceil(c - half)));
  while (lo > xa && !(dy2 + (lo - 1 - c) ** 2 > r2)) lo--;
  while (dy2 + (lo - c) ** 2 > r2) lo++;
  let hi = Math.max(m, Math.min(xb, Math.floor(c + half)));
  while (hi < xb && !(dy2 + (hi + 1 - c) ** 2 > r2)) hi++;
  while (dy2 + (hi - c) ** 2 > r2) hi--;
  span[0] = lo;
  span[1] = hi;
  return true;
}

class Measurer {
  private readonly ap: number;
  private readonly rIn: number;
  private readonly rOut: number;
  private readonly sigma: number;
  private readonly buf: Float64Array;
  private readonly scratch: Float64Array;
  /** The sky annulus as row runs (dy, first dx, last dx), in the scan order of its pixels. */
  private readonly annulus: Int32Array;

  constructor(
    private readonly mi: MaskedImage,
    private readonly bad: number,
    fwhm: number,
    private readonly saturation: number | undefined,
    /** Typical sky noise (the background mesh's), a guess that speeds up the annulus statistics. */
    private readonly skyRms: number,
  ) {
    this.sigma = fwhm / FWHM_PER_SIGMA;
    this.ap = AP_FWHM * fwhm;
    this.rIn = SKY_IN_FWHM * fwhm;
    this.rOut = SKY_OUT_FWHM * fwhm;
    const side = 2 * Math.ceil(this.rOut) + 3;
    this.buf = new Float64Array(side * side);
    this.scratch = new Float64Array(side * side);
    const runs: number[] = [];
    const ri = Math.ceil(this.rOut);
    for (let dy = -ri; dy <= ri; dy++) {
      let start = NaN;
      for (let dx = -ri; dx <= ri + 1; dx++) {
        const d2 = dy * dy + dx * dx;
        const inside = dx <= ri && !(d2 < this.rIn * this.rIn || d2 > this.rOut * this.rOut);
        if (inside && Number.isNaN(start)) start = dx;
        if (!inside && !Number.isNaN(start)) {
          runs.push(dy, start, dx - 1);
          start = NaN;
        }
      }
    }
    this.annulus = Int32Array.from(runs);
  }

  measure(i: number, bgLevel: number, detSnr: number): Star {
    const { mi, bad, ap, rIn, rOut } = this;
    const { width: w, height: h, image, mask, variance, x0, y0 } = mi;
    const px = i % w;
    const py = (i - px) / w;

    // Sky: clipped median of the annulus about the detected peak (its runs clipped to the image).
    let n = 0;
    const runs = this.annulus;
    const buf = this.buf;
    for (let r = 0; r < runs.length; r += 3) {
      const y = py + runs[r];
      if (y < 0 || y >= h) continue;
      const row = y * w;
      for (let j = row + Math.max(0, px + runs[r + 1]), e = row + Math.min(w - 1, px + runs[r + 2]); j <= e; j++) {
        const v = image[j];
        if (v - v === 0 && (mask[j] & bad) === 0) buf[n++] = v;
      }
    }
    let sky = bgLevel;
    let skyRms = NaN;
    let nSky = 0;
    if (n >= 10) {
      const c = clippedStatsNear(this.buf, n, this.scratch, bgLevel, this.skyRms);
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
    const satLevel = this.saturation === undefined ? NaN : this.saturation; // NaN: no value test
    const xa = Math.max(0, Math.floor(xc) - ra);
    const xb = Math.min(w - 1, Math.ceil(xc) + ra);
    for (let y = Math.max(0, Math.floor(yc) - ra); y <= Math.min(h - 1, Math.ceil(yc) + ra); y++) {
      if (!diskRow(xc, (y - yc) ** 2, ap * ap, xa, xb)) continue;
      const row = y * w;
      for (let j = row + span[0], e = row + span[1]; j <= e; j++) {
        const v = image[j];
        const mk = mask[j];
        if ((mk & SAT) !== 0 || v >= satLevel) saturated = true;
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
