/**
 * Square 2-D complex FFTs (side n, a power of two ≥ 4) in two memory layouts:
 *  - row-major "split rows": row r is n real parts then n imaginary parts, rows `rs` bytes apart
 *    (padded past 16·n so that the rows of one column do not all map to the same cache set);
 *  - strip-major (spectra): the columns are cut into strips of SW; strip s is n rows of one cache
 *    line each (SW re, then SW im), n·16·SW bytes, strips one after the other.
 *
 * Each 1-D pass runs down the columns a strip at a time: the strip sits in a small contiguous
 * buffer (the scratch, or its own place in a strip-major buffer) that stays in L1 while all stages
 * run; a first pass then writes it out transposed. One f64x2 holds two neighbouring columns and a
 * butterfly's twiddle is one scalar for the whole row, so the arithmetic needs no shuffles.
 * Loading and storing a strip is where the block engine (block.ts) fuses its spectrum products and
 * weighted accumulation, so that the big buffers are swept as few times as possible.
 *
 * Forward: radix-2² decimation in frequency (radix-4 butterflies whose middle outputs are swapped,
 * plus one radix-2 stage when log2 n is odd): natural order in, bit-reversed out. Inverse: the
 * same network run backwards (decimation in time, conjugate twiddles): bit-reversed in, natural
 * out, unnormalised (×n per pass). Spectra are therefore stored [rev(kx)][rev(ky)]; the engine only
 * multiplies them point by point, so the permutation is never undone.
 */

let n: i32 = 0;
/** Big-buffer row stride, bytes. */
let rs: usize = 0;
/** Byte offset of a big-buffer row's imaginary half (8·n). */
let imo: usize = 0;
/** Twiddles e^(−2πik/n), k < n, as (re, im) f64 pairs. */
let tw: usize = 0;
/** Scratch: one strip (n rows of SW re then SW im). */
let scr: usize = 0;

/** Strip width (columns), its bytes per half row, and the scratch row stride. */
const SW: i32 = 8;
const SB: usize = <usize>SW << 3;
const SRS: usize = SB << 1;

export function fftSide(): i32 {
  return n;
}
export function fftRowStride(): usize {
  return rs;
}
export function fftScratch(): usize {
  return scr;
}
export function stripWidth(): i32 {
  return SW;
}
/** Address of the strip holding column c (a multiple of SW) of a strip-major buffer. */
export function stripAt(buf: usize, c: i32): usize {
  return buf + <usize>(c / SW) * <usize>n * SRS;
}

/**
 * Set the side, the big-buffer row stride (bytes), the twiddle table (16·side bytes) and the
 * scratch (side·16·SW bytes) addresses, and fill the twiddle table.
 */
export function fftSetup(side: i32, rowStride: usize, twiddles: usize, scratch: usize): void {
  n = side;
  rs = rowStride;
  imo = <usize>side << 3;
  tw = twiddles;
  scr = scratch;
  for (let k = 0; k < side; k++) {
    const a = (-2 * Math.PI * <f64>k) / <f64>side;
    store<f64>(twiddles + (<usize>k << 4), Math.cos(a));
    store<f64>(twiddles + (<usize>k << 4), Math.sin(a), 8);
  }
}

// --- butterflies on rows p, p+ss, p+2ss, p+3ss of a strip, over `len` bytes of each half row.

@inline function cmr(xr: v128, xi: v128, wr: v128, wi: v128): v128 {
  return f64x2.sub(f64x2.mul(xr, wr), f64x2.mul(xi, wi));
}
@inline function cmi(xr: v128, xi: v128, wr: v128, wi: v128): v128 {
  return f64x2.add(f64x2.mul(xr, wi), f64x2.mul(xi, wr));
}
/** Re, Im of x·conj(w). */
@inline function cjr(xr: v128, xi: v128, wr: v128, wi: v128): v128 {
  return f64x2.add(f64x2.mul(xr, wr), f64x2.mul(xi, wi));
}
@inline function cji(xr: v128, xi: v128, wr: v128, wi: v128): v128 {
  return f64x2.sub(f64x2.mul(xi, wr), f64x2.mul(xr, wi));
}

