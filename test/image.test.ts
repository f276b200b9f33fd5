import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  box,
  boxX1,
  boxY1,
  boxArea,
  boxEquals,
  intersect,
  contains,
  containsPoint,
  grow,
  clip,
  MASK_PLANES,
  MASK_PLANE_DESCRIPTIONS,
  maskBit,
  maskOf,
  maskPlaneCards,
  parseMaskPlaneCards,
  remapMask,
  isMaskPlane,
  ImageError,
  createMaskedImage,
  maskedImageFromArrays,
  subImage,
  setSubImage,
  bbox,
  cloneMaskedImage,
  finiteCount,
  mean,
  std,
  median,
  quantile,
  mad,
  medianAndMad,
  robustStd,
  sigmaClippedStats,
  type FloatArray,
} from '../core/image/index.ts';

// ---------------------------------------------------------------------------------------------
// Seeded random numbers (our own generator, so the arrays are the same on every machine).

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(u: () => number): () => number {
  let spare = NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const v = spare;
      spare = NaN;
      return v;
    }
    let a = u();
    while (a === 0) a = u();
    const b = u();
    const r = Math.sqrt(-2 * Math.log(a));
    spare = r * Math.sin(2 * Math.PI * b);
    return r * Math.cos(2 * Math.PI * b);
  };
}

// ---------------------------------------------------------------------------------------------

describe('box', () => {
  test('construction and edges', () => {
    const b = box(-3, 5, 10, 4);
    assert.equal(boxX1(b), 7);
    assert.equal(boxY1(b), 9);
    assert.equal(boxArea(b), 40);
    assert.throws(() => box(0.5, 0, 1, 1), RangeError);
    assert.throws(() => box(0, 0, -1, 1), RangeError);
    assert.throws(() => box(0, 0, 1, NaN), RangeError);
  });

  test('intersect: overlap, containment, touching and disjoint', () => {
    const a = box(0, 0, 10, 10);
    assert.deepEqual(intersect(a, box(5, -2, 10, 4)), box(5, 0, 5, 2));
    assert.deepEqual(intersect(a, box(2, 3, 4, 5)), box(2, 3, 4, 5));
    assert.deepEqual(intersect(box(2, 3, 4, 5), a), box(2, 3, 4, 5));
    assert.deepEqual(intersect(a, a), a);
    // Sharing an edge or a corner is not sharing a pixel (x1 is exclusive).
    assert.equal(intersect(a, box(10, 0, 5, 5)), null);
    assert.equal(intersect(a, box(0, 10, 5, 5)), null);
    assert.equal(intersect(a, box(10, 10, 1, 1)), null);
    assert.equal(intersect(a, box(-5, 0, 5, 10)), null);
    // One-pixel overlap at a corner.
    assert.deepEqual(intersect(a, box(9, 9, 5, 5)), box(9, 9, 1, 1));
    assert.deepEqual(intersect(a, box(-4, -4, 5, 5)), box(0, 0, 1, 1));
    // Far apart, and negative coordinates.
    assert.equal(intersect(a, box(100, 100, 3, 3)), null);
    assert.deepEqual(intersect(box(-10, -10, 8, 8), box(-5, -20, 2, 30)), box(-5, -10, 2, 8));
    // Empty boxes overlap nothing, even inside.
    assert.equal(intersect(a, box(3, 3, 0, 4)), null);
    assert.equal(intersect(box(3, 3, 0, 0), box(3, 3, 0, 0)), null);
  });

  test('contains, containsPoint', () => {
    const a = box(10, 20, 5, 5);
    assert.ok(contains(a, a));
    assert.ok(contains(a, box(11, 21, 4, 4)));
    assert.ok(!contains(a, box(11, 21, 5, 4)));
    assert.ok(!contains(a, box(9, 20, 2, 2)));
    assert.ok(contains(a, box(1000, 1000, 0, 0)), 'an empty box is contained in anything');
    assert.ok(containsPoint(a, 10, 20));
    assert.ok(containsPoint(a, 14, 24));
    assert.ok(!containsPoint(a, 15, 24));
    assert.ok(!containsPoint(a, 14, 25));
    assert.ok(!containsPoint(a, 9, 22));
    assert.ok(containsPoint(a, 14.9, 20.0));
  });

  test('grow, clip, equality', () => {
    assert.deepEqual(grow(box(5, 5, 4, 2), 3), box(2, 2, 10, 8));
    assert.deepEqual(grow(box(5, 5, 4, 2), -1), box(6, 6, 2, 0));
    assert.deepEqual(grow(box(5, 5, 4, 2), -2), box(7, 6, 0, 0));
    assert.throws(() => grow(box(0, 0, 1, 1), 0.5), RangeError);
    const bounds = box(0, 0, 100, 50);
    assert.deepEqual(clip(box(-10, 40, 30, 30), bounds), box(0, 40, 20, 10));
    const outside = clip(box(200, -30, 5, 5), bounds);
    assert.equal(boxArea(outside), 0);
    assert.deepEqual(outside, box(100, 0, 0, 0));
    assert.ok(boxEquals(box(1, 2, 3, 4), box(1, 2, 3, 4)));
    assert.ok(!boxEquals(box(1, 2, 3, 4), box(1, 2, 4, 3)));
  });
});

