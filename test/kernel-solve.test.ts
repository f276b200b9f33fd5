/**
 * The kernel solution against truth: core/sim pairs whose matching kernel, background, variable
 * stars and noise are known. Tolerances are those of the issue and docs/METRICS.md (kernel sum
 * 0.1 %, kernel shape 2 % L2, background 1 % of the sky noise, std(z) within 0.05 of 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulatePair, type SimConfig, type SimResult } from '../core/sim/index.ts';
import {
  backgroundAt, buildRecords, fitKernel, kernelImageAt, KernelError, parseSolution, planFit, resolveKernelConfig,
  selectCandidates, serializeSolution, solveKernel, type KernelSolution, type SpatialDomain, mergeRecords,
  basisImages, nSpatialTerms, spatialEvaluator, solveSymmetric,
} from '../core/kernel/index.ts';
import { findStars } from '../core/psf/index.ts';
import { subImage, type MaskedImage } from '../core/image/masked-image.ts';
import { maskBit, maskOf } from '../core/image/mask.ts';
import { subtractReference } from '../core/convolve/reference.ts';
import { exclusionMask, noiseFidelity } from '../core/subtract/metrics.ts';
import { dataSpaceError, l2 } from './helpers/kernel-error.ts';

const SEEDS = [1, 2, 3];

function basePair(seed: number, size = 1024, extra: Partial<SimConfig> = {}): SimResult {
  return simulatePair({
    width: size, height: size, seed,
    nStars: Math.round((1300 * size * size) / 1024 ** 2),
    starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.10, sky: { level: 300 }, gain: 1, readNoise: 5 },
    ...extra,
  });
}

const GRID = [0.1, 0.5, 0.9];

function kernelErrors(sol: KernelSolution, sim: SimResult, W: number, H: number): number[] {
  const out: number[] = [];
  for (const fy of GRID) for (const fx of GRID) {
    const x = Math.round(fx * (W - 1));
    const y = Math.round(fy * (H - 1));
    const truth = sim.truth.matchingKernel(x, y, sol.basis.size)!;
    out.push(l2(kernelImageAt(sol, x, y), truth));
  }
  return out;
}

for (const seed of SEEDS) {
  test(`seed ${seed}: 2048², FWHM 3.0 → 4.5, flux ×1.10: kernel sum within 0.1 %, kernel within 2 % (L2) at 9 positions`, () => {
    const sim = basePair(seed, 2048);
    const sol = fitKernel(sim.science, sim.template);
    assert.equal(sol.mode, 'convolveTemplate');
    assert.equal(sol.basis.type, 'alard-lupton');
    const ks = sol.kernelSum;
    assert.ok(Math.abs(ks / sim.truth.fluxScale - 1) < 1e-3, `kernel sum ${ks} vs ${sim.truth.fluxScale}`);
    const errs = kernelErrors(sol, sim, 2048, 2048);
    assert.ok(Math.max(...errs) < 0.02, `kernel L2 errors ${errs.map((e) => e.toFixed(4)).join(' ')}`);
    assert.ok(sol.qa.nUsed >= 50, `used ${sol.qa.nUsed}`);
    assert.equal(sol.qa.solveMethod, 'cholesky');
  });
}

test('spatially varying PSF (science FWHM 3.5 → 5.5 across 2048²): the order-2 spatial model does the work', () => {
  const W = 2048;
  const sim = simulatePair({
    width: W, height: W, seed: 11, nStars: 3000,
    starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: (x: number) => 3.5 + (2.0 * x) / (W - 1) }, offset: [0.2, 0.1], fluxScale: 1.0, sky: { level: 300 }, gain: 1, readNoise: 5 },
  });
  const stars = findStars(sim.template);
  const at = (fx: number, fy: number) => [Math.round(fx * (W - 1)), Math.round(fy * (W - 1))] as const;
  const errors = (kAt: (x: number, y: number) => Float64Array, size: number) => {
    const raw: number[] = [];
    const data: number[] = [];
    for (const fy of GRID) for (const fx of GRID) {
      const [x, y] = at(fx, fy);
      const truth = sim.truth.matchingKernel(x, y, size)!;
      const k = kAt(x, y);
      raw.push(l2(k, truth));
      data.push(dataSpaceError(k, truth, sim.truth.psfImage('template', x, y, 15), size, 15));
    }
    return { raw, data };
  };
  const fit = (order: number) => {
    const sol = fitKernel(sim.science, sim.template, { config: { spatialKernelOrder: order }, stars });
    return { sol, ...errors((x, y) => kernelImageAt(sol, x, y), sol.basis.size) };
  };
  // Oracle, no images: the least-squares projection of the true kernel field (51×51 positions,
  // uniform over the exposure like the candidates) onto the fit's basis × Chebyshev spatial terms
  // of `order` (kernel 0, the flux scale, constant, as in the solution): what this model can reach.
  const oracle = (basis: KernelSolution['basis'], order: number) => {
    const B = basisImages(basis);
    const nb = B.length;
    const ns = nSpatialTerms(order);
    const n = 1 + (nb - 1) * ns;
    const col = (i: number, s: number) => (i === 0 ? (s === 0 ? 0 : -1) : 1 + (i - 1) * ns + s);
    const f = spatialEvaluator('chebyshev1', order, { x0: 0, y0: 0, width: W, height: W });
    const dot = (a: Float64Array, b: Float64Array) => { let t = 0; for (let p = 0; p < a.length; p++) t += a[p]! * b[p]!; return t; };
    // The basis Gram matrix does not depend on position: A = Σ_pos f fᵀ ⊗ G, so sum f fᵀ once.
    const S = new Float64Array(ns * ns);
    const rhs = new Float64Array(n);
    for (let j = 0; j <= 50; j++) for (let i = 0; i <= 50; i++) {
      const x = Math.round((i * (W - 1)) / 50);
      const y = Math.round((j * (W - 1)) / 50);
      const fs = f(x, y);
      const truth = sim.truth.matchingKernel(x, y, basis.size)!;
      for (let sa = 0; sa < ns; sa++) for (let sb = 0; sb < ns; sb++) S[sa * ns + sb]! += fs[sa]! * fs[sb]!;
      for (let a = 0; a < nb; a++) {
        const c = dot(B[a]!, truth);
        for (let sa = 0; sa < ns; sa++) { const ia = col(a, sa); if (ia >= 0) rhs[ia]! += fs[sa]! * c; }
      }
    }
    const A = new Float64Array(n * n);
    for (let a = 0; a < nb; a++) for (let b = 0; b < nb; b++) {
      const g = dot(B[a]!, B[b]!);
      for (let sa = 0; sa < ns; sa++) for (let sb = 0; sb < ns; sb++) {
        const ia = col(a, sa);
        const ib = col(b, sb);
        if (ia >= 0 && ib >= 0) A[ia * n + ib] = S[sa * ns + sb]! * g;
      }
    }
    const coef = solveSymmetric(A, rhs, n, 1e15).x;
    return errors((x, y) => {
      const fs = f(x, y);
      const k = new Float64Array(basis.size * basis.size);
      for (let a = 0; a < nb; a++) {
        let w = 0;
        for (let s = 0; s < ns; s++) { const ia = col(a, s); if (ia >= 0) w += coef[ia]! * fs[s]!; }
        for (let p = 0; p < k.length; p++) k[p]! += w * B[a]![p]!;
      }
      return k;
    }, basis.size);
  };
  const fmt = (a: number[]) => a.map((e) => (100 * e).toFixed(1)).join(' ');
  const varying = fit(2);
  const constant = fit(0);
  // Seen through the template PSF (what the difference image sees) the order-2 kernel is right to
  // 1 % everywhere; a constant kernel is off by > 10 % at the sides.
  assert.ok(Math.max(...varying.data) < 0.01, `order 2, data-space errors (%) ${fmt(varying.data)}`);
  assert.ok(Math.max(...constant.data) > 0.1, `order 0 should miss: ${fmt(constant.data)}`);
  // The model is adequate: the true kernel field projects onto this basis × order-2 Chebyshev
  // within 3 % raw L2 at all 9 positions (measured 1.8–2.0 %), onto order 0 not (14–55 %).
  const proj2 = oracle(varying.sol.basis, 2);
  const proj0 = oracle(varying.sol.basis, 0);
  assert.ok(Math.max(...proj2.raw) < 0.03, `order-2 projection of the truth, raw L2 (%) ${fmt(proj2.raw)}`);
  for (const i of [0, 2, 3, 5, 6, 8]) assert.ok(proj0.raw[i]! > 0.1, `order-0 projection should miss at the sides: ${fmt(proj0.raw)}`);
  // The fitted raw kernel is within 3 % where the kernel is resolved (middle column, σ_K ≈ 1.4 px;
  // measured 0.8–1.2 %) and within 6 % at x = 0.9W (σ_K ≈ 1.9 px; 3.9–4.7 %). At x = 0.1W
  // (σ_K ≈ 0.9 px) it is 13 %, and no Alard–Lupton fit of this pair tried got near 3 % there
  // (σ ladders from 0.7 to 0.9 px, degrees 2–6, with and without regularisation; not the model, see
  // the projection): 0.5–1 % of that kernel's ‖K‖² (7–10 % in L2) lies above ≈ 0.4 cycles/px, where the
  // template PSF's power transfer is below the candidates' template noise-to-signal ratio
  // (2e-5–1e-4). The Laplacian regularisation flattens that part (13.7 % in a noiseless fit);
  // without it, template noise shrinks it all the same (errors in variables: 8.5–9 % with a
  // noiseless science image) and science noise adds variance (8.5–12 % in all).
  for (const i of [1, 4, 7]) assert.ok(varying.raw[i]! < 0.03, `order 2 raw L2 (%) at the middle column: ${fmt(varying.raw)}`);
  for (const i of [2, 5, 8]) assert.ok(varying.raw[i]! < 0.06, `order 2 raw L2 (%) at x = 0.9W: ${fmt(varying.raw)}`);
  for (const i of [0, 2, 3, 5, 6, 8]) assert.ok(varying.raw[i]! < constant.raw[i]!, `order 2 beats order 0 at every side position: ${fmt(varying.raw)} vs ${fmt(constant.raw)}`);
});

test('background offset plus gradient recovered within 1 % of the sky noise', () => {
  for (const seed of [21, 22]) {
    const sim = basePair(seed, 2048, {
      template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, skySubtracted: true, gain: 1, readNoise: 5 },
      science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.10, sky: { level: 400, gradX: 0.05, gradY: -0.03 }, gain: 1, readNoise: 5 },
    });
    const sol = fitKernel(sim.science, sim.template, { config: { spatialBgOrder: 1 } });
    const skyNoise = Math.sqrt(400 + 150 * 1.1 ** 2 * 0 + 25); // science sky noise (ADU, gain 1)
    let worst = 0;
    for (const fy of GRID) for (const fx of GRID) {
      const x = fx * 2047;
      const y = fy * 2047;
      worst = Math.max(worst, Math.abs(backgroundAt(sol, x, y) - sim.truth.background(x, y)));
    }
    assert.ok(worst < 0.01 * skyNoise, `seed ${seed}: background error ${worst.toFixed(4)} ADU vs 1 % of sky noise ${(0.01 * skyNoise).toFixed(4)}`);
  }
});

test('variable stars are rejected by kernel-sum clipping; saturated and masked stars never become candidates', () => {
  const sim = basePair(31, 1024, {
    variables: { count: 60, minFactor: 1.3, maxFactor: 2.0 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.10, sky: { level: 300 }, gain: 1, readNoise: 5, saturation: 9000 },
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5, saturation: 20000 },
  });
  // A bad column and a masked block over some stars.
  const bad = maskBit('BAD');
  for (let y = 0; y < 1024; y++) sim.template.mask[y * 1024 + 500] |= bad;
  for (let y = 700; y < 800; y++) for (let x = 100; x < 300; x++) sim.science.mask[y * 1024 + x] |= bad;
  const sol = fitKernel(sim.science, sim.template);
  const near = (c: { x: number; y: number }, s: { x: number; y: number }) => Math.hypot(c.x - s.x, c.y - s.y) < 1.5;
  const variables = sim.truth.stars.filter((s) => s.variable);
  const varCands = sol.candidates.filter((c) => variables.some((v) => near(c, v)));
  assert.ok(varCands.length >= 5, `only ${varCands.length} variables among the candidates`);
  // A variable whose change is significant in its own kernel sum (> 5σ) and whose single kernel
  // fits (so it reaches the kernel-sum stage) is rejected there; none is ever used.
  let detectable = 0;
  for (const c of varCands) {
    assert.notEqual(c.status, 'used', `variable at (${c.x.toFixed(1)}, ${c.y.toFixed(1)}) was used`);
    const significant = Math.abs(c.kernelSum! - sim.truth.fluxScale) > 5 * c.kernelSumErr!;
    const fits = Math.abs(c.residualMean!) <= 0.25 && c.residualStd! <= 1.5;
    if (significant && fits) {
      detectable++;
      assert.equal(c.reason, 'kernel-sum outlier', `variable at (${c.x.toFixed(1)}, ${c.y.toFixed(1)}) kernel sum ${c.kernelSum} ± ${c.kernelSumErr}: ${c.status} ${c.reason}`);
    }
  }
  assert.ok(detectable >= 5, `only ${detectable} detectable variables reached kernel-sum clipping`);
  // Constant stars are not thrown away for their noise: few false rejections.
  const constRejected = sol.candidates.filter((c) => c.reason === 'kernel-sum outlier' && !variables.some((v) => near(c, v))).length;
  assert.ok(constRejected <= 0.03 * sol.candidates.length, `${constRejected} constant stars rejected by kernel-sum clipping of ${sol.candidates.length}`);
  // No candidate's stamp touches SAT or BAD in either image.
  const half = sol.basis.size;
  const badBits = maskOf('SAT', 'BAD', 'NO_DATA', 'EDGE');
  for (const c of sol.candidates) {
    const cx = Math.round(c.x);
    const cy = Math.round(c.y);
    for (let y = cy - half; y <= cy + half; y++) for (let x = cx - half; x <= cx + half; x++) {
      assert.ok(x >= 0 && y >= 0 && x < 1024 && y < 1024, `candidate ${c.id} stamp leaves the image`);
      assert.equal(sim.template.mask[y * 1024 + x]! & badBits, 0, `candidate ${c.id} stamp has a masked template pixel`);
      assert.equal(sim.science.mask[y * 1024 + x]! & badBits, 0, `candidate ${c.id} stamp has a masked science pixel`);
    }
  }
  let satStars = 0;
  for (const s of sim.truth.stars) {
    const i = Math.round(s.y) * 1024 + Math.round(s.x);
    if (i >= 0 && i < 1024 * 1024 && (sim.science.mask[i]! & maskBit('SAT'))) {
      satStars++;
      assert.ok(!sol.candidates.some((c) => near(c, s)), `saturated star at (${s.x}, ${s.y}) became a candidate`);
    }
  }
  assert.ok(satStars > 5, `the test needs saturated stars, got ${satStars}`);
  // Despite all that, the kernel sum is still right.
  assert.ok(Math.abs(sol.kernelSum / sim.truth.fluxScale - 1) < 1e-3, `kernel sum ${sol.kernelSum}`);
});

/** Pixels within 2×FWHM (or where the star is still above 0.05σ of the sky) of any source. */
function sourceMask(sim: SimResult, mi: MaskedImage, skySigma: number): Uint8Array {
  const s = 4.5 / 2.3548;
  const pos = [...sim.truth.stars, ...sim.truth.transients];
  return exclusionMask(mi, pos, (i) => {
    const p = pos[i]! as { flux: number };
    const peak = p.flux * 1.1 / (2 * Math.PI * s * s);
    const r = peak > 0.05 * skySigma ? s * Math.sqrt(2 * Math.log(peak / (0.05 * skySigma))) : 0;
    return Math.max(2 * 4.5, r);
  });
}

