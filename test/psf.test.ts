import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/sim/index.ts';
import { createMaskedImage, maskBit, subImage, type MaskedImage } from '../core/image/index.ts';
import { readExposure } from '../core/image/exposure.ts';
import {
  adaptiveMoments,
  estimateBackground,
  findStars,
  measurePsf,
  PsfError,
  FWHM_PER_SIGMA,
  type Star,
} from '../core/psf/index.ts';

// ---------------------------------------------------------------------------------------------
// A tiny local simulator: pixel-integrated Gaussians (separable erf differences, or supersampled
// when rotated) on a flat or tilted sky, Poisson+read noise as Gaussian noise from a seeded PRNG,
// and the matching variance plane.

/** Seeded uniforms from core/sim's generator. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform();
}

/** erf to ~1e-7 (Abramowitz & Stegun 7.1.26). */
function erf(x: number): number {
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return x < 0 ? -y : y;
}

interface Src {
  x: number; // parent coordinates
  y: number;
  flux: number;
  sx: number;
  sy?: number;
  /** Rotation of the sx axis from +x, radians (rendered by 8×8 supersampling). */
  theta?: number;
}

interface Sim {
  mi: MaskedImage;
  /** Noise-free source light (no sky). */
  model: Float32Array;
  skyVar: number;
}

interface SimOptions {
  sky?: number;
  /** Sky gradient per pixel in x and y (parent coordinates). */
  gx?: number;
  gy?: number;
  gain?: number;
  readNoise?: number;
  seed?: number;
  x0?: number;
  y0?: number;
}

function addSource(model: Float32Array, w: number, h: number, x0: number, y0: number, s: Src): void {
  const sy = s.sy ?? s.sx;
  const R = Math.ceil(7 * Math.max(s.sx, sy));
  const xl = s.x - x0;
  const yl = s.y - y0;
  const xa = Math.max(0, Math.floor(xl) - R);
  const xb = Math.min(w - 1, Math.ceil(xl) + R);
  const ya = Math.max(0, Math.floor(yl) - R);
  const yb = Math.min(h - 1, Math.ceil(yl) + R);
  if (!s.theta) {
    const px: number[] = [];
    for (let x = xa; x <= xb; x++) px.push(0.5 * (erf((x + 0.5 - xl) / (Math.SQRT2 * s.sx)) - erf((x - 0.5 - xl) / (Math.SQRT2 * s.sx))));
    for (let y = ya; y <= yb; y++) {
      const py = 0.5 * (erf((y + 0.5 - yl) / (Math.SQRT2 * sy)) - erf((y - 0.5 - yl) / (Math.SQRT2 * sy)));
      for (let x = xa; x <= xb; x++) model[y * w + x] += s.flux * py * px[x - xa];
    }
    return;
  }
  const c = Math.cos(s.theta);
  const sn = Math.sin(s.theta);
  const N = 8;
  const norm = s.flux / (2 * Math.PI * s.sx * sy * N * N);
  for (let y = ya; y <= yb; y++) {
    for (let x = xa; x <= xb; x++) {
      let acc = 0;
      for (let j = 0; j < N; j++) {
        const dy = y - 0.5 + (j + 0.5) / N - yl;
        for (let i = 0; i < N; i++) {
          const dx = x - 0.5 + (i + 0.5) / N - xl;
          const u = c * dx + sn * dy;
          const v = -sn * dx + c * dy;
          acc += Math.exp(-0.5 * ((u * u) / (s.sx * s.sx) + (v * v) / (sy * sy)));
        }
      }
      model[y * w + x] += norm * acc;
    }
  }
}

