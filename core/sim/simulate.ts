/**
 * Synthetic template/science pairs with known truth, for testing PSF-matched subtraction.
 *
 * Frames: configured star and transient positions are in the SCENE frame; epoch e shows the scene
 * shifted by its offset (dx_e, dy_e). Truth star positions are in the template frame (scene +
 * template offset), truth transients in the science frame. Pixel (x, y) is index y*width + x,
 * pixel centres at integers.
 *
 * Randomness: each part draws from its own stream of the seed (stars, variables, transients,
 * cosmic rays, template noise, science noise), so changing one never moves another.
 *
 * Images are in ADU: electrons = Poisson(sky + sources) + N(0, readNoise²), ADU = electrons/gain,
 * clipped at `saturation` (mask SAT) BEFORE any sky subtraction (a saturated pixel of a
 * sky-subtracted image reads saturation − skyAdu). The variance plane is the expected variance
 * (sky + sources)/gain² + (readNoise/gain)², in ADU², from the noiseless model.
 */
import { createMaskedImage, type MaskedImage } from '../image/masked-image.ts';
import { maskBit } from '../image/mask.ts';
import { SimError } from './errors.ts';
import { Rng } from './random.ts';
import {
  type PsfSpec,
  type PsfParams,
  checkOddSize,
  evalPsf,
  isConstantPsf,
  renderPsfStamp,
  renderUnitStamp,
} from './psf-model.ts';

export interface EpochSpec {
  psf: PsfSpec;
  /** Sub-pixel shift (dx, dy) of the whole scene in this epoch, default [0, 0]. */
  offset?: [number, number];
  /** Multiplies every static star flux (transparency/exposure), default 1. */
  fluxScale?: number;
  /** Electrons/pixel: level + gradX·(x − cx) + gradY·(y − cy), (cx, cy) the image centre; must be ≥ 0 everywhere. */
  sky?: { level: number; gradX?: number; gradY?: number };
  /** e-/ADU, default 1. */
  gain?: number;
  /** Electrons, default 0. */
  readNoise?: number;
  /** ADU; pixels above are clipped to it and get mask SAT; default Infinity. */
  saturation?: number;
  /** Subtract the sky model from the image (noise stays), default false. */
  skySubtracted?: boolean;
  /** Default true; false gives the noiseless expectation. */
  noise?: boolean;
}

export interface SimConfig {
  width: number;
  height: number;
  /** Any safe integer. */
  seed: number;
  /** Static stars, positions uniform over [border, size−1−border] (scene frame). */
  nStars: number;
  /** Electrons (total, before fluxScale): dN/dF ∝ F^−slope; default min 2e3, max 5e5, slope 1.5. */
  starFlux?: { min: number; max: number; slope?: number };
  /** Minimum distance between random stars and transients (scene frame); rejection sampling, 1000 tries each. */
  minSeparation?: number;
  /** Explicit stars (scene frame, flux before fluxScale) instead of random ones; nStars is then ignored. */
  stars?: Array<{ x: number; y: number; flux: number }>;
  template: EpochSpec;
  science: EpochSpec;
  /** `count` of the stars with flux ≥ median get science flux × factor, uniform over [min, max] minus (0.9, 1.1); default 0.5..2. */
  variables?: { count: number; minFactor?: number; maxFactor?: number };
  /** Point sources only in the science image, electrons (not × fluxScale). Random: log-uniform flux, default 5e3..5e4. Explicit: scene frame. */
  transients?: { count: number; flux?: { min: number; max: number } } | Array<{ x: number; y: number; flux: number }>;
  /** 1–3 connected pixels in the science image only, not masked; log-uniform total flux, default 1e3..2e4 electrons. */
  cosmicRays?: { count: number; flux?: { min: number; max: number } };
  /** Random stars/transients keep this distance from the edge pixel centres, default 0. */
  border?: number;
}