test('the difference is noise: robust std of D/√V over source-free pixels within 0.05 of 1', () => {
  for (const seed of [41, 42]) {
    const sim = basePair(seed, 512);
    const sol = fitKernel(sim.science, sim.template);
    const diff = subtractReference(sim.science, sim.template, sol);
    const q = noiseFidelity(diff, sourceMask(sim, diff, Math.sqrt(325)));
    assert.ok(q.n > 50000, `only ${q.n} source-free pixels`);
    assert.ok(Math.abs(q.robustStd - 1) < 0.05, `seed ${seed}: robust std(z) ${q.robustStd}`);
    assert.ok(Math.abs(q.mean) < 5 / Math.sqrt(q.n) + 0.02, `seed ${seed}: mean(z) ${q.mean}`);
  }
});

test('typed errors with counts: no stars, all saturated, fewer than 3 candidates', () => {
  const blank = simulatePair({
    width: 256, height: 256, seed: 5, nStars: 0, stars: [],
    template: { psf: { profile: 'gaussian', fwhm: 3 }, sky: { level: 100 } },
    science: { psf: { profile: 'gaussian', fwhm: 4 }, sky: { level: 100 } },
  });
  assert.throws(() => fitKernel(blank.science, blank.template), (e: unknown) => e instanceof KernelError && e.code === 'NO_STARS' && /\(.*\d/.test(e.message));

  const saturated = simulatePair({
    width: 256, height: 256, seed: 6, nStars: 40, starFlux: { min: 2e5, max: 5e5 }, border: 30,
    template: { psf: { profile: 'gaussian', fwhm: 3 }, sky: { level: 100 }, saturation: 2000 },
    science: { psf: { profile: 'gaussian', fwhm: 4 }, sky: { level: 100 }, saturation: 2000 },
  });
  assert.throws(() => fitKernel(saturated.science, saturated.template), (e: unknown) => {
    assert.ok(e instanceof KernelError, String(e));
    assert.equal(e.code, 'NO_STARS');
    assert.match(e.message, /saturated \d+/);
    return true;
  });

  // Two good stars only (PSFs given, as from a model): selection leaves 2 < 3.
  const two = simulatePair({
    width: 256, height: 256, seed: 7, nStars: 0, stars: [{ x: 80, y: 80, flux: 5e4 }, { x: 170, y: 170, flux: 5e4 }],
    template: { psf: { profile: 'gaussian', fwhm: 3 }, sky: { level: 100 } },
    science: { psf: { profile: 'gaussian', fwhm: 4 }, sky: { level: 100 } },
  });
  const shape = (f: number) => ({ fwhm: f, ixx: (f / 2.3548) ** 2, iyy: (f / 2.3548) ** 2 });
  assert.throws(() => fitKernel(two.science, two.template, { templatePsf: shape(3), sciencePsf: shape(4) }), (e: unknown) => {
    assert.ok(e instanceof KernelError, String(e));
    assert.equal(e.code, 'TOO_FEW_CANDIDATES');
    assert.match(e.message, /only 2 kernel candidate/);
    assert.equal(e.counts?.selected, 2);
    return true;
  });
  // Mismatched geometry.
  assert.throws(() => fitKernel(two.science, subImage(two.template, { x0: 0, y0: 0, width: 200, height: 256 })), (e: unknown) => e instanceof KernelError && e.code === 'BAD_INPUT');
});

test('records merged from any split of the image give the same solution as one fit (1e-9)', () => {
  const sim = basePair(51, 768);
  const config = resolveKernelConfig('default', { spatialKernelOrder: 2, spatialBgOrder: 1 });
  const domain: SpatialDomain = { x0: 0, y0: 0, width: 768, height: 768 };
  const stars = findStars(sim.template);
  const plan = planFit(config, domain, { fwhm: 3.0, ixx: 1.62, iyy: 1.62 }, { fwhm: 4.5, ixx: 3.65, iyy: 3.65 });
  const whole = selectCandidates(stars, sim.template, sim.science, plan.basis.size, domain, config);
  const ref = solveKernel(buildRecords(plan, sim.science, sim.template, whole.sites), plan);
  // Ragged split: cuts not aligned with the 128-px cells, tiles with an overlap of one stamp.
  const xs = [0, 211, 500, 768];
  const ys = [0, 333, 600, 768];
  const margin = plan.basis.size + 2;
  const parts = [];
  for (let j = 0; j < 3; j++) for (let i = 0; i < 3; i++) {
    const core = { x0: xs[i]!, y0: ys[j]!, width: xs[i + 1]! - xs[i]!, height: ys[j + 1]! - ys[j]! };
    const x0 = Math.max(0, core.x0 - margin);
    const y0 = Math.max(0, core.y0 - margin);
    const b = { x0, y0, width: Math.min(768, core.x0 + core.width + margin) - x0, height: Math.min(768, core.y0 + core.height + margin) - y0 };
    const t = subImage(sim.template, b);
    const s = subImage(sim.science, b);
    const sel = selectCandidates(stars, t, s, plan.basis.size, domain, config, core);
    parts.push(buildRecords(plan, s, t, sel.sites));
  }
  const merged = solveKernel(mergeRecords(...parts.reverse()), plan);
  const flat = (s: KernelSolution) => [...s.kernelCoefficients.flat(), ...s.backgroundCoefficients];
  const a = flat(ref);
  const b = flat(merged);
  const scale = Math.max(...a.map(Math.abs));
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-9 * scale, `coefficient ${i}: ${a[i]} vs ${b[i]}`);
  assert.equal(merged.qa.nUsed, ref.qa.nUsed);
});

