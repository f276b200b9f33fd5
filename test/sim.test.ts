/**
 * core/sim: the synthetic pairs must obey the conventions the kernel-fitting tests rely on, so
 * every check is against the simulator's own truth (moments, fluxes, the matching kernel).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maskBit } from '../core/image/mask.ts';
import type { MaskedImage } from '../core/image/masked-image.ts';
import {
  Rng,
  SimError,
  renderPsfStamp,
  simulatePair,
  type EpochSpec,
  type SimConfig,
} from '../core/sim/index.ts';

const gauss = (fwhm: number, extra: Partial<EpochSpec['psf']> = {}): EpochSpec['psf'] => ({ profile: 'gaussian', fwhm, ...extra });

/** Noiseless pair on an empty sky unless overridden. */
function cfg(over: Partial<SimConfig> = {}): SimConfig {
  return {
    width: 64,
    height: 64,
    seed: 1,
    nStars: 0,
    template: { psf: gauss(3), noise: false },
    science: { psf: gauss(4), noise: false },
    ...over,
  };
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** Centroid and central second moments of an image region (background already removed). */
function moments(mi: MaskedImage, x0: number, y0: number, x1: number, y1: number, bg = 0) {
  let s = 0, sx = 0, sy = 0;
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
    const v = mi.image[y * mi.width + x] - bg;
    s += v; sx += v * x; sy += v * y;
  }
  const cx = sx / s, cy = sy / s;
  let xx = 0, yy = 0, xy = 0;
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
    const v = mi.image[y * mi.width + x] - bg;
    xx += v * (x - cx) ** 2; yy += v * (y - cy) ** 2; xy += v * (x - cx) * (y - cy);
  }
  return { s, cx, cy, xx: xx / s, yy: yy / s, xy: xy / s };
}

/** 3×3 midpoint sub-sampling adds (1 − 1/9)/12 px² per axis to a rendered star's variance. */
const PIXEL_VAR = 2 / 27;

describe('Rng', () => {
  it('is reproducible, and streams differ', () => {
    const a = new Rng(7, 1), b = new Rng(7, 1), c = new Rng(7, 2), d = new Rng(8, 1);
    const xa = Array.from({ length: 5 }, () => a.nextUint32());
    assert.deepEqual(xa, Array.from({ length: 5 }, () => b.nextUint32()));
    assert.notDeepEqual(xa, Array.from({ length: 5 }, () => c.nextUint32()));
    assert.notDeepEqual(xa, Array.from({ length: 5 }, () => d.nextUint32()));
  });

  it('draws uniform, normal and Poisson deviates with the right moments', () => {
    const r = new Rng(123);
    const n = 200_000;
    let su = 0, sn = 0, sn2 = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      assert.ok(u > 0 && u < 1);
      su += u;
      const z = r.normal();
      sn += z; sn2 += z * z;
    }
    assert.ok(Math.abs(su / n - 0.5) < 0.005);
    assert.ok(Math.abs(sn / n) < 0.01);
    assert.ok(Math.abs(sn2 / n - 1) < 0.015);
    for (const mean of [0.3, 4, 25, 100]) {
      let s = 0, s2 = 0;
      for (let i = 0; i < n; i++) { const k = r.poisson(mean); s += k; s2 += k * k; }
      const m = s / n, v = s2 / n - m * m;
      assert.ok(Math.abs(m - mean) < 5 * Math.sqrt(mean / n), `Poisson(${mean}) mean ${m}`);
      assert.ok(Math.abs(v / mean - 1) < 0.02, `Poisson(${mean}) variance ${v}`);
      if (mean < 30) assert.ok(Number.isInteger(r.poisson(mean)));
    }
  });
});

