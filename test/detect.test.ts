/**
 * DIA detection and measurement against truth (issue 5): injected point sources on core/sim pairs
 * (completeness, flux, pulls), a null pair (false detections against the Gaussian-field
 * expectation), a moving star (dipole and its orientation), a fading star (negative source), the
 * real pydia pairA (the microlensing target is the most significant positive source), and the
 * error paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulatePair, evalPsf, renderUnitStamp, Rng, type SimConfig, type SimResult } from '../core/sim/index.ts';
import { findStars, psfFromStars } from '../core/psf/index.ts';
import { subtract, type SubtractResult } from '../core/subtract/index.ts';
import { detectAndMeasure, gaussianPsf, DetectError, type PsfModel } from '../core/detect/index.ts';
import { createMaskedImage, type MaskedImage } from '../core/image/masked-image.ts';
import { maskBit, maskOf } from '../core/image/mask.ts';
import { readExposure } from '../core/image/exposure.ts';

const W = 1024;

function pair(seed: number, extra: Partial<SimConfig> = {}): SimResult {
  return simulatePair({
    width: W, height: W, seed, nStars: 1200, starFlux: { min: 3e3, max: 4e5, slope: 1.5 }, border: 20, minSeparation: 12,
    template: { psf: { profile: 'gaussian', fwhm: 3.0 }, sky: { level: 150 }, gain: 1, readNoise: 5 },
    science: { psf: { profile: 'gaussian', fwhm: 4.5 }, offset: [0.31, -0.23], fluxScale: 1.1, sky: { level: 300 }, gain: 1, readNoise: 5 },
    ...extra,
  });
}

/** The decorrelated difference's PSF (ψ ⊗ science PSF) and the science PSF, from the science stars. */
function psfs(science: MaskedImage, r: SubtractResult): { diff: PsfModel; sci: PsfModel } {
  const m = psfFromStars(findStars(science));
  const dk = r.decorrelation!;
  return {
    diff: gaussianPsf({ ixx: m.ixx, iyy: m.iyy, ixy: m.ixy, kernel: { values: dk.psi, size: dk.size } }),
    sci: gaussianPsf({ ixx: m.ixx, iyy: m.iyy, ixy: m.ixy }),
  };
}

function run(sim: SimResult, config = {}) {
  const r = subtract(sim.science, sim.template);
  const p = psfs(sim.science, r);
  const d = detectAndMeasure({ difference: r.difference, psf: p.diff, science: { image: sim.science, psf: p.sci }, matchedTemplate: { image: r.matchedTemplate, psf: p.sci }, config });
  return { r, d };
}

/** True S/N of a PSF-fitted flux F at (x, y): F / (√(Σ P²V) / Σ P²), P the true science PSF, V the difference's variance. */
function trueSnr(sim: SimResult, v: Float32Array, x: number, y: number, flux: number): number {
  const n = 31;
  const h = 15;
  const P = sim.truth.psfImage('science', Math.round(x), Math.round(y), n);
  let pp = 0;
  let ppv = 0;
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
    const xx = Math.round(x) + i - h;
    const yy = Math.round(y) + j - h;
    if (xx < 0 || yy < 0 || xx >= W || yy >= W) continue;
    const p = P[j * n + i]!;
    pp += p * p;
    ppv += p * p * v[yy * W + xx]!;
  }
  return flux / (Math.sqrt(ppv) / pp);
}

