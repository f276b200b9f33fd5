/**
 * Robust statistics over image planes. Every function takes the values and, optionally, a mask
 * plane of the same length with the bits that disqualify a pixel; non-finite values are always
 * skipped. An empty selection yields NaN (and n = 0), never an exception, because "no usable
 * pixels" is an ordinary outcome for a masked tile.
 *
 * Order statistics never reorder the input. Large float32 planes (the image and variance planes)
 * use radix selection straight on the plane's bits; everything else Floyd–Rivest selection on a
 * copy of the selected values (long float64 copies: a window placed by a sample, then selection
 * inside it). All are O(n). The in-place helpers (medianInPlace, medianInRange, WindowMedian) are
 * for callers that own their buffers. Sums accumulate in float64 whatever the input
 * precision, and results are float64 (an even-length median of float32 values is the exact
 * midpoint, not rounded back to float32 as numpy would).
 */
import { ImageError } from './masked-image.ts';

export type FloatArray = Float32Array | Float64Array;

export interface MaskFilter {
  /** Mask plane parallel to the values. */
  mask?: Int32Array;
  /** Pixels with (mask & badBits) !== 0 are skipped. Default when a mask is given: any set bit. */
  badBits?: number;
}

export interface StdOptions extends MaskFilter {
  /** Delta degrees of freedom: divide by n - ddof. Default 1 (sample std, as afw's STDEV). */
  ddof?: number;
}

export interface SigmaClipOptions extends StdOptions {
  /** Clip at |x - median| > nSigma × std. Default 3. */
  nSigma?: number;
  /** Maximum number of clipping passes. Default 5. */
  maxIter?: number;
}

export interface ClippedStats {
  mean: number;
  median: number;
  std: number;
  /** Number of values left after clipping. */
  n: number;
}

/** Gaussian σ per unit of median absolute deviation, 1/Φ⁻¹(3/4) rounded as is customary. */
export const MAD_TO_SIGMA = 1.4826;

/** FWHM of a Gaussian in units of its σ: 2√(2 ln 2). */
export const FWHM_PER_SIGMA = 2 * Math.sqrt(2 * Math.LN2);

/** Resolve the mask options once, so hot loops test a plain integer. */
function filterOf(values: FloatArray, opts: MaskFilter | undefined): { mask: Int32Array | undefined; bad: number } {
  const mask = opts?.mask;
  if (mask === undefined) return { mask: undefined, bad: 0 };
  if (mask.length !== values.length) {
    throw new ImageError('SIZE_MISMATCH', `mask has ${mask.length} elements, values have ${values.length}`);
  }
  const bad = opts?.badBits ?? -1;
  // badBits 0 disqualifies nothing: drop the mask so the fast unmasked loops run.
  return { mask: bad === 0 ? undefined : mask, bad };
}

/**
 * Copy the selected finite values into a fresh array of the input's precision (float32 halves
 * the memory of the copy). Returns a view of the first n elements.
 */
function gather(values: FloatArray, opts: MaskFilter | undefined): FloatArray {
  const { mask, bad } = filterOf(values, opts);
  const out = values instanceof Float32Array ? new Float32Array(values.length) : new Float64Array(values.length);
  let n = 0;
  const len = values.length;
  if (mask === undefined) {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0) out[n++] = v; // false for NaN and ±Infinity
    }
  } else {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0 && (mask[i] & bad) === 0) out[n++] = v;
    }
  }
  return out.subarray(0, n);
}

export function finiteCount(values: FloatArray, opts?: MaskFilter): number {
  const { mask, bad } = filterOf(values, opts);
  let n = 0;
  const len = values.length;
  if (mask === undefined) {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0) n++;
    }
  } else {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0 && (mask[i] & bad) === 0) n++;
    }
  }
  return n;
}

/**
 * Sum and count of the selected values (float64 accumulation). Returns an object, not a tuple:
 * V8 boxes the accumulator when it escapes into an array literal (3× slower loop).
 */
function sumCount(values: FloatArray, mask: Int32Array | undefined, bad: number): { s: number; n: number } {
  let s = 0;
  let n = 0;
  const len = values.length;
  if (mask === undefined) {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0) {
        s += v;
        n++;
      }
    }
  } else {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0 && (mask[i] & bad) === 0) {
        s += v;
        n++;
      }
    }
  }
  return { s, n };
}