/** x, y: template frame. flux: template electrons (F × template.fluxScale); scienceFlux: science electrons. */
export interface SimStar {
  id: number;
  x: number;
  y: number;
  flux: number;
  scienceFlux: number;
  variable: boolean;
  /** Science/template flux factor of a variable (1 for static stars). */
  factor?: number;
}

export interface SimCosmicRay {
  /** First pixel hit. */
  x: number;
  y: number;
  /** Total electrons. */
  flux: number;
  /** Every pixel hit with its electrons. */
  pixels?: Array<{ x: number; y: number; flux: number }>;
}

export type Epoch = 'template' | 'science';

export interface SimTruth {
  stars: SimStar[];
  /** Science-frame positions, electrons. */
  transients: Array<{ id: number; x: number; y: number; flux: number }>;
  cosmicRays: SimCosmicRay[];
  /** S_ADU / T_ADU of a static star: (fluxScale_s / fluxScale_t) · (gain_t / gain_s). */
  fluxScale: number;
  /** size×size (odd) PSF at (x, y) of that epoch's frame, centred on the central pixel, sum 1, rendered as stars are. */
  psfImage(epoch: Epoch, x: number, y: number, size: number): Float64Array;
  /** Covariance (px²) of the Gaussian (for Moffat: the Gaussian with the same FWHM and shape) and the FWHM. */
  psfSigma(epoch: Epoch, x: number, y: number): { sxx: number; syy: number; sxy: number; fwhm: number };
  /**
   * K with science ≈ K ⊗ template: element [(v+h)*size + (u+h)] = K(u, v), (K⊗T)(x,y) =
   * Σ K(u,v)·T(x−u, y−v). The point-sampled Gaussian of covariance Σ_s(x,y) − Σ_t(x,y) centred on
   * the offset difference, summing to fluxScale. null for a Moffat epoch, a difference that is not
   * positive definite, or one too narrow to sample (sum underflows). Accurate to ~exp(−2π²σ_min²)
   * of the kernel: keep its minor sigma ≳ 0.8 px.
   */
  matchingKernel(x: number, y: number, size: number): Float64Array | null;
  /** Sky actually in that image at (x, y), ADU (0 if skySubtracted). */
  skyAdu(epoch: Epoch, x: number, y: number): number;
  /** skyAdu('science') − fluxScale·skyAdu('template'): B in science ≈ K⊗template + B. */
  background(x: number, y: number): number;
}

export interface SimResult {
  template: MaskedImage;
  science: MaskedImage;
  truth: SimTruth;
}

const MAX_PIXELS = 2 ** 26;
const MAX_SOURCES = 1e6;
const PLACE_ATTEMPTS = 1000;
const STREAM_STARS = 1;
const STREAM_VARIABLES = 2;
const STREAM_TRANSIENTS = 3;
const STREAM_COSMICS = 4;
const STREAM_TEMPLATE_NOISE = 5;
const STREAM_SCIENCE_NOISE = 6;

interface ResolvedEpoch {
  psf: PsfSpec;
  dx: number;
  dy: number;
  fluxScale: number;
  sky: number;
  gradX: number;
  gradY: number;
  gain: number;
  readNoise: number;
  saturation: number;
  skySubtracted: boolean;
  noise: boolean;
}

function finite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new SimError(`${what} must be a finite number, got ${String(v)}`);
  return v;
}

function positive(v: unknown, what: string): number {
  const x = finite(v, what);
  if (!(x > 0)) throw new SimError(`${what} must be > 0, got ${x}`);
  return x;
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_SOURCES) {
    throw new SimError(`${what} must be an integer in [0, ${MAX_SOURCES}], got ${String(v)}`);
  }
  return v;
}

function fluxRange(r: { min: number; max: number } | undefined, min: number, max: number, what: string): [number, number] {
  const lo = positive(r?.min ?? min, `${what}.min`);
  const hi = positive(r?.max ?? max, `${what}.max`);
  if (hi < lo) throw new SimError(`${what}.max (${hi}) < ${what}.min (${lo})`);
  return [lo, hi];
}

