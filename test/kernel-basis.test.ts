/**
 * Unit checks of the kernel machinery against independent computations: the basis rules of
 * ip_diffim, records against a brute-force pixel fit, the linear algebra against exact answers,
 * configuration errors naming their key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/sim/index.ts';
import { createMaskedImage } from '../core/image/masked-image.ts';
import { FWHM_PER_SIGMA } from '../core/image/stats.ts';
import {
  basisCount, basisImages, chooseBasis, KernelError, RecordBuilder, resolveKernelConfig, residualStats,
  solveSymmetric, type BasisSpec, fitHalfWidth,
} from '../core/kernel/index.ts';
import { transformRecord } from '../core/kernel/record.ts';
import { basisTransform } from '../core/kernel/pca.ts';
import { regularizationMatrix } from '../core/kernel/regularize.ts';

/** Seeded uniforms from core/sim's generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform();
}

test('Alard–Lupton basis: 27 kernels, first sums to 1, others to 0 with unit norm', () => {
  const cfg = resolveKernelConfig();
  const { spec } = chooseBasis(cfg, 3.0, 4.5);
  assert.equal(basisCount(spec), 27);
  const imgs = basisImages(spec);
  assert.equal(imgs.length, 27);
  const sum = (a: Float64Array) => a.reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(sum(imgs[0]!) - 1) < 1e-12);
  for (let i = 1; i < imgs.length; i++) {
    assert.ok(Math.abs(sum(imgs[i]!)) < 1e-10, `kernel ${i} sums to ${sum(imgs[i]!)}`);
    const n2 = imgs[i]!.reduce((x, y) => x + y * y, 0);
    assert.ok(Math.abs(n2 - 1) < 1e-10, `kernel ${i} norm² ${n2}`);
  }
});

test('basis sigmas and kernel size follow ip_diffim rules', () => {
  const cfg = resolveKernelConfig();
  const { spec, basisMode } = chooseBasis(cfg, 3.0, 4.5);
  assert.equal(basisMode, 'convolution');
  assert.equal(spec.type, 'alard-lupton');
  if (spec.type !== 'alard-lupton') return;
  const sk = Math.sqrt((4.5 / FWHM_PER_SIGMA) ** 2 - (3.0 / FWHM_PER_SIGMA) ** 2);
  // Ladder β = 2 centred on σ_K, floored at 0.7.
  assert.ok(Math.abs(spec.sigmas[0]! - Math.max(0.7, sk / 2)) < 1e-12);
  assert.ok(Math.abs(spec.sigmas[1]! - spec.sigmas[0]! * 2) < 1e-12);
  assert.ok(Math.abs(spec.sigmas[2]! - spec.sigmas[0]! * 4) < 1e-12);
  assert.equal(spec.size, 21); // 6 × 2.8 → 17, clamped to 21
  // Wide kernels: size = 6σ_max made odd, clamped to 35.
  const wide = chooseBasis(cfg, 3.0, 12).spec as BasisSpec & { type: 'alard-lupton' };
  const expect = Math.min(35, Math.max(21, (Math.trunc(6 * wide.sigmas[2]!) | 1)));
  assert.equal(wide.size, expect);
  assert.equal(wide.size % 2, 1);
  // Deconvolution: floor 0.4 px.
  const dec = chooseBasis(cfg, 4.5, 4.4);
  assert.equal(dec.basisMode, 'deconvolution');
  assert.ok(Math.abs((dec.spec as { sigmas: number[] }).sigmas[0]! - 0.4) < 1e-12);
  // No FWHMs: configured sigmas and size.
  const c = chooseBasis(cfg);
  assert.equal(c.basisMode, 'config');
  assert.deepEqual((c.spec as { sigmas: number[] }).sigmas, [0.7, 1.5, 3.0]);
});

/** Brute-force record: columns by direct 2-D convolution of each basis image, sums over pixels. */
function bruteRecord(spec: BasisSpec, ref: ReturnType<typeof createMaskedImage>, tgt: ReturnType<typeof createMaskedImage>, cx: number, cy: number, q: number) {
  const imgs = basisImages(spec);
  const size = spec.size;
  const h = (size - 1) / 2;
  const fh = fitHalfWidth(size);
  const nc = imgs.length + 1;
  const M = new Float64Array(nc * nc);
  const B = new Float64Array(nc);
  const g = new Float64Array(nc);
  let yWy = 0;
  let s1 = 0;
  for (let y = cy - fh; y <= cy + fh; y++) {
    for (let x = cx - fh; x <= cx + fh; x++) {
      const c = new Float64Array(nc);
      imgs.forEach((img, k) => {
        let s = 0;
        for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) s += img[(v + h) * size + u + h]! * ref.image[(y - v) * ref.width + x - u]!;
        c[k] = s;
      });
      c[nc - 1] = 1;
      const w = 1 / (tgt.variance[y * tgt.width + x]! + q * ref.variance[y * ref.width + x]!);
      const yy = tgt.image[y * tgt.width + x]!;
      for (let a = 0; a < nc; a++) {
        for (let b = 0; b < nc; b++) M[a * nc + b]! += w * c[a]! * c[b]!;
        B[a]! += w * c[a]! * yy;
        g[a]! += Math.sqrt(w) * c[a]!;
      }
      yWy += w * yy * yy;
      s1 += Math.sqrt(w) * yy;
    }
  }
  return { M, B, g, yWy, s1 };
}