export function mean(values: FloatArray, opts?: MaskFilter): number {
  const { mask, bad } = filterOf(values, opts);
  const { s, n } = sumCount(values, mask, bad);
  return n === 0 ? NaN : s / n;
}

function checkDdof(ddof: number): number {
  if (!Number.isFinite(ddof) || ddof < 0) throw new ImageError('BAD_ARGUMENT', `ddof must be ≥ 0, got ${ddof}`);
  return ddof;
}

/** Standard deviation by two passes (mean, then squared deviations): stable for large offsets. */
export function std(values: FloatArray, opts?: StdOptions): number {
  const ddof = checkDdof(opts?.ddof ?? 1);
  const { mask, bad } = filterOf(values, opts);
  const { s, n } = sumCount(values, mask, bad);
  if (n - ddof <= 0) return NaN;
  const m = s / n;
  let ss = 0;
  const len = values.length;
  if (mask === undefined) {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0) ss += (v - m) * (v - m);
    }
  } else {
    for (let i = 0; i < len; i++) {
      const v = values[i];
      if (v - v === 0 && (mask[i] & bad) === 0) ss += (v - m) * (v - m);
    }
  }
  return Math.sqrt(ss / (n - ddof));
}

// ---------------------------------------------------------------------------------------------
// Selection

/**
 * Reorder a[left..right] so that a[k] holds the value it would have if sorted, everything before
 * it ≤ and everything after ≥. Floyd–Rivest selection: on large ranges a small sample is first
 * selected recursively to find bounds that bracket the k-th value tightly, so the full-range
 * partition is done about once (≈1.5 n comparisons for a median, against ≈3 n for plain
 * quickselect). Partitioning swaps values equal to the pivot from both sides, which keeps constant
 * or heavily quantised data balanced. A pass budget guards the worst case: when it runs out the
 * remaining range is sorted natively (O(n log n)).
 */
function selectInPlace(a: FloatArray, k: number, left: number, right: number): void {
  let budget = 2 * Math.ceil(Math.log2(right - left + 2)) + 8;
  while (right > left) {
    const n = right - left + 1;
    if (n < 24) {
      insertionSort(a, left, right);
      return;
    }
    if (--budget < 0) {
      a.subarray(left, right + 1).sort();
      return;
    }
    if (n > 600) {
      // Sample size ~ n^(2/3), window offset ~ its standard deviation, biased towards the side k is on.
      const i = k - left + 1;
      const z = Math.log(n);
      const s = 0.5 * Math.exp((2 * z) / 3);
      const sd = 0.5 * Math.sqrt((z * s * (n - s)) / n) * (i < n / 2 ? -1 : 1);
      const lo = Math.max(left, Math.floor(k - (i * s) / n + sd));
      const hi = Math.min(right, Math.floor(k + ((n - i) * s) / n + sd));
      selectInPlace(a, k, lo, hi);
    } else {
      // Small range: no sample, so use the median of three as pivot (sorted or organ-pipe runs
      // would otherwise make a[k] a poor one).
      const mid = (left + right) >>> 1;
      const x = a[left];
      const y = a[mid];
      const z = a[right];
      const m = x < y ? (y < z ? mid : x < z ? right : left) : x < z ? left : y < z ? right : mid;
      swap(a, m, k);
    }
    // Partition around t = a[k]; a[left] and a[right] are arranged to stop the scans.
    const t = a[k];
    let i = left;
    let j = right;
    swap(a, left, k);
    if (a[right] > t) swap(a, right, left);
    while (i < j) {
      swap(a, i, j);
      i++;
      j--;
      while (a[i] < t) i++;
      while (a[j] > t) j--;
    }
    if (a[left] === t) swap(a, left, j);
    else {
      j++;
      swap(a, j, right);
    }
    // a[j] === t now sits in its sorted place.
    if (j <= k) left = j + 1;
    if (k <= j) right = j - 1;
  }
}