/** Forward radix-4 butterflies, twiddles w^j (slot 2), w^2j (slot 1), w^3j (slot 3). */
function difRows(p: usize, ss: usize, len: usize, t1: usize, t2: usize, t3: usize): void {
  const w1r = v128.load64_splat(t1), w1i = v128.load64_splat(t1, 8);
  const w2r = v128.load64_splat(t2), w2i = v128.load64_splat(t2, 8);
  const w3r = v128.load64_splat(t3), w3i = v128.load64_splat(t3, 8);
  for (let o: usize = 0; o < len; o += 16) {
    const a = p + o, b = a + ss, c = b + ss, d = c + ss;
    const x0r = v128.load(a), x0i = v128.load(a, SB);
    const x1r = v128.load(b), x1i = v128.load(b, SB);
    const x2r = v128.load(c), x2i = v128.load(c, SB);
    const x3r = v128.load(d), x3i = v128.load(d, SB);
    const ar = f64x2.add(x0r, x2r), ai = f64x2.add(x0i, x2i);
    const br = f64x2.add(x1r, x3r), bi = f64x2.add(x1i, x3i);
    const cr = f64x2.sub(x0r, x2r), ci = f64x2.sub(x0i, x2i);
    const dr = f64x2.sub(x1r, x3r), di = f64x2.sub(x1i, x3i);
    v128.store(a, f64x2.add(ar, br));
    v128.store(a, f64x2.add(ai, bi), SB);
    const er = f64x2.sub(ar, br), ei = f64x2.sub(ai, bi);
    v128.store(b, cmr(er, ei, w2r, w2i));
    v128.store(b, cmi(er, ei, w2r, w2i), SB);
    // C − iD and C + iD.
    const ur = f64x2.add(cr, di), ui = f64x2.sub(ci, dr);
    v128.store(c, cmr(ur, ui, w1r, w1i));
    v128.store(c, cmi(ur, ui, w1r, w1i), SB);
    const vr = f64x2.sub(cr, di), vi = f64x2.add(ci, dr);
    v128.store(d, cmr(vr, vi, w3r, w3i));
    v128.store(d, cmi(vr, vi, w3r, w3i), SB);
  }
}

/** The same with all twiddles 1 (j = 0, and every butterfly of the last stage). */
function difRows0(p: usize, ss: usize, len: usize): void {
  for (let o: usize = 0; o < len; o += 16) {
    const a = p + o, b = a + ss, c = b + ss, d = c + ss;
    const x0r = v128.load(a), x0i = v128.load(a, SB);
    const x1r = v128.load(b), x1i = v128.load(b, SB);
    const x2r = v128.load(c), x2i = v128.load(c, SB);
    const x3r = v128.load(d), x3i = v128.load(d, SB);
    const ar = f64x2.add(x0r, x2r), ai = f64x2.add(x0i, x2i);
    const br = f64x2.add(x1r, x3r), bi = f64x2.add(x1i, x3i);
    const cr = f64x2.sub(x0r, x2r), ci = f64x2.sub(x0i, x2i);
    const dr = f64x2.sub(x1r, x3r), di = f64x2.sub(x1i, x3i);
    v128.store(a, f64x2.add(ar, br));
    v128.store(a, f64x2.add(ai, bi), SB);
    v128.store(b, f64x2.sub(ar, br));
    v128.store(b, f64x2.sub(ai, bi), SB);
    v128.store(c, f64x2.add(cr, di));
    v128.store(c, f64x2.sub(ci, dr), SB);
    v128.store(d, f64x2.sub(cr, di));
    v128.store(d, f64x2.add(ci, dr), SB);
  }
}