function resolveEpoch(name: string, e: EpochSpec | undefined, w: number, h: number): ResolvedEpoch {
  if (e === null || typeof e !== 'object') throw new SimError(`${name} epoch spec is missing`);
  const off = e.offset ?? [0, 0];
  if (!Array.isArray(off) || off.length !== 2) throw new SimError(`${name}.offset must be [dx, dy]`);
  const sky = e.sky ?? { level: 0 };
  const r: ResolvedEpoch = {
    psf: e.psf,
    dx: finite(off[0], `${name}.offset[0]`),
    dy: finite(off[1], `${name}.offset[1]`),
    fluxScale: positive(e.fluxScale ?? 1, `${name}.fluxScale`),
    sky: finite(sky.level, `${name}.sky.level`),
    gradX: finite(sky.gradX ?? 0, `${name}.sky.gradX`),
    gradY: finite(sky.gradY ?? 0, `${name}.sky.gradY`),
    gain: positive(e.gain ?? 1, `${name}.gain`),
    readNoise: finite(e.readNoise ?? 0, `${name}.readNoise`),
    saturation: e.saturation ?? Infinity,
    skySubtracted: e.skySubtracted ?? false,
    noise: e.noise ?? true,
  };
  if (r.readNoise < 0) throw new SimError(`${name}.readNoise must be ≥ 0, got ${r.readNoise}`);
  if (typeof r.saturation !== 'number' || Number.isNaN(r.saturation)) {
    throw new SimError(`${name}.saturation must be a number (Infinity for none), got ${String(r.saturation)}`);
  }
  // A plane is lowest at a corner: negative sky has no Poisson meaning.
  const minSky = r.sky - (Math.abs(r.gradX) * (w - 1)) / 2 - (Math.abs(r.gradY) * (h - 1)) / 2;
  if (minSky < 0) throw new SimError(`${name}.sky goes negative (${minSky} e-) inside the image`);
  evalPsf(r.psf, (w - 1) / 2, (h - 1) / 2); // validates profile, beta and constant Fields early
  return r;
}

/** Power-law deviate, dN/dF ∝ F^−slope on [lo, hi], by inverting the CDF. */
function powerLaw(u: number, lo: number, hi: number, slope: number): number {
  if (lo === hi) return lo;
  const g = 1 - slope;
  if (Math.abs(g) < 1e-12) return lo * Math.pow(hi / lo, u);
  const a = Math.pow(lo, g);
  return Math.pow(a + u * (Math.pow(hi, g) - a), 1 / g);
}

/** Point sets with a minimum separation, looked up through a uniform grid of cell = separation. */
class SeparationGrid {
  private readonly cells = new Map<number, number[]>();
  private readonly pts: number[] = [];
  constructor(private readonly sep: number) {}
  private key(cx: number, cy: number): number {
    return (cx + 0x100000) * 0x200000 + (cy + 0x100000);
  }
  ok(x: number, y: number): boolean {
    if (!(this.sep > 0)) return true;
    const cx = Math.floor(x / this.sep);
    const cy = Math.floor(y / this.sep);
    const s2 = this.sep * this.sep;
    for (let j = cy - 1; j <= cy + 1; j++) {
      for (let i = cx - 1; i <= cx + 1; i++) {
        const cell = this.cells.get(this.key(i, j));
        if (cell === undefined) continue;
        for (const k of cell) {
          const ddx = this.pts[2 * k] - x;
          const ddy = this.pts[2 * k + 1] - y;
          if (ddx * ddx + ddy * ddy < s2) return false;
        }
      }
    }
    return true;
  }
  add(x: number, y: number): void {
    if (!(this.sep > 0)) return;
    const k = this.pts.length / 2;
    this.pts.push(x, y);
    const key = this.key(Math.floor(x / this.sep), Math.floor(y / this.sep));
    const cell = this.cells.get(key);
    if (cell === undefined) this.cells.set(key, [k]);
    else cell.push(k);
  }
}