function randomPair(seed: number, n = 64) {
  const r = rng(seed);
  const ref = createMaskedImage(n, n);
  const tgt = createMaskedImage(n, n);
  for (let i = 0; i < n * n; i++) {
    ref.image[i] = 100 * r() - 20;
    tgt.image[i] = 100 * r() - 20;
    ref.variance[i] = 1 + r();
    tgt.variance[i] = 2 + r();
  }
  return { ref, tgt };
}

function relClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  let maxAbs = 0;
  for (let i = 0; i < b.length; i++) maxAbs = Math.max(maxAbs, Math.abs(b[i]!));
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * maxAbs, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

for (const spec of [
  { type: 'alard-lupton', size: 11, sigmas: [0.8, 1.6, 3.2], degrees: [4, 2, 2] },
  { type: 'delta-function', size: 5 },
  { type: 'images', size: 5, images: basisImages({ type: 'alard-lupton', size: 5, sigmas: [1, 2], degrees: [1, 0] }).map((a) => Array.from(a)) },
] as BasisSpec[]) {
  test(`record of a ${spec.type} basis equals the brute-force pixel sums`, () => {
    const { ref, tgt } = randomPair(7);
    const builder = new RecordBuilder(spec, true, 0.3);
    const rec = builder.build(ref, tgt, { id: 1, x: 32.2, y: 31.8, cx: 32, cy: 32, snr: 50, flux: 1, cell: 0 });
    const bf = bruteRecord(spec, ref, tgt, 32, 32, 0.3);
    relClose(rec.M, bf.M, 1e-11, 'M');
    relClose(rec.B, bf.B, 1e-11, 'B');
    relClose(rec.g, bf.g, 1e-11, 'g');
    assert.ok(Math.abs(rec.yWy - bf.yWy) <= 1e-11 * bf.yWy);
    assert.ok(Math.abs(rec.s1 - bf.s1) <= 1e-11 * Math.abs(bf.s1));
  });
}

test('residualStats from sufficient statistics equal the pixel residuals', () => {
  const { ref, tgt } = randomPair(11);
  const spec: BasisSpec = { type: 'alard-lupton', size: 7, sigmas: [1, 2], degrees: [2, 1] };
  const rec = new RecordBuilder(spec, true, 0.5).build(ref, tgt, { id: 1, x: 30, y: 30, cx: 30, cy: 30, snr: 1, flux: 1, cell: 0 });
  const a = Float64Array.from({ length: rec.nc }, (_, i) => Math.sin(i + 1));
  const st = residualStats(rec, a);
  // Direct: residual z over the fit region.
  const imgs = basisImages(spec);
  const h = 3;
  const fh = fitHalfWidth(7);
  const zs: number[] = [];
  for (let y = 30 - fh; y <= 30 + fh; y++) for (let x = 30 - fh; x <= 30 + fh; x++) {
    let model = a[rec.nc - 1]!;
    imgs.forEach((img, k) => {
      let s = 0;
      for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) s += img[(v + h) * 7 + u + h]! * ref.image[(y - v) * ref.width + x - u]!;
      model += a[k]! * s;
    });
    const w = 1 / (tgt.variance[y * 64 + x]! + 0.5 * ref.variance[y * 64 + x]!);
    zs.push(Math.sqrt(w) * (tgt.image[y * 64 + x]! - model));
  }
  const mean = zs.reduce((p, q) => p + q, 0) / zs.length;
  const std = Math.sqrt(zs.reduce((p, q) => p + (q - mean) ** 2, 0) / (zs.length - 1));
  assert.ok(Math.abs(st.mean - mean) < 1e-8 * Math.max(1, Math.abs(mean)), `${st.mean} vs ${mean}`);
  assert.ok(Math.abs(st.std - std) < 1e-8 * std, `${st.std} vs ${std}`);
});

test('transformRecord: a record re-expressed in a spanned basis gives the same fit residuals', () => {
  const { ref, tgt } = randomPair(3, 48);
  const df: BasisSpec = { type: 'delta-function', size: 5 };
  const rec = new RecordBuilder(df, true, 1).build(ref, tgt, { id: 1, x: 24, y: 24, cx: 24, cy: 24, snr: 1, flux: 1, cell: 0 });
  const newSpec: BasisSpec = { type: 'images', size: 5, images: basisImages({ type: 'alard-lupton', size: 5, sigmas: [1, 2], degrees: [1, 1] }).map((x) => Array.from(x)) };
  const T = basisTransform(basisImages(df), basisImages(newSpec));
  const tr = transformRecord(rec, T, 25, basisCount(newSpec), true);
  const direct = new RecordBuilder(newSpec, true, 1).build(ref, tgt, { id: 1, x: 24, y: 24, cx: 24, cy: 24, snr: 1, flux: 1, cell: 0 });
  relClose(tr.M, direct.M, 1e-9, 'M');
  relClose(tr.B, direct.B, 1e-9, 'B');
  relClose(tr.g, direct.g, 1e-9, 'g');
});

