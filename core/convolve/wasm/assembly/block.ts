/**
 * The per-block work of blockConvolve (see core/convolve/spatial.ts for the maths): the forward
 * transform of the block's one or two real input planes packed as one complex image, the split of
 * the packed spectrum, two jobs' spectrum products per inverse transform, the inverse of only the
 * output columns, and the weighted accumulation. Addresses come from the host (core/convolve/
 * block-wasm.ts lays memory out once per call); nothing is allocated here.
 *
 * Spectra (the block's and the kernels') are strip-major, so the inverse's first pass reads each
 * of them as one contiguous run; the accumulators are strip-major too (strips of SW columns, L
 * rows) for the same reason, and are turned into f32 rows once per block.
 */
import {
  difStrip, ditStrip, fftRowStride, fftScratch, fftSide, forward2d, loadStrip,
  storeStripT, stripAt, stripWidth,
} from './fft';

/** Row-major work buffers (n split rows, fftRowStride() apart). */
let bufZ: usize = 0;
let bufX: usize = 0;
/** Strip-major spectra: the packed one, and the two split ones. */
let specZ: usize = 0;
let specA: usize = 0;
let specB: usize = 0;
/** Staged input planes: n×n f32, row stride n. */
let inA: usize = 0;
let inB: usize = 0;
let planes: i32 = 1;
/** Accumulators: nOut planes, strip-major (⌈L/SW⌉ strips of accRows rows); f32 output stage: row-major, stageStride f32 per row. */
let acc: usize = 0;
let accRows: i32 = 0;
let outStage: usize = 0;
let stageStride: i32 = 0;
let nOut: i32 = 0;
/** Job table: 32 bytes each, i32 source, target, spectrum, xw, yw (see block-wasm.ts). */
let jobs: usize = 0;
let nJobs: i32 = 0;
let halfKernel: i32 = 0;

export function blockSetup(
  z: usize, x: usize, sz: usize, sa: usize, sb: usize, a: usize, b: usize, nPlanes: i32,
  accumulators: usize, rows: i32, stage: usize, stride: i32, outputs: i32,
  jobTable: usize, jobCount: i32, h: i32,
): void {
  bufZ = z;
  bufX = x;
  specZ = sz;
  specA = sa;
  specB = sb;
  inA = a;
  inB = b;
  planes = nPlanes;
  acc = accumulators;
  accRows = rows;
  outStage = stage;
  stageStride = stride;
  nOut = outputs;
  jobs = jobTable;
  nJobs = jobCount;
  halfKernel = h;
}

/** Bytes of one accumulator plane. */
function accPlane(): usize {
  const sw = stripWidth();
  return <usize>((accRows + sw - 1) / sw) * <usize>accRows * (<usize>sw << 3);
}

/**
 * The spectrum of a size×size kernel at k ([(v+h)·size + (u+h)] = K(u, v), f64) placed with K(0, 0)
 * at the origin, times `scale`, into the strip-major dst.
 */
export function kernelSpectrum(k: usize, size: i32, dst: usize, scale: f64): void {
  const n = fftSide();
  const rs = fftRowStride();
  const h = (size - 1) >> 1;
  memory.fill(bufZ, 0, <usize>n * rs);
  for (let v = -h; v <= h; v++) {
    const row = bufZ + <usize>((v + n) % n) * rs;
    for (let u = -h; u <= h; u++) {
      store<f64>(row + (<usize>((u + n) % n) << 3), load<f64>(k + (<usize>((v + h) * size + (u + h)) << 3)));
    }
  }
  forward2d(bufZ, bufX, dst);
  const f = f64x2.splat(scale);
  const end = dst + <usize>n * <usize>n * 16;
  for (let p = dst; p < end; p += 16) v128.store(p, f64x2.mul(v128.load(p), f));
}

/**
 * Scratch ← columns [c, c + SW) of the staged input (re: plane A, im: plane B or 0), rows < `rows`;
 * later rows are zero.
 */
function loadStaged(c: i32, rows: i32): void {
  const n = fftSide();
  const scr = fftScratch();
  const sb = <usize>stripWidth() << 3;
  const srs = sb << 1;
  const two = planes == 2;
  for (let r = 0; r < n; r++) {
    const d = scr + <usize>r * srs;
    if (r >= rows) {
      memory.fill(d, 0, srs);
      continue;
    }
    const off = <usize>(r * n + c) << 2;
    for (let o: usize = 0; o < sb; o += 16) {
      v128.store(d + o, f64x2.promote_low_f32x4(v128.load64_zero(inA + off + (o >> 1))));
      v128.store(d + o + sb, two ? f64x2.promote_low_f32x4(v128.load64_zero(inB + off + (o >> 1))) : f64x2.splat(0));
    }
  }
}