test('injected point sources: ≥ 99 % complete at S/N ≥ 10, flux median within 1 %, pulls with unit scatter', (t) => {
  const bins = new Map<number, [number, number]>();
  const ratios: number[] = [];
  const pulls: number[] = [];
  let bright = 0;
  let brightFound = 0;
  for (const seed of [5, 6]) {
    const sim = pair(seed, { transients: { count: 300, flux: { min: 300, max: 2e4 } } });
    const { r, d } = run(sim);
    for (const s of sim.truth.transients) {
      const snr = trueSnr(sim, r.difference.variance, s.x, s.y, s.flux);
      const m = d.sources.find((q) => !q.isNegative && Math.hypot(q.x - s.x, q.y - s.y) < 2);
      const b = Math.min(20, Math.floor(snr));
      const e = bins.get(b) ?? [0, 0];
      e[1]++;
      if (m) e[0]++;
      bins.set(b, e);
      if (snr >= 10) {
        bright++;
        if (m) {
          brightFound++;
          ratios.push(m.psfFlux / s.flux);
          pulls.push((m.psfFlux - s.flux) / m.psfFluxErr);
        }
      }
    }
    // Every detection is an injected transient (the stars subtract cleanly).
    const spurious = d.sources.filter((q) => !sim.truth.transients.some((s) => Math.hypot(q.x - s.x, q.y - s.y) < 3));
    assert.ok(spurious.length <= 2, `seed ${seed}: ${spurious.length} detections that are not injected`);
  }
  const curve = [...bins.entries()].sort((a, b) => a[0] - b[0]).filter(([b]) => b >= 3).map(([b, [f, n]]) => `S/N ${b}${b === 20 ? '+' : ''}: ${f}/${n}`);
  t.diagnostic(`completeness by true S/N: ${curve.join(', ')}`);
  assert.ok(bright > 250, `${bright} transients at S/N ≥ 10`);
  assert.ok(brightFound / bright >= 0.99, `completeness at S/N ≥ 10: ${brightFound}/${bright}`);
  ratios.sort((a, b) => a - b);
  const med = ratios[Math.floor(ratios.length / 2)]!;
  assert.ok(Math.abs(med - 1) < 0.01, `median measured/injected ${med}`);
  const mean = pulls.reduce((a, b) => a + b, 0) / pulls.length;
  const sd = Math.sqrt(pulls.reduce((a, b) => a + (b - mean) ** 2, 0) / (pulls.length - 1));
  t.diagnostic(`median flux ratio ${med.toFixed(4)}, pulls mean ${mean.toFixed(3)} std ${sd.toFixed(3)} (n ${pulls.length})`);
  assert.ok(Math.abs(sd - 1) < 0.1, `pull std ${sd}`);
});

test('null pair: false detections match the Gaussian-field expectation (Euler characteristic) at 3–5σ', (t) => {
  const sim = pair(7);
  const r = subtract(sim.science, sim.template);
  const p = psfs(sim.science, r);
  const bad = maskOf('NO_DATA', 'EDGE');
  let valid = 0;
  for (let i = 0; i < W * W; i++) if ((r.difference.mask[i]! & bad) === 0) valid++;
  // White noise (the decorrelated difference) smoothed by a Gaussian of σ_g is a smooth Gaussian
  // field with λ₂ = Var(∂z/∂x) = 1/(2σ_g²). Above a high threshold u its excursion sets are single
  // blobs, one per detection, and their expected number per pixel is the Euler-characteristic
  // density λ₂·u·exp(−u²/2)/(2π)^{3/2}, for each polarity. (The "independent resolution elements"
  // count, N_res·P(z > u) with N_res = area/(4πσ_g²), is smaller by ~u/√(2π)… and is the cruder
  // form of the same thing.)
  const expected = (u: number) => (2 * valid * u * Math.exp((-u * u) / 2)) / ((2 * Math.PI) ** 1.5 * 2 * p.diff.sigma ** 2);
  const lines: string[] = [];
  for (const u of [3, 4, 5]) {
    const d = detectAndMeasure({ difference: r.difference, psf: p.diff, config: { thresholdValue: u } });
    const found = d.sources.length + d.qa.nRejectedPeak;
    const e = expected(u);
    lines.push(`${u}σ: ${found} found, ${e.toFixed(2)} expected (${((found / valid) * 1e6).toFixed(2)} vs ${((e / valid) * 1e6).toFixed(2)} per Mpx)`);
    if (e >= 10) assert.ok(found >= e / 2 && found <= 2 * e, lines.at(-1));
    // At 5σ the expectation is < 1 on 1 Mpx: at most 2× the expectation, or 3 (Poisson P(N ≥ 4 | 0.35) < 0.1 %).
    else assert.ok(found <= Math.max(2 * e, 3), lines.at(-1));
  }
  t.diagnostic(lines.join('; '));
});

/** Add a unit-flux PSF × flux (with Poisson noise) to an image at (x, y), template frame. */
function addStar(mi: MaskedImage, sim: SimConfig['template']['psf'], x: number, y: number, flux: number, rng: Rng): void {
  const p = evalPsf(sim, x, y);
  const ix = Math.round(x);
  const iy = Math.round(y);
  const st = renderUnitStamp(p, x - ix, y - iy);
  const R = p.radius;
  const d = 2 * R + 1;
  for (let j = 0; j < d; j++) for (let i = 0; i < d; i++) {
    const xx = ix + i - R;
    const yy = iy + j - R;
    if (xx < 0 || yy < 0 || xx >= mi.width || yy >= mi.height) continue;
    const mu = flux * st[j * d + i]!;
    const q = yy * mi.width + xx;
    mi.image[q]! += mu + Math.sqrt(mu) * rng.normal();
    mi.variance[q]! += mu;
  }
}