/** A uniform position in [lo, hiX]×[lo, hiY] that respects the grid, or a SimError. */
function place(rng: Rng, grid: SeparationGrid, lo: number, hiX: number, hiY: number, what: string): [number, number] {
  for (let t = 0; t < PLACE_ATTEMPTS; t++) {
    const x = lo + rng.uniform() * (hiX - lo);
    const y = lo + rng.uniform() * (hiY - lo);
    if (grid.ok(x, y)) {
      grid.add(x, y);
      return [x, y];
    }
  }
  throw new SimError(`could not place ${what} after ${PLACE_ATTEMPTS} attempts: minSeparation too large for the density`);
}

/** Add point sources (epoch-frame positions, electrons) to a model, each with the PSF at its position. */
function addSources(model: Float64Array, w: number, h: number, psf: PsfSpec, xs: number[], ys: number[], fl: number[]): void {
  const constant = isConstantPsf(psf);
  let p: PsfParams | undefined = constant ? evalPsf(psf, (w - 1) / 2, (h - 1) / 2) : undefined;
  for (let s = 0; s < xs.length; s++) {
    const x = xs[s];
    const y = ys[s];
    const flux = fl[s];
    if (!Number.isFinite(x) || !Number.isFinite(y) || flux === 0) continue;
    if (!constant) p = evalPsf(psf, x, y);
    const pp = p as PsfParams;
    const r = pp.radius;
    const d = 2 * r + 1;
    const ix = Math.round(x);
    const iy = Math.round(y);
    const x0 = ix - r;
    const y0 = iy - r;
    if (x0 >= w || y0 >= h || x0 + d <= 0 || y0 + d <= 0) continue;
    const buf = renderUnitStamp(pp, x - ix, y - iy);
    const i0 = Math.max(0, -x0);
    const i1 = Math.min(d, w - x0);
    const j0 = Math.max(0, -y0);
    const j1 = Math.min(d, h - y0);
    for (let j = j0; j < j1; j++) {
      const row = (y0 + j) * w + x0;
      const brow = j * d;
      for (let i = i0; i < i1; i++) model[row + i] += flux * buf[brow + i];
    }
  }
}

/** Noise, gain, saturation and sky subtraction: model (electrons, without sky) → ADU planes. */
function realise(model: Float64Array, w: number, h: number, ep: ResolvedEpoch, rng: Rng): MaskedImage {
  const mi = createMaskedImage(w, h);
  const { image, mask, variance } = mi;
  const invGain = 1 / ep.gain;
  const invGain2 = invGain * invGain;
  const rnVar = (ep.readNoise * invGain) ** 2;
  const rn = ep.readNoise;
  const sat = ep.saturation;
  const satBit = maskBit('SAT');
  const noise = ep.noise;
  const sub = ep.skySubtracted;
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  for (let y = 0; y < h; y++) {
    const skyRow = ep.sky + ep.gradY * (y - cy) - ep.gradX * cx;
    const row = y * w;
    for (let x = 0; x < w; x++) {
      const i = row + x;
      const sky = skyRow + ep.gradX * x;
      const m = model[i] + sky;
      let e = m;
      if (noise) {
        e = rng.poisson(m);
        if (rn > 0) e += rn * rng.normal();
      }
      let adu = e * invGain;
      if (adu > sat) {
        adu = sat;
        mask[i] = satBit;
      }
      if (sub) adu -= sky * invGain;
      image[i] = adu;
      variance[i] = (m > 0 ? m : 0) * invGain2 + rnVar;
    }
  }
  return mi;
}