/** The index of −k's slot in a bit-reversed axis: a mirror inside each dyadic segment [2^m, 2^(m+1)). */
@inline function mirror(i: i32): i32 {
  if (i < 2) return i;
  const b = 1 << (31 - clz(i));
  return 3 * b - 1 - i;
}

@inline function swap(v: v128): v128 {
  return f64x2.shuffle(v, v, 1, 0);
}

/** 2Â = Z + conj Z(−k) at a, 2B̂ = −i(Z − conj Z(−k)) at b, from Z at z and M = Z(−k) at (mr, mi). */
@inline function splitPair(z: usize, a: usize, b: usize, im: usize, mr: v128, mi: v128): void {
  const zr = v128.load(z), zi = v128.load(z + im);
  v128.store(a, f64x2.add(zr, mr));
  v128.store(a + im, f64x2.sub(zi, mi));
  v128.store(b, f64x2.add(zi, mi));
  v128.store(b + im, f64x2.sub(mr, zr));
}

/**
 * Split the packed spectrum (strip-major, both axes bit-reversed) into 2Â and 2B̂; the factors 2
 * are folded into the kernel spectra. Along a bit-reversed axis −k mirrors k inside each dyadic
 * segment, so the partner of strip c ≥ SW is strip 3b − SW − c (b: the power of two ≤ c) with its
 * columns reversed; strip 0 holds slots 0 and 1 (their own partners) and whole small segments.
 */
function split(): void {
  const n = fftSide();
  const sw = stripWidth();
  const sb = <usize>sw << 3;
  const srs = sb << 1;
  for (let c = 0; c < n; c += sw) {
    const b = c >= sw ? 1 << (31 - clz(c)) : 0;
    const zs = stripAt(specZ, c), ms = stripAt(specZ, c >= sw ? 3 * b - sw - c : 0);
    const as = stripAt(specA, c), bs = stripAt(specB, c);
    for (let p = 0; p < n; p++) {
      const off = <usize>p * srs;
      const z = zs + off, a = as + off, bb = bs + off;
      const m = ms + <usize>mirror(p) * srs;
      if (c >= sw) {
        // Column pair (2k, 2k+1) ↔ the partner's pair counted from the other end, lanes swapped.
        for (let o: usize = 0; o < sb; o += 16) {
          const q = sb - 16 - o;
          splitPair(z + o, a + o, bb + o, sb, swap(v128.load(m + q)), swap(v128.load(m + q + sb)));
        }
        continue;
      }
      splitPair(z, a, bb, sb, v128.load(m), v128.load(m + sb));
      for (let g: usize = 16; g < sb; g <<= 1) {
        // Segment [g/8, g/4) of slots, bytes [g, 2g): pair at o ↔ pair at 3g − 16 − o, swapped.
        for (let o = g; o < g << 1; o += 16) {
          const q = g * 3 - 16 - o;
          splitPair(z + o, a + o, bb + o, sb, swap(v128.load(m + q)), swap(v128.load(m + q + sb)));
        }
      }
    }
  }
}

/**
 * Scratch ← the strip at column c of xa·ka + i·xb·kb (two jobs in one transform: both kernels are
 * real), or of xa·ka alone if kb = 0. All strip-major: each operand is one contiguous run.
 */
function loadProduct(c: i32, xa: usize, ka: usize, xb: usize, kb: usize): void {
  const n = fftSide();
  const scr = fftScratch();
  const sb = <usize>stripWidth() << 3;
  const len = <usize>n * (sb << 1);
  const pa = stripAt(xa, c), qa = stripAt(ka, c);
  if (kb == 0) {
    for (let o: usize = 0; o < len; o += sb << 1) {
      for (let k: usize = 0; k < sb; k += 16) {
        const i = o + k;
        const xr = v128.load(pa + i), xi = v128.load(pa + i + sb);
        const kr = v128.load(qa + i), ki = v128.load(qa + i + sb);
        v128.store(scr + i, f64x2.sub(f64x2.mul(xr, kr), f64x2.mul(xi, ki)));
        v128.store(scr + i + sb, f64x2.add(f64x2.mul(xr, ki), f64x2.mul(xi, kr)));
      }
    }
    return;
  }
  const pb = stripAt(xb, c), qb = stripAt(kb, c);
  for (let o: usize = 0; o < len; o += sb << 1) {
    for (let k: usize = 0; k < sb; k += 16) {
      const i = o + k;
      const xr = v128.load(pa + i), xi = v128.load(pa + i + sb);
      const kr = v128.load(qa + i), ki = v128.load(qa + i + sb);
      const yr = v128.load(pb + i), yi = v128.load(pb + i + sb);
      const lr = v128.load(qb + i), li = v128.load(qb + i + sb);
      const ar = f64x2.sub(f64x2.mul(xr, kr), f64x2.mul(xi, ki));
      const ai = f64x2.add(f64x2.mul(xr, ki), f64x2.mul(xi, kr));
      const br = f64x2.sub(f64x2.mul(yr, lr), f64x2.mul(yi, li));
      const bi = f64x2.add(f64x2.mul(yr, li), f64x2.mul(yi, lr));
      v128.store(scr + i, f64x2.sub(ar, bi));
      v128.store(scr + i + sb, f64x2.add(ai, br));
    }
  }
}