test('a star that moved 0.5–1 px is a dipole with the right orientation; a star that faded is a negative source', () => {
  const moves = [
    { x: 300.2, y: 400.6, dx: 0.8, dy: 0.0 },
    { x: 700.4, y: 300.1, dx: 0.0, dy: -0.7 },
    { x: 500.7, y: 750.3, dx: -0.5, dy: 0.5 },
  ];
  const sim = pair(8, {
    // Science-only half of each moving star (the template half is added below).
    transients: moves.map((m) => ({ x: m.x + m.dx, y: m.y + m.dy, flux: 2e5 })),
    variables: { count: 6, minFactor: 0.2, maxFactor: 0.5 },
  });
  const rng = new Rng(99);
  // Template frame = scene frame + the template offset (0 here); the science shows the scene shifted by its offset.
  // Template half at the scene position (the template's offset is 0); the kernel carries it by the
  // science offset (0.31, −0.23) like every static star, so the lobes straddle (m + offset + d/2).
  for (const m of moves) addStar(sim.template, { profile: 'gaussian', fwhm: 3.0 }, m.x, m.y, 2e5 / 1.1, rng);
  const { d } = run(sim);
  for (const m of moves) {
    const near = d.sources.filter((q) => Math.hypot(q.x - (m.x + 0.31 + m.dx / 2), q.y - (m.y - 0.23 + m.dy / 2)) < 4);
    assert.equal(near.length, 1, `one source at the moving star (${m.x}, ${m.y}), got ${near.length}`);
    const s = near[0]!;
    assert.ok(s.isDipole && s.dipole, `classified as a dipole: ${JSON.stringify(s.dipole)}`);
    const want = (Math.atan2(m.dy, m.dx) * 180) / Math.PI;
    let err = Math.abs(s.dipole.orientation - want) % 360;
    err = Math.min(err, 360 - err);
    assert.ok(err < 15, `orientation ${s.dipole.orientation.toFixed(1)}° vs ${want.toFixed(1)}°`);
    const sep = Math.hypot(m.dx, m.dy);
    // On the difference alone, lobe flux and separation are degenerate for a sub-FWHM move (the
    // dipole is ≈ F·s times the PSF's derivative): their product is what is measured.
    const moment = s.dipole.posFlux * s.dipole.separation;
    assert.ok(Math.abs(moment / (2e5 * sep) - 1) < 0.1, `flux × separation ${moment.toFixed(0)} vs ${(2e5 * sep).toFixed(0)}`);
  }
  const faded = sim.truth.stars.filter((s) => s.variable);
  assert.equal(faded.length, 6);
  for (const v of faded) {
    const sx = v.x + 0.31;
    const sy = v.y - 0.23;
    const s = d.sources.find((q) => Math.hypot(q.x - sx, q.y - sy) < 2);
    assert.ok(s, `a source at the faded star (${sx.toFixed(1)}, ${sy.toFixed(1)})`);
    assert.ok(s.isNegative && !s.isDipole, `negative, not a dipole: ${JSON.stringify({ neg: s.isNegative, dip: s.isDipole })}`);
    // What the difference should show: the science flux minus the template flux scaled to science units.
    const change = v.scienceFlux - sim.truth.fluxScale * v.flux;
    assert.ok(Math.abs(s.psfFlux - change) < Math.max(0.03 * Math.abs(change), 4 * s.psfFluxErr), `flux ${s.psfFlux.toFixed(0)} ± ${s.psfFluxErr.toFixed(0)} vs ${change.toFixed(0)}`);
  }
});

