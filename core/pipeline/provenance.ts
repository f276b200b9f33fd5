/**
 * Provenance of the outputs: the primary headers of difference.fits and sources.fits. Shared by
 * the in-memory CLI path and the pipeline's stitch step, so both write the same cards.
 */
import { basename } from 'node:path';
import { readFileSync } from 'node:fs';
import { Header } from '../fits/index.ts';
import { WCS_KEY } from '../image/exposure.ts';
import type { KernelSolution } from '../kernel/index.ts';

/** The package version, for provenance. */
export const VERSION: string = (() => {
  try {
    return String((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();

export interface ProvenanceJob {
  science: string;
  template: string;
  preset: string;
  decorrelate: boolean;
}

/** What the difference header says about preconvolution (absent for a plain difference). */
export interface PreconvolutionCards {
  psf: { method: string; nStars: number; fwhm: number };
}

/** Cards of the science header carried to the difference: WCS (every extension) and observation. */
const OBSERVATION = /^(EXPTIME|FILTER|OBJECT|TELESCOP|INSTRUME)$/;
const carried = (key: string) => WCS_KEY.test(key) || OBSERVATION.test(key);

/** A file name as a FITS string: printable ASCII (others → '?'), long ones shortened in the middle. */
export function fitsName(path: string, max = 200): string {
  const s = basename(path.replace(/^s3:\/\/[^/]*\//, '')).replace(/[^\x20-\x7e]/g, '?');
  return s.length <= max ? s : `${s.slice(0, max / 2 - 2)}...${s.slice(s.length - (max / 2 - 1))}`;
}

/**
 * The primary header of difference.fits: the science's WCS and observation cards, then provenance.
 * writeExposure copies the WCS cards (and MJD-OBS/DATE-OBS) onto IMAGE, MASK and VARIANCE too.
 * Long names are written with the CONTINUE convention by the header writer.
 */
export function differenceHeader(science: Header, job: ProvenanceJob, r: { kernel: KernelSolution; preconvolution?: PreconvolutionCards }): Header {
  const pre = r.preconvolution;
  const h = new Header(science.cards.filter((c) => c.kind !== 'commentary' && carried(c.key)).map((c) => ({ ...c })));
  h.set('DIFFIM', VERSION, 'diffim version that made this difference image');
  h.set('SCIENCE', fitsName(job.science), 'science input (file name)');
  h.set('TEMPLATE', fitsName(job.template), 'template input (file name)');
  h.set('DIFFTYPE', pre ? 'SCORE' : 'DIFFERENCE', pre ? 'P*S - (K*T + B): point-source likelihood' : 'S - (K*T + B) or its convolveScience form');
  h.set('DIFFMODE', r.kernel.mode, 'image convolved by the matching kernel');
  h.set('PRESET', job.preset, 'kernel configuration preset');
  h.set('KSUM', r.kernel.kernelSum, 'kernel sum (photometric scale)', 'float');
  h.set('DECORR', job.decorrelate, pre ? 'likelihood-image correction (DMTN-179)' : 'difference noise decorrelated (DMTN-021)');
  if (pre) {
    h.set('PSFMODEL', pre.psf.method, 'science PSF: empirical star stack or Gaussian');
    h.set('PSFNSTAR', pre.psf.nStars, 'stars in the empirical science PSF');
    h.set('PSFFWHM', pre.psf.fwhm, 'science PSF FWHM (pixels)', 'float');
    h.addCommentary('HISTORY', `diffim ${VERSION} subtract: score = P*S - (K*T + B), P = reflected PSF`);
  } else {
    h.addCommentary('HISTORY', `diffim ${VERSION} subtract: D = matched science - matched template`);
  }
  return h;
}

/** Provenance of sources.fits (primary header). */
export function sourcesHeader(job: Pick<ProvenanceJob, 'science' | 'template'>): Header {
  const h = new Header();
  h.set('DIFFIM', VERSION, 'diffim version that measured these sources');
  h.set('SCIENCE', fitsName(job.science), 'science input (file name)');
  h.set('TEMPLATE', fitsName(job.template), 'template input (file name)');
  return h;
}


function headerInteger(h: Header, keys: string[]): number | undefined {
  for (const k of keys) {
    const v = h.get(k);
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
    if (typeof v === 'bigint' && v >= 0n && v < 1n << 39n) return Number(v);
  }
  return undefined;
}

function headerNumber(h: Header, keys: string[]): number | undefined {
  for (const k of keys) {
    const v = h.get(k);
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}


/** The exposure id a header gives (EXPID, EXPNUM or VISIT), for the source ids' high bits. */
export function headerExposureId(h: Header): number | undefined {
  return headerInteger(h, ['EXPID', 'EXPNUM', 'VISIT']);
}

/** The photometric zero point a header gives (MAGZERO, MAGZPT, PHOTZP or ZP). */
export function headerZeroPoint(h: Header): number | undefined {
  return headerNumber(h, ['MAGZERO', 'MAGZPT', 'PHOTZP', 'ZP']);
}
