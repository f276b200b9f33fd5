/**
 * The delta-function and snap presets against core/sim truth (tolerances from the brief and
 * docs/METRICS.md: source-free robust std(z) within 0.05 of 1, |mean z| < 5/√N).
 *
 * Figures measured when these tests were written (512², seeds 1–3 for delta-function, 1–4 for snap):
 *   delta-function, FWHM 3.0 → 4.5, ×1.10: kernel sum +0.06 / +0.07 / −0.08 %, std(z) 0.994–1.000,
 *     mean z −0.006 … +0.002; centre kernel L2 0.22–0.29 raw, 0.21–0.27 % seen through the template PSF.
 *   snap, FWHM 3.5 both, sub-pixel shift: kernel sum −0.02 … −0.11 % (×1.0 and ×0.9), std(z) 0.996–1.001;
 *     FWHM 3.0 → 4.0: sum +0.03 … +0.06 %, kernel L2 1.5–1.7 %.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulatePair, type EpochSpec, type SimResult } from '../core/sim/index.ts';
import { fitKernel, kernelImageAt, type KernelSolution } from '../core/kernel/index.ts';
import { subtractReference } from '../core/convolve/reference.ts';
import { sourceFreeFidelity, type NoiseFidelity } from '../core/subtract/metrics.ts';
import { dataSpaceError, l2 } from './helpers/kernel-error.ts';

const SIZE = 512;
const CENTRE = (SIZE - 1) / 2;

function simPair(seed: number, template: EpochSpec, science: EpochSpec): SimResult {
  return simulatePair({
    width: SIZE, height: SIZE, seed,
    nStars: Math.round((1300 * SIZE * SIZE) / 1024 ** 2), // 325
    starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
    template, science,
  });
}

/**
 * Difference by the exact reference convolution, judged over METRICS.md's source-free pixels:
 * robust std(z) within 0.05 of 1 and |mean z| < 5/√N, N the independent resolution elements
 * (z is correlated on the kernel's scale, ≈ one per FWHM²-disc), as test/subtract.test.ts does.
 */
function judgeDifference(name: string, sim: SimResult, sol: KernelSolution, fwhm: number): NoiseFidelity {
  const diff = subtractReference(sim.science, sim.template, sol);
  const q = sourceFreeFidelity(diff, sim.science, sim.template, fwhm);
  assert.ok(q.n > 50_000, `${name}: only ${q.n} source-free pixels`);
  assert.ok(Math.abs(q.robustStd - 1) < 0.05, `${name}: robust std(z) ${q.robustStd}`);
  const nIndep = q.n / (Math.PI * (fwhm / 2) ** 2);
  assert.ok(Math.abs(q.mean) < 5 / Math.sqrt(nIndep), `${name}: mean z ${q.mean} vs ${5 / Math.sqrt(nIndep)}`);
  return q;
}

const fmt = (x: number, d = 4) => x.toFixed(d);

test('delta-function preset, 512² FWHM 3.0 → 4.5, ×1.10: kernel sum, noise-true difference, kernel shape', () => {
  const sim = simPair(2,
    { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.10, sky: { level: 300 }, gain: 1, readNoise: 5 });
  const sol = fitKernel(sim.science, sim.template, { preset: 'delta-function' });
  // The fit is in the delta-function basis; the spatial solution is carried by its PCA images
  // (mean, joint-fit direction, principal components), so the solution's basis is 'images'.
  assert.equal(sol.config.kernelBasisSet, 'delta-function');
  assert.equal(sol.basisMode, 'delta-function+pca');
  assert.equal(sol.basis.type, 'images');
  assert.ok(sol.basis.type === 'images' && sol.basis.images.length <= sol.config.numPrincipalComponents + 1);
  assert.equal(sol.basis.size, 15);
  assert.ok(sol.qa.lambda > 0, 'Laplacian regularisation applied');
  assert.equal(sol.qa.solveMethod, 'cholesky');
  assert.ok(sol.qa.nUsed >= 50, `used ${sol.qa.nUsed}`);

  // Kernel sum within 0.5 % (the brief); measured +0.07 % here. Before the joint-fit anchor in the
  // PCA basis (core/kernel/solve.ts) this pair gave −1.19 % and mean z −0.16.
  const truth = sim.truth.fluxScale;
  assert.ok(Math.abs(sol.kernelSum / truth - 1) < 5e-3, `kernel sum ${sol.kernelSum} vs ${truth}`);

  const q = judgeDifference('delta-function', sim, sol, 4.5);

  // Kernel shape at the centre. Through the template PSF (what the difference image sees) the
  // kernel is right to 0.21 % (≤ 1 % asserted). The raw pixel L2 is 22 % (≤ 35 % asserted, a guard
  // against gross errors): delta-function pixels finer than the template PSF are not constrained
  // by the data, and the preset's light regularisation (lambdaScaling 1e-4) leaves them noisy.
  // Raising lambdaScaling to 3e-2 brings the raw L2 to 3–4 % on 3.0 → 4.5 pairs but costs accuracy
  // on narrow kernels (3.0 → 3.6: data-space error 0.2 % → 0.9 %), so the preset keeps 1e-4.
  const k = kernelImageAt(sol, CENTRE, CENTRE);
  const kTrue = sim.truth.matchingKernel(CENTRE, CENTRE, sol.basis.size)!;
  const raw = l2(k, kTrue);
  const seen = dataSpaceError(k, kTrue, sim.truth.psfImage('template', CENTRE, CENTRE, 15), sol.basis.size, 15);
  if (process.env.DIFFIM_VERBOSE) console.log('delta-function', { kernelSum: sol.kernelSum, raw, seen, std: q.robustStd, mean: q.mean, n: q.n });
  assert.ok(seen < 0.01, `data-space kernel error ${fmt(seen)}`);
  assert.ok(raw < 0.35, `raw kernel L2 ${fmt(raw)}`);

  // The raw excess is the regularisation-controlled part: with stronger regularisation the same
  // fit meets the 5 % raw L2 that the brief suggested, with the sum still right.
  const smooth = fitKernel(sim.science, sim.template, { preset: 'delta-function', config: { lambdaScaling: 3e-2 } });
  const rawSmooth = l2(kernelImageAt(smooth, CENTRE, CENTRE), kTrue);
  if (process.env.DIFFIM_VERBOSE) console.log('delta-function λ 3e-2', { kernelSum: smooth.kernelSum, raw: rawSmooth });
  assert.ok(rawSmooth < 0.05, `raw kernel L2 with lambdaScaling 3e-2: ${fmt(rawSmooth)}`);
  assert.ok(Math.abs(smooth.kernelSum / truth - 1) < 5e-3, `kernel sum with lambdaScaling 3e-2: ${smooth.kernelSum}`);
});