test('detection planes, peak rejection on SAT/EDGE, typed errors', () => {
  // A white-noise difference with three PSF sources, one of them on saturated pixels.
  const n = 256;
  const mi = createMaskedImage(n, n);
  const rng = new Rng(3);
  for (let i = 0; i < n * n; i++) { mi.image[i] = 10 * rng.normal(); mi.variance[i] = 100; }
  const psf = gaussianPsf({ ixx: 4, iyy: 4, ixy: 0 });
  const add = (x: number, y: number, f: number) => {
    const st = psf.render(x, y, 0, 0, n, n);
    for (let i = 0; i < n * n; i++) mi.image[i]! += f * st[i]!;
  };
  add(60.3, 70.6, 5000);
  add(180.1, 90.2, -4000);
  add(128, 200, 6000);
  mi.mask[200 * n + 128]! |= maskBit('SAT');
  const d = detectAndMeasure({ difference: mi, psf, config: { doSubtractBackground: false } });
  assert.equal(d.sources.length, 2, JSON.stringify(d.sources.map((s) => [s.x, s.y])));
  assert.equal(d.qa.nRejectedPeak, 1);
  const pos = d.sources.find((s) => !s.isNegative)!;
  const neg = d.sources.find((s) => s.isNegative)!;
  assert.ok(Math.hypot(pos.x - 60.3, pos.y - 70.6) < 0.3 && Math.hypot(neg.x - 180.1, neg.y - 90.2) < 0.3);
  assert.ok(Math.abs(pos.psfFlux - 5000) < 4 * pos.psfFluxErr && Math.abs(neg.psfFlux + 4000) < 4 * neg.psfFluxErr);
  assert.ok((d.difference.mask[70 * n + 60]! & maskBit('DETECTED')) !== 0);
  assert.ok((d.difference.mask[90 * n + 180]! & maskBit('DETECTED_NEGATIVE')) !== 0);
  assert.ok(d.qa.maskFractions.DETECTED! > 0 && d.qa.maskFractions.DETECTED_NEGATIVE! > 0);
  assert.ok(pos.id !== neg.id && pos.id >> 24n === 0n);
  assert.equal(d.qa.nPositive, 1);
  assert.equal(d.qa.nNegative, 1);

  // Depth: a Gaussian PSF of σ² = 4 px² on white noise of σ = 10 has σ_F = σ·√(4πσ²) (pixelised: ≈).
  const dz = detectAndMeasure({ difference: mi, psf, exposureId: 123456789, zeroPoint: 25, config: { doSubtractBackground: false } });
  const errWant = 10 * Math.sqrt(4 * Math.PI * 4);
  assert.ok(Math.abs(dz.qa.depth.psfFluxErr / errWant - 1) < 0.02, `σ_F ${dz.qa.depth.psfFluxErr} vs ${errWant}`);
  assert.ok(Math.abs(dz.qa.depth.limitingMagnitude! - (25 - 2.5 * Math.log10(5 * errWant))) < 0.02);
  assert.equal(d.qa.depth.limitingMagnitude, null);
  const ids = dz.sources.map((s) => s.id);
  assert.deepEqual(ids, [(123456789n << 24n) | 1n, (123456789n << 24n) | 2n], 'ids: exposure in the high bits, counter from 1 over the kept sources');

  assert.throws(() => detectAndMeasure({ difference: mi, psf, config: { doSubtractBackground: false, maxSources: 1 } }), (e: unknown) => e instanceof DetectError && e.code === 'TOO_MANY_SOURCES');
  assert.throws(() => detectAndMeasure({ difference: mi, psf, config: { thresholdValu: 5 } as never }), /thresholdValu: is not a detection configuration key/);
  assert.throws(() => detectAndMeasure({ difference: mi, psf, config: { thresholdValue: -1 } }), /thresholdValue: must be a number > 0/);
  assert.throws(() => detectAndMeasure({ difference: mi, psf, config: { peakRejectPlanes: ['SATURATED' as never] } }), /unknown mask plane/);
});

test('pydia pairA (real): the brightened microlensing target at (272, 223) is the most significant positive DIA source', async () => {
  const dir = 'test/data/pydia-kb13475-saao1m/pairA/';
  const sci = (await readExposure(dir + 'science.fits', { saturation: 50000 })).mi;
  const tpl = (await readExposure(dir + 'template.fits', { saturation: 50000 })).mi;
  const r = subtract(sci, tpl);
  const p = psfs(sci, r);
  const d = detectAndMeasure({ difference: r.difference, psf: p.diff, science: { image: sci, psf: p.sci }, matchedTemplate: { image: r.matchedTemplate, psf: p.sci } });
  const positives = d.sources.filter((s) => !s.isNegative && !s.isDipole).sort((a, b) => b.significance - a.significance);
  const top = positives[0]!;
  assert.ok(Math.hypot(top.x - 272, top.y - 223) < 2, `most significant positive source at (${top.x.toFixed(1)}, ${top.y.toFixed(1)}), z ${top.significance.toFixed(1)}`);
  const bySnr = [...positives].sort((a, b) => b.snr - a.snr)[0]!;
  assert.equal(bySnr.id, top.id, 'also the highest PSF-flux S/N');
});
