/**
 * Detection on a difference image, both polarities: smooth with a Gaussian of the PSF's width
 * (G, unit sum), divide by the smoothed noise √(G²⊗V) — exact for independent pixels, which is
 * what decorrelation restores — and threshold at ±t σ. Footprints are 4-connected pixels above
 * threshold (as afw's span-overlap rule), grown by a disk of nSigmaToGrow × σ_PSF; the grown
 * positive and negative footprints that touch are merged into one footprint, which keeps every
 * peak (local maximum of |significance| inside the ungrown footprint) with its sign, and its
 * children: the ungrown connected components it contains, each with its most significant peak
 * (two sources whose grown footprints touch stay two sources; a dipole's lobes are two children
 * of opposite sign).
 */

export interface Peak {
  /** Pixel, local coordinates of the image. */
  x: number;
  y: number;
  /** Signed significance (σ) of the smoothed image at the peak. */
  z: number;
}

export interface Footprint {
  /** Pixel indices (y·W + x), increasing. */
  pixels: Int32Array;
  /** Bounding box, local, inclusive. */
  xMin: number;
  yMin: number;
  xMax: number;
  yMax: number;
  /** Peaks by decreasing |z|. */
  peaks: Peak[];
  nPositive: number;
  nNegative: number;
  /** Ungrown above-threshold components inside: their best peak and area, by decreasing |z|. */
  children: Array<{ peak: Peak; area: number }>;
}

export interface DetectionInput {
  image: Float32Array;
  variance: Float32Array;
  mask: Int32Array;
  width: number;
  height: number;
}

export interface DetectionOptions {
  /** Gaussian σ of the smoothing (the PSF's), px. */
  sigma: number;
  threshold: number;
  polarity: 'both' | 'positive' | 'negative';
  /** Growth radius, px (nSigmaToGrow × σ). */
  growRadius: number;
  /** Pixels with these mask bits carry no data (zero weight in the smoothing). */
  ignoreBits: number;
  /** Stop with this error if more footprints are found (a failed subtraction). */
  maxFootprints: number;
}

export interface DetectionResult {
  footprints: Footprint[];
  /** G⊗D and √(G²⊗V): what measurement centroids on. */
  smoothed: Float32Array;
  smoothedSigma: Float32Array;
  /** Grown positive / negative detections (1 = set): the DETECTED and DETECTED_NEGATIVE planes. */
  positive: Uint8Array;
  negative: Uint8Array;
}

export class TooManyFootprints extends Error {
  constructor(readonly count: number) {
    super(`more than ${count} footprints`);
  }
}

/** Unit-sum 1-D Gaussian, half-width ⌈4σ⌉. */
export function gaussian1d(sigma: number): Float64Array {
  const r = Math.max(1, Math.ceil(4 * sigma));
  const g = new Float64Array(2 * r + 1);
  let s = 0;
  for (let k = -r; k <= r; k++) s += g[k + r] = Math.exp((-0.5 * k * k) / (sigma * sigma));
  for (let k = 0; k < g.length; k++) g[k]! /= s;
  return g;
}

/** Separable convolution with zero outside the image: rows, then columns, with the same 1-D kernel `k`. */
export function separableConvolve(src: Float32Array, W: number, H: number, k: Float64Array): Float32Array {
  const r = (k.length - 1) / 2;
  const K = k.length;
  const tmp = new Float32Array(W * H);
  for (let y = 0; y < H; y++) {
    const o = y * W;
    // Interior: the whole kernel, no bounds tests (the hot loop); then the two borders.
    for (let x = r; x < W - r; x++) {
      const b = o + x - r;
      let s = 0;
      for (let t = 0; t < K; t++) s += k[t]! * src[b + t]!;
      tmp[o + x] = s;
    }
    for (let x = 0; x < W; x++) {
      if (x === r && W - r > r) x = W - r;
      const a = Math.max(0, x - r);
      const b = Math.min(W - 1, x + r);
      let s = 0;
      for (let xx = a; xx <= b; xx++) s += k[xx - x + r]! * src[o + xx]!;
      tmp[o + x] = s;
    }
  }
  const out = new Float32Array(W * H);
  const acc = new Float64Array(W);
  for (let y = 0; y < H; y++) {
    acc.fill(0);
    const a = Math.max(0, y - r);
    const b = Math.min(H - 1, y + r);
    for (let yy = a; yy <= b; yy++) {
      const w = k[yy - y + r]!;
      const o = yy * W;
      for (let x = 0; x < W; x++) acc[x]! += w * tmp[o + x]!;
    }
    out.set(acc, y * W);
  }
  return out;
}

