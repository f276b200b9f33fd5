/**
 * Smooth sky background for detection: a σ-clipped median per cell of a grid anchored at parent
 * pixel (0, 0), bilinearly interpolated between cell centres. Anchoring the grid in parent
 * coordinates (not at the tile's corner) makes tiles of one exposure share cell boundaries, so
 * neighbouring tiles see the same background where their cells coincide.
 *
 * Also holds the small selection / clipped-statistics helpers used on scratch buffers by the star
 * finder (annulus skies): they work in place on a caller-owned buffer, so hot loops allocate
 * nothing per star or per cell.
 */
import { maskOf } from '../image/mask.ts';
import { medianInPlace, medianInRange } from '../image/stats.ts';
import type { MaskedImage } from '../image/masked-image.ts';
import { PsfError } from './errors.ts';

/** Pixels with these bits are not used for measurement (sky, moments) unless stated otherwise. */
export const DEFAULT_BAD_BITS = maskOf('BAD', 'SAT', 'NO_DATA', 'EDGE', 'CR', 'INTRP', 'SUSPECT');

export interface BackgroundOptions {
  /** Cell size in pixels (default 128). */
  cellSize?: number;
  /** Pixels with any of these bits are ignored (default DEFAULT_BAD_BITS). */
  badBits?: number;
  /**
   * Replace each cell by the median of its 3×3 neighbourhood (afw's doFilterSuperPixels): with
   * small cells (a difference image's 8 px) one cell's noise or a star residual does not dent the
   * surface. Default false.
   */
  filterCells?: boolean;
}

export interface Background {
  /** Background level per pixel (same layout as mi.image). */
  level: Float32Array;
  /** Typical per-pixel sky noise: median over cells of the clipped standard deviation (NaN if no cell had data). */
  rms: number;
}

/** Scratch buffers are always Float64Array: one element type keeps these hot functions monomorphic. */
type Buf = Float64Array;

/** Sample size for the starting point of clippedStats. */
const INITIAL_SAMPLE = 128;

/** Std of a Gaussian truncated at ±3σ is 0.98658σ: undo that shrinkage after 3σ clipping. */
const CLIP3_STD = 0.98658;

export interface Clipped {
  median: number;
  std: number;
  n: number;
}

/**
 * 3σ-clipped median and std of a[0..n) (finite values). Starts from the median and the MAD (a
 * plain std would be dominated by the stars in the cell), then clips at ±3σ about that median
 * (re-centred on the survivors' mean if it drifts by > σ/2) with σ the survivors' std, until
 * nothing changes; the median is that of the final survivors. Reorders a (survivors end up at
 * the front); `scratch` must hold n values.
 */
export function clippedStats(a: Buf, n: number, scratch: Buf, maxIter = 5): Clipped {
  return clipped(a, n, scratch, maxIter, NaN, NaN);
}

/**
 * clippedStats with a guess of the level and σ (e.g. the background mesh's): the same result,
 * faster when the guess is near (it only brackets the sample's median and MAD for medianInRange).
 */
export function clippedStatsNear(a: Buf, n: number, scratch: Buf, level: number, sigma: number): Clipped {
  return clipped(a, n, scratch, 5, level, sigma);
}

