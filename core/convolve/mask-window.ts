/**
 * OR of mask bits over a (2h+1)×(2h+1) window, the mask of a convolved pixel. Separable, and
 * each 1-D pass is van Herk / Gil–Werman: prefix and suffix ORs over blocks of the window length
 * give any window's OR in O(1) per pixel, whatever the kernel size.
 */

/** out[i] = OR of src[off + (i−h)·stride … off + (i+h)·stride] clipped to [0, len). */
function orLine(src: Int32Array, dst: Int32Array, off: number, stride: number, len: number, h: number, pre: Int32Array, suf: Int32Array): void {
  const w = 2 * h + 1;
  for (let b = 0; b < len; b += w) {
    const e = Math.min(b + w, len);
    let acc = 0;
    for (let i = b; i < e; i++) { acc |= src[off + i * stride]!; pre[i] = acc; }
    acc = 0;
    for (let i = e - 1; i >= b; i--) { acc |= src[off + i * stride]!; suf[i] = acc; }
  }
  for (let i = 0; i < len; i++) {
    const lo = Math.max(0, i - h);
    const hi = Math.min(len - 1, i + h);
    // [lo, hi] spans at most two blocks: suffix of lo's block and prefix of hi's.
    dst[off + i * stride] = Math.floor(lo / w) === Math.floor(hi / w) ? orRange(src, off, stride, lo, hi) : suf[lo]! | pre[hi]!;
  }
}

function orRange(src: Int32Array, off: number, stride: number, lo: number, hi: number): number {
  let acc = 0;
  for (let i = lo; i <= hi; i++) acc |= src[off + i * stride]!;
  return acc;
}

export function orWindow(mask: Int32Array, width: number, height: number, h: number): Int32Array {
  const rows = new Int32Array(mask.length);
  const out = new Int32Array(mask.length);
  if (h <= 0) { out.set(mask); return out; }
  const n = Math.max(width, height);
  const pre = new Int32Array(n);
  const suf = new Int32Array(n);
  for (let y = 0; y < height; y++) orLine(mask, rows, y * width, 1, width, h, pre, suf);
  for (let x = 0; x < width; x++) orLine(rows, out, x, width, height, h, pre, suf);
  return out;
}