// ---------------------------------------------------------------------------------------------

describe('mask planes', () => {
  test('afw default bits, then the ip_diffim planes in order', () => {
    const expected = [
      'BAD', 'SAT', 'INTRP', 'CR', 'EDGE', 'DETECTED', 'DETECTED_NEGATIVE', 'SUSPECT', 'NO_DATA',
      'SAT_TEMPLATE', 'HIGH_VARIANCE', 'INJECTED', 'INJECTED_TEMPLATE', 'STREAK',
    ] as const;
    assert.deepEqual(Object.keys(MASK_PLANES), [...expected]);
    expected.forEach((name, i) => {
      assert.equal(MASK_PLANES[name], i);
      assert.equal(maskBit(name), 1 << i);
      assert.ok(MASK_PLANE_DESCRIPTIONS[name].length > 0);
    });
    assert.equal(maskBit('BAD'), 1);
    assert.equal(maskBit('EDGE'), 16);
    assert.equal(maskBit('NO_DATA'), 256);
    assert.equal(maskBit('STREAK'), 8192);
    assert.equal(maskOf('BAD', 'SAT', 'NO_DATA'), 1 | 2 | 256);
    assert.equal(maskOf(), 0);
    assert.ok(isMaskPlane('CR'));
    assert.ok(!isMaskPlane('CROSSTALK'));
    assert.throws(() => maskBit('NOPE' as never), ImageError);
    assert.ok(Object.isFrozen(MASK_PLANES));
  });

  test('header cards as afw writes them, and back', () => {
    const cards = maskPlaneCards();
    assert.equal(cards.length, 14);
    assert.deepEqual(cards[0], { key: 'MP_BAD', value: 0, comment: MASK_PLANE_DESCRIPTIONS.BAD });
    assert.deepEqual(cards.find((c) => c.key === 'MP_DETECTED_NEGATIVE')?.value, 6);
    assert.deepEqual(cards.find((c) => c.key === 'MP_STREAK')?.value, 13);
    // Descriptions are short enough for `HIERARCH MP_DETECTED_NEGATIVE = 6 / …` in 80 columns.
    for (const c of cards) assert.ok(`HIERARCH ${c.key} = ${c.value} / ${c.comment}`.length <= 80, c.key);
    assert.deepEqual(parseMaskPlaneCards(cards), { ...MASK_PLANES });

    // As a FITS reader may hand them over: other cards mixed in, HIERARCH prefix, any case.
    const fromFile = parseMaskPlaneCards([
      { key: 'EXTNAME', value: 'MASK' },
      { key: 'HIERARCH MP_DETECTED_NEGATIVE', value: 6 },
      { key: 'mp_bad', value: 0 },
      { key: 'MP_CROSSTALK', value: 9 },
      { key: 'MP_SAT', value: 1n },
    ]);
    assert.deepEqual(fromFile, { DETECTED_NEGATIVE: 6, BAD: 0, CROSSTALK: 9, SAT: 1 });

    // Cards sort by bit number whatever the input order; unknown planes get a generic comment.
    const custom = maskPlaneCards({ ZED: 3, BAD: 0 });
    assert.deepEqual(custom.map((c) => c.key), ['MP_BAD', 'MP_ZED']);

    assert.throws(() => parseMaskPlaneCards([{ key: 'MP_BAD', value: 'zero' }]), ImageError);
    assert.throws(() => parseMaskPlaneCards([{ key: 'MP_BAD', value: 32 }]), ImageError);
    assert.throws(() => parseMaskPlaneCards([{ key: 'MP_BAD', value: 1.5 }]), ImageError);
    assert.throws(() => parseMaskPlaneCards([{ key: 'MP_BAD', value: 0 }, { key: 'MP_CR', value: 0 }]), ImageError);
    assert.throws(() => parseMaskPlaneCards([{ key: 'MP_BAD', value: 0 }, { key: 'MP_BAD', value: 2 }]), ImageError);
    assert.throws(() => maskPlaneCards({ BAD: 0, SAT: 0 }), ImageError);
    assert.throws(() => maskPlaneCards({ 'bad name': 0 }), ImageError);
  });

  test('remap a mask written with a different bit assignment', () => {
    // A file whose planes sit elsewhere (as an LSST repo with extra planes can define them),
    // read back through its cards.
    const theirs = parseMaskPlaneCards([
      { key: 'MP_BAD', value: 0 },
      { key: 'MP_SAT', value: 1 },
      { key: 'MP_CR', value: 3 },
      { key: 'MP_NO_DATA', value: 8 },
      { key: 'MP_CROSSTALK', value: 9 },
      { key: 'MP_STREAK', value: 10 },
      { key: 'MP_SAT_TEMPLATE', value: 17 },
      { key: 'MP_INJECTED', value: 31 },
    ]);
    const mask = new Int32Array([
      0,
      1 << 0,
      (1 << 1) | (1 << 3),
      1 << 9, // CROSSTALK: not one of ours, dropped
      1 << 10, // STREAK → 13
      (1 << 17) | (1 << 8), // SAT_TEMPLATE → 9, NO_DATA stays 8
      1 << 31, // INJECTED (sign bit) → 11
      1 << 20, // a bit their cards do not name: dropped
      -1, // everything
    ]);
    const ours = remapMask(mask, theirs, MASK_PLANES);
    const m = (...n: Parameters<typeof maskOf>) => maskOf(...n);
    assert.deepEqual(Array.from(ours), [
      0,
      m('BAD'),
      m('SAT', 'CR'),
      0,
      m('STREAK'),
      m('SAT_TEMPLATE', 'NO_DATA'),
      m('INJECTED'),
      0,
      m('BAD', 'SAT', 'CR', 'NO_DATA', 'STREAK', 'SAT_TEMPLATE', 'INJECTED'),
    ]);
    assert.notEqual(ours, mask);
    // And back again: the planes both sides know survive the round trip.
    const back = remapMask(ours, MASK_PLANES, theirs);
    assert.deepEqual(Array.from(back), [0, 1, 2 | 8, 0, 1 << 10, (1 << 17) | 256, 1 << 31, 0, 1 | 2 | 8 | 256 | (1 << 10) | (1 << 17) | (1 << 31)]);

    // Identity mapping: a copy with only unnamed bits cleared.
    const same = remapMask(new Int32Array([3, 1 << 20]), MASK_PLANES, MASK_PLANES);
    assert.deepEqual(Array.from(same), [3, 0]);
    assert.throws(() => remapMask(mask, { BAD: 40 }, MASK_PLANES), ImageError);
  });
});