function clipped(a: Buf, n: number, scratch: Buf, maxIter: number, guess: number, guessSigma: number): Clipped {
  if (n <= 0) return { median: NaN, std: NaN, n: 0 };
  // The starting median and MAD only place the first clip window: an evenly spaced sample of
  // ≤ 2·INITIAL_SAMPLE values pins them to ~0.1σ at a fraction of the cost of a full selection.
  const step = Math.max(1, Math.floor(n / INITIAL_SAMPLE));
  let m = 0;
  for (let i = 0; i < n; i += step) scratch[m++] = a[i];
  const hinted = Number.isFinite(guess) && guessSigma > 0 && Number.isFinite(guessSigma);
  const med0 = hinted ? medianInRange(scratch, m, guess - 3 * guessSigma, guess + 3 * guessSigma) : medianInPlace(scratch.subarray(0, m));
  for (let i = 0; i < m; i++) scratch[i] = Math.abs(scratch[i] - med0);
  // |deviations| have their median (the MAD) near 0.67σ.
  let sigma = 1.4826 * (hinted ? medianInRange(scratch, m, 0, 2 * guessSigma) : medianInPlace(scratch.subarray(0, m)));
  if (!(sigma > 0)) {
    // Quantised data with more than half the values equal: fall back to the plain std.
    let s = 0;
    for (let i = 0; i < n; i++) s += (a[i] - med0) * (a[i] - med0);
    sigma = n > 1 ? Math.sqrt(s / (n - 1)) : 0;
    if (!(sigma > 0)) return { median: med0, std: 0, n };
  }
  // Clip about the initial median (robust already); only σ is iterated, one O(n) pass each
  // (sums taken about the centre, so no cancellation), then one final median of the survivors.
  let centre = med0;
  // The last clip window holds the survivors, so it brackets their median: medianInRange's hint.
  let winLo = centre - 3 * sigma;
  let winHi = centre + 3 * sigma;
  // Range of the survivors of the last pass, and whether the centre moved after it.
  let sMin = NaN;
  let sMax = NaN;
  let moved = true;
  for (let iter = 0; iter < maxIter; iter++) {
    const lo = centre - 3 * sigma;
    const hi = centre + 3 * sigma;
    winLo = lo;
    winHi = hi;
    // A pass that would keep every survivor, about the same centre, repeats the last pass's sums
    // value for value: σ would come out unchanged and the loop stop as stable. Skip it.
    if (iter > 0 && !moved && sMin >= lo && sMax <= hi) break;
    let w = 0;
    let s1 = 0;
    let s2 = 0;
    let vMin = Infinity;
    let vMax = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = a[i];
      if (v >= lo && v <= hi) {
        a[w++] = v;
        const d = v - centre;
        s1 += d;
        s2 += d * d;
        if (v < vMin) vMin = v;
        if (v > vMax) vMax = v;
      }
    }
    if (w < 3) break;
    const changed = w !== n;
    n = w;
    sMin = vMin;
    sMax = vMax;
    const newSigma = Math.sqrt(Math.max(0, s2 - (s1 * s1) / n) / (n - 1)) / CLIP3_STD;
    // Same survivors as the pass before: σ is already theirs.
    const stable = !changed && iter > 0;
    sigma = newSigma;
    if (stable || !(sigma > 0)) break;
    // Re-centre on the survivors' mean only when it has moved well off (a skewed cell).
    const mean = centre + s1 / n;
    moved = Math.abs(mean - centre) > 0.5 * sigma;
    if (moved) centre = mean;
  }
  return { median: medianInRange(a, n, winLo, winHi), std: sigma, n };
}

// ---------------------------------------------------------------------------------------------
// Background mesh

/** Fewest usable pixels for a cell to get its own value; emptier cells are filled from neighbours. */
const MIN_CELL_PIXELS = 16;

export function checkBadBits(badBits: number): number {
  if (!Number.isInteger(badBits)) throw new PsfError('BAD_ARGUMENT', `badBits must be an integer, got ${badBits}`);
  return badBits | 0;
}

export function checkPlanes(mi: MaskedImage): void {
  const n = mi.width * mi.height;
  if (!Number.isInteger(mi.width) || !Number.isInteger(mi.height) || mi.width < 0 || mi.height < 0) {
    throw new PsfError('BAD_ARGUMENT', `bad image size ${mi.width}×${mi.height}`);
  }
  if (mi.image.length !== n || mi.mask.length !== n || mi.variance.length !== n) {
    throw new PsfError('BAD_ARGUMENT', `planes do not match the image size ${mi.width}×${mi.height}`);
  }
}

export function estimateBackground(mi: MaskedImage, opts: BackgroundOptions = {}): Background {
  const mesh = backgroundMesh(mi, opts);
  const level = new Float32Array(mi.width * mi.height);
  const rowVals = new Float64Array(mesh.ncx);
  for (let y = 0; y < mi.height; y++) levelRow(mesh, y, level, y * mi.width, rowVals);
  return { level, rms: mesh.rms };
}

/**
 * The background as its cell grid: what estimateBackground interpolates, so a caller can take the
 * level a row or a pixel at a time (levelRow, levelAt) instead of holding a full plane.
 */
export interface BackgroundMesh {
  /** Cell values (ncx × ncy, empty cells filled); undefined when no cell had data (level 0). */
  grid: Float64Array | undefined;
  ncx: number;
  ncy: number;
  /** Parent cell index of grid column/row 0, and the cell size. */
  cx0: number;
  cy0: number;
  cs: number;
  x0: number;
  y0: number;
  width: number;
  height: number;
  rms: number;
}