function simulate(w: number, h: number, srcs: Src[], o: SimOptions = {}): Sim {
  const sky = o.sky ?? 100;
  const gain = o.gain ?? 2;
  const rn = o.readNoise ?? 5;
  const x0 = o.x0 ?? 0;
  const y0 = o.y0 ?? 0;
  const mi = createMaskedImage(w, h, x0, y0);
  const model = new Float32Array(w * h);
  for (const s of srcs) addSource(model, w, h, x0, y0, s);
  const u = rng(o.seed ?? 1);
  const rn2 = (rn / gain) ** 2;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const b = sky + (o.gx ?? 0) * (x + x0) + (o.gy ?? 0) * (y + y0);
      const va = (b + model[i]) / gain + rn2;
      const g = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
      mi.image[i] = b + model[i] + Math.sqrt(va) * g;
      mi.variance[i] = va;
    }
  }
  return { mi, model, skyVar: sky / gain + rn2 };
}

const sigmaOf = (fwhm: number) => fwhm / FWHM_PER_SIGMA;
/** FWHM that adaptive moments should report for a pixel-integrated Gaussian (σ² + 1/12). */
const integratedFwhm = (fwhm: number) => FWHM_PER_SIGMA * Math.sqrt(sigmaOf(fwhm) ** 2 + 1 / 12);

/** Random stars on a grid-jittered layout, so they are mostly isolated. */
function starField(w: number, h: number, n: number, fwhm: number, seed: number, fluxRange: [number, number] = [3000, 300000], margin = 20): Src[] {
  const u = rng(seed);
  const out: Src[] = [];
  const side = Math.ceil(Math.sqrt(n));
  const cw = (w - 2 * margin) / side;
  const ch = (h - 2 * margin) / side;
  for (let k = 0; k < n; k++) {
    const gx = k % side;
    const gy = Math.floor(k / side);
    out.push({
      x: margin + (gx + 0.2 + 0.6 * u()) * cw,
      y: margin + (gy + 0.2 + 0.6 * u()) * ch,
      flux: fluxRange[0] * Math.pow(fluxRange[1] / fluxRange[0], u()),
      sx: sigmaOf(fwhm),
    });
  }
  return out;
}

/** The detected star nearest (x, y) within r px, if any. */
function nearest(stars: Star[], x: number, y: number, r = 2): Star | undefined {
  let best: Star | undefined;
  let bd = r;
  for (const s of stars) {
    const d = Math.hypot(s.x - x, s.y - y);
    if (d < bd) {
      bd = d;
      best = s;
    }
  }
  return best;
}

const clean = (s: Star) => !s.flags.saturated && !s.flags.masked && !s.flags.edge && !s.flags.blended && !s.flags.badShape;

function median(a: number[]): number {
  const b = [...a].sort((p, q) => p - q);
  const m = b.length >> 1;
  return b.length % 2 ? b[m] : (b[m - 1] + b[m]) / 2;
}

// ---------------------------------------------------------------------------------------------

