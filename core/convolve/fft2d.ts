/**
 * Square 2-D complex FFTs of side n (a power of two) on interleaved Float64Arrays, built on
 * fft.js's radix-4 1-D transform. Spectra are kept in TRANSPOSED order (row = x frequency): the
 * engine only multiplies spectra point by point, so skipping the transpose back saves a pass.
 */
import FFT from 'fft.js';

export function nextPow2(v: number): number {
  let p = 4;
  while (p < v) p *= 2;
  return p;
}

export class Fft2 {
  readonly n: number;
  private readonly f: FFT;
  private readonly lines: Float64Array[];
  private readonly buf: Float64Array;

  constructor(n: number) {
    if (!(n >= 4 && (n & (n - 1)) === 0)) throw new RangeError(`FFT side must be a power of two ≥ 4, got ${n}`);
    this.n = n;
    this.f = new FFT(n);
    this.lines = Array.from({ length: 8 }, () => new Float64Array(2 * n));
    this.buf = new Float64Array(2 * n * n);
  }

  /** Complex array of n² points (zeros). */
  create(): Float64Array {
    return new Float64Array(2 * this.n * this.n);
  }

  /**
   * The spectrum of a size×size kernel ([(v+h)·size + (u+h)] = K(u, v)) placed with K(0, 0) at the
   * origin (K(u, v) at ((u mod n), (v mod n))), so that a product of spectra is convolution by K.
   */
  kernelSpectrum(k: Float64Array, size: number): Float64Array {
    const { n } = this;
    const h = (size - 1) / 2;
    const z = this.create();
    for (let v = -h; v <= h; v++) {
      const row = ((v + n) % n) * n;
      for (let u = -h; u <= h; u++) z[2 * (row + ((u + n) % n))] = k[(v + h) * size + (u + h)]!;
    }
    const s = this.create();
    this.forward(z, s);
    return s;
  }

  /** z: row-major complex image (rows ≥ `rows` zero) → spec: its 2-D DFT in transposed order (spec[kx][ky]). */
  forward(z: Float64Array, spec: Float64Array, rows = this.n): void {
    this.pass(z, spec, false, 0, rows);
  }

  /** spec (transposed order) → z: the row-major complex image, normalised by 1/n²; only rows [y0, y1) are written. */
  inverse(spec: Float64Array, z: Float64Array, y0 = 0, y1 = this.n): void {
    this.pass(spec, z, true, 0, this.n, y0, y1);
  }

  /**
   * Transform rows [r0, r1) of `src` (others are zero: forward passes skip them), writing the
   * results transposed into buf, 8 rows at a time so the scatter touches whole cache lines; then
   * transform rows [o0, o1) of buf into dst (the inverse only needs the block's central rows).
   */
  private pass(src: Float64Array, dst: Float64Array, inv: boolean, r0 = 0, r1 = this.n, o0 = 0, o1 = this.n): void {
    const { n, f, lines, buf } = this;
    const n2 = 2 * n;
    if (r0 > 0 || r1 < n) buf.fill(0);
    for (let rb = r0; rb < r1; rb += 8) {
      const re = Math.min(r1, rb + 8);
      for (let r = rb; r < re; r++) {
        const row = src.subarray(r * n2, (r + 1) * n2);
        const line = lines[r - rb]!;
        if (inv) f.inverseTransform(line, row);
        else f.transform(line, row);
      }
      for (let c = 0; c < n; c++) {
        const o = c * n2 + 2 * rb;
        for (let r = rb; r < re; r++) {
          const line = lines[r - rb]!;
          buf[o + 2 * (r - rb)] = line[2 * c]!;
          buf[o + 2 * (r - rb) + 1] = line[2 * c + 1]!;
        }
      }
    }
    for (let r = o0; r < o1; r++) {
      const out = dst.subarray(r * n2, (r + 1) * n2);
      const row = buf.subarray(r * n2, (r + 1) * n2);
      if (inv) f.inverseTransform(out, row);
      else f.transform(out, row);
    }
  }
}
