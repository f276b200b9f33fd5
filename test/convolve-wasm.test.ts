/**
 * The WASM block-convolution engine against the JS one (blockConvolveJs, on fft.js): the same
 * results to rounding — ≤ 1e-10 of each block's max |value|, compared before the final float32
 * rounding — over one and two input planes, odd image sizes, block sizes 64/256/512, kernel sizes
 * 11–35 and spatial orders 0–2; and the engine's 2-D FFT against a naive DFT and against fft.js.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/sim/index.ts';
import { blockSide, type BlockGrid, type ConvolutionJob } from '../core/convolve/block.ts';
import { blockConvolveJsF64 } from '../core/convolve/block-js.ts';
import { blockConvolveWasmF64 } from '../core/convolve/block-wasm.ts';
import { blockConvolve, blockConvolveJs, spatialJobs, type SpatialKernel } from '../core/convolve/spatial.ts';
import { Fft2 } from '../core/convolve/fft2d.ts';
import { WasmFft2 } from '../core/convolve/wasm/fft2.ts';
import { loadEngine } from '../core/convolve/wasm/loader.ts';

/** Sky ~100 with noise, plus bright stars: faint signal next to values 10⁴ times larger. */
function field(W: number, H: number, r: Rng, level = 100): Float32Array {
  const a = new Float32Array(W * H);
  for (let i = 0; i < a.length; i++) a[i] = level + 10 * r.normal();
  for (let s = 0; s < 12; s++) {
    const cx = r.uniform() * W;
    const cy = r.uniform() * H;
    const f = 1e6 * r.uniform();
    for (let y = Math.max(0, Math.floor(cy - 6)); y < Math.min(H, cy + 6); y++) {
      for (let x = Math.max(0, Math.floor(cx - 6)); x < Math.min(W, cx + 6); x++) a[y * W + x]! += f * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 4.5);
    }
  }
  return a;
}

/** A kernel varying strongly over the domain: a Gaussian core plus random terms of order ≤ `order`. */
function kernel(size: number, order: number, r: Rng, domain: BlockGrid['domain']): SpatialKernel {
  const h = (size - 1) / 2;
  const ns = ((order + 1) * (order + 2)) / 2;
  const terms = Array.from({ length: ns }, (_, s) => {
    const k = new Float64Array(size * size);
    for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) {
      k[(v + h) * size + (u + h)] = s === 0 ? Math.exp(-(u * u + v * v) / (2 * (h / 3) ** 2)) : 0.05 * r.normal() * Math.exp(-(u * u + v * v) / (2 * (h / 2) ** 2));
    }
    return k;
  });
  return { size, terms, type: 'chebyshev1', order, domain };
}

/** max over outputs and pixels of |wasm − js| / (max |js| over that pixel's block). */
function relativeError(js: Float64Array[], wasm: Float64Array[], W: number, H: number, size: number, blockSize?: number): number {
  const h = (size - 1) / 2;
  const L = blockSide(size, W, H, blockSize) - 2 * h;
  let worst = 0;
  for (let k = 0; k < js.length; k++) {
    const a = js[k]!;
    const b = wasm[k]!;
    for (let cy = h; cy < H - h; cy += L) for (let cx = h; cx < W - h; cx += L) {
      const y1 = Math.min(cy + L, H - h);
      const x1 = Math.min(cx + L, W - h);
      let max = 0;
      let diff = 0;
      for (let y = cy; y < y1; y++) for (let x = cx; x < x1; x++) {
        max = Math.max(max, Math.abs(a[y * W + x]!));
        diff = Math.max(diff, Math.abs(a[y * W + x]! - b[y * W + x]!));
      }
      if (max > 0) worst = Math.max(worst, diff / max);
    }
    // Outside the blocks (within h of the border) both engines leave zeros.
    for (let i = 0; i < W * H; i++) if (a[i] === 0) assert.equal(b[i], 0);
  }
  return worst;
}