/** Inverse radix-4 butterflies: the forward ones run backwards with conjugate twiddles. */
function ditRows(p: usize, ss: usize, len: usize, t1: usize, t2: usize, t3: usize): void {
  const w1r = v128.load64_splat(t1), w1i = v128.load64_splat(t1, 8);
  const w2r = v128.load64_splat(t2), w2i = v128.load64_splat(t2, 8);
  const w3r = v128.load64_splat(t3), w3i = v128.load64_splat(t3, 8);
  for (let o: usize = 0; o < len; o += 16) {
    const a = p + o, b = a + ss, c = b + ss, d = c + ss;
    const x0r = v128.load(a), x0i = v128.load(a, SB);
    const x1r = v128.load(b), x1i = v128.load(b, SB);
    const x2r = v128.load(c), x2i = v128.load(c, SB);
    const x3r = v128.load(d), x3i = v128.load(d, SB);
    const br = cjr(x1r, x1i, w2r, w2i), bi = cji(x1r, x1i, w2r, w2i);
    const cr = cjr(x2r, x2i, w1r, w1i), ci = cji(x2r, x2i, w1r, w1i);
    const er = cjr(x3r, x3i, w3r, w3i), ei = cji(x3r, x3i, w3r, w3i);
    const fr = f64x2.add(x0r, br), fi = f64x2.add(x0i, bi);
    const gr = f64x2.sub(x0r, br), gi = f64x2.sub(x0i, bi);
    const pr = f64x2.add(cr, er), pi = f64x2.add(ci, ei);
    const mr = f64x2.sub(cr, er), mi = f64x2.sub(ci, ei);
    v128.store(a, f64x2.add(fr, pr));
    v128.store(a, f64x2.add(fi, pi), SB);
    v128.store(c, f64x2.sub(fr, pr));
    v128.store(c, f64x2.sub(fi, pi), SB);
    // (a − b) ± i(c − e)
    v128.store(b, f64x2.sub(gr, mi));
    v128.store(b, f64x2.add(gi, mr), SB);
    v128.store(d, f64x2.add(gr, mi));
    v128.store(d, f64x2.sub(gi, mr), SB);
  }
}

function ditRows0(p: usize, ss: usize, len: usize): void {
  for (let o: usize = 0; o < len; o += 16) {
    const a = p + o, b = a + ss, c = b + ss, d = c + ss;
    const x0r = v128.load(a), x0i = v128.load(a, SB);
    const x1r = v128.load(b), x1i = v128.load(b, SB);
    const x2r = v128.load(c), x2i = v128.load(c, SB);
    const x3r = v128.load(d), x3i = v128.load(d, SB);
    const fr = f64x2.add(x0r, x1r), fi = f64x2.add(x0i, x1i);
    const gr = f64x2.sub(x0r, x1r), gi = f64x2.sub(x0i, x1i);
    const pr = f64x2.add(x2r, x3r), pi = f64x2.add(x2i, x3i);
    const mr = f64x2.sub(x2r, x3r), mi = f64x2.sub(x2i, x3i);
    v128.store(a, f64x2.add(fr, pr));
    v128.store(a, f64x2.add(fi, pi), SB);
    v128.store(c, f64x2.sub(fr, pr));
    v128.store(c, f64x2.sub(fi, pi), SB);
    v128.store(b, f64x2.sub(gr, mi));
    v128.store(b, f64x2.add(gi, mr), SB);
    v128.store(d, f64x2.add(gr, mi));
    v128.store(d, f64x2.sub(gi, mr), SB);
  }
}

/** Radix-2 stage of span 1 (twiddle 1): the same in both directions. */
function rows2(base: usize, len: usize): void {
  for (let r = 0; r < n; r += 2) {
    const a = base + <usize>r * SRS;
    const b = a + SRS;
    for (let o: usize = 0; o < len; o += 16) {
      const x0r = v128.load(a + o), x0i = v128.load(a + o, SB);
      const x1r = v128.load(b + o), x1i = v128.load(b + o, SB);
      v128.store(a + o, f64x2.add(x0r, x1r));
      v128.store(a + o, f64x2.add(x0i, x1i), SB);
      v128.store(b + o, f64x2.sub(x0r, x1r));
      v128.store(b + o, f64x2.sub(x0i, x1i), SB);
    }
  }
}

/** One radix-4 stage of quarter span s (groups of 4s rows) on the strip at base. */
function stage4(base: usize, s: i32, len: usize, inverse: bool): void {
  const ss = <usize>s * SRS;
  const ts = <usize>(n / (s << 2)) << 4;
  for (let g = 0; g < n; g += s << 2) {
    const p = base + <usize>g * SRS;
    if (inverse) ditRows0(p, ss, len);
    else difRows0(p, ss, len);
    for (let j = 1; j < s; j++) {
      const t1 = tw + <usize>j * ts;
      const t2 = tw + <usize>(2 * j) * ts;
      const t3 = tw + <usize>(3 * j) * ts;
      const q = p + <usize>j * SRS;
      if (inverse) ditRows(q, ss, len, t1, t2, t3);
      else difRows(q, ss, len, t1, t2, t3);
    }
  }
}