// ---------------------------------------------------------------------------------------------

describe('masked image', () => {
  /** A 10×8 image at parent origin (100, 200) whose pixel values encode their parent coordinates. */
  function coded(): ReturnType<typeof createMaskedImage> {
    const mi = createMaskedImage(10, 8, 100, 200);
    for (let y = 0; y < mi.height; y++) {
      for (let x = 0; x < mi.width; x++) {
        const i = y * mi.width + x;
        mi.image[i] = (mi.x0 + x) * 1000 + (mi.y0 + y);
        mi.mask[i] = x + y;
        mi.variance[i] = -mi.image[i];
      }
    }
    return mi;
  }

  test('create, bbox, from arrays', () => {
    const mi = createMaskedImage(4, 3);
    assert.deepEqual(bbox(mi), box(0, 0, 4, 3));
    assert.equal(mi.image.length, 12);
    assert.ok(mi.image.every((v) => v === 0) && mi.mask.every((v) => v === 0) && mi.variance.every((v) => v === 0));

    const image = new Float32Array(6);
    const w = maskedImageFromArrays({ width: 3, height: 2, x0: 5, y0: -1, image });
    assert.equal(w.image, image, 'planes are adopted, not copied');
    assert.deepEqual(bbox(w), box(5, -1, 3, 2));
    assert.equal(w.mask.length, 6);

    const err = (() => {
      try {
        maskedImageFromArrays({ width: 3, height: 2, image, variance: new Float32Array(5) });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof ImageError && err instanceof RangeError);
    assert.equal((err as ImageError).code, 'SIZE_MISMATCH');
    assert.match((err as ImageError).message, /variance plane has 5 elements, expected 3×2 = 6/);
    assert.throws(() => maskedImageFromArrays({ width: 3, height: 2, image: new Float64Array(6) as never }), {
      code: 'BAD_ARGUMENT',
    });
    assert.throws(() => createMaskedImage(2.5, 2), { code: 'BAD_ARGUMENT' });
    // Refused before anything is allocated.
    assert.throws(() => createMaskedImage(65536, 32769), { name: 'ImageError', code: 'TOO_LARGE' });
  });

  test('subImage by parent coordinates with a non-zero origin', () => {
    const mi = coded();
    const sub = subImage(mi, box(103, 202, 4, 3));
    assert.deepEqual(bbox(sub), box(103, 202, 4, 3));
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 4; x++) {
        const i = y * 4 + x;
        assert.equal(sub.image[i], (103 + x) * 1000 + (202 + y));
        assert.equal(sub.mask[i], 3 + x + 2 + y);
        assert.equal(sub.variance[i], -sub.image[i]);
      }
    }
    sub.image[0] = -1;
    assert.equal(mi.image[2 * 10 + 3], 103202, 'subImage copies');
    assert.deepEqual(Array.from(subImage(mi, bbox(mi)).image), Array.from(mi.image));
    assert.equal(subImage(mi, box(100, 200, 0, 5)).image.length, 0);
    // Boxes given in local coordinates by mistake fall outside and are refused.
    assert.throws(() => subImage(mi, box(0, 0, 2, 2)), { code: 'OUT_OF_BOUNDS' });
    assert.throws(() => subImage(mi, box(108, 206, 3, 2)), { code: 'OUT_OF_BOUNDS' });
    assert.throws(() => subImage(mi, box(99, 200, 2, 2)), ImageError);
  });

  test('setSubImage pastes by parent coordinates; clone is deep', () => {
    const src = coded();
    const dst = createMaskedImage(20, 20, 95, 195);
    setSubImage(dst, subImage(src, box(104, 203, 3, 2)));
    for (let y = 0; y < dst.height; y++) {
      for (let x = 0; x < dst.width; x++) {
        const X = dst.x0 + x;
        const Y = dst.y0 + y;
        const inside = X >= 104 && X < 107 && Y >= 203 && Y < 205;
        const i = y * dst.width + x;
        assert.equal(dst.image[i], inside ? X * 1000 + Y : 0, `(${X}, ${Y})`);
        assert.equal(dst.mask[i], inside ? X - 100 + (Y - 200) : 0);
      }
    }
    // A whole round trip: cut out, paste back into a blank copy of the same frame.
    const blank = createMaskedImage(10, 8, 100, 200);
    setSubImage(blank, subImage(src, box(100, 200, 10, 4)));
    setSubImage(blank, subImage(src, box(100, 204, 10, 4)));
    assert.deepEqual(Array.from(blank.image), Array.from(src.image));
    assert.throws(() => setSubImage(createMaskedImage(5, 5, 100, 200), src), { code: 'OUT_OF_BOUNDS' });

    const c = cloneMaskedImage(src);
    c.image[0] = 42;
    c.mask[0] = 42;
    assert.notEqual(src.image[0], 42);
    assert.notEqual(src.mask[0], 42);
    assert.deepEqual(bbox(c), bbox(src));
  });
});

