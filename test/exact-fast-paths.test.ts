/**
 * The fast paths behind findStars and the subtraction QA must give exactly what the plain
 * definitions give: binned and windowed medians against a sort, the background mesh read a row or
 * a pixel at a time against estimateBackground, the annulus statistics with and without a guess,
 * and the QA's fused passes against noiseFidelity and neighbourCorrelation.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../core/sim/index.ts';
import { maskOf } from '../core/image/mask.ts';
import { createMaskedImage, type MaskedImage } from '../core/image/index.ts';
import { medianInPlace, medianInRange, WindowMedian } from '../core/image/stats.ts';
import { backgroundMesh, clippedStats, clippedStatsNear, estimateBackground, levelAt, levelRow } from '../core/psf/background.ts';
import { exclusionMask, noiseFidelity, noiseFidelityForQa, INVALID_DIFF_BITS } from '../core/subtract/metrics.ts';
import { neighbourCorrelation } from '../core/subtract/decorrelate.ts';

function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform();
}

/** Median by sorting a copy (the definition). */
function sortedMedian(a: Float64Array): number {
  const s = a.slice().sort();
  const n = s.length;
  if (n === 0) return NaN;
  const k = n >> 1;
  if (n & 1) return s[k] + 0;
  const m = (s[k - 1] + s[k]) / 2;
  return (Number.isFinite(m) ? m : s[k - 1] / 2 + s[k] / 2) + 0;
}

/** Assorted value distributions: smooth, heavy-tailed, quantised, mostly equal, signed zeros. */
function values(u: () => number, n: number, kind: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = Math.sqrt(-2 * Math.log(u() + 1e-300)) * Math.cos(2 * Math.PI * u());
    a[i] =
      kind === 0 ? Math.fround(300 + 17 * g)
      : kind === 1 ? Math.tan(3 * (u() - 0.5))
      : kind === 2 ? Math.round(3 * u())
      : kind === 3 ? (u() < 0.7 ? 5 : g)
      : u() < 0.5 ? (u() < 0.5 ? -0 : 0) : g * 1e-3;
  }
  return a;
}

describe('exact medians', () => {
  test('medianInRange is the median for any range, and permutes its input', () => {
    const u = rng(1);
    for (let t = 0; t < 400; t++) {
      const kind = t % 5;
      const n = Math.floor(u() * 700) + (t % 7 === 0 ? 3000 : 0);
      const a = values(u, n, kind);
      const centre = kind === 0 ? 300 : 0;
      const lo = centre + (u() - 0.5) * 60;
      const hi = lo + (u() < 0.1 ? 0 : u() * 80);
      const b = a.slice();
      assert.ok(Object.is(medianInRange(b, n, lo, hi), sortedMedian(a)), `t=${t} n=${n} [${lo}, ${hi}]`);
      assert.deepEqual(b.slice().sort(), a.slice().sort(), `t=${t}: not a permutation`);
    }
  });

  test('medianInPlace on long float64 arrays (sampled window) is the median', () => {
    const u = rng(2);
    for (let kind = 0; kind < 5; kind++) {
      const n = 70000 + Math.floor(u() * 50000) + kind;
      const a = values(u, n, kind);
      assert.ok(Object.is(medianInPlace(a.slice()), sortedMedian(a)), `kind ${kind}`);
    }
    // Values so spread that the window's width overflows: the plain selection takes over.
    const wide = new Float64Array(70001).map((_, i) => (i % 2 ? 1e308 : -1e308) * ((i % 7) / 7));
    assert.ok(Object.is(medianInPlace(wide.slice()), sortedMedian(wide)));
  });

  test('WindowMedian gives the median when the window holds it, NaN when not', () => {
    const u = rng(3);
    for (let t = 0; t < 60; t++) {
      const a = values(u, 500 + Math.floor(u() * 2000), t % 5);
      const want = sortedMedian(a);
      const lo = want - u() * 0.5 - (t % 4 === 0 ? -1 : 0); // every 4th window misses
      const hi = want + u() * 0.5;
      const wm = new WindowMedian(lo, hi, 16);
      let below = 0;
      for (const v of a) {
        if (v < lo) below++;
        else if (v <= hi) wm.push(v);
      }
      const got = wm.result(a.length, below);
      if (Number.isNaN(got)) assert.ok(!(lo <= want && want <= hi) || t % 4 === 0, `t=${t}: missed a median inside the window`);
      else assert.ok(Object.is(got, want), `t=${t}`);
    }
  });
});