export function backgroundMesh(mi: MaskedImage, opts: BackgroundOptions = {}): BackgroundMesh {
  checkPlanes(mi);
  const cs = opts.cellSize ?? 128;
  if (!Number.isInteger(cs) || cs < 4) throw new PsfError('BAD_ARGUMENT', `cellSize must be an integer ≥ 4, got ${cs}`);
  const bad = checkBadBits(opts.badBits ?? DEFAULT_BAD_BITS);
  const { width: w, height: h, image, mask } = mi;
  const empty: BackgroundMesh = { grid: undefined, ncx: 1, ncy: 1, cx0: 0, cy0: 0, cs, x0: mi.x0, y0: mi.y0, width: w, height: h, rms: NaN };
  if (w === 0 || h === 0) return empty;

  // Cells are [c·cs, (c+1)·cs) in parent coordinates.
  const cx0 = Math.floor(mi.x0 / cs);
  const cy0 = Math.floor(mi.y0 / cs);
  const ncx = Math.floor((mi.x0 + w - 1) / cs) - cx0 + 1;
  const ncy = Math.floor((mi.y0 + h - 1) / cs) - cy0 + 1;
  const grid = new Float64Array(ncx * ncy).fill(NaN);
  const sig = new Float64Array(ncx * ncy).fill(NaN);
  // Large cells are sampled on a regular lattice (anchored at parent 0,0 like the grid): ~4096
  // pixels pin a median to ~2 % of σ, and it keeps 16 Mpx well under a second.
  const stride = Math.max(1, Math.floor(Math.sqrt((cs * cs) / 4096)));
  const cap = Math.ceil(cs / stride) ** 2;
  const buf = new Float64Array(cap);
  const scratch = new Float64Array(cap);
  // First local coordinate ≥ from whose parent coordinate is a multiple of the stride.
  const first = (origin: number, from: number) => from + (((-(origin + from) % stride) + stride) % stride);

  let lastLevel = NaN;
  let lastSigma = NaN;
  for (let gy = 0; gy < ncy; gy++) {
    const ya = Math.max(0, (cy0 + gy) * cs - mi.y0);
    const yb = Math.min(h, (cy0 + gy + 1) * cs - mi.y0);
    for (let gx = 0; gx < ncx; gx++) {
      const xa = Math.max(0, (cx0 + gx) * cs - mi.x0);
      const xb = Math.min(w, (cx0 + gx + 1) * cs - mi.x0);
      let n = 0;
      for (let y = first(mi.y0, ya); y < yb; y += stride) {
        const row = y * w;
        for (let i = row + first(mi.x0, xa), e = row + xb; i < e; i += stride) {
          const v = image[i];
          if (v - v === 0 && (mask[i] & bad) === 0) buf[n++] = v;
        }
      }
      if (n < MIN_CELL_PIXELS) continue;
      // The last cell's level and σ are a good guess for this one (same result either way).
      const c = clipped(buf, n, scratch, 5, lastLevel, lastSigma);
      grid[gy * ncx + gx] = c.median;
      sig[gy * ncx + gx] = c.std;
      lastLevel = c.median;
      lastSigma = c.std;
    }
  }

  // rms: the median over cells, robust to a few cells sitting on a bright galaxy.
  const sigVals = new Float64Array(sig.length);
  let ns = 0;
  for (const s of sig) if (Number.isFinite(s)) sigVals[ns++] = s;
  const rms = medianInPlace(sigVals.subarray(0, ns));
  if (ns === 0) return empty;
  fillEmptyCells(grid, ncx, ncy);
  if (opts.filterCells) medianFilterCells(grid, ncx, ncy);
  return { grid, ncx, ncy, cx0, cy0, cs, x0: mi.x0, y0: mi.y0, width: w, height: h, rms };
}

// Bilinear between cell centres (parent c·cs + (cs−1)/2), constant beyond the outermost ones.
// Rows: weights per row. Columns: each row is piecewise linear in x, written as ramps between
// consecutive centres (one multiply-add per pixel). levelAt repeats the same arithmetic for one
// pixel, so both give the same float32 value.

