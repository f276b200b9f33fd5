/**
 * subtract() on core/sim pairs whose noise is known: the difference must be noise with the
 * variance plane telling the truth (docs/METRICS.md: source-free robust std(z) within 0.05 of 1,
 * variance-plane mean within 5 % of the empirical variance, |mean z| < 5/√N), in each mode; the
 * two convolution directions must agree; decorrelation must whiten without changing std(z).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulatePair, type SimConfig, type SimResult } from '../core/sim/index.ts';
import { findStars } from '../core/psf/index.ts';
import { maskBit } from '../core/image/mask.ts';
import type { MaskedImage } from '../core/image/masked-image.ts';
import { subtract, exclusionMask, noiseFidelity, neighbourCorrelation, INVALID_DIFF_BITS, type SubtractResult } from '../core/subtract/index.ts';

const SIZE = 768;

function pair(seed: number, sci: number, tpl: number, extra: Partial<SimConfig> = {}): SimResult {
  return simulatePair({
    width: SIZE, height: SIZE, seed, nStars: 900,
    starFlux: { min: 3e3, max: 4e5, slope: 1.5 },
    template: { psf: { profile: 'gaussian', fwhm: tpl }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: sci }, offset: [0.31, -0.23], fluxScale: 1.10, sky: { level: 300 }, gain: 1, readNoise: 5 },
    ...extra,
  });
}

/** METRICS.md's source-free pixels: farther than 2×FWHM from every ≥3σ detection in either input. */
function sourceFree(sim: SimResult, d: MaskedImage, fwhm: number): Uint8Array {
  const det = [...findStars(sim.science, { threshold: 3 }), ...findStars(sim.template, { threshold: 3 })];
  return exclusionMask(d, det, 2 * fwhm);
}

function judge(name: string, r: SubtractResult, exclude: Uint8Array): { std: number; rho: number } {
  const d = r.difference;
  for (const plane of [d.image, d.variance, r.matchedTemplate.image, r.matchedTemplate.variance, r.matchedScience.image]) {
    for (let i = 0; i < plane.length; i++) assert.ok(Number.isFinite(plane[i]!), `${name}: non-finite output at ${i}`);
  }
  const f = noiseFidelity(d, exclude);
  assert.ok(f.n > 50_000, `${name}: ${f.n} source-free pixels`);
  assert.ok(Math.abs(f.robustStd - 1) < 0.05, `${name}: robust std(z) ${f.robustStd}`);
  assert.ok(Math.abs(f.varianceRatio - 1) < 0.05, `${name}: variance-plane ratio ${f.varianceRatio}`);
  // |mean z| < 5/√N, with N the number of independent resolution elements (z is correlated on
  // the scale of the kernel when not decorrelated, so pixels overstate N): ≈ one per FWHM².
  const nIndep = f.n / (Math.PI * 2.25 ** 2);
  assert.ok(Math.abs(f.mean) < 5 / Math.sqrt(nIndep), `${name}: mean z ${f.mean} vs ${5 / Math.sqrt(nIndep)}`);
  const z = new Float32Array(d.image.length);
  for (let i = 0; i < z.length; i++) z[i] = d.image[i]! / Math.sqrt(d.variance[i]!);
  const rho = neighbourCorrelation(z, d.width, d.height, (i) => exclude[i] === 0 && (d.mask[i]! & INVALID_DIFF_BITS) === 0);
  if (process.env.DIFFIM_VERBOSE) console.log(name, JSON.stringify({ std: f.robustStd, mean: f.mean, varianceRatio: f.varianceRatio, rho, n: f.n, kernelSum: r.kernel.kernelSum }));
  return { std: f.robustStd, rho };
}

test('convolveTemplate (FWHM 3.0 → 4.5, ×1.10): noise-true difference; decorrelation whitens it', () => {
  const sim = pair(31, 4.5, 3.0);
  const raw = subtract(sim.science, sim.template, { decorrelate: false });
  assert.equal(raw.kernel.mode, 'convolveTemplate');
  const ex = sourceFree(sim, raw.difference, 4.5);
  const a = judge('raw', raw, ex);
  const dec = subtract(sim.science, sim.template, { solution: raw.kernel, decorrelate: true });
  const b = judge('decorrelated', dec, ex);
  assert.ok(Math.abs(b.rho) < 0.05, `decorrelated neighbour correlation ${b.rho} (raw ${a.rho})`);
  // The EDGE border: kernel half-width, grown by ψ's when decorrelated; flagged, value 0.
  const h = (raw.kernel.basis.size - 1) / 2;
  assert.ok((raw.difference.mask[h - 1]! & maskBit('EDGE')) !== 0 && (raw.difference.mask[h * SIZE + h]! & maskBit('EDGE')) === 0);
  assert.equal(raw.difference.image[0], 0);
  assert.ok(Math.abs(raw.qa.kernelSum / 1.1 - 1) < 2e-3, `kernel sum ${raw.qa.kernelSum}`);
});

