/**
 * DIA detection and measurement (ip_diffim's DetectAndMeasureTask, our way):
 *
 *   1. background of the difference, first pass: fine mesh (8-px cells, core/psf's clipped-median
 *      mesh) on a copy used only to detect;
 *   2. detection in both polarities on the PSF-smoothed copy, footprints grown and merged
 *      (footprints.ts); DETECTED / DETECTED_NEGATIVE set;
 *   3. second pass: coarse mesh (40 px) with the detections excluded, subtracted from the
 *      difference itself — what is measured and written;
 *   4. one source per merged footprint, at its most significant peak; sources whose peak pixel is
 *      NO_DATA, BAD, SAT or EDGE are dropped; measurements, flags, dipole fit and classification,
 *      forced photometry on the science image and matched template, sky coordinates;
 *   5. ids handed out last, to the sources kept.
 */
import type { MaskedImage } from '../image/masked-image.ts';
import { maskBit, maskOf, MASK_PLANES, type MaskPlane } from '../image/mask.ts';
import { estimateBackground } from '../psf/background.ts';
import { type DetectConfig, DetectError, resolveDetectConfig } from './config.ts';
import { fitDipole } from './dipole.ts';
import { detectFootprints, type Footprint, type Peak, TooManyFootprints } from './footprints.ts';
import { makeIdFactory } from './ids.ts';
import { apertureFlux, forcedPsfFlux, psfFlux, quadraticCentroid, weightedMoments, type PlaneView } from './measure.ts';
import type { PsfModel } from './psf-model.ts';
import type { DiaSource, DipoleFit, SourceFlags } from './source.ts';
import type { CelestialWcs } from './wcs.ts';

export interface DetectInputs {
  /** The (decorrelated) difference. */
  difference: MaskedImage;
  /** The difference image's PSF. */
  psf: PsfModel;
  /** For forced photometry at each DIA position (same pixel grid as the difference). */
  science?: { image: MaskedImage; psf: PsfModel };
  matchedTemplate?: { image: MaskedImage; psf: PsfModel };
  /** Maps local array (x, y) of these images to the sky. */
  wcs?: CelestialWcs | null;
  exposureId?: number | bigint;
  /** Magnitude of a source of 1 (difference-image unit) of flux; gives the QA's limiting magnitude. */
  zeroPoint?: number;
  config?: Partial<DetectConfig>;
}

export interface DetectQa {
  nPositive: number;
  nNegative: number;
  nDipole: number;
  /** Footprints dropped because their peak was on NO_DATA, BAD, SAT or EDGE. */
  nRejectedPeak: number;
  nFootprints: number;
  /** Fraction of the image's pixels with each mask plane set (after detection). */
  maskFractions: Record<string, number>;
  /** Median of the subtracted background and its range. */
  background: { median: number; min: number; max: number };
  /**
   * Point-source depth: the PSF-flux error at the median variance, the flux at the detection
   * threshold (thresholdValue × that error) and, with a zero point, its magnitude.
   */
  depth: { psfFluxErr: number; limitingFlux: number; limitingMagnitude: number | null };
}

export interface DetectResult {
  sources: DiaSource[];
  /** The difference with the final background subtracted and the detection planes set (new planes; variance shared). */
  difference: MaskedImage;
  /** The background subtracted (zeros when doSubtractBackground is false). */
  background: Float32Array;
  config: DetectConfig;
  qa: DetectQa;
}

const BACKGROUND_BAD = maskOf('NO_DATA', 'EDGE', 'BAD', 'SAT', 'SAT_TEMPLATE');
const NO_SIGNAL = maskOf('NO_DATA', 'EDGE');

/** ClassificationDipole: both lobes real, S/N in quadrature above minSn, neither lobe dominating. */
function isDipole(f: DipoleFit, cfg: DetectConfig): boolean {
  const snrP = f.posFlux / f.posFluxErr;
  const snrN = f.negFlux / f.negFluxErr;
  const total = Math.abs(f.posFlux) + Math.abs(f.negFlux);
  return f.posFlux > 0 && f.negFlux > 0 && Math.hypot(snrP, snrN) > cfg.dipoleMinSnr
    && f.posFlux / total < cfg.dipoleMaxFluxRatio && f.negFlux / total < cfg.dipoleMaxFluxRatio;
}

/** σ_F = √(Σ P²·V̄)/Σ P² for a PSF centred on a pixel, V̄ the median variance of pixels with signal. */
function pointSourceDepth(diff: MaskedImage, psf: PsfModel, threshold: number, zeroPoint: number | undefined): DetectQa['depth'] {
  const vals: number[] = [];
  const step = Math.max(1, Math.floor(diff.variance.length / 100_000));
  for (let p = 0; p < diff.variance.length; p += step) {
    const v = diff.variance[p]!;
    if ((diff.mask[p]! & NO_SIGNAL) === 0 && v > 0 && Number.isFinite(v)) vals.push(v);
  }
  if (vals.length === 0) return { psfFluxErr: NaN, limitingFlux: NaN, limitingMagnitude: null };
  vals.sort((a, b) => a - b);
  const v = vals[Math.floor(vals.length / 2)]!;
  const r = psf.radius;
  const P = psf.render(0, 0, -r, -r, 2 * r + 1, 2 * r + 1);
  let pp = 0;
  for (const x of P) pp += x * x;
  const err = Math.sqrt(pp * v) / pp;
  const lim = threshold * err;
  return { psfFluxErr: err, limitingFlux: lim, limitingMagnitude: zeroPoint !== undefined && Number.isFinite(zeroPoint) ? zeroPoint - 2.5 * Math.log10(lim) : null };
}