describe('simulatePair', () => {
  const noisy: SimConfig = {
    width: 256, height: 200, seed: 99, nStars: 80, border: 5,
    template: { psf: gauss(3, { ellipticity: 0.1, angle: 0.4 }), sky: { level: 200 }, readNoise: 5, gain: 2 },
    science: { psf: { profile: 'moffat', fwhm: 4, beta: 3.5 }, sky: { level: 300, gradX: 0.1 }, offset: [0.4, -0.3], readNoise: 4 },
    variables: { count: 5 }, transients: { count: 4 }, cosmicRays: { count: 6 },
  };

  it('is deterministic: same seed → identical bytes, different seed → different images', () => {
    const a = simulatePair(noisy), b = simulatePair(noisy), c = simulatePair({ ...noisy, seed: 100 });
    for (const k of ['template', 'science'] as const) {
      assert.deepEqual(Buffer.from(a[k].image.buffer), Buffer.from(b[k].image.buffer));
      assert.deepEqual(Buffer.from(a[k].variance.buffer), Buffer.from(b[k].variance.buffer));
      assert.deepEqual(Buffer.from(a[k].mask.buffer), Buffer.from(b[k].mask.buffer));
      assert.notDeepEqual(Buffer.from(a[k].image.buffer), Buffer.from(c[k].image.buffer));
    }
    assert.deepEqual(a.truth.stars, b.truth.stars);
    assert.deepEqual(a.truth.cosmicRays, b.truth.cosmicRays);
    assert.notDeepEqual(a.truth.stars, c.truth.stars);
  });

  it('keeps parts independent: science noise settings move neither stars nor the template', () => {
    const a = simulatePair(noisy);
    const b = simulatePair({ ...noisy, science: { ...noisy.science, readNoise: 20, sky: { level: 5 } } });
    assert.deepEqual(a.truth.stars, b.truth.stars);
    assert.deepEqual(a.truth.transients, b.truth.transients);
    assert.deepEqual(Buffer.from(a.template.image.buffer), Buffer.from(b.template.image.buffer));
    assert.notDeepEqual(Buffer.from(a.science.image.buffer), Buffer.from(b.science.image.buffer));
  });

  it('renders an isolated star with exactly its flux (in ADU)', () => {
    const r = simulatePair(cfg({
      stars: [{ x: 30.3, y: 31.7, flux: 12345.6 }],
      template: { psf: gauss(3.2, { ellipticity: 0.3, angle: 1 }), gain: 1.7, noise: false },
      science: { psf: { profile: 'moffat', fwhm: 3, beta: 4 }, gain: 0.8, fluxScale: 1.3, noise: false },
    }));
    // Float32 planes bound the sum to 2^-24 relative; the float64 stamp itself sums to 1.
    assert.ok(Math.abs(sum(r.template.image) / (12345.6 / 1.7) - 1) < 1e-7);
    assert.ok(Math.abs(sum(r.science.image) / ((12345.6 * 1.3) / 0.8) - 1) < 1e-7);
    assert.ok(Math.abs(sum(r.truth.psfImage('science', 30, 30, 61)) - 1) < 1e-12);
    assert.ok(Math.abs(sum(r.truth.psfImage('template', 30, 30, 41)) - 1) < 1e-12);
    assert.ok(Math.abs(sum(r.truth.psfImage('template', 30, 30, 5)) - 1) < 1e-12, 'cut-outs are renormalised');
    assert.ok(Math.abs(r.truth.fluxScale / ((1.3 * 1.7) / 0.8) - 1) < 1e-15);
  });

  it('puts the star where truth says, with the second moments of psfSigma (+ pixel integration)', () => {
    const r = simulatePair(cfg({
      width: 80, height: 80,
      stars: [{ x: 40.27, y: 38.61, flux: 1e5 }],
      template: { psf: gauss(4, { ellipticity: 0.35, angle: 0.6 }), noise: false },
      science: { psf: gauss(5, { ellipticity: 0.1, angle: -1 }), offset: [1.3, -0.45], noise: false },
    }));
    const s = r.truth.stars[0];
    for (const [epoch, mi, x, y] of [
      ['template', r.template, s.x, s.y],
      ['science', r.science, s.x + 1.3, s.y - 0.45],
    ] as const) {
      const m = moments(mi, 10, 10, 70, 70);
      assert.ok(Math.abs(m.cx - x) < 1e-3 && Math.abs(m.cy - y) < 1e-3, `${epoch} centroid`);
      const p = r.truth.psfSigma(epoch, x, y);
      assert.ok(Math.abs(m.xx / (p.sxx + PIXEL_VAR) - 1) < 0.01, `${epoch} xx ${m.xx} vs ${p.sxx}`);
      assert.ok(Math.abs(m.yy / (p.syy + PIXEL_VAR) - 1) < 0.01, `${epoch} yy ${m.yy} vs ${p.syy}`);
      assert.ok(Math.abs(m.xy - p.sxy) < 0.01 * Math.sqrt(p.sxx * p.syy), `${epoch} xy ${m.xy} vs ${p.sxy}`);
      // fwhm is the geometric mean of the axis FWHMs: det Σ = (fwhm/2.3548)^4.
      const det = p.sxx * p.syy - p.sxy * p.sxy;
      assert.ok(Math.abs(Math.sqrt(Math.sqrt(det)) * 2 * Math.sqrt(2 * Math.LN2) / p.fwhm - 1) < 1e-12);
    }
  });

  it('renders a star at an integer position exactly as psfImage', () => {
    const r = simulatePair(cfg({ stars: [{ x: 32, y: 30, flux: 1000 }], template: { psf: gauss(3.3, { ellipticity: 0.2 }), noise: false } }));
    const psf = r.truth.psfImage('template', 32, 30, 31);
    let worst = 0;
    for (let v = -15; v <= 15; v++) for (let u = -15; u <= 15; u++) {
      worst = Math.max(worst, Math.abs(r.template.image[(30 + v) * 64 + 32 + u] - 1000 * psf[(v + 15) * 31 + u + 15]));
    }
    assert.ok(worst < 1e-4, `worst ${worst}`);
  });

  it('science ≈ matchingKernel ⊗ template + background for static stars', () => {
    const size = 21, h = 10;
    const r = simulatePair(cfg({
      width: 96, height: 96,
      stars: [{ x: 40.3, y: 47.8, flux: 5e4 }, { x: 60.6, y: 50.1, flux: 2e4 }],
      template: { psf: gauss(3.5, { ellipticity: 0.15, angle: 0.3 }), offset: [0.2, 0.1], sky: { level: 50 }, gain: 2, fluxScale: 1.1, noise: false },
      science: { psf: gauss(5.2, { ellipticity: 0.05, angle: 2 }), offset: [1.45, -0.6], sky: { level: 80 }, gain: 1.5, fluxScale: 0.8, noise: false },
    }));
    const { template: T, science: S, truth } = r;
    const K = truth.matchingKernel(50, 48, size);
    assert.ok(K !== null);
    assert.ok(Math.abs(sum(K) - truth.fluxScale) < 1e-12);
    let peak = 0, worst = 0;
    for (let y = 35; y <= 62; y++) for (let x = 28; x <= 72; x++) {
      let c = 0;
      for (let v = -h; v <= h; v++) for (let u = -h; u <= h; u++) c += K[(v + h) * size + u + h] * T.image[(y - v) * 96 + x - u];
      const s = S.image[y * 96 + x];
      peak = Math.max(peak, s - truth.skyAdu('science', x, y));
      worst = Math.max(worst, Math.abs(c + truth.background(x, y) - s));
    }
    assert.ok(worst < 1e-3 * peak, `worst ${worst} vs peak ${peak}`);
  });

  it('matchingKernel is null for Moffat or deconvolution, and rejects even sizes', () => {
    const moffat = simulatePair(cfg({ science: { psf: { profile: 'moffat', fwhm: 5 }, noise: false } }));
    assert.equal(moffat.truth.matchingKernel(32, 32, 15), null);
    const sharper = simulatePair(cfg({ science: { psf: gauss(2.5), noise: false } }));
    assert.equal(sharper.truth.matchingKernel(32, 32, 15), null);
    const sheared = simulatePair(cfg({ template: { psf: gauss(3, { ellipticity: 0.5 }), noise: false }, science: { psf: gauss(3.2, { ellipticity: 0.5, angle: Math.PI / 2 }), noise: false } }));
    assert.equal(sheared.truth.matchingKernel(32, 32, 15), null);
    assert.throws(() => sharper.truth.matchingKernel(32, 32, 14), SimError);
  });

  it('adds noise with the variance plane as its variance (Poisson exact and approximate regimes)', () => {
    for (const [skyT, skyS] of [[4, 12], [400, 2000]]) {
      const base: SimConfig = {
        width: 300, height: 300, seed: 5, nStars: 0,
        template: { psf: gauss(3), sky: { level: skyT }, gain: 2.5, readNoise: 3 },
        science: { psf: gauss(4), sky: { level: skyS, gradY: 0.01 }, gain: 0.7, readNoise: 6, skySubtracted: true },
      };
      const noisy = simulatePair(base);
      const clean = simulatePair({ ...base, template: { ...base.template, noise: false }, science: { ...base.science, noise: false } });
      for (const k of ['template', 'science'] as const) {
        const n = noisy[k].image.length;
        let s = 0, s2 = 0;
        for (let i = 0; i < n; i++) {
          const z = (noisy[k].image[i] - clean[k].image[i]) / Math.sqrt(noisy[k].variance[i]);
          s += z; s2 += z * z;
        }
        const m = s / n, sd = Math.sqrt(s2 / n - m * m);
        assert.ok(Math.abs(m) < 0.02, `${k} sky ${skyT}/${skyS}: mean ${m}`);
        assert.ok(Math.abs(sd - 1) < 0.02, `${k} sky ${skyT}/${skyS}: std ${sd}`);
        assert.deepEqual(noisy[k].variance, clean[k].variance);
      }
      assert.ok(Math.abs(clean.template.image[150 * 300 + 7] - skyT / 2.5) < 1e-4);
      assert.ok(Math.abs(clean.template.variance[0] - (skyT / 2.5 ** 2 + (3 / 2.5) ** 2)) < 1e-4);
      assert.ok(Math.abs(clean.science.image[17 * 300 + 200]) < 1e-4, 'sky-subtracted science has zero sky');
      assert.equal(clean.truth.skyAdu('science', 10, 10), 0);
      assert.ok(Math.abs(clean.truth.skyAdu('template', 10, 10) - skyT / 2.5) < 1e-12);
    }
  });

  it('reports the sky and background actually present (gradients, gains)', () => {
    const r = simulatePair(cfg({
      width: 50, height: 40,
      template: { psf: gauss(3), sky: { level: 100, gradX: 0.5, gradY: -0.25 }, gain: 2, noise: false },
      science: { psf: gauss(4), sky: { level: 300, gradY: 1 }, gain: 3, fluxScale: 0.5, noise: false },
    }));
    for (const [x, y] of [[0, 0], [49, 39], [12, 30]]) {
      assert.ok(Math.abs(r.template.image[y * 50 + x] - r.truth.skyAdu('template', x, y)) < 1e-4);
      assert.ok(Math.abs(r.science.image[y * 50 + x] - r.truth.skyAdu('science', x, y)) < 1e-4);
      const b = r.truth.skyAdu('science', x, y) - r.truth.fluxScale * r.truth.skyAdu('template', x, y);
      assert.ok(Math.abs(r.truth.background(x, y) - b) < 1e-12);
    }
    assert.ok(Math.abs(r.truth.skyAdu('template', 24.5, 19.5) - 50) < 1e-12, 'level is at the image centre');
  });

  it('clips at saturation and masks SAT', () => {
    const sat = maskBit('SAT');
    for (const skySubtracted of [false, true]) {
      const r = simulatePair(cfg({
        stars: [{ x: 20, y: 20, flux: 2e5 }, { x: 45, y: 45, flux: 100 }],
        template: { psf: gauss(3), sky: { level: 100 }, saturation: 3000, skySubtracted, noise: false },
      }));
      const T = r.template;
      let nSat = 0;
      for (let i = 0; i < T.image.length; i++) {
        const bad = (T.mask[i] & sat) !== 0;
        const level = skySubtracted ? 3000 - 100 : 3000;
        if (bad) { nSat++; assert.equal(T.image[i], level); } else assert.ok(T.image[i] < level);
      }
      assert.ok(nSat > 4 && nSat < 100, `${nSat} saturated`);
      assert.equal(T.mask[45 * 64 + 45], 0);
      assert.ok(r.science.mask.every((m) => m === 0));
    }
  });

  it('makes variables vary and keeps the others at fluxScale', () => {
    const r = simulatePair({
      width: 200, height: 200, seed: 3, nStars: 60,
      template: { psf: gauss(3), fluxScale: 2, noise: false },
      science: { psf: gauss(4), fluxScale: 1.5, noise: false },
      variables: { count: 10, minFactor: 0.3, maxFactor: 3 },
    });
    const { stars, fluxScale } = r.truth;
    assert.equal(fluxScale, 0.75);
    const sorted = stars.map((s) => s.flux).sort((a, b) => a - b);
    const median = (sorted[29] + sorted[30]) / 2;
    assert.equal(stars.filter((s) => s.variable).length, 10);
    for (const s of stars) {
      const ratio = s.scienceFlux / (s.flux * fluxScale);
      if (s.variable) {
        assert.ok(Math.abs(ratio - 1) >= 0.1 - 1e-12 && ratio >= 0.3 && ratio <= 3, `ratio ${ratio}`);
        assert.ok(s.flux >= median);
      } else {
        assert.ok(Math.abs(ratio - 1) < 1e-12);
      }
    }
    assert.throws(() => simulatePair({ ...cfg({ nStars: 10 }), variables: { count: 6 } }), SimError);
    assert.throws(() => simulatePair({ ...cfg({ nStars: 10 }), variables: { count: 1, minFactor: 0.95, maxFactor: 1.05 } }), SimError);
  });

  it('puts transients only in the science image, at their science-frame position', () => {
    const r = simulatePair(cfg({
      width: 200, height: 200, nStars: 12, minSeparation: 24, border: 12,
      transients: { count: 5, flux: { min: 1e4, max: 2e4 } },
      science: { psf: gauss(4), offset: [0.7, 0.2], gain: 2, noise: false },
    }));
    assert.equal(r.truth.transients.length, 5);
    for (const t of r.truth.transients) {
      const x0 = Math.round(t.x) - 8, y0 = Math.round(t.y) - 8;
      const ms = moments(r.science, x0, y0, x0 + 16, y0 + 16);
      const mt = moments(r.template, x0, y0, x0 + 16, y0 + 16);
      assert.ok(Math.abs(ms.s / (t.flux / 2) - 1) < 2e-3, `science flux ${ms.s}`);
      assert.ok(Math.abs(ms.cx - t.x) < 0.02 && Math.abs(ms.cy - t.y) < 0.02);
      assert.ok(Math.abs(mt.s) < 1e-3 * t.flux, `template flux ${mt.s}`);
    }
    const explicit = simulatePair(cfg({ transients: [{ x: 30, y: 31, flux: 500 }], science: { psf: gauss(4), offset: [1, 2], noise: false } }));
    assert.deepEqual(explicit.truth.transients, [{ id: 0, x: 31, y: 33, flux: 500 }]);
    assert.equal(sum(explicit.template.image), 0);
  });

  it('adds cosmic rays of 1–3 connected pixels to the science image only', () => {
    const r = simulatePair(cfg({ cosmicRays: { count: 20, flux: { min: 1000, max: 1000 } } }));
    assert.equal(r.truth.cosmicRays.length, 20);
    for (const c of r.truth.cosmicRays) {
      const px = c.pixels ?? [];
      assert.ok(px.length >= 1 && px.length <= 3);
      assert.ok(Math.abs(sum(px.map((p) => p.flux)) - 1000) < 1e-9);
      assert.deepEqual([px[0].x, px[0].y], [c.x, c.y]);
      for (let i = 1; i < px.length; i++) assert.equal(Math.abs(px[i].x - px[i - 1].x) + Math.abs(px[i].y - px[i - 1].y), 1);
    }
    assert.ok(Math.abs(sum(r.science.image) - 20_000) < 0.05);
    assert.equal(sum(r.template.image), 0);
    assert.ok(r.science.mask.every((m) => m === 0));
  });

  it('varies the PSF across the image through Field functions', () => {
    const fwhm = (x: number) => 3 + x / 50;
    const r = simulatePair(cfg({
      width: 200, height: 40,
      stars: [{ x: 20, y: 20, flux: 1e4 }, { x: 180, y: 20, flux: 1e4 }],
      template: { psf: { profile: 'gaussian', fwhm }, noise: false },
    }));
    const left = r.truth.psfSigma('template', 20, 20), right = r.truth.psfSigma('template', 180, 20);
    assert.ok(Math.abs(left.fwhm - 3.4) < 1e-12 && Math.abs(right.fwhm - 6.6) < 1e-12);
    assert.ok(right.sxx > 3 * left.sxx);
    // The rendered stars follow their own PSF (evaluated at the star, not the image centre).
    const ml = moments(r.template, 5, 5, 35, 35), mr = moments(r.template, 150, 0, 199, 39);
    assert.ok(Math.abs(ml.xx / (left.sxx + PIXEL_VAR) - 1) < 0.01);
    assert.ok(Math.abs(mr.xx / (right.sxx + PIXEL_VAR) - 1) < 0.01);
  });

  it('renders Moffats with the requested FWHM (half-maximum width)', () => {
    for (const [fwhm, beta, e] of [[6, 3, 0], [7, 2.5, 0], [8, 4.765, 0.3]]) {
      const size = 61, c = 30;
      const st = renderPsfStamp({ profile: 'moffat', fwhm, beta, ellipticity: e }, 0, 0, size);
      const peak = st[c * size + c];
      const halfWidth = (get: (k: number) => number): number => {
        let k = 0;
        while (get(k + 1) > peak / 2) k++;
        const a = get(k), b = get(k + 1);
        return k + (a - peak / 2) / (a - b);
      };
      const wx = 2 * halfWidth((k) => st[c * size + c + k]);
      const wy = 2 * halfWidth((k) => st[(c + k) * size + c]);
      const measured = Math.sqrt(wx * wy); // fwhm is the geometric mean of the axes
      assert.ok(Math.abs(measured / fwhm - 1) < 0.03, `fwhm ${fwhm} β ${beta} e ${e}: measured ${measured}`);
      if (e > 0) assert.ok(Math.abs(wy / wx - (1 - e)) < 0.03, `axis ratio ${wy / wx}`);
    }
  });

  it('rejects bad configurations with SimError', () => {
    const bad: Array<Partial<SimConfig>> = [
      { width: 0 },
      { height: -3 },
      { width: 10.5 },
      { width: 8193, height: 8193 },
      { seed: 1.5 },
      { nStars: -1 },
      { nStars: 5, starFlux: { min: 100, max: 10 } },
      { template: { psf: gauss(NaN) } },
      { template: { psf: gauss(0) } },
      { template: { psf: { profile: 'gaussian', fwhm: 3, ellipticity: 1 } } },
      { template: { psf: { profile: 'moffat', fwhm: 3, beta: 1 } } },
      { template: { psf: { profile: 'airy' as 'moffat', fwhm: 3 } } },
      { template: { psf: gauss(3), gain: 0 } },
      { template: { psf: gauss(3), sky: { level: 1, gradX: 1 } } },
      { template: { psf: gauss(3), offset: [NaN, 0] } },
      { stars: [{ x: 1, y: 2, flux: -1 }] },
      { stars: [{ x: 10, y: 10, flux: 1 }], template: { psf: { profile: 'gaussian', fwhm: (x) => (x > 5 ? NaN : 3) } } },
      { nStars: 200, minSeparation: 30 },
      { nStars: 1, border: 40 },
      { template: { psf: gauss(3e4) } },
    ];
    for (const b of bad) assert.throws(() => simulatePair(cfg(b)), SimError, JSON.stringify(b));
    assert.throws(() => renderPsfStamp(gauss(3), 0, 0, 4), SimError);
  });
});