test('solveSymmetric: exact on a well-conditioned system, truncated on a rank-deficient one', () => {
  const n = 6;
  const r = rng(5);
  const X = Float64Array.from({ length: n * n }, () => r() - 0.5);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = 0; for (let k = 0; k < n; k++) s += X[k * n + i]! * X[k * n + j]!; A[i * n + j] = s + (i === j ? 0.5 : 0); }
  const xTrue = Float64Array.from({ length: n }, (_, i) => i - 2.5);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) b[i]! += A[i * n + j]! * xTrue[j]!;
  const s = solveSymmetric(A, b, n);
  assert.equal(s.method, 'cholesky');
  relClose(s.x, xTrue, 1e-10, 'x');
  assert.ok(s.condition > 1 && Number.isFinite(s.condition));
  // Rank-deficient: two identical columns; ml-matrix's LU called such a matrix non-singular.
  const R = Float64Array.from([2, 1, 1, 1, 1, 1, 1, 1, 1]);
  const rb = Float64Array.from([4, 2, 2]);
  const rs = solveSymmetric(R, rb, 3);
  assert.equal(rs.method, 'eigen-truncated');
  assert.equal(rs.rank, 2);
  // Minimum-norm solution x = (1, 1, 1)·… reproduces b.
  for (let i = 0; i < 3; i++) { let s2 = 0; for (let j = 0; j < 3; j++) s2 += R[i * 3 + j]! * rs.x[j]!; assert.ok(Math.abs(s2 - rb[i]!) < 1e-9); }
});

test('regularisation: smooth kernels cost little, a checkerboard a lot; border pixels are penalised', () => {
  const spec: BasisSpec = { type: 'delta-function', size: 9 };
  const H = regularizationMatrix(spec, { type: 'centralDifference', stencil: 9, orders: [], borderPenalty: 3 });
  const nb = 81;
  const imgs = basisImages(spec);
  // Coefficients of a given kernel image κ in the renormalised delta basis: a_0 = Σκ, a_k = √2 κ_k.
  const coef = (kappa: Float64Array) => {
    const a = new Float64Array(nb);
    a[0] = kappa.reduce((x, y) => x + y, 0);
    for (let k = 1; k < nb; k++) { const p = k - 1 < 40 ? k - 1 : k; a[k] = Math.SQRT2 * kappa[p]!; }
    return a;
  };
  const quad = (a: Float64Array) => { let s = 0; for (let i = 0; i < nb; i++) for (let j = 0; j < nb; j++) s += a[i]! * H[i * nb + j]! * a[j]!; return s; };
  const gauss = new Float64Array(81);
  const checker = new Float64Array(81);
  for (let y = 0; y < 9; y++) for (let x = 0; x < 9; x++) { gauss[y * 9 + x] = Math.exp(-((x - 4) ** 2 + (y - 4) ** 2) / 8); checker[y * 9 + x] = (x + y) % 2 ? 0.05 : -0.05; }
  // Sanity: coefficients reproduce the images.
  const back = new Float64Array(81);
  coef(gauss).forEach((a, k) => { for (let p = 0; p < 81; p++) back[p]! += a * imgs[k]![p]!; });
  relClose(back, gauss, 1e-12, 'kappa');
  const sg = quad(coef(gauss)) / gauss.reduce((x, y) => x + y * y, 0);
  const sc = quad(coef(checker)) / checker.reduce((x, y) => x + y * y, 0);
  assert.ok(sc > 20 * sg, `checkerboard ${sc} vs gaussian ${sg}`);
});

test('bad configuration values are refused with the key named', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ kernelSize: 20 }, /kernelSize: must be odd/],
    [{ alardDegGauss: [4, 2] }, /alardDegGauss: must list alardNGauss/],
    [{ spatialKernelOrder: -1 }, /spatialKernelOrder/],
    [{ nStarPerCell: 0 }, /nStarPerCell/],
    [{ badMaskPlanes: ['NOPE'] }, /badMaskPlanes: unknown mask plane/],
    [{ lambdaType: 'magic' }, /lambdaType: must be one of/],
    [{ notAKey: 1 }, /notAKey: is not a kernel configuration key/],
    [{ candidateSnrMax: 5 }, /candidateSnrMax: must exceed/],
  ];
  for (const [o, re] of bad) {
    assert.throws(() => resolveKernelConfig('default', o as never), (e: unknown) => e instanceof KernelError && e.code === 'BAD_CONFIG' && re.test(e.message), JSON.stringify(o));
  }
  assert.throws(() => resolveKernelConfig('nope' as never), /preset/);
  const snap = resolveKernelConfig('snap');
  assert.equal(snap.spatialKernelOrder, 0);
  assert.equal(snap.fitForBackground, false);
  assert.equal(resolveKernelConfig('delta-function').kernelBasisSet, 'delta-function');
});