function swap(a: FloatArray, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

function insertionSort(a: FloatArray, left: number, right: number): void {
  for (let i = left + 1; i <= right; i++) {
    const v = a[i];
    let j = i - 1;
    while (j >= left && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

function maxOf(a: FloatArray, from: number, to: number): number {
  let m = a[from];
  for (let i = from + 1; i < to; i++) if (a[i] > m) m = a[i];
  return m;
}

function minOf(a: FloatArray, from: number, to: number): number {
  let m = a[from];
  for (let i = from + 1; i < to; i++) if (a[i] < m) m = a[i];
  return m;
}

// Radix selection for float32 planes. The IEEE bit pattern of a float32, with the sign bit
// flipped for positives and all bits flipped for negatives, orders exactly like the numbers.
// Two counting passes over the top and bottom 16 bits of that key find the k-th value directly in
// the input: no copy, no swaps, and a cost that does not depend on the data (sorted, constant or
// heavily quantised planes are as fast as noise).

/** Below this length a copy plus Floyd–Rivest beats two passes with 65536-bin histograms. */
const RADIX_MIN = 1 << 16;
/** Histograms count in Int32Array (Uint32Array increments are ~3× slower in V8), so cap the length. */
const RADIX_MAX = 2 ** 31 - 1;
const BINS = 1 << 16;

function useRadix(values: FloatArray): values is Float32Array {
  return values instanceof Float32Array && values.length >= RADIX_MIN && values.length <= RADIX_MAX;
}

const keyScratch = new Int32Array(1);
const keyScratchF32 = new Float32Array(keyScratch.buffer);

/**
 * Order key of a float32 bit pattern u (as int32). The result is an int32 whose UNSIGNED value
 * orders like the float; kept in int32 so V8 never boxes it.
 */
function f32Key(u: number): number {
  return u ^ ((u >> 31) | 0x80000000);
}

function keyToF32(key: number): number {
  keyScratch[0] = key < 0 ? key ^ 0x80000000 : ~key;
  return keyScratchF32[0];
}

const EXP_MASK = 0x7f800000; // all exponent bits set ⇔ NaN or ±Infinity

interface RadixInput {
  bits: Int32Array;
  mask: Int32Array | undefined;
  bad: number;
  /** Counts of the top 16 key bits over the selected finite values. */
  hist1: Int32Array;
  /** Number of selected finite values. */
  n: number;
}

/** Where the k-th value sits: its key, how many selected values are smaller, how many equal. */
interface Located {
  key: number;
  below: number;
  equal: number;
}

function radixInput(values: Float32Array, mask: Int32Array | undefined, bad: number): RadixInput {
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  const hist1 = new Int32Array(BINS);
  let n = 0;
  const len = bits.length;
  if (mask === undefined) {
    for (let i = 0; i < len; i++) {
      const u = bits[i];
      if ((u & EXP_MASK) === EXP_MASK) continue;
      hist1[f32Key(u) >>> 16]++;
      n++;
    }
  } else {
    for (let i = 0; i < len; i++) {
      const u = bits[i];
      if ((u & EXP_MASK) === EXP_MASK || (mask[i] & bad) !== 0) continue;
      hist1[f32Key(u) >>> 16]++;
      n++;
    }
  }
  return { bits, mask, bad, hist1, n };
}

/** Bin holding rank k of a histogram, and the count in the bins before it. */
function findBin(hist: Int32Array, k: number): { bin: number; before: number } {
  let before = 0;
  let bin = 0;
  while (before + hist[bin] <= k) before += hist[bin++];
  return { bin, before };
}

/** Locate the k-th smallest (0-based, k < n) selected value. */
function radixLocate(r: RadixInput, k: number): Located {
  const { bits, mask, bad } = r;
  const l1 = findBin(r.hist1, k);
  const top = l1.bin;
  const hist2 = new Int32Array(BINS);
  const len = bits.length;
  if (mask === undefined) {
    for (let i = 0; i < len; i++) {
      const key = f32Key(bits[i]);
      // Non-finite keys never share a top half with a finite one, so no separate test is needed.
      if (key >>> 16 === top) hist2[key & 0xffff]++;
    }
  } else {
    for (let i = 0; i < len; i++) {
      const key = f32Key(bits[i]);
      if (key >>> 16 === top && (mask[i] & bad) === 0) hist2[key & 0xffff]++;
    }
  }
  const l2 = findBin(hist2, k - l1.before);
  return { key: (top << 16) | l2.bin, below: l1.before + l2.before, equal: hist2[l2.bin] };
}

/** Largest key below `key` among selected values (call only when one exists). */
function maxKeyBelow(r: RadixInput, key: number): number {
  const { bits, mask, bad } = r;
  // Flipping the top bit turns the unsigned key order into signed int32 order.
  const limit = key ^ 0x80000000;
  let best = -0x80000000;
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    if ((u & EXP_MASK) === EXP_MASK || (mask !== undefined && (mask[i] & bad) !== 0)) continue;
    const s = f32Key(u) ^ 0x80000000;
    if (s < limit && s > best) best = s;
  }
  return best ^ 0x80000000;
}

/** Smallest key above `key` among selected values (call only when one exists). */
function minKeyAbove(r: RadixInput, key: number): number {
  const { bits, mask, bad } = r;
  const limit = key ^ 0x80000000;
  let best = 0x7fffffff;
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    if ((u & EXP_MASK) === EXP_MASK || (mask !== undefined && (mask[i] & bad) !== 0)) continue;
    const s = f32Key(u) ^ 0x80000000;
    if (s > limit && s < best) best = s;
  }
  return best ^ 0x80000000;
}

function radixMedian(values: Float32Array, mask: Int32Array | undefined, bad: number): number {
  const r = radixInput(values, mask, bad);
  if (r.n === 0) return NaN;
  const k = r.n >> 1;
  const loc = radixLocate(r, k);
  const v = keyToF32(loc.key);
  if (r.n & 1) return v + 0;
  // The lower middle shares v's value unless v is the first of its run.
  const lower = k - 1 >= loc.below ? v : keyToF32(maxKeyBelow(r, loc.key));
  return midpoint(lower, v);
}

function radixQuantile(values: Float32Array, mask: Int32Array | undefined, bad: number, q: number): number {
  const r = radixInput(values, mask, bad);
  if (r.n === 0) return NaN;
  const h = (r.n - 1) * q;
  const lo = Math.floor(h);
  const loc = radixLocate(r, lo);
  const vlo = keyToF32(loc.key);
  if (h === lo || lo + 1 >= r.n) return vlo + 0;
  const vhi = lo + 1 < loc.below + loc.equal ? vlo : keyToF32(minKeyAbove(r, loc.key));
  return lerp(vlo, vhi, h - lo);
}

// ---------------------------------------------------------------------------------------------
// Order statistics

// Order statistics come back with -0 turned into +0 (x + 0): the radix path orders -0 before +0
// and Floyd–Rivest does not, and the answer must not depend on the path taken.

function midpoint(lo: number, hi: number): number {
  const s = (lo + hi) / 2;
  return (Number.isFinite(s) ? s : lo / 2 + hi / 2) + 0; // lo + hi can overflow near ±MAX_VALUE
}

/** Linear interpolation from the nearer end (numpy's formula), exact at both ends. */
function lerp(lo: number, hi: number, t: number): number {
  const d = hi - lo;
  return (t < 0.5 ? lo + d * t : hi - d * (1 - t)) + 0;
}

/** The binned median aims at this many values per bin near the middle (left to select exactly). */
const VALUES_PER_BIN = 8;
const MAX_BINS = 4096;
const binCounts = new Int32Array(MAX_BINS);
/** Up to this many values, each one's bin is kept from the counting pass (saves recomputing it). */
const KEEP_BINS_MAX = 1 << 16;
const binOf = new Uint16Array(KEEP_BINS_MAX);
/** Fewer values than this left to select are insertion-sorted. */
const SMALL_SORT = 24;

/**
 * Median of a[0..n) (all finite), reordering a, given a range [lo, hi] expected to bracket the
 * middle of the data tightly (e.g. a clip window). The values are counted in bins over the range
 * (values outside it go to the end bins), the bin(s) holding the middle rank(s) are compacted to
 * the front and only those are selected. The bin index is a monotone function of the value, so
 * the result is the exact median for ANY range: the range only decides how many values are left
 * to select. Two branch-light passes instead of a full selection's unpredictable swaps: 2–3×
 * faster on a few hundred to a few thousand values. Falls back to plain selection without a
 * usable range.
 */
export function medianInRange(a: Float64Array, n: number, lo: number, hi: number): number {
  if (n <= 0) return NaN;
  if (n < 64) return selectMedian(a.subarray(0, n));
  const nb = Math.min(MAX_BINS, Math.max(8, Math.floor(n / VALUES_PER_BIN)));
  const scale = nb / (hi - lo);
  if (!(scale > 0) || !Number.isFinite(scale)) return selectMedian(a.subarray(0, n));
  const hist = binCounts;
  hist.fill(0, 0, nb);
  const top = nb - 1;
  const keep = n <= KEEP_BINS_MAX;
  const bins = binOf;
  // Bin index: floor, then clamped with plain compares (faster in V8 than Math.min/max, which
  // must order NaN and −0).
  if (keep) {
    for (let i = 0; i < n; i++) {
      let b = Math.floor((a[i] - lo) * scale);
      b = b > 0 ? (b < top ? b : top) : 0;
      bins[i] = b;
      hist[b]++;
    }
  } else {
    for (let i = 0; i < n; i++) {
      let b = Math.floor((a[i] - lo) * scale);
      b = b > 0 ? (b < top ? b : top) : 0;
      hist[b]++;
    }
  }
  const k = n >> 1;
  const kLo = n & 1 ? k : k - 1;
  let before = 0;
  let b1 = 0;
  while (before + hist[b1] <= kLo) before += hist[b1++];
  let b2 = b1;
  let upTo = before + hist[b1];
  while (upTo <= k) upTo += hist[++b2];
  // Swap the values of bins b1..b2 (any bins between are empty) to the front (a stays a
  // permutation of itself); one unsigned compare tests the bin range.
  const span = b2 - b1;
  let m = 0;
  if (keep) {
    for (let i = 0; i < n; i++) {
      if ((bins[i] - b1) >>> 0 <= span) {
        const v = a[i];
        a[i] = a[m];
        a[m++] = v;
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = a[i];
      let b = Math.floor((v - lo) * scale);
      b = b > 0 ? (b < top ? b : top) : 0;
      if ((b - b1) >>> 0 <= span) {
        a[i] = a[m];
        a[m++] = v;
      }
    }
  }
  const r2 = k - before;
  if (m < SMALL_SORT) {
    // Insertion sort (Float64 only, so this stays monomorphic).
    for (let i = 1; i < m; i++) {
      const v = a[i];
      let j = i - 1;
      while (j >= 0 && a[j] > v) {
        a[j + 1] = a[j];
        j--;
      }
      a[j + 1] = v;
    }
  } else if (m <= 4096) a.subarray(0, m).sort(); // native numeric sort: quick at this size
  else selectInPlace(a, r2, 0, m - 1);
  const hiVal = a[r2];
  if (n & 1) return hiVal + 0;
  // Even n: r2 ≥ 1, and the lower middle is the largest value before r2 (a[r2 − 1] if sorted).
  return midpoint(m <= 4096 ? a[r2 - 1] : maxOf(a, 0, r2), hiVal);
}

/**
 * Median of a (all finite), reordering a — for callers that own a scratch buffer (pass
 * `buf.subarray(0, n)`). Even n: mean of the two middle values. NaN when empty.
 */
export function medianInPlace(a: FloatArray): number {
  const n = a.length;
  if (n === 0) return NaN;
  if (useRadix(a)) return radixMedian(a, undefined, 0);
  if (n >= SAMPLED_MEDIAN_MIN && a instanceof Float64Array) {
    // Large float64 arrays: the middle order statistics of an evenly spaced sample bracket the
    // median tightly, and medianInRange (exact for any range) then selects among a few values.
    const step = Math.floor(n / MEDIAN_SAMPLE);
    const sample = new Float64Array(Math.ceil(n / step));
    for (let i = 0, j = 0; i < n; i += step) sample[j++] = a[i];
    sample.sort();
    const half = sample.length >> 1;
    // ±4 standard deviations of the sample median's rank.
    const d = Math.ceil(2 * Math.sqrt(sample.length));
    const lo = sample[Math.max(0, half - d)];
    const hi = sample[Math.min(sample.length - 1, half + d)];
    if (hi > lo && Number.isFinite(hi - lo)) {
      const v = medianInWindow(a, n, lo, hi);
      if (!Number.isNaN(v)) return v;
    }
  }
  return selectMedian(a);
}

/**
 * Median of a[0..n) (finite, n ≥ 2) if it lies in the window [lo, hi], else NaN; reorders a.
 * For windows holding a small fraction of the values: those below are only counted, those inside
 * binned, and the branches that test the window are rarely taken, so they predict well (a
 * clamped bin index, as in medianInRange, would mispredict on every value outside).
 */
function medianInWindow(a: Float64Array, n: number, lo: number, hi: number): number {
  const nb = MAX_BINS;
  const scale = nb / (hi - lo);
  const top = nb - 1;
  const hist = binCounts;
  hist.fill(0, 0, nb);
  let below = 0;
  // Both window compares are evaluated without branching (+bool): a short-circuit on v ≥ lo
  // would be a coin toss for the values around it.
  for (let i = 0; i < n; i++) {
    const v = a[i];
    below += +(v < lo);
    if ((+(v >= lo) & +(v <= hi)) !== 0) {
      const b = Math.floor((v - lo) * scale);
      hist[b < top ? b : top]++;
    }
  }
  const k = n >> 1;
  const kLo = n & 1 ? k : k - 1;
  let inside = 0;
  for (let b = 0; b < nb; b++) inside += hist[b];
  if (kLo < below || k >= below + inside) return NaN;
  let before = below;
  let b1 = 0;
  while (before + hist[b1] <= kLo) before += hist[b1++];
  let b2 = b1;
  let upTo = before + hist[b1];
  while (upTo <= k) upTo += hist[++b2];
  let m = 0;
  for (let i = 0; i < n; i++) {
    const v = a[i];
    if ((+(v >= lo) & +(v <= hi)) !== 0) {
      let b = Math.floor((v - lo) * scale);
      b = b < top ? b : top;
      if (b >= b1 && b <= b2) {
        a[i] = a[m];
        a[m++] = v;
      }
    }
  }
  const r2 = k - before;
  if (m <= 4096) a.subarray(0, m).sort();
  else selectInPlace(a, r2, 0, m - 1);
  const hiVal = a[r2];
  if (n & 1) return hiVal + 0;
  return midpoint(m <= 4096 ? a[r2 - 1] : maxOf(a, 0, r2), hiVal);
}

/** Arrays at least this long (float64) take the sampled route in medianInPlace. */
const SAMPLED_MEDIAN_MIN = 1 << 16;
const MEDIAN_SAMPLE = 4096;

/** Median by Floyd–Rivest selection, reordering a. */
function selectMedian(a: FloatArray): number {
  const n = a.length;
  const k = n >> 1;
  selectInPlace(a, k, 0, n - 1);
  if (n & 1) return a[k] + 0;
  // After selection every a[i<k] ≤ a[k], so the lower middle is the largest of them.
  return midpoint(maxOf(a, 0, k), a[k]);
}

/**
 * Exact median of a stream of finite values that are not kept, given a window [lo, hi] expected
 * to hold it (e.g. from a sample). The caller counts the values and those below lo (in locals:
 * counters on an object would make every value a read-modify-write of memory) and pushes those
 * inside; `result` is NaN when the median fell outside the window (all values are then needed).
 */
export class WindowMedian {
  private m = 0;
  private buf: Float64Array;

  constructor(
    readonly lo: number,
    readonly hi: number,
    expectedInside: number,
  ) {
    this.buf = new Float64Array(Math.max(1024, Math.ceil(expectedInside)));
  }

  /** Keep v, which lies in [lo, hi]. */
  push(v: number): void {
    if (this.m === this.buf.length) {
      const b = new Float64Array(2 * this.m);
      b.set(this.buf);
      this.buf = b;
    }
    this.buf[this.m++] = v;
  }

  /** Median of the n values streamed, `below` of them under lo; NaN if it is not among those kept. */
  result(n: number, below: number): number {
    const m = this.m;
    if (n === 0) return NaN;
    const k = n >> 1;
    const kLo = n & 1 ? k : k - 1;
    if (kLo < below || k >= below + m) return NaN;
    const a = this.buf.subarray(0, m);
    const r = k - below;
    selectInPlace(a, r, 0, m - 1);
    if (n & 1) return a[r] + 0;
    // Even n: r ≥ 1 (the lower middle is inside too), and it is the largest value before r.
    return midpoint(maxOf(a, 0, r), a[r]);
  }
}

/** Median of the selected finite values; NaN when none. */
export function median(values: FloatArray, opts?: MaskFilter): number {
  if (useRadix(values)) {
    const { mask, bad } = filterOf(values, opts);
    return radixMedian(values, mask, bad);
  }
  return medianInPlace(gather(values, opts));
}

/**
 * The q-quantile (0 ≤ q ≤ 1) with linear interpolation between order statistics at position
 * q·(n−1) (numpy's default 'linear' method, R type 7). NaN when nothing is selected.
 */
export function quantile(values: FloatArray, q: number, opts?: MaskFilter): number {
  if (!(q >= 0 && q <= 1)) throw new ImageError('BAD_ARGUMENT', `quantile must lie in [0, 1], got ${q}`);
  if (useRadix(values)) {
    const { mask, bad } = filterOf(values, opts);
    return radixQuantile(values, mask, bad, q);
  }
  const a = gather(values, opts);
  const n = a.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const t = h - lo;
  selectInPlace(a, lo, 0, n - 1);
  const vlo = a[lo];
  if (t === 0 || lo + 1 >= n) return vlo + 0;
  return lerp(vlo, minOf(a, lo + 1, n), t);
}

/** Median and median absolute deviation (about that median) from one copy of the data. */
export function medianAndMad(values: FloatArray, opts?: MaskFilter): { median: number; mad: number } {
  if (useRadix(values)) {
    // Median straight from the plane, then one float32 buffer of deviations. Rounding the
    // deviations to float32 is monotone, so the MAD is off by at most that rounding.
    const { mask, bad } = filterOf(values, opts);
    const med = radixMedian(values, mask, bad);
    if (Number.isNaN(med)) return { median: NaN, mad: NaN };
    const dev = new Float32Array(values.length);
    let n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v - v === 0 && (mask === undefined || (mask[i] & bad) === 0)) dev[n++] = Math.abs(v - med);
    }
    return { median: med, mad: medianInPlace(dev.subarray(0, n)) };
  }
  const a = gather(values, opts);
  const med = medianInPlace(a);
  if (a.length === 0) return { median: NaN, mad: NaN };
  // Reuse the scratch copy for the deviations; selection order does not matter to a median.
  for (let i = 0; i < a.length; i++) a[i] = Math.abs(a[i] - med);
  return { median: med, mad: medianInPlace(a) };
}

/** Median absolute deviation: median(|x − median(x)|). */
export function mad(values: FloatArray, opts?: MaskFilter): number {
  return medianAndMad(values, opts).mad;
}

/** 1.4826 × MAD: the σ of a Gaussian with that MAD, insensitive to outliers. */
export function robustStd(values: FloatArray, opts?: MaskFilter): number {
  return MAD_TO_SIGMA * medianAndMad(values, opts).mad;
}

// ---------------------------------------------------------------------------------------------
// Sigma clipping

function meanStdOf(a: FloatArray, n: number, ddof: number): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i];
  const m = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = a[i] - m;
    ss += d * d;
  }
  return { mean: m, std: n - ddof > 0 ? Math.sqrt(ss / (n - ddof)) : NaN };
}