/**
 * 4-connected components of `on` in which every pixel has the same `sign` value (positive vs
 * negative detections; pass `on` itself for plain components). Labels 1..n in raster order of the
 * first pixel, 0 = off.
 */
function label(on: Uint8Array, sign: Uint8Array, W: number, H: number, labels: Int32Array): number {
  labels.fill(0);
  let n = 0;
  const stack: number[] = [];
  for (let p = 0; p < on.length; p++) {
    if (on[p] === 0 || labels[p] !== 0) continue;
    n++;
    const s = sign[p];
    labels[p] = n;
    stack.push(p);
    while (stack.length > 0) {
      const q = stack.pop()!;
      const x = q % W;
      const y = (q - x) / W;
      const visit = (r: number) => {
        if (on[r] !== 0 && sign[r] === s && labels[r] === 0) { labels[r] = n; stack.push(r); }
      };
      if (x > 0) visit(q - 1);
      if (x < W - 1) visit(q + 1);
      if (y > 0) visit(q - W);
      if (y < H - 1) visit(q + W);
    }
  }
  return n;
}

/** Dilate `on` by a disk of radius r (into a new array), stamping only from boundary pixels. */
function grow(on: Uint8Array, W: number, H: number, r: number): Uint8Array {
  const out = on.slice();
  const R = Math.floor(r);
  if (R < 1) return out;
  const half = new Int32Array(2 * R + 1);
  for (let d = -R; d <= R; d++) half[d + R] = Math.floor(Math.sqrt(r * r - d * d));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      if (on[p] === 0) continue;
      const interior = x > 0 && x < W - 1 && y > 0 && y < H - 1 && on[p - 1] !== 0 && on[p + 1] !== 0 && on[p - W] !== 0 && on[p + W] !== 0;
      if (interior) continue;
      for (let d = -R; d <= R; d++) {
        const yy = y + d;
        if (yy < 0 || yy >= H) continue;
        const a = Math.max(0, x - half[d + R]!);
        const b = Math.min(W - 1, x + half[d + R]!);
        out.fill(1, yy * W + a, yy * W + b + 1);
      }
    }
  }
  return out;
}

