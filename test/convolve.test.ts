/**
 * The fast convolution engine (core/convolve/spatial.ts) against the slow exact per-pixel
 * reference (core/convolve/reference.ts), on small images with strong spatial variation: the
 * issue's bound is max |fast − exact| ≤ 1e-4 of the local signal scale (Σ|K|·max|T| over the
 * footprint); the FFT engine is exact up to rounding, so the test holds it far tighter too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/sim/index.ts';
import { createMaskedImage, type MaskedImage } from '../core/image/masked-image.ts';
import { maskBit } from '../core/image/mask.ts';
import { chooseBasis, resolveKernelConfig, basisCount, kernelImageAt, type KernelSolution } from '../core/kernel/index.ts';
import { nSpatialTerms } from '../core/kernel/spatial.ts';
import { convolveReference } from '../core/convolve/reference.ts';
import { convolveSpatial, spatialKernelOf } from '../core/convolve/spatial.ts';
import { orWindow } from '../core/convolve/mask-window.ts';

/** A solution whose kernel changes strongly over the image: every basis coefficient varies by O(1). */
function strongSolution(width: number, height: number, order: number, fwhm: [number, number], seed: number, x0 = 0, y0 = 0): KernelSolution {
  const { spec } = chooseBasis(resolveKernelConfig(), fwhm[0], fwhm[1]);
  const r = new Rng(seed);
  const ns = nSpatialTerms(order);
  const nb = basisCount(spec);
  const kernelCoefficients = Array.from({ length: nb }, (_, i) => (i === 0 ? [1.07] : Array.from({ length: ns }, () => 0.3 * r.normal())));
  return {
    format: 'diffim-kernel-solution', version: 1, mode: 'convolveTemplate', basis: spec, basisMode: 'convolution',
    spatial: { type: 'chebyshev1', kernelOrder: order, bgOrder: 0, domain: { x0, y0, width, height } },
    kernelCoefficients, backgroundCoefficients: [], kernelSum: 1.07,
  } as unknown as KernelSolution;
}

function starField(width: number, height: number, seed: number, x0 = 0, y0 = 0): MaskedImage {
  const r = new Rng(seed);
  const mi = createMaskedImage(width, height, x0, y0);
  for (let i = 0; i < mi.image.length; i++) {
    mi.image[i] = 100 + 10 * r.normal();
    mi.variance[i] = 100 + 5 * r.uniform();
  }
  for (let s = 0; s < 30; s++) {
    const cx = r.uniform() * width;
    const cy = r.uniform() * height;
    const f = 1e4 * (1 + 20 * r.uniform());
    for (let y = Math.max(0, Math.floor(cy - 8)); y < Math.min(height, cy + 8); y++) {
      for (let x = Math.max(0, Math.floor(cx - 8)); x < Math.min(width, cx + 8); x++) {
        const v = (f * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 1.5 ** 2))) / (2 * Math.PI * 2.25);
        mi.image[y * width + x]! += v;
        mi.variance[y * width + x]! += v;
      }
    }
  }
  // Scattered mask bits (a bad column, saturated blobs) to check the OR over the footprint.
  for (let y = 0; y < height; y++) mi.mask[y * width + Math.floor(width / 3)] = maskBit('BAD');
  for (let k = 0; k < 12; k++) mi.mask[Math.floor(r.uniform() * mi.mask.length)]! |= maskBit('SAT');
  return mi;
}