interface Case { W: number; H: number; size: number; blockSize?: number; order: number; planes: 1 | 2 }

const cases: Case[] = [
  { W: 301, H: 157, size: 11, blockSize: 64, order: 0, planes: 1 },
  { W: 200, H: 181, size: 29, blockSize: 64, order: 1, planes: 2 },
  { W: 517, H: 389, size: 21, order: 1, planes: 2 },
  { W: 97, H: 603, size: 15, blockSize: 256, order: 2, planes: 1 },
  { W: 263, H: 611, size: 35, blockSize: 512, order: 2, planes: 2 },
  { W: 555, H: 123, size: 25, blockSize: 512, order: 0, planes: 2 },
];

for (const c of cases) {
  test(`wasm = js: ${c.W}×${c.H}, kernel ${c.size}, order ${c.order}, ${c.planes} plane(s), block ${c.blockSize ?? 'default'}`, () => {
    const r = new Rng(c.W * 1000 + c.H);
    const domain = { x0: -50, y0: 20, width: c.W + 300, height: c.H + 100 };
    const k = kernel(c.size, c.order, r, domain);
    const inputs = c.planes === 2 ? [field(c.W, c.H, r), field(c.W, c.H, r, 400)] : [field(c.W, c.H, r)];
    const jobs = spatialJobs(k, c.planes === 2);
    const args = [inputs, c.W, c.H, 17, -4, k, jobs, 2, c.blockSize] as const;
    const js = blockConvolveJsF64(...args);
    const wasm = blockConvolveWasmF64(...args);
    const err = relativeError(js, wasm, c.W, c.H, c.size, c.blockSize);
    assert.ok(err <= 1e-10, `relative error ${err}`);
    // The float32 outputs: the WASM engine rounds its own float64 values to nearest.
    const w32 = blockConvolve(...args);
    for (let t = 0; t < 2; t++) for (let i = 0; i < c.W * c.H; i++) {
      if (w32[t]![i] !== Math.fround(wasm[t]![i]!)) assert.fail(`output ${t} pixel ${i}: ${w32[t]![i]} vs fround(${wasm[t]![i]})`);
    }
  });
}

test('wasm = js: mixed job sources and targets (source 1 then 0 in one transform, three outputs), odd job count', () => {
  const r = new Rng(77);
  const W = 140;
  const H = 131;
  const size = 13;
  const grid: BlockGrid = { size, type: 'polynomial', order: 1, domain: { x0: 0, y0: 0, width: W, height: H } };
  const kern = () => Float64Array.from({ length: size * size }, () => r.normal());
  const jobs: ConvolutionJob[] = [
    { source: 1, kernel: kern(), target: 2, c: 1.5, ax: [1], ay: [0] },
    { source: 0, kernel: kern(), target: 0, c: 1, ax: [0], ay: [1] },
    { source: 1, kernel: kern(), target: 0, c: -2, ax: [1, 1], ay: [0, 1] },
  ];
  const inputs = [field(W, H, r), field(W, H, r)];
  const js = blockConvolveJsF64(inputs, W, H, 0, 0, grid, jobs, 3, 64);
  const wasm = blockConvolveWasmF64(inputs, W, H, 0, 0, grid, jobs, 3, 64);
  const err = relativeError(js, wasm, W, H, size, 64);
  assert.ok(err <= 1e-10, `relative error ${err}`);
  assert.ok(wasm[1]!.every((v) => v === 0), 'output 1 has no job: zeros');
});