describe('adaptiveMoments', () => {
  test('noise-free pixel-integrated Gaussian: moments are σ² + 1/12, centroid exact, parent coordinates', () => {
    const s = 1.7;
    const sim = simulate(64, 64, [{ x: 1030.3, y: 2031.6, flux: 1e5, sx: s }], { sky: 0, readNoise: 0, gain: 1e12, x0: 1000, y0: 2000 });
    const m = adaptiveMoments(sim.mi, 1030, 2032);
    assert.ok(m.ok);
    assert.ok(Math.abs(m.x - 1030.3) < 1e-3 && Math.abs(m.y - 2031.6) < 1e-3, `centroid ${m.x}, ${m.y}`);
    const truth = s * s + 1 / 12;
    assert.ok(Math.abs(m.ixx / truth - 1) < 0.005, `ixx ${m.ixx} vs ${truth}`);
    assert.ok(Math.abs(m.iyy / truth - 1) < 0.005, `iyy ${m.iyy} vs ${truth}`);
    assert.ok(Math.abs(m.ixy) < 1e-3);
  });

  test('rotated elliptical Gaussian: ixx, iyy, ixy of Σ + I/12', () => {
    const a = 2.2;
    const b = 1.3;
    const th = Math.PI / 6;
    const sim = simulate(64, 64, [{ x: 32.2, y: 31.7, flux: 1e5, sx: a, sy: b, theta: th }], { sky: 0, readNoise: 0, gain: 1e12 });
    const m = adaptiveMoments(sim.mi, 32, 32, { sigmaGuess: 1.5 });
    const c = Math.cos(th);
    const sn = Math.sin(th);
    const ixx = a * a * c * c + b * b * sn * sn + 1 / 12;
    const iyy = a * a * sn * sn + b * b * c * c + 1 / 12;
    const ixy = (a * a - b * b) * c * sn;
    assert.ok(m.ok);
    assert.ok(Math.abs(m.ixx / ixx - 1) < 0.01, `ixx ${m.ixx} vs ${ixx}`);
    assert.ok(Math.abs(m.iyy / iyy - 1) < 0.01, `iyy ${m.iyy} vs ${iyy}`);
    assert.ok(Math.abs(m.ixy / ixy - 1) < 0.01, `ixy ${m.ixy} vs ${ixy}`);
  });

  test('no light → ok false, NaN moments', () => {
    const mi = createMaskedImage(32, 32);
    const m = adaptiveMoments(mi, 16, 16);
    assert.equal(m.ok, false);
    assert.ok(Number.isNaN(m.ixx));
  });

  test('bad arguments', () => {
    const mi = createMaskedImage(8, 8);
    assert.throws(() => adaptiveMoments(mi, NaN, 1), (e: unknown) => e instanceof PsfError && e.code === 'BAD_ARGUMENT');
    assert.throws(() => adaptiveMoments(mi, 1, 1, { sigmaGuess: 0 }), (e: unknown) => e instanceof PsfError && e.code === 'BAD_ARGUMENT');
  });
});

describe('estimateBackground', () => {
  const w = 700;
  const h = 520;
  const sim = simulate(w, h, starField(w, h, 120, 3, 5), { sky: 200, gx: 0.02, gy: -0.03, seed: 9, x0: 300, y0: 100 });

  test('recovers a tilted sky under stars; rms ≈ sky noise', () => {
    const bg = estimateBackground(sim.mi, { cellSize: 64 });
    let worst = 0;
    // Between the outermost cell centres the interpolation is exact for a plane.
    for (let y = 60; y < h - 60; y += 7) {
      for (let x = 60; x < w - 60; x += 7) {
        const truth = 200 + 0.02 * (x + 300) - 0.03 * (y + 100);
        worst = Math.max(worst, Math.abs(bg.level[y * w + x] - truth));
      }
    }
    const sigma = Math.sqrt(sim.skyVar);
    assert.ok(worst < 0.15 * sigma, `worst background error ${worst} (σ ${sigma})`);
    assert.ok(Math.abs(bg.rms / sigma - 1) < 0.05, `rms ${bg.rms} vs ${sigma}`);
  });

  test('grid is anchored at parent (0,0): a tile agrees with the full image away from its border', () => {
    const full = estimateBackground(sim.mi, { cellSize: 64 });
    // Tile aligned to the 64-px grid in parent coordinates.
    const tile = subImage(sim.mi, { x0: 384, y0: 192, width: 256, height: 256 });
    const part = estimateBackground(tile, { cellSize: 64 });
    let worst = 0;
    for (let y = 32; y < 256 - 32; y++) {
      for (let x = 32; x < 256 - 32; x++) {
        const f = full.level[(y + 192 - 100) * w + (x + 384 - 300)];
        worst = Math.max(worst, Math.abs(part.level[y * 256 + x] - f));
      }
    }
    assert.ok(worst < 1e-3, `tile vs full ${worst}`);
  });

  test('bad cellSize', () => {
    assert.throws(() => estimateBackground(sim.mi, { cellSize: 2 }), (e: unknown) => e instanceof PsfError && e.code === 'BAD_ARGUMENT');
  });
});

