/**
 * The WASM engine's 2-D FFT behind Fft2's conventions (interleaved complex Float64Arrays; spectra
 * in natural but transposed order, spec[kx][ky]; the inverse normalised by 1/n²), for tests and
 * benchmarks: it undoes the engine's bit-reversed, strip-major spectrum layout one value at a time.
 */
import { Arena, rowStride } from './arena.ts';
import { loadEngine, type EngineExports } from './loader.ts';

export class WasmFft2 {
  readonly n: number;
  private readonly rev: Int32Array;

  constructor(n: number) {
    const min = loadEngine().stripWidth();
    if (!(n >= min && (n & (n - 1)) === 0)) throw new RangeError(`FFT side must be a power of two ≥ ${min} (one strip), got ${n}`);
    this.n = n;
    const bits = Math.log2(n);
    this.rev = Int32Array.from({ length: n }, (_, i) => {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      return r;
    });
  }

  /** z: row-major complex image → its 2-D DFT, spec[kx][ky] (as Fft2.forward). */
  forward(z: Float64Array): Float64Array {
    const { n, rev } = this;
    const m = this.layout();
    const src = new Float64Array(m.mem, m.rowA, (n * m.rs) / 8);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        src[(y * m.rs) / 8 + x] = z[2 * (y * n + x)]!;
        src[(y * m.rs) / 8 + n + x] = z[2 * (y * n + x) + 1]!;
      }
    }
    m.eng.forward2d(m.rowA, m.rowB, m.spec);
    const s = new Float64Array(m.mem, m.spec, 2 * n * n);
    const out = new Float64Array(2 * n * n);
    for (let kx = 0; kx < n; kx++) {
      for (let ky = 0; ky < n; ky++) {
        const o = this.stripIndex(m.sw, rev[kx]!, rev[ky]!);
        out[2 * (kx * n + ky)] = s[o]!;
        out[2 * (kx * n + ky) + 1] = s[o + m.sw]!;
      }
    }
    return out;
  }

  /** spec[kx][ky] → the row-major complex image, normalised by 1/n² (as Fft2.inverse). */
  inverse(spec: Float64Array): Float64Array {
    const { n, rev } = this;
    const m = this.layout();
    const s = new Float64Array(m.mem, m.spec, 2 * n * n);
    for (let kx = 0; kx < n; kx++) {
      for (let ky = 0; ky < n; ky++) {
        const o = this.stripIndex(m.sw, rev[kx]!, rev[ky]!);
        s[o] = spec[2 * (kx * n + ky)]!;
        s[o + m.sw] = spec[2 * (kx * n + ky) + 1]!;
      }
    }
    m.eng.inverse2d(m.spec, m.rowA, 0, n);
    const dst = new Float64Array(m.mem, m.rowA, (n * m.rs) / 8);
    const out = new Float64Array(2 * n * n);
    const f = 1 / (n * n);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        out[2 * (y * n + x)] = dst[(y * m.rs) / 8 + x]! * f;
        out[2 * (y * n + x) + 1] = dst[(y * m.rs) / 8 + n + x]! * f;
      }
    }
    return out;
  }

  /** Float64 index of the real part of (row p, column i) in a strip-major buffer (the imaginary part is sw further). */
  private stripIndex(sw: number, p: number, i: number): number {
    return (Math.floor(i / sw) * this.n + p) * 2 * sw + (i % sw);
  }

  /** Memory is laid out afresh each call: blockConvolve may have used it in between. */
  private layout(): { eng: EngineExports; mem: ArrayBuffer; rs: number; sw: number; rowA: number; rowB: number; spec: number } {
    const { n } = this;
    const eng = loadEngine();
    const sw = eng.stripWidth();
    const arena = new Arena(eng);
    const rs = rowStride(n);
    const tw = arena.alloc(16 * n);
    const scratch = arena.alloc(16 * sw * n);
    const rowA = arena.alloc(n * rs);
    const rowB = arena.alloc(n * rs);
    const spec = arena.alloc(16 * n * n);
    const mem = arena.commit();
    eng.fftSetup(n, rs, tw, scratch);
    return { eng, mem, rs, sw, rowA, rowB, spec };
  }
}