function compare(ref: MaskedImage, sol: KernelSolution, blockSize?: number): { relImage: number; relVar: number; maskDiff: number } {
  const exact = convolveReference(ref, sol);
  const fast = convolveSpatial(ref, spatialKernelOf(sol), { blockSize });
  const size = sol.basis.size;
  const h = (size - 1) / 2;
  const { width: W, height: H } = ref;
  let relImage = 0;
  let relVar = 0;
  let maskDiff = 0;
  // Local max |T| and max V over the footprint: the signal scale of each output pixel.
  for (let y = h; y < H - h; y++) {
    for (let x = h; x < W - h; x++) {
      const k = kernelImageAt(sol, x + ref.x0, y + ref.y0);
      let sumAbs = 0;
      let sumSq = 0;
      for (const v of k) { sumAbs += Math.abs(v); sumSq += v * v; }
      let tMax = 0;
      let vMax = 0;
      for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) {
        const i = (y - v) * W + (x - u);
        tMax = Math.max(tMax, Math.abs(ref.image[i]!));
        vMax = Math.max(vMax, ref.variance[i]!);
      }
      const o = y * W + x;
      relImage = Math.max(relImage, Math.abs(fast.image[o]! - exact.image[o]!) / (sumAbs * tMax));
      relVar = Math.max(relVar, Math.abs(fast.variance[o]! - exact.variance[o]!) / (sumSq * vMax));
    }
  }
  for (let i = 0; i < W * H; i++) if (fast.mask[i] !== exact.mask[i]) maskDiff++;
  for (let i = 0; i < W * H; i++) assert.ok(Number.isFinite(fast.image[i]!) && Number.isFinite(fast.variance[i]!));
  if (process.env.DIFFIM_VERBOSE) console.log({ relImage, relVar, maskDiff });
  return { relImage, relVar, maskDiff };
}

test('fast = exact: order-2 kernel varying strongly, 150×97 image at a parent offset, kernel 21', () => {
  const ref = starField(150, 97, 1, 1000, 2000);
  const sol = strongSolution(150, 97, 2, [3.0, 4.5], 2, 1000, 2000);
  assert.equal(sol.basis.size, 21);
  const r = compare(ref, sol);
  assert.ok(r.relImage <= 1e-4, `image error ${r.relImage}`);
  assert.ok(r.relImage <= 1e-6, `image error ${r.relImage} (float32 rounding is ~6e-8)`);
  assert.ok(r.relVar <= 1e-6, `variance error ${r.relVar}`);
  assert.equal(r.maskDiff, 0);
});

test('fast = exact: several blocks (block 64 on a 200×180 image), domain larger than the image, order 1, wide kernel', () => {
  const ref = starField(200, 180, 3, 40, 60);
  const sol = strongSolution(1000, 800, 1, [2.5, 7.5], 4, 0, 0);
  assert.ok(sol.basis.size >= 29, `kernel size ${sol.basis.size}`);
  const r = compare(ref, sol, 64);
  assert.ok(r.relImage <= 1e-6 && r.relVar <= 1e-6, `errors ${r.relImage} ${r.relVar}`);
  assert.equal(r.maskDiff, 0);
});

test('fast = exact: spatially constant kernel (order 0), image smaller than a block', () => {
  const ref = starField(61, 45, 5);
  const sol = strongSolution(61, 45, 0, [3.0, 3.6], 6);
  const r = compare(ref, sol);
  assert.ok(r.relImage <= 1e-6 && r.relVar <= 1e-6, `errors ${r.relImage} ${r.relVar}`);
  assert.equal(r.maskDiff, 0);
});

test('mask OR over the window equals brute force, any half-width, at the borders too', () => {
  const r = new Rng(9);
  for (const [W, H, h] of [[37, 23, 3], [10, 50, 7], [64, 64, 0], [5, 5, 10]] as const) {
    const m = new Int32Array(W * H);
    for (let i = 0; i < m.length; i++) if (r.uniform() < 0.05) m[i] = 1 << Math.floor(r.uniform() * 14);
    const fast = orWindow(m, W, H, h);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      let acc = 0;
      for (let v = Math.max(0, y - h); v <= Math.min(H - 1, y + h); v++) for (let u = Math.max(0, x - h); u <= Math.min(W - 1, x + h); u++) acc |= m[v * W + u]!;
      assert.equal(fast[y * W + x], acc, `(${x}, ${y}) W ${W} H ${H} h ${h}`);
    }
  }
});