test('wasm = js: a source-1 job with a single input reads a zero plane; images no wider than the kernel give zeros', () => {
  const r = new Rng(5);
  const grid: BlockGrid = { size: 11, type: 'polynomial', order: 0, domain: { x0: 0, y0: 0, width: 60, height: 50 } };
  const jobs: ConvolutionJob[] = [
    { source: 0, kernel: Float64Array.from({ length: 121 }, () => r.normal()), target: 0, c: 1, ax: [0], ay: [0] },
    { source: 1, kernel: Float64Array.from({ length: 121 }, () => r.normal()), target: 1, c: 1, ax: [0], ay: [0] },
  ];
  const inputs = [field(60, 50, r)];
  const js = blockConvolveJsF64(inputs, 60, 50, 0, 0, grid, jobs, 2);
  const wasm = blockConvolveWasmF64(inputs, 60, 50, 0, 0, grid, jobs, 2);
  const err = relativeError(js.slice(0, 1), wasm.slice(0, 1), 60, 50, 11);
  assert.ok(err <= 1e-10, `relative error ${err}`);
  // The zero plane's spectrum is rounding noise from splitting the packed one, in both engines.
  let max = 0;
  let noise = 0;
  for (let i = 0; i < 3000; i++) {
    max = Math.max(max, Math.abs(js[0]![i]!));
    noise = Math.max(noise, Math.abs(js[1]![i]!), Math.abs(wasm[1]![i]!));
  }
  assert.ok(noise <= 1e-13 * max, `zero plane gave ${noise}`);
  const tiny = blockConvolve([new Float32Array(10 * 40).fill(1)], 10, 40, 0, 0, grid, jobs.slice(0, 1), 1);
  assert.ok(tiny[0]!.every((v) => v === 0), 'an image 10 px wide has no pixel 5 px from both sides');
});

test('tiny blocks: a 1-px kernel on 4×3 and 7×6 images (N = 4 is left to the JS engine, N = 8 runs in WASM)', () => {
  const r = new Rng(8);
  for (const [W, H] of [[4, 3], [7, 6]] as const) {
    const grid: BlockGrid = { size: 1, type: 'polynomial', order: 1, domain: { x0: 0, y0: 0, width: W, height: H } };
    const jobs: ConvolutionJob[] = [
      { source: 0, kernel: Float64Array.of(1.5), target: 0, c: 1, ax: [1], ay: [0] },
      { source: 1, kernel: Float64Array.of(-2), target: 1, c: 1, ax: [0], ay: [1] },
    ];
    const inputs = [field(W, H, r), field(W, H, r)];
    const err = relativeError(blockConvolveJsF64(inputs, W, H, 0, 0, grid, jobs, 2), blockConvolveWasmF64(inputs, W, H, 0, 0, grid, jobs, 2), W, H, 1);
    assert.ok(err <= 1e-10, `${W}×${H}: relative error ${err}`);
  }
});

test('float32 outputs of the two engines agree to float32 rounding', () => {
  const r = new Rng(11);
  const W = 190;
  const H = 170;
  const k = kernel(19, 1, r, { x0: 0, y0: 0, width: W, height: H });
  const inputs = [field(W, H, r), field(W, H, r)];
  const jobs = spatialJobs(k, true);
  const a = blockConvolveJs(inputs, W, H, 0, 0, k, jobs, 2, 64);
  const b = blockConvolve(inputs, W, H, 0, 0, k, jobs, 2, 64);
  for (let t = 0; t < 2; t++) {
    let max = 0;
    for (const v of a[t]!) max = Math.max(max, Math.abs(v));
    for (let i = 0; i < W * H; i++) assert.ok(Math.abs(a[t]![i]! - b[t]![i]!) <= 2 ** -23 * Math.abs(a[t]![i]!) + 1e-10 * max, `output ${t} pixel ${i}`);
  }
});

test('engine memory is reused: repeating a call does not grow it', () => {
  const r = new Rng(3);
  const k = kernel(21, 1, r, { x0: 0, y0: 0, width: 300, height: 300 });
  const inputs = [field(300, 300, r), field(300, 300, r)];
  const jobs = spatialJobs(k, true);
  blockConvolve(inputs, 300, 300, 0, 0, k, jobs, 2);
  const bytes = loadEngine().memory.buffer.byteLength;
  blockConvolve(inputs, 300, 300, 0, 0, k, jobs, 2);
  blockConvolve(inputs.slice(0, 1), 300, 300, 0, 0, k, spatialJobs(k, false), 2);
  assert.equal(loadEngine().memory.buffer.byteLength, bytes);
});