// ---------------------------------------------------------------------------------------------
// Statistics against numpy.

const PYTHON = '/usr/bin/python3';

function numpyAvailable(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  return r.status === 0;
}

// Same definitions as stats.ts, written independently: sample std (ddof=1), linear quantiles, and
// the clipping loop (std and median of survivors, keep |x - median| <= nSigma·std, stop when
// nothing or everything would go, at most maxIter passes).
const ORACLE = `
import sys, json
import numpy as np
x = np.fromfile(sys.argv[1], dtype='<f8')
m = np.fromfile(sys.argv[2], dtype='<i4')
bad = int(sys.argv[3])
v = x[np.isfinite(x) & ((m & bad) == 0)]
med = np.median(v)
cur = v
for _ in range(5):
    s = np.std(cur, ddof=1) if len(cur) > 1 else float('nan')
    if not (s > 0):
        break
    md = np.median(cur)
    keep = np.abs(cur - md) <= 3.0 * s
    k = int(keep.sum())
    if k == len(cur) or k == 0:
        break
    cur = cur[keep]
out = {
  'n': int(len(v)),
  'median': float(med),
  'mad': float(np.median(np.abs(v - med))),
  'mean': float(np.mean(v)),
  'std': float(np.std(v, ddof=1)),
  'q': [float(np.quantile(v, q)) for q in (0.0, 0.1, 0.25, 0.75, 0.9, 1.0)],
  'clip': {'mean': float(np.mean(cur)), 'median': float(np.median(cur)), 'std': float(np.std(cur, ddof=1)), 'n': int(len(cur))},
}
print(json.dumps(out))
`;