test('solution JSON round trip is bit-identical; malformed solutions are refused', () => {
  const sim = basePair(61, 512);
  const sol = fitKernel(sim.science, sim.template);
  const text = serializeSolution(sol);
  const back = parseSolution(text);
  assert.equal(serializeSolution(back), text);
  for (const [x, y] of [[10, 10], [256.5, 100], [500, 480]] as const) {
    assert.deepEqual(kernelImageAt(back, x, y), kernelImageAt(sol, x, y));
    assert.equal(backgroundAt(back, x, y), backgroundAt(sol, x, y));
  }
  assert.ok(sol.candidates.some((c) => c.status === 'used'));
  assert.ok(sol.candidates.every((c) => c.status !== 'rejected' || typeof c.reason === 'string'));
  const bad = (t: string, re: RegExp) => assert.throws(() => parseSolution(t), (e: unknown) => e instanceof KernelError && e.code === 'BAD_SOLUTION' && re.test(e.message));
  bad('{', /not JSON/);
  bad('{"format":"x"}', /format/);
  const obj = JSON.parse(text);
  obj.kernelCoefficients.pop();
  bad(JSON.stringify(obj), /kernel coefficient rows/);
  const obj2 = JSON.parse(text);
  obj2.kernelCoefficients[3][0] = 'x';
  bad(JSON.stringify(obj2), /row 3/);
});