export function simulatePair(config: SimConfig): SimResult {
  if (config === null || typeof config !== 'object') throw new SimError('config must be an object');
  const { width: w, height: h } = config;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new SimError(`image size must be positive integers, got ${String(w)}×${String(h)}`);
  }
  if (w * h > MAX_PIXELS) throw new SimError(`${w}×${h} = ${w * h} pixels exceeds the limit of ${MAX_PIXELS}`);
  const seed = config.seed;
  if (!Number.isSafeInteger(seed)) throw new SimError(`seed must be a safe integer, got ${String(seed)}`);
  const tpl = resolveEpoch('template', config.template, w, h);
  const sci = resolveEpoch('science', config.science, w, h);
  const border = finite(config.border ?? 0, 'border');
  if (border < 0) throw new SimError(`border must be ≥ 0, got ${border}`);
  const minSep = finite(config.minSeparation ?? 0, 'minSeparation');
  if (minSep < 0) throw new SimError(`minSeparation must be ≥ 0, got ${minSep}`);
  const hiX = w - 1 - border;
  const hiY = h - 1 - border;
  const needRandom = (config.stars === undefined && config.nStars > 0) ||
    (config.transients !== undefined && !Array.isArray(config.transients) && config.transients.count > 0);
  if (needRandom && (hiX < border || hiY < border)) {
    throw new SimError(`border ${border} leaves no room in a ${w}×${h} image`);
  }
  const grid = new SeparationGrid(minSep);

  // Stars (scene frame, base flux F).
  const sx: number[] = [];
  const sy: number[] = [];
  const sf: number[] = [];
  if (config.stars !== undefined) {
    if (!Array.isArray(config.stars)) throw new SimError('stars must be an array');
    if (config.stars.length > MAX_SOURCES) throw new SimError(`more than ${MAX_SOURCES} stars`);
    config.stars.forEach((s, k) => {
      sx.push(finite(s?.x, `stars[${k}].x`));
      sy.push(finite(s?.y, `stars[${k}].y`));
      const f = finite(s?.flux, `stars[${k}].flux`);
      if (f < 0) throw new SimError(`stars[${k}].flux must be ≥ 0, got ${f}`);
      sf.push(f);
    });
  } else {
    const n = count(config.nStars, 'nStars');
    const [lo, hi] = fluxRange(config.starFlux, 2e3, 5e5, 'starFlux');
    const slope = finite(config.starFlux?.slope ?? 1.5, 'starFlux.slope');
    const rng = new Rng(seed, STREAM_STARS);
    for (let k = 0; k < n; k++) {
      const [x, y] = place(rng, grid, border, hiX, hiY, `star ${k}`);
      sx.push(x);
      sy.push(y);
      sf.push(powerLaw(rng.uniform(), lo, hi, slope));
    }
  }
  const nStars = sx.length;

  // Variables: chosen among stars at or above the median base flux.
  const factor = new Float64Array(nStars).fill(1);
  const isVar = new Uint8Array(nStars);
  if (config.variables !== undefined) {
    const v = config.variables;
    const nv = count(v.count, 'variables.count');
    const fmin = positive(v.minFactor ?? 0.5, 'variables.minFactor');
    const fmax = positive(v.maxFactor ?? 2.0, 'variables.maxFactor');
    if (fmax < fmin) throw new SimError(`variables.maxFactor (${fmax}) < minFactor (${fmin})`);
    const lo1 = fmin;
    const hi1 = Math.min(fmax, 0.9);
    const lo2 = Math.max(fmin, 1.1);
    const hi2 = fmax;
    const len1 = Math.max(0, hi1 - lo1);
    const len2 = Math.max(0, hi2 - lo2);
    const degenerate = fmin === fmax && Math.abs(fmin - 1) >= 0.1;
    if (nv > 0 && len1 + len2 === 0 && !degenerate) {
      throw new SimError(`variables factor range [${fmin}, ${fmax}] has nothing at least 0.1 away from 1`);
    }
    const sorted = sf.slice().sort((a, b) => a - b);
    const med = nStars === 0 ? 0 : nStars % 2 ? sorted[(nStars - 1) / 2] : (sorted[nStars / 2 - 1] + sorted[nStars / 2]) / 2;
    const eligible: number[] = [];
    for (let k = 0; k < nStars; k++) if (sf[k] >= med) eligible.push(k);
    if (nv > eligible.length) {
      throw new SimError(`variables.count ${nv} exceeds the ${eligible.length} stars with flux ≥ median`);
    }
    const rng = new Rng(seed, STREAM_VARIABLES);
    for (let k = 0; k < nv; k++) {
      const j = k + rng.int(eligible.length - k); // partial Fisher–Yates
      const t = eligible[j];
      eligible[j] = eligible[k];
      eligible[k] = t;
      const u = rng.uniform() * (len1 + len2);
      isVar[t] = 1;
      factor[t] = degenerate && len1 + len2 === 0 ? fmin : u < len1 ? lo1 + u : lo2 + (u - len1);
    }
  }

  // Transients (scene frame here; truth gets science frame).
  const tx: number[] = [];
  const ty: number[] = [];
  const tf: number[] = [];
  if (Array.isArray(config.transients)) {
    if (config.transients.length > MAX_SOURCES) throw new SimError(`more than ${MAX_SOURCES} transients`);
    config.transients.forEach((s, k) => {
      tx.push(finite(s?.x, `transients[${k}].x`));
      ty.push(finite(s?.y, `transients[${k}].y`));
      const f = finite(s?.flux, `transients[${k}].flux`);
      if (f < 0) throw new SimError(`transients[${k}].flux must be ≥ 0, got ${f}`);
      tf.push(f);
    });
  } else if (config.transients !== undefined) {
    const n = count(config.transients.count, 'transients.count');
    const [lo, hi] = fluxRange(config.transients.flux, 5e3, 5e4, 'transients.flux');
    const rng = new Rng(seed, STREAM_TRANSIENTS);
    for (let k = 0; k < n; k++) {
      const [x, y] = place(rng, grid, border, hiX, hiY, `transient ${k}`);
      tx.push(x);
      ty.push(y);
      tf.push(powerLaw(rng.uniform(), lo, hi, 1));
    }
  }

  // Cosmic rays (science frame): a random 4-connected walk of 1–3 pixels.
  const cosmicRays: SimCosmicRay[] = [];
  if (config.cosmicRays !== undefined) {
    const n = count(config.cosmicRays.count, 'cosmicRays.count');
    const [lo, hi] = fluxRange(config.cosmicRays.flux, 1e3, 2e4, 'cosmicRays.flux');
    const rng = new Rng(seed, STREAM_COSMICS);
    const steps = [1, 0, -1, 0, 0, 1, 0, -1];
    for (let k = 0; k < n; k++) {
      const flux = powerLaw(rng.uniform(), lo, hi, 1);
      const npix = 1 + rng.int(3);
      const px = [rng.int(w)];
      const py = [rng.int(h)];
      const wt = [0.2 + rng.uniform()];
      for (let tries = 0; px.length < npix && tries < 16; tries++) {
        const last = px.length - 1;
        const dir = rng.int(4);
        const nx = px[last] + steps[2 * dir];
        const ny = py[last] + steps[2 * dir + 1];
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        if (px.some((x, q) => x === nx && py[q] === ny)) continue;
        px.push(nx);
        py.push(ny);
        wt.push(0.2 + rng.uniform());
      }
      const wsum = wt.reduce((a, b) => a + b, 0);
      const pixels = px.map((x, q) => ({ x, y: py[q], flux: (flux * wt[q]) / wsum }));
      cosmicRays.push({ x: px[0], y: py[0], flux, pixels });
    }
  }

  // Truth records.
  const ddx = sci.dx - tpl.dx;
  const ddy = sci.dy - tpl.dy;
  const stars: SimStar[] = [];
  for (let k = 0; k < nStars; k++) {
    const star: SimStar = {
      id: k,
      x: sx[k] + tpl.dx,
      y: sy[k] + tpl.dy,
      flux: sf[k] * tpl.fluxScale,
      scienceFlux: sf[k] * sci.fluxScale * factor[k],
      variable: isVar[k] === 1,
    };
    if (isVar[k]) star.factor = factor[k];
    stars.push(star);
  }
  const transients = tx.map((x, k) => ({ id: k, x: x + sci.dx, y: ty[k] + sci.dy, flux: tf[k] }));

  // Render: template, then science, through one model buffer.
  const model = new Float64Array(w * h);
  addSources(model, w, h, tpl.psf, stars.map((s) => s.x), stars.map((s) => s.y), stars.map((s) => s.flux));
  const template = realise(model, w, h, tpl, new Rng(seed, STREAM_TEMPLATE_NOISE));
  model.fill(0);
  addSources(
    model, w, h, sci.psf,
    stars.map((s) => s.x + ddx).concat(transients.map((t) => t.x)),
    stars.map((s) => s.y + ddy).concat(transients.map((t) => t.y)),
    stars.map((s) => s.scienceFlux).concat(transients.map((t) => t.flux)),
  );
  for (const c of cosmicRays) for (const p of c.pixels ?? []) model[p.y * w + p.x] += p.flux;
  const science = realise(model, w, h, sci, new Rng(seed, STREAM_SCIENCE_NOISE));

  const fluxScale = (sci.fluxScale / tpl.fluxScale) * (tpl.gain / sci.gain);
  const epochOf = (e: Epoch): ResolvedEpoch => {
    if (e === 'template') return tpl;
    if (e === 'science') return sci;
    throw new SimError(`epoch must be 'template' or 'science', got ${String(e)}`);
  };
  const skyAdu = (e: Epoch, x: number, y: number): number => {
    const ep = epochOf(e);
    if (ep.skySubtracted) return 0;
    return (ep.sky + ep.gradX * (x - (w - 1) / 2) + ep.gradY * (y - (h - 1) / 2)) / ep.gain;
  };

  const truth: SimTruth = {
    stars,
    transients,
    cosmicRays,
    fluxScale,
    psfImage: (e, x, y, size) => renderPsfStamp(epochOf(e).psf, x, y, size),
    psfSigma: (e, x, y) => {
      const p = evalPsf(epochOf(e).psf, x, y);
      return { sxx: p.sxx, syy: p.syy, sxy: p.sxy, fwhm: p.fwhm };
    },
    matchingKernel: (x, y, size) => {
      checkOddSize(size, 'matching kernel');
      if (tpl.psf.profile !== 'gaussian' || sci.psf.profile !== 'gaussian') return null;
      const pt = evalPsf(tpl.psf, x, y);
      const ps = evalPsf(sci.psf, x, y);
      const kxx = ps.sxx - pt.sxx;
      const kyy = ps.syy - pt.syy;
      const kxy = ps.sxy - pt.sxy;
      const det = kxx * kyy - kxy * kxy;
      if (!(kxx > 0 && det > 0)) return null;
      const ixx = -0.5 * (kyy / det);
      const iyy = -0.5 * (kxx / det);
      const ixy2 = -0.5 * ((-2 * kxy) / det);
      const hh = (size - 1) / 2;
      const k = new Float64Array(size * size);
      let sum = 0;
      for (let v = -hh; v <= hh; v++) {
        const dv = v - ddy;
        for (let u = -hh; u <= hh; u++) {
          const du = u - ddx;
          const val = Math.exp(ixx * du * du + ixy2 * du * dv + iyy * dv * dv);
          k[(v + hh) * size + (u + hh)] = val;
          sum += val;
        }
      }
      if (!(sum > 0) || !Number.isFinite(sum)) return null;
      const norm = fluxScale / sum;
      for (let i = 0; i < k.length; i++) k[i] *= norm;
      return k;
    },
    skyAdu,
    background: (x, y) => skyAdu('science', x, y) - fluxScale * skyAdu('template', x, y),
  };
  return { template, science, truth };
}

export { renderPsfStamp };