interface Oracle {
  n: number;
  median: number;
  mad: number;
  mean: number;
  std: number;
  q: number[];
  clip: { mean: number; median: number; std: number; n: number };
}

function numpyStats(dir: string, values: FloatArray, mask: Int32Array, badBits: number): Oracle {
  const xs = join(dir, 'x.f8');
  const ms = join(dir, 'm.i4');
  const f64 = Float64Array.from(values);
  writeFileSync(xs, new Uint8Array(f64.buffer)); // little-endian on every platform we run on
  writeFileSync(ms, new Uint8Array(mask.buffer, mask.byteOffset, mask.byteLength));
  const r = spawnSync(PYTHON, ['-c', ORACLE, xs, ms, String(badBits)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`numpy oracle failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Oracle;
}

function near(actual: number, expected: number, rel: number, what: string): void {
  const tol = rel * Math.max(Math.abs(expected), 1e-300);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs numpy ${expected} (rel tol ${rel})`);
}

/** Gaussian values with outliers, NaNs and infinities, and a mask with a few planes set. */
function messy(n: number, seed: number, f32: boolean): { values: FloatArray; mask: Int32Array } {
  const u = rng(seed);
  const g = gaussian(u);
  const values = f32 ? new Float32Array(n) : new Float64Array(n);
  const mask = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = u();
    let v = 50 + 3 * g();
    if (r < 0.02) v = 100 + 900 * u(); // bright outliers (sources, cosmic rays)
    else if (r < 0.03) v = -200 * u(); // negative outliers
    else if (r < 0.04) v = NaN;
    else if (r < 0.042) v = u() < 0.5 ? Infinity : -Infinity;
    values[i] = v;
    const s = u();
    if (s < 0.05) mask[i] = maskBit('BAD');
    else if (s < 0.08) mask[i] = maskBit('DETECTED');
    else if (s < 0.09) mask[i] = maskOf('SAT', 'CR');
  }
  return { values, mask };
}