test('convolveScience (science sharper: FWHM 3.0 vs template 4.5): noise-true difference in science units', () => {
  const sim = pair(32, 3.0, 4.5);
  const r = subtract(sim.science, sim.template, { kernel: { mode: 'auto' }, decorrelate: false });
  assert.equal(r.kernel.mode, 'convolveScience');
  // Template = K⊗science/1.10 → ΣK = 1/1.10.
  assert.ok(Math.abs(r.kernel.kernelSum * 1.1 - 1) < 2e-3, `kernel sum ${r.kernel.kernelSum}`);
  judge('convolveScience', r, sourceFree(sim, r.difference, 4.5));
});

test('snap preset on a same-PSF, sky-subtracted pair (FWHM 3.5 both): noise-true difference', () => {
  const sim = pair(33, 3.5, 3.5, {
    template: { psf: { profile: 'gaussian', fwhm: 3.5 }, sky: { level: 200 }, skySubtracted: true, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 3.5 }, offset: [0.2, 0.1], fluxScale: 1.0, sky: { level: 200 }, skySubtracted: true, gain: 1, readNoise: 5 },
  });
  const r = subtract(sim.science, sim.template, { preset: 'snap', decorrelate: false });
  assert.equal(r.kernel.spatial.kernelOrder, 0);
  assert.equal(r.kernel.backgroundCoefficients.length, 0);
  judge('snap', r, sourceFree(sim, r.difference, 3.5));
});

test("the two directions agree (ip_diffim's symmetry test)", () => {
  // D1 = S − K₁⊗T; D2 from swapping the roles and convolving the sharp image instead:
  // (K₂⊗T − S)/ΣK₂ in T's units, so ΣK₂·D2 ≈ −D1: both see the same noise, so the residual of
  // D1 + ΣK₂·D2 must be a small fraction of D1's noise.
  const sim = pair(34, 4.5, 3.0);
  const d1 = subtract(sim.science, sim.template, { decorrelate: false });
  const d2 = subtract(sim.template, sim.science, { kernel: { mode: 'convolveScience' }, decorrelate: false });
  const k2 = d2.kernel.kernelSum;
  assert.ok(Math.abs(k2 / 1.1 - 1) < 5e-3, `ΣK₂ ${k2}`);
  const ex = sourceFree(sim, d1.difference, 4.5);
  let s1 = 0;
  let s12 = 0;
  let n = 0;
  for (let i = 0; i < ex.length; i++) {
    if (ex[i] || (d1.difference.mask[i]! & INVALID_DIFF_BITS) || (d2.difference.mask[i]! & INVALID_DIFF_BITS)) continue;
    const a = d1.difference.image[i]!;
    const b = k2 * d2.difference.image[i]!;
    s1 += a * a;
    s12 += (a + b) ** 2;
    n++;
  }
  const ratio = Math.sqrt(s12 / s1);
  if (process.env.DIFFIM_VERBOSE) console.log('symmetry', { ratio, n, k2 });
  assert.ok(n > 50_000 && ratio < 0.1, `std(D1 + ΣK₂·D2) / std(D1) = ${ratio} over ${n} px`);
});

test('bad pixels do not spread: NaN and NO_DATA in the template stay confined to their kernel footprint', () => {
  const sim = pair(35, 4.5, 3.0);
  const tpl = { ...sim.template, image: sim.template.image.slice(), mask: sim.template.mask.slice() };
  for (let y = 300; y < 310; y++) for (let x = 400; x < 420; x++) tpl.image[y * SIZE + x] = NaN;
  const r = subtract(sim.science, tpl, { decorrelate: true });
  const d = r.difference;
  for (let i = 0; i < d.image.length; i++) assert.ok(Number.isFinite(d.image[i]!) && Number.isFinite(d.variance[i]!));
  assert.ok((d.mask[305 * SIZE + 410]! & maskBit('NO_DATA')) !== 0, 'the hole is NO_DATA');
  assert.equal(d.mask[305 * SIZE + 480]! & maskBit('NO_DATA'), 0, 'far from the hole is clean');
});

test('decorrelation when the template noise dominates: raw neighbour correlation is strong, decorrelated |ρ| < 0.05, std(z) kept', () => {
  const sim = pair(36, 4.5, 3.0, {
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 1200 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.10, sky: { level: 100 }, gain: 1, readNoise: 5 },
  });
  const raw = subtract(sim.science, sim.template, { decorrelate: false });
  const ex = sourceFree(sim, raw.difference, 4.5);
  const a = judge('raw, noisy template', raw, ex);
  assert.ok(a.rho > 0.1, `raw neighbour correlation ${a.rho} should be strong here`);
  const dec = subtract(sim.science, sim.template, { solution: raw.kernel });
  const b = judge('decorrelated, noisy template', dec, ex);
  assert.ok(Math.abs(b.rho) < 0.05, `decorrelated neighbour correlation ${b.rho}`);
  assert.ok(dec.qa.decorrelated && Math.abs(dec.qa.noise.neighbourCorrelation) < 0.05);
});