/** Forward 1-D transforms of the columns of the strip at base (`len` bytes of each half row). */
export function difStrip(base: usize, len: usize): void {
  let q = n;
  for (; q >= 4; q >>= 2) stage4(base, q >> 2, len, false);
  if (q == 2) rows2(base, len);
}

/** Inverse (unnormalised) 1-D transforms of the strip's columns: bit-reversed in, natural out. */
export function ditStrip(base: usize, len: usize): void {
  let s = 1;
  if (ctz(n) & 1) {
    rows2(base, len);
    s = 2;
  }
  for (; s << 2 <= n; s <<= 2) stage4(base, s, len, true);
}

/** Strip buffer `to` ← columns [c, c + len/8) of a row-major buffer. */
export function loadStrip(src: usize, c: i32, len: usize, to: usize): void {
  const im = imo;
  const p = src + (<usize>c << 3);
  for (let r = 0; r < n; r++) {
    const s = p + <usize>r * rs;
    const d = to + <usize>r * SRS;
    for (let o: usize = 0; o < len; o += 16) {
      v128.store(d + o, v128.load(s + o));
      v128.store(d + o, v128.load(s + o + im), SB);
    }
  }
}

/** Columns [c, c + len/8) of a row-major buffer ← the scratch. */
export function storeStrip(dst: usize, c: i32, len: usize): void {
  const im = imo;
  const p = dst + (<usize>c << 3);
  for (let r = 0; r < n; r++) {
    const d = p + <usize>r * rs;
    const s = scr + <usize>r * SRS;
    for (let o: usize = 0; o < len; o += 16) {
      v128.store(d + o, v128.load(s + o));
      v128.store(d + o + im, v128.load(s + o, SB));
    }
  }
}

/** Row-major dst[c + k][r − r0] ← scratch[r][k] for rows r in [r0, r0 + nr) (nr even), columns k < len/8. */
export function storeStripT(dst: usize, c: i32, len: usize, r0: i32, nr: i32): void {
  const im = imo;
  for (let r = 0; r < nr; r += 2) {
    const s0 = scr + <usize>(r0 + r) * SRS;
    const s1 = s0 + SRS;
    const d = dst + <usize>c * rs + (<usize>r << 3);
    for (let o: usize = 0; o < len; o += 16) {
      const a = v128.load(s0 + o), b = v128.load(s1 + o);
      const ai = v128.load(s0 + o, SB), bi = v128.load(s1 + o, SB);
      const d0 = d + (o >> 3) * rs;
      const d1 = d0 + rs;
      v128.store(d0, f64x2.shuffle(a, b, 0, 2));
      v128.store(d1, f64x2.shuffle(a, b, 1, 3));
      v128.store(d0 + im, f64x2.shuffle(ai, bi, 0, 2));
      v128.store(d1 + im, f64x2.shuffle(ai, bi, 1, 3));
    }
  }
}

/** Row-major src[y][x] → strip-major dst[rev kx][rev ky], through the row-major tmp; src is kept. */
export function forward2d(src: usize, tmp: usize, dst: usize): void {
  for (let c = 0; c < n; c += SW) {
    loadStrip(src, c, SB, scr);
    difStrip(scr, SB);
    storeStripT(tmp, c, SB, 0, n);
  }
  for (let c = 0; c < n; c += SW) {
    const s = stripAt(dst, c);
    loadStrip(tmp, c, SB, s);
    difStrip(s, SB);
  }
}

/**
 * Strip-major src[rev kx][rev ky] → row-major dst[y][x − x0] for x in [x0, x0 + nx) (nx even),
 * unnormalised (×n²); src is kept. Only the nx needed columns go through the second pass.
 */
export function inverse2d(src: usize, dst: usize, x0: i32, nx: i32): void {
  for (let c = 0; c < n; c += SW) {
    memory.copy(scr, stripAt(src, c), <usize>n * SRS);
    ditStrip(scr, SB);
    storeStripT(dst, c, SB, x0, nx);
  }
  for (let c = 0; c < nx; c += SW) {
    const len = min(SB, <usize>(nx - c) << 3);
    loadStrip(dst, c, len, scr);
    ditStrip(scr, len);
    storeStrip(dst, c, len);
  }
}