/** Local x of the centre of grid column c. */
function centreX(m: BackgroundMesh, c: number): number {
  return (m.cx0 + c) * m.cs + (m.cs - 1) / 2 - m.x0;
}

/** The row's value at each grid column (`rowVals`, ncx long) for local row y. */
function rowValues(m: BackgroundMesh, grid: Float64Array, y: number, rowVals: Float64Array): void {
  const { ncx, ncy, cs } = m;
  const fy = (y + m.y0 - (m.cy0 * cs + (cs - 1) / 2)) / cs;
  let r0: number;
  let r1: number;
  let ty = 0;
  if (ncy === 1 || fy <= 0) r0 = r1 = 0;
  else if (fy >= ncy - 1) r0 = r1 = ncy - 1;
  else {
    r0 = Math.floor(fy);
    r1 = r0 + 1;
    ty = fy - r0;
  }
  for (let c = 0; c < ncx; c++) rowVals[c] = grid[r0 * ncx + c] + ty * (grid[r1 * ncx + c] - grid[r0 * ncx + c]);
}

/** Level of local row y into out[offset .. offset + width); `rowVals` is ncx-long scratch. */
export function levelRow(m: BackgroundMesh, y: number, out: Float32Array, offset: number, rowVals: Float64Array): void {
  const { grid, ncx, cs, width: w } = m;
  if (grid === undefined) {
    out.fill(0, offset, offset + w);
    return;
  }
  rowValues(m, grid, y, rowVals);
  // Left of the first centre: constant.
  let x = 0;
  const firstEnd = Math.min(w, Math.max(0, Math.floor(centreX(m, 0)) + 1));
  for (; x < firstEnd; x++) out[offset + x] = rowVals[0];
  for (let c = 0; c + 1 < ncx; c++) {
    const xs = centreX(m, c);
    const end = Math.min(w, Math.floor(centreX(m, c + 1)) + 1);
    const a = rowVals[c];
    const slope = (rowVals[c + 1] - a) / cs;
    for (; x < end; x++) out[offset + x] = a + (x - xs) * slope;
  }
  const last = rowVals[ncx - 1];
  for (; x < w; x++) out[offset + x] = last;
}

/** Level at local pixel (x, y), as levelRow writes it (float32); `rowVals` is ncx-long scratch. */
export function levelAt(m: BackgroundMesh, x: number, y: number, rowVals: Float64Array): number {
  const { grid, ncx, cs, width: w } = m;
  if (grid === undefined) return 0;
  rowValues(m, grid, y, rowVals);
  // levelRow's segments, in its order: the first one whose end lies beyond x holds it.
  if (x < Math.min(w, Math.max(0, Math.floor(centreX(m, 0)) + 1))) return Math.fround(rowVals[0]);
  for (let c = 0; c + 1 < ncx; c++) {
    if (x < Math.min(w, Math.floor(centreX(m, c + 1)) + 1)) {
      const a = rowVals[c];
      const slope = (rowVals[c + 1] - a) / cs;
      return Math.fround(a + (x - centreX(m, c)) * slope);
    }
  }
  return Math.fround(rowVals[ncx - 1]);
}

/** Give cells without enough data the mean of their filled neighbours, growing outwards. */
/** 3×3 median over each cell's neighbours inside the grid (all finite after fillEmptyCells). */
function medianFilterCells(grid: Float64Array, nx: number, ny: number): void {
  const src = grid.slice();
  const nb = new Float64Array(9);
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      let n = 0;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(ny - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(nx - 1, x + 1); xx++) nb[n++] = src[yy * nx + xx]!;
      }
      grid[y * nx + x] = medianInPlace(nb.subarray(0, n));
    }
  }
}

function fillEmptyCells(grid: Float64Array, nx: number, ny: number): void {
  for (;;) {
    let missing = 0;
    let filled = 0;
    const next = grid.slice();
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        if (Number.isFinite(grid[y * nx + x])) continue;
        missing++;
        let s = 0;
        let n = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            const yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= nx || yy >= ny) continue;
            const v = grid[yy * nx + xx];
            if (Number.isFinite(v)) {
              s += v;
              n++;
            }
          }
        }
        if (n > 0) {
          next[y * nx + x] = s / n;
          filled++;
        }
      }
    }
    grid.set(next);
    if (missing === 0 || filled === 0) return;
  }
}
