/**
 * OR of mask bits over a (2h+1)×(2h+1) window, the mask of a convolved pixel. Separable, and
 * each 1-D pass is van Herk / Gil–Werman: prefix and suffix ORs over blocks of the window length
 * w = 2h+1 give any window's OR in O(1) per pixel, whatever the kernel size. The vertical pass
 * works on whole rows (contiguous loops, a w-row window of prefix and suffix rows), not on
 * strided columns, which would miss the cache at every pixel.
 *
 * A clipped window [lo, hi] (hi − lo < w) lies in one block or in two adjacent ones. In two:
 * suf[lo] | pre[hi]. In one: lo is the block's start (→ pre[hi]) or hi is its end (→ suf[lo]).
 */

/** dst row = OR of src over [x − h, x + h] ∩ [0, W), for each of the H rows. */
function orRows(src: Int32Array, dst: Int32Array, W: number, H: number, h: number): void {
  const w = 2 * h + 1;
  const pre = new Int32Array(W);
  const suf = new Int32Array(W);
  for (let y = 0; y < H; y++) {
    const o = y * W;
    for (let b = 0; b < W; b += w) {
      const e = Math.min(b + w, W);
      let acc = 0;
      for (let i = b; i < e; i++) pre[i] = acc |= src[o + i]!;
      acc = 0;
      for (let i = e - 1; i >= b; i--) suf[i] = acc |= src[o + i]!;
    }
    const i0 = Math.min(h, W);
    const i1 = Math.max(i0, W - h);
    for (let i = i0; i < i1; i++) dst[o + i] = suf[i - h]! | pre[i + h]!;
    for (let i = 0; i < i0; i++) dst[o + i] = clipped(pre, suf, i, W, h, w);
    for (let i = i1; i < W; i++) dst[o + i] = clipped(pre, suf, i, W, h, w);
  }
}

function clipped(pre: Int32Array, suf: Int32Array, i: number, len: number, h: number, w: number): number {
  const lo = Math.max(0, i - h);
  const hi = Math.min(len - 1, i + h);
  const bl = Math.floor(lo / w);
  if (bl !== Math.floor(hi / w)) return suf[lo]! | pre[hi]!;
  return lo === bl * w ? pre[hi]! : suf[lo]!;
}

/** dst row y = OR of src rows [y − h, y + h] ∩ [0, H). */
function orCols(src: Int32Array, dst: Int32Array, W: number, H: number, h: number): void {
  const w = 2 * h + 1;
  // pre/suf rows of the one block each that the current output row needs (block indices only grow).
  const pre = new Int32Array(w * W);
  const suf = new Int32Array(w * W);
  let bp = -1;
  let bs = -1;
  for (let y = 0; y < H; y++) {
    const lo = Math.max(0, y - h);
    const hi = Math.min(H - 1, y + h);
    const bl = Math.floor(lo / w);
    const bh = Math.floor(hi / w);
    if (bh !== bp) {
      const b = bh * w;
      const e = Math.min(b + w, H);
      pre.set(src.subarray(b * W, (b + 1) * W), 0);
      for (let i = b + 1; i < e; i++) {
        const p = (i - b) * W;
        const s = i * W;
        for (let x = 0; x < W; x++) pre[p + x] = pre[p - W + x]! | src[s + x]!;
      }
      bp = bh;
    }
    if (bl !== bs) {
      const b = bl * w;
      const e = Math.min(b + w, H);
      suf.set(src.subarray((e - 1) * W, e * W), (e - 1 - b) * W);
      for (let i = e - 2; i >= b; i--) {
        const p = (i - b) * W;
        const s = i * W;
        for (let x = 0; x < W; x++) suf[p + x] = suf[p + W + x]! | src[s + x]!;
      }
      bs = bl;
    }
    const o = y * W;
    const sp = (lo - bl * w) * W;
    const pp = (hi - bh * w) * W;
    if (bl !== bh) for (let x = 0; x < W; x++) dst[o + x] = suf[sp + x]! | pre[pp + x]!;
    else if (lo === bl * w) dst.set(pre.subarray(pp, pp + W), o);
    else dst.set(suf.subarray(sp, sp + W), o);
  }
}

export function orWindow(mask: Int32Array, width: number, height: number, h: number): Int32Array {
  const out = new Int32Array(mask.length);
  if (h <= 0) { out.set(mask); return out; }
  const rows = new Int32Array(mask.length);
  orRows(mask, rows, width, height, h);
  orCols(rows, out, width, height, h);
  return out;
}