export function detectFootprints(mi: DetectionInput, opts: DetectionOptions): DetectionResult {
  const { width: W, height: H, image, variance, mask } = mi;
  const n = W * H;
  const d = new Float32Array(n);
  const v = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const ok = (mask[p]! & opts.ignoreBits) === 0 && Number.isFinite(image[p]!) && variance[p]! > 0 && Number.isFinite(variance[p]!);
    d[p] = ok ? image[p]! : 0;
    v[p] = ok ? variance[p]! : 0;
  }
  const g = gaussian1d(opts.sigma);
  const smoothed = separableConvolve(d, W, H, g);
  const sigmaS = separableConvolve(v, W, H, g.map((x) => x * x));
  const zs = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    const sd = Math.sqrt(Math.max(0, sigmaS[p]!));
    sigmaS[p] = sd;
    zs[p] = sd > 0 ? smoothed[p]! / sd : 0;
  }

  const pos = new Uint8Array(n);
  const neg = new Uint8Array(n);
  const t = opts.threshold;
  const wantPos = opts.polarity !== 'negative';
  const wantNeg = opts.polarity !== 'positive';
  for (let p = 0; p < n; p++) {
    const zp = zs[p]!;
    if (wantPos && zp >= t) pos[p] = 1;
    else if (wantNeg && zp <= -t) neg[p] = 1;
  }

  // Peaks: local maxima of |z| among same-sign above-threshold pixels (ties go to the first in raster order).
  const peaks: Peak[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      const on = pos[p] !== 0 ? pos : neg[p] !== 0 ? neg : null;
      if (on === null) continue;
      const s = on === pos ? 1 : -1;
      const zp = s * zs[p]!;
      let isPeak = true;
      for (let dy = -1; dy <= 1 && isPeak; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= H) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if ((dx === 0 && dy === 0) || xx < 0 || xx >= W) continue;
          const q = yy * W + xx;
          if (on[q] === 0) continue;
          const zq = s * zs[q]!;
          if (zq > zp || (zq === zp && q < p)) { isPeak = false; break; }
        }
      }
      if (isPeak) peaks.push({ x, y, z: s * zp });
    }
  }

  // Children: components of the ungrown detections (positive and negative labelled apart, as
  // pos and neg pixels never touch in one component by construction of the two masks).
  const labels = new Int32Array(n);
  const both = new Uint8Array(n);
  for (let p = 0; p < n; p++) both[p] = pos[p]! | neg[p]!;
  const nc = label(both, pos, W, H, labels);
  const childArea = new Int32Array(nc + 1);
  for (let p = 0; p < n; p++) childArea[labels[p]!]!++;
  const childPeak: Array<Peak | undefined> = new Array(nc + 1);
  for (const pk of peaks) {
    const c = labels[pk.y * W + pk.x]!;
    const best = childPeak[c];
    if (!best || Math.abs(pk.z) > Math.abs(best.z)) childPeak[c] = pk;
  }

  const positive = grow(pos, W, H, opts.growRadius);
  const negative = grow(neg, W, H, opts.growRadius);
  const merged = new Uint8Array(n);
  for (let p = 0; p < n; p++) merged[p] = positive[p]! | negative[p]!;
  const nf = label(merged, merged, W, H, labels);
  if (nf > opts.maxFootprints) throw new TooManyFootprints(opts.maxFootprints);

  const area = new Int32Array(nf + 1);
  for (let p = 0; p < n; p++) area[labels[p]!]!++;
  const fps: Footprint[] = [];
  for (let k = 1; k <= nf; k++) {
    fps.push({ pixels: new Int32Array(area[k]!), xMin: W, yMin: H, xMax: -1, yMax: -1, peaks: [], nPositive: 0, nNegative: 0, children: [] });
  }
  const fill = new Int32Array(nf + 1);
  for (let p = 0; p < n; p++) {
    const k = labels[p]!;
    if (k === 0) continue;
    const f = fps[k - 1]!;
    f.pixels[fill[k]!++] = p;
    const x = p % W;
    const y = (p - x) / W;
    if (x < f.xMin) f.xMin = x;
    if (x > f.xMax) f.xMax = x;
    if (y < f.yMin) f.yMin = y;
    if (y > f.yMax) f.yMax = y;
  }
  for (const pk of peaks) {
    const f = fps[labels[pk.y * W + pk.x]! - 1]!;
    f.peaks.push(pk);
    if (pk.z > 0) f.nPositive++;
    else f.nNegative++;
  }
  for (let c = 1; c <= nc; c++) {
    const pk = childPeak[c];
    if (!pk) continue; // a component whose maximum touches a higher one diagonally: part of that source
    fps[labels[pk.y * W + pk.x]! - 1]!.children.push({ peak: pk, area: childArea[c]! });
  }
  const order = (a: Peak, b: Peak) => Math.abs(b.z) - Math.abs(a.z) || a.y - b.y || a.x - b.x;
  for (const f of fps) {
    f.peaks.sort(order);
    f.children.sort((a, b) => order(a.peak, b.peak));
  }
  return { footprints: fps, smoothed, smoothedSigma: sigmaS, positive, negative };
}