/** Naive 2-D DFT of a row-major complex image, in Fft2's transposed order spec[kx][ky]. */
function naiveDft(z: Float64Array, n: number, sign: number): Float64Array {
  const out = new Float64Array(2 * n * n);
  for (let kx = 0; kx < n; kx++) for (let ky = 0; ky < n; ky++) {
    let re = 0;
    let im = 0;
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
      const a = (sign * 2 * Math.PI * (((kx * x + ky * y) % n) / n));
      const zr = z[2 * (y * n + x)]!;
      const zi = z[2 * (y * n + x) + 1]!;
      re += zr * Math.cos(a) - zi * Math.sin(a);
      im += zr * Math.sin(a) + zi * Math.cos(a);
    }
    out[2 * (kx * n + ky)] = re;
    out[2 * (kx * n + ky) + 1] = im;
  }
  return out;
}

function maxRel(a: Float64Array, b: Float64Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(a[i]!));
  }
  return d / m;
}

test('wasm 2-D FFT = naive DFT on 16² (forward and inverse)', () => {
  const n = 16;
  const r = new Rng(16);
  const z = Float64Array.from({ length: 2 * n * n }, () => r.normal());
  const f = new WasmFft2(n);
  const spec = f.forward(z);
  assert.ok(maxRel(naiveDft(z, n, -1), spec) <= 1e-13, `forward ${maxRel(naiveDft(z, n, -1), spec)}`);
  // Inverse: the naive sum over (kx, ky) of spec[kx][ky]·e^{+2πi(kx·x + ky·y)/n}, / n².
  const back = f.inverse(spec);
  const t = new Float64Array(2 * n * n); // spec as a row-major image indexed [kx][ky] → transpose to [ky][kx]
  for (let kx = 0; kx < n; kx++) for (let ky = 0; ky < n; ky++) {
    t[2 * (ky * n + kx)] = spec[2 * (kx * n + ky)]!;
    t[2 * (ky * n + kx) + 1] = spec[2 * (kx * n + ky) + 1]!;
  }
  const naive = naiveDft(t, n, 1); // [x][y]
  const expect = new Float64Array(2 * n * n);
  for (let x = 0; x < n; x++) for (let y = 0; y < n; y++) {
    expect[2 * (y * n + x)] = naive[2 * (x * n + y)]! / (n * n);
    expect[2 * (y * n + x) + 1] = naive[2 * (x * n + y) + 1]! / (n * n);
  }
  assert.ok(maxRel(expect, back) <= 1e-13, `inverse ${maxRel(expect, back)}`);
  assert.ok(maxRel(z, back) <= 1e-14, `round trip ${maxRel(z, back)}`);
});

test('wasm 2-D FFT = fft.js (Fft2) on 256²; round trips from 8² to 1024²', () => {
  const r = new Rng(256);
  const n = 256;
  const z = Float64Array.from({ length: 2 * n * n }, () => r.normal());
  const ref = new Fft2(n);
  const spec = ref.create();
  ref.forward(z, spec);
  const w = new WasmFft2(n);
  const ws = w.forward(z);
  assert.ok(maxRel(spec, ws) <= 1e-13, `forward ${maxRel(spec, ws)}`);
  const back = ref.create();
  ref.inverse(spec, back);
  assert.ok(maxRel(back, w.inverse(spec)) <= 1e-13, 'inverse');
  for (const m of [8, 32, 128, 512, 1024]) {
    const v = Float64Array.from({ length: 2 * m * m }, () => r.normal());
    const f = new WasmFft2(m);
    assert.ok(maxRel(v, f.inverse(f.forward(v))) <= 1e-13, `round trip ${m}`);
  }
});