describe('background mesh and annulus statistics', () => {
  function noisyImage(w: number, h: number, x0: number, y0: number, seed: number): MaskedImage {
    const u = rng(seed);
    const mi = createMaskedImage(w, h, x0, y0);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        mi.image[i] = 200 + 0.05 * (x + x0) - 0.03 * (y + y0) + 10 * (u() + u() + u() - 1.5) + (u() < 0.01 ? 500 : 0);
        mi.variance[i] = 100;
      }
    }
    mi.mask[5] = maskOf('BAD');
    mi.image[7] = NaN;
    return mi;
  }

  test('levelRow and levelAt reproduce estimateBackground exactly', () => {
    for (const [w, h, x0, y0, cs] of [
      [300, 200, 0, 0, 64],
      [257, 131, 77, 300, 100],
      [90, 7, 5, 3, 4],
      [40, 40, 0, 0, 128],
    ]) {
      const mi = noisyImage(w, h, x0, y0, w + h);
      const bg = estimateBackground(mi, { cellSize: cs });
      const mesh = backgroundMesh(mi, { cellSize: cs });
      assert.equal(mesh.rms, bg.rms);
      const row = new Float32Array(w);
      const scratch = new Float64Array(mesh.ncx);
      for (let y = 0; y < h; y++) {
        levelRow(mesh, y, row, 0, scratch);
        for (let x = 0; x < w; x++) {
          assert.ok(Object.is(row[x], bg.level[y * w + x]), `${w}×${h} cs ${cs}: row ${y} x ${x}`);
          assert.ok(Object.is(levelAt(mesh, x, y, scratch), bg.level[y * w + x]), `${w}×${h} cs ${cs}: pixel ${x},${y}`);
        }
      }
    }
  });

  test('clippedStatsNear equals clippedStats whatever the guess', () => {
    const u = rng(4);
    for (let t = 0; t < 300; t++) {
      const n = 10 + Math.floor(u() * 3000);
      const a = values(u, n, t % 2 === 0 ? 0 : 3);
      const guess = (t % 2 === 0 ? 300 : 5) + (u() - 0.5) * 40;
      const sigma = t % 9 === 0 ? 0 : u() * 40;
      const plain = clippedStats(a.slice(), n, new Float64Array(n));
      const near = clippedStatsNear(a.slice(), n, new Float64Array(n), guess, sigma);
      assert.deepEqual(near, plain, `t=${t}`);
    }
  });
});

describe('QA passes', () => {
  test('noiseFidelityForQa: the fidelity, sky |D| and neighbour correlation of the plain definitions', () => {
    const u = rng(5);
    for (const [w, h] of [[400, 300], [31, 17], [700, 500]]) {
      const d = createMaskedImage(w, h, 10, 20);
      for (let i = 0; i < w * h; i++) {
        d.variance[i] = 40 + 20 * u();
        d.image[i] = Math.sqrt(d.variance[i]) * (u() + u() + u() + u() - 2) * 1.7 + (i % w > 0 && u() < 0.5 ? 0.3 * d.image[i - 1] : 0);
        if (u() < 0.01) d.mask[i] = maskOf('SAT');
        if (u() < 0.003) d.image[i] = NaN;
        if (u() < 0.002) d.variance[i] = u() < 0.5 ? 0 : Infinity;
      }
      const stars = Array.from({ length: 40 }, () => ({ x: 10 + u() * w, y: 20 + u() * h }));
      const exclude = exclusionMask(d, stars, 6);
      const plain = noiseFidelity(d, exclude);
      // What computeQa computed before: z as float32, its sky pixels by callback.
      const ok = (i: number) => exclude[i] === 0 && (d.mask[i] & INVALID_DIFF_BITS) === 0 && d.variance[i] > 0;
      const z = new Float32Array(w * h);
      let skyAbs = 0;
      let nSky = 0;
      for (let i = 0; i < w * h; i++) {
        if (d.variance[i] > 0) z[i] = d.image[i] / Math.sqrt(d.variance[i]);
        if (ok(i)) {
          skyAbs += Math.abs(d.image[i]);
          nSky++;
        }
      }
      const rho = neighbourCorrelation(z, w, h, ok);
      const fused = noiseFidelityForQa(d, exclude.slice());
      assert.deepEqual(fused.fidelity, plain, `${w}×${h}`);
      assert.ok(Object.is(fused.qa.neighbourCorrelation, rho), `${w}×${h}: ρ ${fused.qa.neighbourCorrelation} vs ${rho}`);
      assert.ok(Object.is(fused.qa.skyAbs, skyAbs) && fused.qa.nSky === nSky, `${w}×${h}: sky |D|`);
    }
  });
});
