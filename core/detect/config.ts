/**
 * DIA detection and measurement configuration: one schema, documented defaults, named as in
 * ip_diffim's DetectAndMeasureTask (detection.thresholdValue, nSigmaToGrow, the two background
 * passes, ClassificationDipole's minSn and maxFluxRatio, DipoleFit's maxFootprintArea).
 */
import { isMaskPlane, type MaskPlane } from '../image/mask.ts';

export interface DetectConfig {
  /** Detection threshold in σ of the PSF-smoothed difference (per-pixel σ from the variance plane). */
  thresholdValue: number;
  /** Which signs are detected. */
  thresholdPolarity: 'both' | 'positive' | 'negative';
  /** Footprints are grown by this many PSF σ (afw's nSigmaToGrow). */
  nSigmaToGrow: number;
  /** Subtract a background from the difference before detection and measurement. */
  doSubtractBackground: boolean;
  /** Mesh of the first pass (clipped median per cell, detection image only), px. */
  initialBackgroundBinSize: number;
  /** Mesh of the second pass (detected pixels excluded; subtracted before measurement), px. */
  finalBackgroundBinSize: number;
  /** Circular aperture radii, px. */
  apertureRadii: number[];
  /** A source whose peak pixel has any of these planes is dropped. */
  peakRejectPlanes: MaskPlane[];
  /** Dipole: the two lobes' S/N in quadrature must exceed this (ClassificationDipole.minSn = √2·5). */
  dipoleMinSnr: number;
  /** Dipole: each lobe's share of the summed absolute lobe fluxes must be below this. */
  dipoleMaxFluxRatio: number;
  /** Dipole fits are skipped for merged footprints larger than this, px. */
  dipoleMaxFootprintArea: number;
  /** Guard: more sources than this means a failed subtraction; detection stops with a typed error. */
  maxSources: number;
}

export const DEFAULT_DETECT_CONFIG: Readonly<DetectConfig> = Object.freeze({
  thresholdValue: 5,
  thresholdPolarity: 'both',
  nSigmaToGrow: 2.4,
  doSubtractBackground: true,
  initialBackgroundBinSize: 8,
  finalBackgroundBinSize: 40,
  apertureRadii: [12],
  peakRejectPlanes: ['NO_DATA', 'BAD', 'SAT', 'EDGE'],
  dipoleMinSnr: 5 * Math.SQRT2,
  dipoleMaxFluxRatio: 0.65,
  dipoleMaxFootprintArea: 1200,
  maxSources: 1_000_000,
}) as Readonly<DetectConfig>;

export class DetectError extends Error {
  override readonly name = 'DetectError';
  constructor(readonly code: 'BAD_CONFIG' | 'BAD_INPUT' | 'TOO_MANY_SOURCES', message: string) {
    super(`${message} [${code}]`);
  }
}

function fail(key: string, why: string): never {
  throw new DetectError('BAD_CONFIG', `detect config ${key}: ${why}`);
}

function positive(c: DetectConfig, key: keyof DetectConfig, max = Infinity): void {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) fail(key, `must be a number > 0${max < Infinity ? ` and ≤ ${max}` : ''}, got ${JSON.stringify(v)}`);
}

/** Defaults with `overrides` applied, validated; unknown keys are refused with their name. */
export function resolveDetectConfig(overrides: Partial<DetectConfig> = {}): DetectConfig {
  for (const k of Object.keys(overrides)) if (!Object.hasOwn(DEFAULT_DETECT_CONFIG, k)) fail(k, 'is not a detection configuration key');
  const c: DetectConfig = { ...DEFAULT_DETECT_CONFIG, ...overrides, apertureRadii: [...(overrides.apertureRadii ?? DEFAULT_DETECT_CONFIG.apertureRadii)], peakRejectPlanes: [...(overrides.peakRejectPlanes ?? DEFAULT_DETECT_CONFIG.peakRejectPlanes)] };
  positive(c, 'thresholdValue', 1e6);
  if (!['both', 'positive', 'negative'].includes(c.thresholdPolarity)) fail('thresholdPolarity', `must be "both", "positive" or "negative", got ${JSON.stringify(c.thresholdPolarity)}`);
  if (typeof c.nSigmaToGrow !== 'number' || !(c.nSigmaToGrow >= 0) || c.nSigmaToGrow > 100) fail('nSigmaToGrow', `must be a number in [0, 100], got ${JSON.stringify(c.nSigmaToGrow)}`);
  if (typeof c.doSubtractBackground !== 'boolean') fail('doSubtractBackground', `must be true or false, got ${JSON.stringify(c.doSubtractBackground)}`);
  for (const k of ['initialBackgroundBinSize', 'finalBackgroundBinSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 4 || c[k] > 4096) fail(k, `must be an integer in [4, 4096], got ${JSON.stringify(c[k])}`);
  }
  if (c.apertureRadii.length === 0 || c.apertureRadii.length > 20 || c.apertureRadii.some((r) => typeof r !== 'number' || !(r > 0) || r > 500)) fail('apertureRadii', `must list 1–20 radii in (0, 500] px, got ${JSON.stringify(c.apertureRadii)}`);
  for (const p of c.peakRejectPlanes) if (!isMaskPlane(p)) fail('peakRejectPlanes', `unknown mask plane ${JSON.stringify(p)}`);
  positive(c, 'dipoleMinSnr', 1e6);
  positive(c, 'dipoleMaxFluxRatio', 1);
  if (!Number.isInteger(c.dipoleMaxFootprintArea) || c.dipoleMaxFootprintArea < 1) fail('dipoleMaxFootprintArea', `must be a positive integer, got ${JSON.stringify(c.dipoleMaxFootprintArea)}`);
  if (!Number.isInteger(c.maxSources) || c.maxSources < 1 || c.maxSources > 1 << 24) fail('maxSources', `must be an integer in [1, 2^24], got ${JSON.stringify(c.maxSources)}`);
  return c;
}