/**
 * Accumulator strip at column c, rows j < ly: += yw[j]·xw[k]·scratch[h + j][k] (part 0: real
 * halves, 1: imaginary), k < len/8; xw and yw point at the strip's first column and the block's
 * first row.
 */
function accumulateStrip(part: i32, c: i32, len: usize, target: usize, xw: usize, yw: usize, ly: i32): void {
  const scr = fftScratch();
  const sw = stripWidth();
  const sb = <usize>sw << 3;
  const srs = sb << 1;
  const src0 = scr + <usize>halfKernel * srs + (part == 1 ? sb : 0);
  const dst0 = target + <usize>(c / sw) * <usize>accRows * sb;
  for (let j = 0; j < ly; j++) {
    const wy = v128.load64_splat(yw + (<usize>j << 3));
    const src = src0 + <usize>j * srs;
    const dst = dst0 + <usize>j * sb;
    for (let o: usize = 0; o < len; o += 16) {
      const w = f64x2.mul(wy, v128.load(xw + o));
      v128.store(dst + o, f64x2.add(v128.load(dst + o), f64x2.mul(w, v128.load(src + o))));
    }
  }
}

@inline function job(q: i32, field: i32): i32 {
  return load<i32>(jobs + (<usize>q << 5) + (<usize>field << 2));
}

/**
 * One block: the input window is staged (rows < `rows`; columns past the image zero); the block's
 * central lx×ly outputs start at image (cx, cy) and go to the f32 output stage. Job weights xw, yw
 * are indexed by image column and row.
 */
export function block(cx: i32, cy: i32, lx: i32, ly: i32, rows: i32): void {
  const n = fftSide();
  const sw = stripWidth();
  const sb = <usize>sw << 3;
  const scr = fftScratch();
  const plane = accPlane();
  // Forward: first pass straight from the staged f32 rows, written transposed; the second pass
  // runs in place in the strip-major spectrum.
  for (let c = 0; c < n; c += sw) {
    loadStaged(c, rows);
    difStrip(scr, sb);
    storeStripT(bufX, c, sb, 0, n);
  }
  for (let c = 0; c < n; c += sw) {
    const s = stripAt(specZ, c);
    loadStrip(bufX, c, sb, s);
    difStrip(s, sb);
  }
  let ha = specZ, hb = specZ;
  if (planes == 2) {
    split();
    ha = specA;
    hb = specB;
  }
  memory.fill(acc, 0, plane * <usize>nOut);
  const nx = (lx + 1) & ~1;
  for (let q = 0; q < nJobs; q += 2) {
    const two = q + 1 < nJobs;
    const xa = job(q, 0) == 0 ? ha : hb;
    const xb = two && job(q + 1, 0) != 0 ? hb : ha;
    const ka = <usize>job(q, 2);
    const kb = two ? <usize>job(q + 1, 2) : 0;
    // Inverse: the products feed the first pass; only the block's output columns are kept, and
    // the second pass accumulates straight from the scratch.
    for (let c = 0; c < n; c += sw) {
      loadProduct(c, xa, ka, xb, kb);
      ditStrip(scr, sb);
      storeStripT(bufX, c, sb, halfKernel, nx);
    }
    for (let c = 0; c < nx; c += sw) {
      const len = min(sb, <usize>(nx - c) << 3);
      loadStrip(bufX, c, len, scr);
      ditStrip(scr, len);
      const parts = two ? 2 : 1;
      for (let part = 0; part < parts; part++) {
        const jq = q + part;
        const xw = <usize>job(jq, 3) + (<usize>(cx + c) << 3);
        const yw = <usize>job(jq, 4) + (<usize>cy << 3);
        accumulateStrip(part, c, len, acc + plane * <usize>job(jq, 1), xw, yw, ly);
      }
    }
  }
  // Strip-major f64 → row-major f32 (round to nearest, as a Float32Array store does).
  const stripBytes = <usize>accRows * sb;
  for (let k = 0; k < nOut; k++) {
    for (let j = 0; j < ly; j++) {
      const src = acc + plane * <usize>k + <usize>j * sb;
      const dst = outStage + (<usize>((k * accRows + j) * stageStride) << 2);
      for (let x = 0; x < nx; x += 2) {
        const v = v128.load(src + <usize>(x / sw) * stripBytes + (<usize>(x % sw) << 3));
        v128.store64_lane(dst + (<usize>x << 2), f32x4.demote_f64x2_zero(v), 0);
      }
    }
  }
}