function view(mi: MaskedImage, image = mi.image, mask = mi.mask): PlaneView {
  return { image, variance: mi.variance, mask, width: mi.width, height: mi.height };
}

export function detectAndMeasure(inp: DetectInputs): DetectResult {
  const cfg = resolveDetectConfig(inp.config ?? {});
  const diff = inp.difference;
  const { width: W, height: H, x0, y0 } = diff;
  const n = W * H;
  const psf = inp.psf;

  let detImage: Float32Array = diff.image;
  if (cfg.doSubtractBackground) {
    // The project's cell-anchored mesh (core/psf/background.ts): clipped median per cell, bilinear between centres.
    const fine = estimateBackground(diff, { cellSize: cfg.initialBackgroundBinSize, badBits: BACKGROUND_BAD, filterCells: true }).level;
    detImage = new Float32Array(n);
    for (let p = 0; p < n; p++) detImage[p] = diff.image[p]! - fine[p]!;
  }
  let det;
  try {
    det = detectFootprints({ image: detImage, variance: diff.variance, mask: diff.mask, width: W, height: H }, {
      sigma: psf.sigma,
      threshold: cfg.thresholdValue,
      polarity: cfg.thresholdPolarity,
      growRadius: cfg.nSigmaToGrow * psf.sigma,
      ignoreBits: NO_SIGNAL,
      maxFootprints: cfg.maxSources,
    });
  } catch (e) {
    if (e instanceof TooManyFootprints) throw new DetectError('TOO_MANY_SOURCES', `more than ${cfg.maxSources} detections on the difference image: the subtraction failed or the threshold is too low`);
    throw e;
  }
  const mask = diff.mask.slice();
  const detBit = maskBit('DETECTED');
  const negBit = maskBit('DETECTED_NEGATIVE');
  for (let p = 0; p < n; p++) {
    if (det.positive[p] !== 0) mask[p]! |= detBit;
    if (det.negative[p] !== 0) mask[p]! |= negBit;
  }

  let background: Float32Array = new Float32Array(n);
  let image: Float32Array = diff.image;
  if (cfg.doSubtractBackground) {
    // Detections excluded through the planes just set.
    background = estimateBackground({ ...diff, mask }, { cellSize: cfg.finalBackgroundBinSize, badBits: BACKGROUND_BAD | detBit | negBit, filterCells: true }).level;
    image = new Float32Array(n);
    for (let p = 0; p < n; p++) image[p] = (mask[p]! & NO_SIGNAL) !== 0 ? diff.image[p]! : diff.image[p]! - background[p]!;
  }
  const meas = view(diff, image, mask);

  const reject = cfg.peakRejectPlanes.reduce((m, p) => m | maskBit(p), 0);
  const bits = {
    sat: maskBit('SAT'), satT: maskBit('SAT_TEMPLATE'), noData: maskBit('NO_DATA'),
    intrp: maskBit('INTRP'), cr: maskBit('CR'),
  };
  const forcedBad = maskOf('NO_DATA', 'EDGE', 'BAD', 'SAT');
  const sci = inp.science ? { v: view(inp.science.image), psf: inp.science.psf } : null;
  const tpl = inp.matchedTemplate ? { v: view(inp.matchedTemplate.image), psf: inp.matchedTemplate.psf } : null;
  const kept: Array<Omit<DiaSource, 'id'>> = [];
  let nRejectedPeak = 0;
  const rejected = (pk: Peak) => (diff.mask[pk.y * W + pk.x]! & reject) !== 0;

  /** Measure one source whose centroid is the smoothed image's extremum near `peak`. */
  const measure = (fp: Footprint, peak: Peak, centroid: [number, number], dipole: DipoleFit | null): void => {
    const sign = peak.z > 0 ? 1 : -1;
    const [cx, cy] = centroid;
    const pf = psfFlux(meas, psf, cx, cy, NO_SIGNAL, bits.noData);
    const ap = cfg.apertureRadii.map((r) => apertureFlux(meas, cx, cy, r, NO_SIGNAL));
    const [ixx, iyy, ixy] = weightedMoments(meas, cx, cy, psf.sigma, sign, NO_SIGNAL);
    const ix = Math.min(W - 1, Math.max(0, Math.round(cx)));
    const iy = Math.min(H - 1, Math.max(0, Math.round(cy)));
    const ci = iy * W + ix;
    let near = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const xx = ix + dx;
      const yy = iy + dy;
      if (xx >= 0 && yy >= 0 && xx < W && yy < H) near |= diff.mask[yy * W + xx]!;
    }
    const flags: SourceFlags = {
      edge: pf.nBad > 0 || ap.some((a) => a.edge),
      saturatedCenter: (diff.mask[ci]! & bits.sat) !== 0,
      satTemplateCenter: (diff.mask[ci]! & bits.satT) !== 0,
      noData: pf.noData,
      interpolatedCenter: (near & bits.intrp) !== 0,
      crCenter: (near & bits.cr) !== 0,
      psfFluxFailed: !Number.isFinite(pf.flux),
      dipoleFitFailed: fp.nPositive > 0 && fp.nNegative > 0 && dipole === null,
    };
    const fs = sci ? forcedPsfFlux(sci.v, sci.psf, cx, cy, forcedBad) : { flux: NaN, fluxErr: NaN };
    const ft = tpl ? forcedPsfFlux(tpl.v, tpl.psf, cx, cy, forcedBad) : { flux: NaN, fluxErr: NaN };
    const sky = inp.wcs ? inp.wcs.pixelToSky(cx, cy) : null;
    kept.push({
      x: cx + x0,
      y: cy + y0,
      ra: sky ? sky[0] : null,
      dec: sky ? sky[1] : null,
      peakX: peak.x + x0,
      peakY: peak.y + y0,
      significance: peak.z,
      psfFlux: pf.flux,
      psfFluxErr: pf.fluxErr,
      apFlux: ap.map((a) => a.flux),
      apFluxErr: ap.map((a) => a.fluxErr),
      ixx, iyy, ixy,
      snr: pf.flux / pf.fluxErr,
      isNegative: sign < 0,
      isDipole: dipole !== null,
      dipole: dipole ? { ...dipole, posX: dipole.posX + x0, posY: dipole.posY + y0, negX: dipole.negX + x0, negY: dipole.negY + y0 } : null,
      footprintArea: fp.pixels.length,
      nPositivePeaks: fp.nPositive,
      nNegativePeaks: fp.nNegative,
      scienceFlux: fs.flux,
      scienceFluxErr: fs.fluxErr,
      templateFlux: ft.flux,
      templateFluxErr: ft.fluxErr,
      flags,
    });
  };
  const centroidOf = (pk: Peak) => quadraticCentroid(det.smoothed, W, H, pk.x, pk.y);

  for (const fp of det.footprints) {
    let children = fp.children.map((c) => c.peak);
    const bestPos = children.find((p) => p.z > 0);
    const bestNeg = children.find((p) => p.z < 0);
    if (bestPos && bestNeg && !rejected(bestPos) && !rejected(bestNeg)) {
      // A candidate dipole: the strongest lobe of each sign. Classified as ClassificationDipole does.
      let fit: DipoleFit | null = null;
      if (fp.pixels.length <= cfg.dipoleMaxFootprintArea) fit = fitDipole(meas, psf, fp, { pos: centroidOf(bestPos), neg: centroidOf(bestNeg) }, NO_SIGNAL);
      if (fit && isDipole(fit, cfg)) {
        const primary = Math.abs(bestPos.z) >= Math.abs(bestNeg.z) ? bestPos : bestNeg;
        measure(fp, primary, [(fit.posX + fit.negX) / 2, (fit.posY + fit.negY) / 2], fit);
        children = children.filter((p) => p !== bestPos && p !== bestNeg);
      }
    }
    for (const pk of children) {
      if (rejected(pk)) { nRejectedPeak++; continue; }
      measure(fp, pk, centroidOf(pk), null);
    }
  }
  const nextId = makeIdFactory(inp.exposureId ?? 0);
  const sources: DiaSource[] = kept.map((s) => ({ id: nextId(), ...s }));

  const maskFractions: Record<string, number> = {};
  const counts = new Float64Array(32);
  for (let p = 0; p < n; p++) {
    let m = mask[p]!;
    while (m !== 0) {
      const b = 31 - Math.clz32(m);
      counts[b]!++;
      m &= ~(1 << b);
    }
  }
  for (const [name, bit] of Object.entries(MASK_PLANES) as Array<[MaskPlane, number]>) maskFractions[name] = counts[bit]! / n;
  let bmin = Infinity, bmax = -Infinity;
  const sample: number[] = [];
  for (let p = 0; p < n; p += Math.max(1, Math.floor(n / 10000))) sample.push(background[p]!);
  for (const b of sample) { bmin = Math.min(bmin, b); bmax = Math.max(bmax, b); }
  sample.sort((a, b) => a - b);
  const depth = pointSourceDepth(diff, psf, cfg.thresholdValue, inp.zeroPoint);
  return {
    sources,
    difference: { ...diff, image, mask },
    background,
    config: cfg,
    qa: {
      nPositive: sources.filter((s) => !s.isNegative && !s.isDipole).length,
      nNegative: sources.filter((s) => s.isNegative && !s.isDipole).length,
      nDipole: sources.filter((s) => s.isDipole).length,
      nRejectedPeak,
      nFootprints: det.footprints.length,
      maskFractions,
      background: { median: sample[Math.floor(sample.length / 2)] ?? 0, min: bmin, max: bmax },
      depth,
    },
  };
}