describe('stats', () => {
  const haveNumpy = numpyAvailable();

  test('agree with numpy on seeded arrays with outliers and NaNs', { skip: !haveNumpy && 'numpy not installed' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffim-stats-'));
    try {
      const bad = maskOf('BAD', 'SAT');
      const cases: Array<{ name: string; n: number; seed: number; f32: boolean; badBits?: number }> = [
        { name: 'odd f64, no mask', n: 10001, seed: 1, f32: false },
        { name: 'even f64, no mask', n: 20000, seed: 2, f32: false },
        { name: 'f64 with BAD|SAT masked', n: 15000, seed: 3, f32: false, badBits: bad },
        { name: 'f64, any mask bit', n: 9999, seed: 4, f32: false, badBits: -1 },
        { name: 'small f64', n: 7, seed: 5, f32: false },
        // Large float32 planes take the radix-selection path.
        { name: 'f32 radix, odd', n: 200001, seed: 6, f32: true },
        { name: 'f32 radix, even, masked', n: 300000, seed: 7, f32: true, badBits: bad },
      ];
      for (const c of cases) {
        const { values, mask } = messy(c.n, c.seed, c.f32);
        const opts = c.badBits === undefined ? {} : { mask, badBits: c.badBits };
        const np = numpyStats(dir, values, c.badBits === undefined ? new Int32Array(c.n) : mask, c.badBits ?? 0);
        const what = (s: string) => `${c.name}: ${s}`;
        assert.equal(finiteCount(values, opts), np.n, what('count'));
        assert.equal(median(values, opts), np.median, what('median'));
        // Float32 deviations are rounded to float32 on the radix path.
        near(mad(values, opts), np.mad, c.f32 ? 1e-7 : 1e-12, what('mad'));
        near(mean(values, opts), np.mean, 1e-9, what('mean'));
        near(std(values, opts), np.std, 1e-9, what('std'));
        [0, 0.1, 0.25, 0.75, 0.9, 1].forEach((q, i) => near(quantile(values, q, opts), np.q[i], 1e-12, what(`quantile ${q}`)));
        const clipped = sigmaClippedStats(values, { ...opts, nSigma: 3, maxIter: 5 });
        assert.equal(clipped.n, np.clip.n, what('clipped n'));
        near(clipped.mean, np.clip.mean, 1e-9, what('clipped mean'));
        assert.equal(clipped.median, np.clip.median, what('clipped median'));
        near(clipped.std, np.clip.std, 1e-9, what('clipped std'));
        // The default badBits with a mask is "any set bit".
        if (c.badBits === -1) assert.equal(median(values, { mask }), np.median);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('radix path (float32) matches the selection path (float64) on awkward data', () => {
    const u = rng(11);
    const n = 1 << 17; // even, above the radix threshold
    const makers: Record<string, (i: number) => number> = {
      sorted: (i) => i - n / 3,
      reversed: (i) => -i,
      constant: () => 7,
      'two values': (i) => i & 1,
      'signed zeros and ±': (i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : u() < 0.5 ? -1e-30 : 1e-30),
      quantised: () => Math.floor(u() * 5) - 2,
      'wide range': () => (u() - 0.5) * 10 ** (u() * 60 - 30),
      'with non-finite': (i) => (i % 10 === 0 ? NaN : i % 10 === 1 ? -Infinity : Math.fround(u() * 100)),
    };
    for (const [name, f] of Object.entries(makers)) {
      const a32 = new Float32Array(n);
      for (let i = 0; i < n; i++) a32[i] = f(i);
      const a64 = Float64Array.from(a32); // same values, selected with Floyd–Rivest
      assert.equal(median(a32), median(a64), `${name}: median`);
      assert.equal(median(a32.subarray(1)), median(a64.subarray(1)), `${name}: odd median`);
      for (const q of [0, 0.01, 0.3, 0.5, 0.77, 1]) assert.equal(quantile(a32, q), quantile(a64, q), `${name}: q=${q}`);
      const s32 = sigmaClippedStats(a32);
      const s64 = sigmaClippedStats(a64);
      assert.equal(s32.n, s64.n, `${name}: clipped n`);
      assert.equal(s32.median, s64.median, `${name}: clipped median`);
      // A sorted copy as the plain oracle.
      const sorted = Float64Array.from(a64.filter((v) => Number.isFinite(v))).sort();
      const m = sorted.length;
      assert.equal(median(a64), (sorted[m / 2 - 1] + sorted[m / 2]) / 2 + 0, `${name}: vs sort`);
    }
    // The input is never reordered.
    const a = Float32Array.from({ length: n }, (_, i) => n - i);
    median(a);
    quantile(a, 0.3);
    mad(a);
    sigmaClippedStats(a);
    assert.ok(a.every((v, i) => v === n - i));
  });

  test('empty selections give NaN and n = 0, never throw', () => {
    for (const empty of [new Float64Array(0), new Float32Array([NaN, Infinity, -Infinity]), new Float32Array(1 << 17).fill(NaN)]) {
      assert.ok(Number.isNaN(median(empty)));
      assert.ok(Number.isNaN(quantile(empty, 0.5)));
      assert.ok(Number.isNaN(mad(empty)));
      assert.ok(Number.isNaN(robustStd(empty)));
      assert.ok(Number.isNaN(mean(empty)));
      assert.ok(Number.isNaN(std(empty)));
      assert.equal(finiteCount(empty), 0);
      const s = sigmaClippedStats(empty);
      assert.ok(Number.isNaN(s.mean) && Number.isNaN(s.median) && Number.isNaN(s.std));
      assert.equal(s.n, 0);
    }
    const all = new Float64Array([1, 2, 3]);
    const masked = { mask: new Int32Array([1, 1, 1]), badBits: 1 };
    assert.ok(Number.isNaN(median(all, masked)));
    assert.equal(sigmaClippedStats(all, masked).n, 0);
    // One value: a median and mean but no sample std.
    const one = sigmaClippedStats(new Float64Array([4]));
    assert.deepEqual([one.mean, one.median, one.n], [4, 4, 1]);
    assert.ok(Number.isNaN(one.std));
    assert.equal(std(new Float64Array([4]), { ddof: 0 }), 0);
    assert.deepEqual(medianAndMad(new Float64Array([1, 2, 4, 100])), { median: 3, mad: 1.5 });
    // badBits 0 disqualifies nothing; a wrong-length mask is a programming error.
    assert.equal(median(all, { mask: new Int32Array([1, 1, 1]), badBits: 0 }), 2);
    assert.throws(() => median(all, { mask: new Int32Array(2) }), { code: 'SIZE_MISMATCH' });
    assert.throws(() => quantile(all, 1.5), ImageError);
  });

  test('robustStd of N(0,1) is within 0.5 % of 1', () => {
    const g = gaussian(rng(12345));
    const n = 1_000_000;
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = g();
    const s64 = robustStd(a);
    assert.ok(Math.abs(s64 - 1) < 0.005, `robustStd = ${s64}`);
    const s32 = robustStd(Float32Array.from(a));
    assert.ok(Math.abs(s32 - 1) < 0.005, `robustStd (float32) = ${s32}`);
    assert.ok(Math.abs(s32 - s64) < 1e-6);
  });

  test('clipped mean ignores 1 % of huge outliers', () => {
    const u = rng(777);
    const g = gaussian(u);
    const n = 200_000;
    const truth = 5;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = u() < 0.01 ? 1e4 + 1e6 * u() : truth + g();
    const plain = mean(a);
    assert.ok(plain > 100, 'the outliers do drag the plain mean');
    const s = sigmaClippedStats(a);
    assert.ok(Math.abs(s.mean - truth) < 0.01, `clipped mean = ${s.mean}`);
    assert.ok(Math.abs(s.std - 1) < 0.02, `clipped std = ${s.std}`);
    assert.ok(s.n < n * 0.99 && s.n > n * 0.97, `kept ${s.n}`);
  });
});
