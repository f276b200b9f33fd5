/**
 * blockConvolve on the WASM engine (wasm/assembly/): same contract and results (to rounding) as
 * blockConvolveJs. Per call, JS lays memory out and sets up the kernel spectra and the jobs' 1-D
 * weights over the whole image; per block it only stages the input window (f32 rows, copied as
 * they are) and copies the f32 outputs back: transforms, products and accumulation run in WASM.
 */
import { basis1d, scaleToDomain } from '../kernel/spatial.ts';
import { blockSide, type BlockGrid, type ConvolutionJob } from './block.ts';
import { blockConvolveJs, blockConvolveJsF64 } from './block-js.ts';
import { Arena, rowStride } from './wasm/arena.ts';
import { loadEngine, releaseLargeMemory, type EngineExports } from './wasm/loader.ts';

export function blockConvolveWasm(
  inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): Float32Array[] {
  return run(Float32Array, inputs, W, H, x0, y0, grid, jobs, nOut, blockSize);
}

/** The same with Float64 outputs, read from the accumulators before rounding: for comparing engines closely. */
export function blockConvolveWasmF64(
  inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): Float64Array[] {
  return run(Float64Array, inputs, W, H, x0, y0, grid, jobs, nOut, blockSize);
}

/** One call's geometry and engine addresses. */
interface Layout {
  N: number;
  h: number;
  L: number;
  /** f32 output stage row length: L padded to even (the engine writes f64x2 pairs). */
  LA: number;
  /** Strip width and accumulator strips (the accumulators are strip-major: [k][x / SW][j][x % SW]). */
  SW: number;
  nStrips: number;
  planes: 1 | 2;
  spec: number[];
  xw: number[];
  yw: number[];
  inA: number;
  inB: number;
  acc: number;
  stage: number;
  jobTable: number;
  kern: number;
  mem: ArrayBuffer;
}

function run<T extends Float32Array | Float64Array>(
  Plane: new (n: number) => T, inputs: ReadonlyArray<Float32Array>, W: number, H: number, x0: number, y0: number,
  grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, nOut: number, blockSize?: number,
): T[] {
  const h = (grid.size - 1) / 2;
  const outs = Array.from({ length: nOut }, () => new Plane(W * H));
  if (W <= 2 * h || H <= 2 * h || jobs.length === 0) return outs;
  const N = blockSide(grid.size, W, H, blockSize);
  if (N < 4 || (N & (N - 1)) !== 0) throw new RangeError(`FFT side must be a power of two ≥ 4, got ${N}`);
  const eng = loadEngine();
  // Blocks narrower than one strip (N < 8: a 1-px kernel on a tiny image) are left to the JS engine.
  if (N < eng.stripWidth()) return (Plane === (Float64Array as unknown) ? blockConvolveJsF64 : blockConvolveJs)(inputs, W, H, x0, y0, grid, jobs, nOut, blockSize) as T[];
  // A source-1 job with one input reads a zero plane, as in the JS engine.
  const planes = inputs[1] || jobs.some((j) => j.source === 1) ? 2 : 1;
  const m = layout(eng, N, h, planes, jobs.length, nOut, W, H, grid.size);
  setUpJobs(eng, m, grid, jobs, W, H, x0, y0);
  runBlocks(eng, m, inputs, W, H, nOut, outs, (Plane as unknown) === Float64Array);
  releaseLargeMemory();
  return outs;
}

/** Allocate everything for the call (memory is reused from one call to the next) and hand the engine its addresses. */
function layout(eng: EngineExports, N: number, h: number, planes: 1 | 2, nJobs: number, nOut: number, W: number, H: number, size: number): Layout {
  const L = N - 2 * h;
  const LA = L + (L & 1);
  const SW = eng.stripWidth();
  const nStrips = Math.ceil(L / SW);
  const arena = new Arena(eng);
  const rs = rowStride(N);
  const tw = arena.alloc(16 * N);
  const scratch = arena.alloc(16 * SW * N);
  // Row-major: the kernels' source plane and the transforms' transposed intermediate. Strip-major
  // spectra: the block's packed one, its two halves (two planes only), one per job.
  const bz = arena.alloc(N * rs);
  const bx = arena.alloc(N * rs);
  const specBytes = 16 * N * N;
  const sz = arena.alloc(specBytes);
  const [sa, sb] = planes === 2 ? [arena.alloc(specBytes), arena.alloc(specBytes)] : [sz, sz];
  const spec = Array.from({ length: nJobs }, () => arena.alloc(specBytes));
  const inA = arena.alloc(4 * N * N);
  const inB = planes === 2 ? arena.alloc(4 * N * N) : inA;
  const acc = arena.alloc(8 * nOut * nStrips * SW * L);
  const stage = arena.alloc(4 * nOut * L * LA);
  const jobTable = arena.alloc(32 * nJobs);
  // Weights over the whole image, by column and row; columns padded with 2 zeros for the f64x2 tail.
  const xw = Array.from({ length: nJobs }, () => arena.alloc(8 * (W + 2)));
  const yw = Array.from({ length: nJobs }, () => arena.alloc(8 * H));
  const kern = arena.alloc(8 * size * size);
  const mem = arena.commit();
  eng.fftSetup(N, rs, tw, scratch);
  eng.blockSetup(bz, bx, sz, sa, sb, inA, inB, planes, acc, L, stage, LA, nOut, jobTable, nJobs, h);
  return { N, h, L, LA, SW, nStrips, planes, spec, xw, yw, inA, inB, acc, stage, jobTable, kern, mem };
}