describe('findStars / measurePsf on synthetic Gaussian stars', () => {
  for (const fwhm of [3.0, 4.5]) {
    test(`FWHM ${fwhm}: size within 2 %, centroids < 0.05 px, S/N within 15 %`, () => {
      const w = 900;
      const h = 900;
      const srcs = starField(w, h, 225, fwhm, 11 + fwhm * 10);
      const sim = simulate(w, h, srcs, { seed: 3 });
      const m = measurePsf(sim.mi);
      const truth = integratedFwhm(fwhm);
      assert.ok(Math.abs(m.fwhm / truth - 1) < 0.02, `fwhm ${m.fwhm} vs ${truth}`);
      assert.ok(Math.abs(m.fwhmGuess / truth - 1) < 0.05, `guess ${m.fwhmGuess}`);
      assert.ok(m.nStars > 100, `only ${m.nStars} stars`);
      assert.ok(Math.abs(m.e1) < 0.01 && Math.abs(m.e2) < 0.01, `e ${m.e1} ${m.e2}`);

      const stars = findStars(sim.mi);
      let n50 = 0;
      let ss = 0;
      let worst = 0;
      const pulls: number[] = [];
      const ratios: number[] = [];
      for (const s of srcs) {
        const st = nearest(stars, s.x, s.y);
        assert.ok(st, `star at ${s.x}, ${s.y} not found`);
        if (!clean(st)) continue;
        // Truth in the same aperture: the noise-free light and the true variance, plus the
        // error of a median sky from nSky annulus pixels.
        let f = 0;
        let v = 0;
        let nAp = 0;
        const r = st.apRadius!;
        for (let y = Math.floor(st.y - r) - 1; y <= Math.ceil(st.y + r) + 1; y++) {
          for (let x = Math.floor(st.x - r) - 1; x <= Math.ceil(st.x + r) + 1; x++) {
            if ((x - st.x) ** 2 + (y - st.y) ** 2 > r * r) continue;
            f += sim.model[y * w + x];
            v += sim.mi.variance[y * w + x];
            nAp++;
          }
        }
        assert.equal(nAp, st.nAp);
        const err = Math.sqrt(v + (nAp * nAp * (Math.PI / 2) * sim.skyVar) / st.nSky!);
        ratios.push(st.snr / (f / err));
        pulls.push((st.flux - f) / st.fluxErr);
        if (st.snr > 50) {
          n50++;
          const d2 = (st.x - s.x) ** 2 + (st.y - s.y) ** 2;
          ss += d2 / 2; // per axis
          worst = Math.max(worst, Math.sqrt(d2));
        }
      }
      const rms = Math.sqrt(ss / n50);
      assert.ok(n50 > 80 && rms < 0.05, `centroid rms per axis ${rms} over ${n50} stars`);
      assert.ok(worst < 0.2, `worst centroid error ${worst}`);
      for (const q of ratios) assert.ok(Math.abs(q - 1) < 0.15, `S/N ratio to truth ${q}`);
      // The error bars are honest: the scatter of (measured − true flux)/fluxErr is ≈ 1.
      const mean = pulls.reduce((a, b) => a + b, 0) / pulls.length;
      const sd = Math.sqrt(pulls.reduce((a, b) => a + (b - mean) ** 2, 0) / (pulls.length - 1));
      assert.ok(Math.abs(sd - 1) < 0.15 && Math.abs(mean) < 0.3, `pulls mean ${mean} sd ${sd}`);
    });
  }

  test('elliptical PSF: e1, e2 and ixy of the measured PSF', () => {
    const a = 2.0;
    const b = 1.4;
    const th = 0.4;
    const u = rng(21);
    const srcs: Src[] = [];
    for (let k = 0; k < 49; k++) {
      srcs.push({ x: 40 + (k % 7) * 60 + 10 * u(), y: 40 + Math.floor(k / 7) * 60 + 10 * u(), flux: 2e4 * (1 + 5 * u()), sx: a, sy: b, theta: th });
    }
    const sim = simulate(460, 460, srcs, { seed: 4 });
    const m = measurePsf(sim.mi);
    const c = Math.cos(th);
    const sn = Math.sin(th);
    const ixx = a * a * c * c + b * b * sn * sn + 1 / 12;
    const iyy = a * a * sn * sn + b * b * c * c + 1 / 12;
    const ixy = (a * a - b * b) * c * sn;
    assert.ok(Math.abs(m.e1 - (ixx - iyy) / (ixx + iyy)) < 0.01, `e1 ${m.e1}`);
    assert.ok(Math.abs(m.e2 - (2 * ixy) / (ixx + iyy)) < 0.01, `e2 ${m.e2}`);
    assert.ok(Math.abs(m.ixy / ixy - 1) < 0.03, `ixy ${m.ixy} vs ${ixy}`);
    assert.ok(Math.abs(m.fwhmMajor! / (FWHM_PER_SIGMA * Math.sqrt(a * a + 1 / 12)) - 1) < 0.02);
    assert.ok(Math.abs(m.fwhmMinor! / (FWHM_PER_SIGMA * Math.sqrt(b * b + 1 / 12)) - 1) < 0.02);
  });

  // One field with every kind of trouble: saturated stars (clipped plateau, and one whose
  // saturated core reads 0), close pairs, faint companions, galaxies, stars at the edges.
  const fwhm = 3;
  const w = 800;
  const h = 800;
  const SAT_LEVEL = 30000;
  const base = starField(w, h, 150, fwhm, 77, [4000, 100000], 40);
  const saturatedSrc: Src[] = [
    { x: 200.3, y: 130.6, flux: 2e6, sx: sigmaOf(fwhm) },
    { x: 610.7, y: 420.2, flux: 5e6, sx: sigmaOf(fwhm) },
    { x: 420.5, y: 690.5, flux: 3e6, sx: sigmaOf(fwhm) },
  ];
  const pairs: [Src, Src][] = [];
  for (let k = 0; k < 6; k++) {
    const x = 100 + k * 110;
    pairs.push([
      { x, y: 760.3, flux: 60000, sx: sigmaOf(fwhm) },
      { x: x + 2 * fwhm + 0.4, y: 761.1, flux: 30000, sx: sigmaOf(fwhm) },
    ]);
  }
  const faintCompanion: [Src, Src] = [
    { x: 60.2, y: 420.4, flux: 100000, sx: sigmaOf(fwhm) },
    { x: 60.2 + 7.1, y: 420.4 + 1.3, flux: 3000, sx: sigmaOf(fwhm) },
  ];
  const galaxies: Src[] = [];
  for (let k = 0; k < 6; k++) galaxies.push({ x: 110 + k * 115, y: 25.5, flux: 120000, sx: 3 * sigmaOf(fwhm) });
  const edgeSrc: Src[] = [
    { x: 3.2, y: 300.5, flux: 50000, sx: sigmaOf(fwhm) },
    { x: 796.6, y: 500.2, flux: 50000, sx: sigmaOf(fwhm) },
    { x: 400.4, y: 797.8, flux: 50000, sx: sigmaOf(fwhm) },
  ];
  // Keep the random field clear of the placed objects so the flags below are theirs alone.
  const placed = [...saturatedSrc, ...pairs.flat(), ...faintCompanion, ...galaxies, ...edgeSrc];
  const field = base.filter((s) => placed.every((p) => Math.hypot(p.x - s.x, p.y - s.y) > 45) && s.y > 60 && s.y < 730);
  const all = [...field, ...placed];
  const sim = simulate(w, h, all, { seed: 8 });
  const SAT = maskBit('SAT');
  for (let i = 0; i < w * h; i++) {
    if (sim.mi.image[i] >= SAT_LEVEL) {
      sim.mi.image[i] = SAT_LEVEL;
      sim.mi.mask[i] |= SAT;
    }
  }
  // The third saturated star's core reads 0 (as some pipelines leave it): still one detection.
  for (let y = 686; y <= 695; y++) for (let x = 416; x <= 425; x++) if (sim.mi.mask[y * w + x] & SAT) sim.mi.image[y * w + x] = 0;
  const stars = findStars(sim.mi);
  const psf = measurePsf(sim.mi);

  test('saturated stars are found once each, flagged, and never used', () => {
    for (const s of saturatedSrc) {
      const near = stars.filter((t) => Math.hypot(t.x - s.x, t.y - s.y) < 4);
      assert.equal(near.length, 1, `saturated star at ${s.x}, ${s.y}: ${near.length} detections`);
      assert.ok(near[0].flags.saturated && near[0].flags.masked);
    }
    for (const u of psf.stars) {
      assert.ok(!u.flags.saturated);
      for (const s of saturatedSrc) assert.ok(Math.hypot(u.x - s.x, u.y - s.y) > 5);
    }
  });

  test('close pairs: both flagged blended; a 3 % companion flags only itself', () => {
    for (const [p, q] of pairs) {
      const a = nearest(stars, p.x, p.y, 1.5);
      const b = nearest(stars, q.x, q.y, 1.5);
      assert.ok(a && b, `pair at ${p.x} not resolved`);
      assert.ok(a.flags.blended && b.flags.blended);
    }
    const bright = nearest(stars, faintCompanion[0].x, faintCompanion[0].y)!;
    const faint = nearest(stars, faintCompanion[1].x, faintCompanion[1].y)!;
    assert.ok(bright && faint);
    assert.equal(bright.flags.blended, false);
    assert.equal(faint.flags.blended, true);
  });

  test('galaxies (σ = 3× PSF) are measured as large and rejected by measurePsf', () => {
    for (const g of galaxies) {
      const s = nearest(stars, g.x, g.y, 3);
      assert.ok(s, `galaxy at ${g.x} not found`);
      assert.ok(s.fwhm > 2 * integratedFwhm(fwhm), `galaxy fwhm ${s.fwhm}`);
      assert.ok(s.snr >= 20 && s.snr <= 1000 && clean(s), 'galaxy must be a candidate for the test to mean something');
      assert.ok(!psf.stars.includes(s) && !psf.stars.some((u) => Math.hypot(u.x - g.x, u.y - g.y) < 3));
    }
    assert.ok(psf.counts.sizeOutliers >= galaxies.length);
    assert.ok(Math.abs(psf.fwhm / integratedFwhm(fwhm) - 1) < 0.02, `fwhm ${psf.fwhm}`);
  });

  test('stars at the edges are flagged edge', () => {
    for (const e of edgeSrc) {
      const s = nearest(stars, e.x, e.y, 2);
      assert.ok(s, `edge star at ${e.x}, ${e.y} not found`);
      assert.ok(s.flags.edge);
    }
    const inner = field.map((s) => nearest(stars, s.x, s.y)).filter((s): s is Star => s !== undefined);
    assert.ok(inner.length > 100 && inner.filter((s) => s.flags.edge).length === 0);
  });

  test('stars are sorted by S/N and measurePsf uses only clean, in-range stars', () => {
    for (let i = 1; i < stars.length; i++) assert.ok(!(stars[i].snr > stars[i - 1].snr));
    for (const s of psf.stars) assert.ok(clean(s) && s.snr >= 20 && s.snr <= 1000);
    assert.equal(psf.nStars, psf.stars.length);
    assert.ok(psf.nCandidates >= psf.nStars);
  });

  test('box limits the reported stars and does not change their measurement', () => {
    const box = { x0: 200, y0: 150, width: 300, height: 250 };
    const inBox = findStars(sim.mi, { box });
    assert.ok(inBox.length > 10);
    for (const s of inBox) {
      assert.ok(s.peakX! >= 200 && s.peakX! < 500 && s.peakY! >= 150 && s.peakY! < 400);
    }
    const expected = stars.filter((s) => s.peakX! >= 200 && s.peakX! < 500 && s.peakY! >= 150 && s.peakY! < 400);
    assert.deepEqual(inBox, expected);
  });

  test('deterministic', () => {
    assert.deepEqual(findStars(sim.mi), stars);
    assert.deepEqual(measurePsf(sim.mi), psf);
  });

  test('maxStars keeps the highest-S/N stars', () => {
    const top = findStars(sim.mi, { maxStars: 10 });
    assert.deepEqual(top, stars.slice(0, 10));
  });
});

