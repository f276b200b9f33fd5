/**
 * Mesh background of a difference image: a statistic per square cell, a 3×3 median filter over
 * the cells (afw's doFilterSuperPixels: one bad cell does not dent the surface), then bilinear
 * interpolation between cell centres (constant beyond the outermost centres).
 *
 * Cells are anchored to the parent grid — cell (i, j) covers parent x in [i·bin, (i+1)·bin) — so
 * a tile that reads whole cells plus one ring of neighbours computes the same surface as the whole
 * exposure does over its core.
 */
import { medianInPlace } from '../image/stats.ts';

export interface MeshBackgroundInput {
  image: Float32Array;
  mask: Int32Array;
  width: number;
  height: number;
  x0: number;
  y0: number;
}

/** Cells with fewer usable pixels than this fraction are filled from their neighbours. */
const MIN_USABLE_FRACTION = 0.25;

/**
 * Background surface (width × height) from cell medians of pixels with none of `badBits`.
 * `exclude` (optional, same size) marks more pixels to skip (e.g. a temporary detection mask).
 */
export function meshBackground(mi: MeshBackgroundInput, binSize: number, badBits: number, exclude?: Uint8Array): Float32Array {
  const { image, mask, width: W, height: H, x0, y0 } = mi;
  const cx0 = Math.floor(x0 / binSize);
  const cy0 = Math.floor(y0 / binSize);
  const ncx = Math.floor((x0 + W - 1) / binSize) - cx0 + 1;
  const ncy = Math.floor((y0 + H - 1) / binSize) - cy0 + 1;
  const cells = new Float64Array(ncx * ncy).fill(NaN);
  const buf = new Float64Array(binSize * binSize);
  for (let j = 0; j < ncy; j++) {
    const ya = Math.max(0, (cy0 + j) * binSize - y0);
    const yb = Math.min(H, (cy0 + j + 1) * binSize - y0);
    for (let i = 0; i < ncx; i++) {
      const xa = Math.max(0, (cx0 + i) * binSize - x0);
      const xb = Math.min(W, (cx0 + i + 1) * binSize - x0);
      let n = 0;
      for (let y = ya; y < yb; y++) {
        const o = y * W;
        for (let x = xa; x < xb; x++) {
          const p = o + x;
          const v = image[p]!;
          if ((mask[p]! & badBits) !== 0 || !Number.isFinite(v) || (exclude !== undefined && exclude[p] !== 0)) continue;
          buf[n++] = v;
        }
      }
      if (n >= MIN_USABLE_FRACTION * binSize * binSize) cells[j * ncx + i] = medianInPlace(buf.subarray(0, n));
    }
  }
  const filtered = filterCells(cells, ncx, ncy);
  return interpolate(filtered, ncx, ncy, cx0, cy0, binSize, W, H, x0, y0);
}

/** 3×3 median over the finite neighbours; cells with none stay NaN, then get the global median. */
function filterCells(c: Float64Array, nx: number, ny: number): Float64Array {
  const out = new Float64Array(c.length);
  const nb = new Float64Array(9);
  const finite: number[] = [];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      let n = 0;
      for (let dj = -1; dj <= 1; dj++) {
        const jj = j + dj;
        if (jj < 0 || jj >= ny) continue;
        for (let di = -1; di <= 1; di++) {
          const ii = i + di;
          if (ii < 0 || ii >= nx) continue;
          const v = c[jj * nx + ii]!;
          if (!Number.isNaN(v)) nb[n++] = v;
        }
      }
      out[j * nx + i] = n > 0 ? medianInPlace(nb.subarray(0, n)) : NaN;
      if (n > 0) finite.push(out[j * nx + i]!);
    }
  }
  const fill = finite.length > 0 ? medianInPlace(Float64Array.from(finite)) : 0;
  for (let k = 0; k < out.length; k++) if (Number.isNaN(out[k]!)) out[k] = fill;
  return out;
}

/** Bilinear between cell centres (parent (i + ½)·bin − ½); clamped at the outermost centres. */
function interpolate(c: Float64Array, nx: number, ny: number, cx0: number, cy0: number, bin: number, W: number, H: number, x0: number, y0: number): Float32Array {
  const out = new Float32Array(W * H);
  const ix = new Int32Array(W);
  const fx = new Float64Array(W);
  for (let x = 0; x < W; x++) {
    const t = Math.min(nx - 1, Math.max(0, (x + x0 + 0.5) / bin - 0.5 - cx0));
    const i = Math.min(nx - 2, Math.floor(t));
    ix[x] = Math.max(0, i);
    fx[x] = nx === 1 ? 0 : t - Math.max(0, i);
  }
  for (let y = 0; y < H; y++) {
    const t = Math.min(ny - 1, Math.max(0, (y + y0 + 0.5) / bin - 0.5 - cy0));
    const j = Math.max(0, Math.min(ny - 2, Math.floor(t)));
    const fy = ny === 1 ? 0 : t - j;
    const r0 = j * nx;
    const r1 = ny === 1 ? r0 : r0 + nx;
    const o = y * W;
    for (let x = 0; x < W; x++) {
      const i = ix[x]!;
      const i1 = nx === 1 ? i : i + 1;
      const a = fx[x]!;
      const top = c[r0 + i]! * (1 - a) + c[r0 + i1]! * a;
      const bot = c[r1 + i]! * (1 - a) + c[r1 + i1]! * a;
      out[o + x] = top * (1 - fy) + bot * fy;
    }
  }
  return out;
}