/** A sky-subtracted snap pair: snap fits no background, so the skies must be gone (or scale with the kernel sum). */
function snapPair(seed: number, fwhmTemplate: number, fwhmScience: number, fluxScale: number): SimResult {
  return simPair(seed,
    { psf: { profile: 'gaussian', fwhm: fwhmTemplate }, sky: { level: 200 }, skySubtracted: true, gain: 1, readNoise: 5 },
    { psf: { profile: 'gaussian', fwhm: fwhmScience }, offset: [0.31, -0.23], fluxScale, sky: { level: 200 }, skySubtracted: true, gain: 1, readNoise: 5 });
}

function checkSnapShape(name: string, sol: KernelSolution): void {
  assert.equal(sol.config.spatialKernelOrder, 0);
  assert.equal(sol.spatial.kernelOrder, 0, `${name}: spatial order`);
  // A single kernel: every basis coefficient is one constant.
  assert.ok(sol.kernelCoefficients.every((row) => row.length === 1), `${name}: spatially varying coefficients`);
  assert.deepEqual(sol.backgroundCoefficients, [], `${name}: background fitted`);
  assert.equal(sol.config.fitForBackground, false);
  assert.equal(sol.basis.type, 'alard-lupton');
  assert.equal(sol.basis.size, 11);
  assert.equal(sol.qa.solveMethod, 'cholesky');
  assert.ok(sol.qa.nUsed >= 50, `${name}: used ${sol.qa.nUsed}`);
  // Same kernel anywhere in the image.
  assert.deepEqual(kernelImageAt(sol, 20, 30), kernelImageAt(sol, SIZE - 20, SIZE - 40));
}

test('snap preset, same PSF (FWHM 3.5), sub-pixel shift, flux ×1.0 and ×0.9: sum within 0.2 %, one kernel, no background', () => {
  for (const flux of [1.0, 0.9]) {
    const name = `snap ×${flux}`;
    const sim = snapPair(2, 3.5, 3.5, flux);
    const sol = fitKernel(sim.science, sim.template, { preset: 'snap' });
    checkSnapShape(name, sol);
    // Measured −0.065 % (×1.0) and −0.062 % (×0.9). With the Laplacian regularisation the preset had
    // before (core/kernel/config.ts) the sums were −0.09 … −0.21 % over seeds 1–4.
    assert.ok(Math.abs(sol.kernelSum / sim.truth.fluxScale - 1) < 2e-3, `${name}: kernel sum ${sol.kernelSum} vs ${sim.truth.fluxScale}`);
    const q = judgeDifference(name, sim, sol, 3.5);
    // No residuals at bright stars: |z| > 5 in ≤ 2e-5 of pixels (measured 4e-6, one pixel; 1.3e-4
    // with the regularised kernel).
    assert.ok(q.artefactRate <= 2e-5, `${name}: |z| > 5 rate ${q.artefactRate}`);
    if (process.env.DIFFIM_VERBOSE) console.log(name, { kernelSum: sol.kernelSum, std: q.robustStd, mean: q.mean, artefacts: q.artefactRate });
  }
});

test('snap preset on different PSFs (FWHM 3.0 → 4.0): still one kernel, sum within 0.2 %, kernel L2 within 3 %', () => {
  const sim = snapPair(2, 3.0, 4.0, 1.0);
  const sol = fitKernel(sim.science, sim.template, { preset: 'snap' });
  checkSnapShape('snap 3.0 → 4.0', sol);
  assert.ok(Math.abs(sol.kernelSum / sim.truth.fluxScale - 1) < 2e-3, `kernel sum ${sol.kernelSum}`);
  // Measured 1.5 % (the Alard–Lupton snap basis resolves this σ_K ≈ 1.1 px kernel); 3.6–4.0 % when regularised.
  const err = l2(kernelImageAt(sol, CENTRE, CENTRE), sim.truth.matchingKernel(CENTRE, CENTRE, sol.basis.size)!);
  assert.ok(err < 0.03, `kernel L2 ${fmt(err)}`);
  const q = judgeDifference('snap 3.0 → 4.0', sim, sol, 4.0);
  if (process.env.DIFFIM_VERBOSE) console.log('snap 3.0 → 4.0', { kernelSum: sol.kernelSum, err, std: q.robustStd, mean: q.mean });
});