describe('masks and the saturation option', () => {
  test('a BAD column through a star flags it masked; the saturation option flags without SAT bits', () => {
    const fw = 3;
    const srcs: Src[] = [
      { x: 50.3, y: 50.6, flux: 50000, sx: sigmaOf(fw) },
      { x: 150.2, y: 60.1, flux: 2e6, sx: sigmaOf(fw) },
      { x: 100.7, y: 140.4, flux: 40000, sx: sigmaOf(fw) },
    ];
    const sim = simulate(200, 200, srcs, { seed: 31 });
    const BAD = maskBit('BAD');
    for (let y = 0; y < 200; y++) sim.mi.mask[y * 200 + 52] |= BAD;
    const stars = findStars(sim.mi, { saturation: 30000 });
    const a = nearest(stars, 50.3, 50.6)!;
    const b = nearest(stars, 150.2, 60.1, 3)!;
    const c = nearest(stars, 100.7, 140.4)!;
    assert.ok(a && a.flags.masked && !a.flags.saturated);
    assert.ok(b && b.flags.saturated);
    assert.equal(stars.filter((s) => Math.hypot(s.x - 150.2, s.y - 60.1) < 4).length, 1);
    assert.ok(c && clean(c));
    // Without the option nothing marks the bright star's (unclipped) core as saturated.
    assert.equal(nearest(findStars(sim.mi), 150.2, 60.1, 3)!.flags.saturated, false);
  });
});