/** Kernel spectra, the 1-D weights c·Πx[ax] and Πy[ay] over the image, and the job table. */
function setUpJobs(eng: EngineExports, m: Layout, grid: BlockGrid, jobs: ReadonlyArray<ConvolutionJob>, W: number, H: number, x0: number, y0: number): void {
  const { size, order } = grid;
  const { N, mem } = m;
  // The split doubles both spectra, and the inverse is unnormalised: both folded in here (powers of two: exact).
  const scale = (m.planes === 2 ? 0.5 : 1) / (N * N);
  const nb = order + 1;
  const bx = new Float64Array(W * nb);
  const by = new Float64Array(H * nb);
  for (let x = 0; x < W; x++) basis1d(grid.type, order, scaleToDomain(grid.domain, x + x0, 0)[0], bx, x * nb);
  for (let y = 0; y < H; y++) basis1d(grid.type, order, scaleToDomain(grid.domain, 0, y + y0)[1], by, y * nb);
  const table = new Int32Array(mem, m.jobTable, 8 * jobs.length);
  jobs.forEach((job, q) => {
    new Float64Array(mem, m.kern, size * size).set(job.kernel.subarray(0, size * size));
    eng.kernelSpectrum(m.kern, size, m.spec[q]!, scale);
    const xv = new Float64Array(mem, m.xw[q]!, W + 2).fill(0);
    for (let x = 0; x < W; x++) {
      let w = job.c;
      for (const pw of job.ax) w *= bx[x * nb + pw]!;
      xv[x] = w;
    }
    const yv = new Float64Array(mem, m.yw[q]!, H);
    for (let y = 0; y < H; y++) {
      let w = 1;
      for (const pw of job.ay) w *= by[y * nb + pw]!;
      yv[y] = w;
    }
    table.set([job.source, job.target, m.spec[q]!, m.xw[q]!, m.yw[q]!], 8 * q);
  });
}

/** Overlap-save over the blocks: stage each window, run the block in WASM, copy its outputs out. */
function runBlocks(
  eng: EngineExports, m: Layout, inputs: ReadonlyArray<Float32Array>, W: number, H: number, nOut: number,
  outs: Array<Float32Array | Float64Array>, f64: boolean,
): void {
  const { N, h, L, LA, SW, nStrips, mem } = m;
  const a = inputs[0]!;
  const b = inputs[1];
  const stA = new Float32Array(mem, m.inA, N * N);
  const stB = new Float32Array(mem, m.inB, N * N);
  if (m.planes === 2 && !b) stB.fill(0);
  const stage = new Float32Array(mem, m.stage, nOut * L * LA);
  const acc = new Float64Array(mem, m.acc, nOut * nStrips * SW * L);
  for (let cy = h; cy < H - h; cy += L) {
    const ly = Math.min(L, H - h - cy);
    for (let cx = h; cx < W - h; cx += L) {
      const lx = Math.min(L, W - h - cx);
      // Window from image (cx − h, cy − h): rows past the image are zeroed in WASM, columns here.
      const jmax = Math.min(N, H - (cy - h));
      const imax = Math.min(N, W - (cx - h));
      for (let j = 0; j < jmax; j++) {
        const src = (cy - h + j) * W + (cx - h);
        stA.set(a.subarray(src, src + imax), j * N);
        if (imax < N) stA.fill(0, j * N + imax, (j + 1) * N);
        if (b) {
          stB.set(b.subarray(src, src + imax), j * N);
          if (imax < N) stB.fill(0, j * N + imax, (j + 1) * N);
        }
      }
      eng.block(cx, cy, lx, ly, jmax);
      for (let k = 0; k < nOut; k++) {
        const o = outs[k]!;
        for (let j = 0; j < ly; j++) {
          const po = (cy + j) * W + cx;
          if (!f64) {
            const s = (k * L + j) * LA;
            o.set(stage.subarray(s, s + lx), po);
          } else {
            for (let i = 0; i < lx; i++) o[po + i] = acc[((k * nStrips + Math.floor(i / SW)) * L + j) * SW + (i % SW)]!;
          }
        }
      }
    }
  }
}