/**
 * Iterative σ-clipping: each pass takes the median and std of the surviving values and drops
 * those with |x − median| > nSigma·std; it stops when a pass drops nothing, would drop everything,
 * or after maxIter passes. Returns mean, median and std (ddof as in `std`) of the survivors.
 */
export function sigmaClippedStats(values: FloatArray, opts?: SigmaClipOptions): ClippedStats {
  const nSigma = opts?.nSigma ?? 3;
  const maxIter = opts?.maxIter ?? 5;
  const ddof = checkDdof(opts?.ddof ?? 1);
  if (!(nSigma > 0)) throw new ImageError('BAD_ARGUMENT', `nSigma must be > 0, got ${nSigma}`);
  if (!Number.isInteger(maxIter) || maxIter < 0) {
    throw new ImageError('BAD_ARGUMENT', `maxIter must be a non-negative integer, got ${maxIter}`);
  }
  const a = gather(values, opts);
  let n = a.length;
  if (n === 0) return { mean: NaN, median: NaN, std: NaN, n: 0 };

  for (let iter = 0; iter < maxIter; iter++) {
    const s = meanStdOf(a, n, ddof).std;
    if (!(s > 0)) break; // one value, or all equal: nothing to clip against
    const med = medianInPlace(a.subarray(0, n));
    const limit = nSigma * s;
    let kept = 0;
    for (let i = 0; i < n; i++) if (Math.abs(a[i] - med) <= limit) kept++;
    if (kept === n || kept === 0) break;
    // Compact the survivors to the front; their order is irrelevant.
    let w = 0;
    for (let i = 0; i < n; i++) {
      const v = a[i];
      if (Math.abs(v - med) <= limit) a[w++] = v;
    }
    n = w;
  }

  const { mean: m, std: s } = meanStdOf(a, n, ddof);
  const med = medianInPlace(a.subarray(0, n));
  return { mean: m, median: med, std: s, n };
}