describe('failure modes', () => {
  test('an image with only noise → PsfError NO_STARS with counts', () => {
    const sim = simulate(300, 300, [], { seed: 5 });
    assert.throws(
      () => measurePsf(sim.mi),
      (e: unknown) => {
        assert.ok(e instanceof PsfError);
        assert.equal(e.code, 'NO_STARS');
        assert.ok(e.counts);
        for (const k of ['peaks', 'saturated', 'masked', 'edge', 'blended', 'badShape', 'snrLow', 'snrHigh', 'candidates', 'used']) {
          assert.equal(typeof e.counts[k], 'number', k);
        }
        assert.ok(e.counts.used < 3);
        return true;
      },
    );
  });

  test('bad options', () => {
    const mi = createMaskedImage(16, 16);
    const bad = (e: unknown) => e instanceof PsfError && e.code === 'BAD_ARGUMENT';
    assert.throws(() => findStars(mi, { threshold: -1 }), bad);
    assert.throws(() => findStars(mi, { fwhmGuess: 0 }), bad);
    assert.throws(() => findStars(mi, { maxStars: 1.5 }), bad);
    assert.throws(() => measurePsf(mi, { minSnr: 50, maxSnr: 10 }), bad);
    assert.throws(() => findStars({ ...mi, variance: new Float32Array(3) }), bad);
  });

  test('empty image → no stars', () => {
    assert.deepEqual(findStars(createMaskedImage(0, 0)), []);
  });
});

describe('speed', () => {
  test('findStars on 2048² with 3000 stars', () => {
    const w = 2048;
    const u = rng(99);
    const srcs: Src[] = [];
    for (let i = 0; i < 3000; i++) srcs.push({ x: 10 + u() * (w - 20), y: 10 + u() * (w - 20), flux: 2000 * Math.pow(200, u()), sx: sigmaOf(3) });
    const sim = simulate(w, w, srcs, { seed: 12 });
    findStars(sim.mi); // warm-up (JIT)
    const t0 = performance.now();
    const stars = findStars(sim.mi);
    const dt = performance.now() - t0;
    const t1 = performance.now();
    estimateBackground(sim.mi);
    const dtBg = performance.now() - t1;
    console.log(`# findStars 2048² / 3000 stars: ${dt.toFixed(0)} ms (${stars.length} stars); estimateBackground ${dtBg.toFixed(0)} ms`);
    assert.ok(stars.length > 2500);
    // Generous bound for slow CI machines; typically ~0.4 s.
    assert.ok(dt < 3000, `${dt} ms`);
  });
});

describe('real images', () => {
  const pydia = 'test/data/pydia-kb13475-saao1m/pairA/';

  test('pydia SAAO pair: FWHM near the header PFWHM, elongated template', async () => {
    const res: Record<string, { m: ReturnType<typeof measurePsf>; pfwhm: number }> = {};
    for (const f of ['template', 'science']) {
      const e = await readExposure(`${pydia}${f}.fits`);
      const m = measurePsf(e.mi);
      res[f] = { m, pfwhm: e.header.number('PFWHM')! };
      console.log(
        `# pydia ${f}: fwhm ${m.fwhm.toFixed(3)} (major ${m.fwhmMajor!.toFixed(2)}, minor ${m.fwhmMinor!.toFixed(2)}), ` +
          `header PFWHM ${res[f].pfwhm.toFixed(2)}, ${m.nStars} stars of ${m.nCandidates} candidates, e1 ${m.e1.toFixed(3)}`,
      );
      assert.ok(Math.abs(m.fwhm / res[f].pfwhm - 1) < 0.2, `${f}: fwhm ${m.fwhm} vs PFWHM ${res[f].pfwhm}`);
      assert.ok(m.nStars >= 20);
    }
    const t = res.template.m;
    const s = res.science.m;
    // The header's PFWHM is (PFWHMX + PFWHMY)/2: on that convention the science seeing is
    // worse. By the trace (our fwhm) the two are equal within 3 %: the template is broader in x
    // but much narrower in y.
    assert.ok((s.fwhmMajor! + s.fwhmMinor!) / 2 > (t.fwhmMajor! + t.fwhmMinor!) / 2);
    assert.ok(Math.abs(s.fwhm / t.fwhm - 1) < 0.03);
    // Template elongated (a/b ≈ 2 along x), science less so.
    assert.ok(t.fwhmMajor! / t.fwhmMinor! > 1.7 && t.e1 > 0.4);
    assert.ok(s.fwhmMajor! / s.fwhmMinor! < t.fwhmMajor! / t.fwhmMinor!);
  });

  test('JWST NIRCam F200W stamp: star FWHM despite a galaxy-dominated field', async () => {
    const p = 'test/data/sfft-jwst-nircam-f200w/jw01324001001-01324-o001_t001_nircam_clear-f200w_i2d_stamp.fits';
    const e = await readExposure(p, { noise: p.replace('.fits', '.noise.fits') });
    const m = measurePsf(e.mi);
    console.log(`# NIRCam: fwhm ${m.fwhm.toFixed(3)} from ${m.nStars} stars of ${m.nCandidates} candidates (${m.counts.peaks} peaks)`);
    // The README's 3.3 px is SExtractor's FWHM_IMAGE, which runs high on this undersampled,
    // diffraction-limited core: the half-maximum width of these stars measured straight from the
    // pixels is ≈ 2.3–2.8 px, and that is what adaptive moments report (≈ 2.5, near the low end
    // of the 25 % band; the per-star check below is the sharper test).
    assert.ok(Math.abs(m.fwhm / 3.3 - 1) < 0.25, `fwhm ${m.fwhm}`);
    assert.ok(m.nStars >= 3 && m.nCandidates > 5 * m.nStars, 'most candidates are galaxies');
    // Independent check: the half-maximum area of each star used.
    const { mi } = e;
    for (const s of m.stars) {
      let area = 0;
      for (let y = Math.round(s.y) - 6; y <= Math.round(s.y) + 6; y++) {
        for (let x = Math.round(s.x) - 6; x <= Math.round(s.x) + 6; x++) if (mi.image[y * mi.width + x] - s.sky > s.peak / 2) area++;
      }
      const direct = 2 * Math.sqrt(area / Math.PI);
      assert.ok(Math.abs(s.fwhm / direct - 1) < 0.25, `star at ${s.x}, ${s.y}: ${s.fwhm} vs half-max ${direct}`);
    }
    assert.equal(m.fwhm, median(m.stars.map((s) => s.fwhm)));
  });
});
