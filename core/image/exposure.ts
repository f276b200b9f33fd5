/**
 * Exposures on disk ⇄ MaskedImage. Reads (a) an LSST-style multi-extension file with IMAGE, MASK
 * and VARIANCE extensions, or (b) a plain image with an optional noise (σ) or weight (1/σ²) map and
 * an optional mask file. When no variance is given it is built from GAIN/RDNOISE and the sky, or
 * failing that from image statistics (with a warning). SATURATE → SAT; non-finite or BLANK pixels
 * → NO_DATA with image and variance set to 0 so nothing non-finite flows downstream.
 * Writes the LSST layout back (MP_<NAME> cards on the mask, the WCS on every extension).
 */
import { FileSink, FitsError, FitsReader, FitsWriter, Header, type ByteSink, type Hdu, type PixelArray } from '../fits/index.ts';
import { MASK_PLANES, maskBit, maskPlaneCards, parseMaskPlaneCards, remapMask } from './mask.ts';
import { createMaskedImage, type MaskedImage } from './masked-image.ts';
import { medianAndMad, MAD_TO_SIGMA } from './stats.ts';
import { cleanHeader, describeExposure, markNoData, readExposureBox, STRUCTURAL, toFloat32 } from './exposure-box.ts';

export { cleanHeader, STRUCTURAL, toFloat32 };

export interface Exposure {
  mi: MaskedImage;
  /** Header of the science image (WCS, provenance); structural cards removed. */
  header: Header;
  /** How the variance plane was obtained. */
  varianceSource: 'file' | 'noise-map' | 'weight-map' | 'gain' | 'image-statistics';
  warnings: string[];
}

export interface ReadExposureOptions {
  /** Per-pixel 1σ noise map (same size). */
  noise?: string;
  /** Per-pixel inverse-variance weight map (same size). */
  weight?: string;
  /** Integer mask file (non-zero → BAD unless it carries MP_ cards). */
  mask?: string;
  /** Overrides for header values (e-/ADU, e-, ADU). */
  gain?: number;
  readNoise?: number;
  saturation?: number;
  /** Sky level (ADU) that was subtracted from the image, for the Poisson term. */
  sky?: number;
  strict?: boolean;
}

/** WCS cards (TAN, SIP, TPV, …) and the observation epoch: what each extension of an exposure carries. */
export const WCS_KEY = /^(WCSAXES|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|MJD-OBS|DATE-OBS|MJDREF|A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|A_\d+_\d+|B_\d+_\d+|AP_\d+_\d+|BP_\d+_\d+|A_DMAX|B_DMAX)$/;

async function firstImage(r: FitsReader): Promise<Hdu> {
  const h = r.hdus.find((x) => r.isImage(x) && r.imageInfo(x).axes.length >= 2 && r.imageInfo(x).axes.every((n) => n > 0));
  if (!h) throw new FitsError('UNSUPPORTED', 'no 2-D image in the file', { file: r.name });
  const axes = r.imageInfo(h).axes;
  if (axes.length > 2 && axes.slice(2).some((n) => n !== 1)) throw new FitsError('UNSUPPORTED', `image is ${axes.length}-D (${axes.join('×')}); a 2-D image is needed`, { file: r.name, hdu: h.index });
  return h;
}

async function readPlane(path: string, width: number, height: number, what: string, strict?: boolean): Promise<{ data: PixelArray; header: Header }> {
  const r = await FitsReader.open(path, { strict });
  try {
    const h = await firstImage(r);
    const [w, hh] = r.imageInfo(h).axes;
    if (w !== width || hh !== height) throw new FitsError('BAD_VALUE', `${what} is ${w}×${hh} but the image is ${width}×${height}`, { file: path, hdu: h.index });
    const im = await r.readImage(h);
    return { data: im.data, header: r.imageHeader(h) };
  } finally {
    await r.close();
  }
}

export async function readExposure(path: string, opts: ReadExposureOptions = {}): Promise<Exposure> {
  const r = await FitsReader.open(path, { strict: opts.strict });
  try {
    const warnings = r.hdus.flatMap((h) => h.warnings.map((w) => `HDU ${h.index}: ${w}`));
    const names = new Map(r.hdus.map((h) => [h.name.toUpperCase(), h] as const));
    if (names.has('IMAGE') && names.has('MASK') && names.has('VARIANCE')) return await readLsst(r, warnings);
    return await readPlain(r, path, opts, warnings);
  } finally {
    await r.close();
  }
}

async function readLsst(r: FitsReader, warnings: string[]): Promise<Exposure> {
  const d = await describeExposure(r);
  const L = d.layout;
  const mi = await readExposureBox(r, L, { x0: L.x0, y0: L.y0, width: L.width, height: L.height });
  return { mi, header: d.header, varianceSource: 'file', warnings };
}

async function readPlain(r: FitsReader, path: string, opts: ReadExposureOptions, warnings: string[]): Promise<Exposure> {
  const h = await firstImage(r);
  const [width, height] = r.imageInfo(h).axes as [number, number];
  const header = cleanHeader(r.hdus[0]!.header);
  if (h.index !== 0) for (const c of r.imageHeader(h).cards) if (!STRUCTURAL.test(c.key) && c.kind !== 'commentary') header.set(c.key, c.value, c.comment, c.kind);
  const mi = createMaskedImage(width, height);
  mi.image.set(toFloat32((await r.readImage(h)).data));

  const sat = opts.saturation ?? header.number('SATURATE') ?? header.number('SATLEVEL');
  const SAT = maskBit('SAT');
  if (sat !== undefined) for (let i = 0; i < mi.image.length; i++) if (mi.image[i]! >= sat) mi.mask[i]! |= SAT;

  if (opts.mask) {
    const m = await readPlane(opts.mask, width, height, 'mask', opts.strict);
    const found = parseMaskPlaneCards(m.header.cards);
    const BAD = maskBit('BAD');
    const src = m.data;
    if (Object.keys(found).length) {
      const asInt = src instanceof Int32Array ? src : Int32Array.from(src as ArrayLike<number>, Number);
      const remapped = remapMask(asInt, found, MASK_PLANES);
      for (let i = 0; i < remapped.length; i++) mi.mask[i]! |= remapped[i]!;
    } else {
      for (let i = 0; i < src.length; i++) if (Number(src[i]) !== 0) mi.mask[i]! |= BAD;
    }
  }

  let varianceSource: Exposure['varianceSource'];
  if (opts.noise && opts.weight) throw new FitsError('BAD_VALUE', 'give a noise map or a weight map, not both', { file: path });
  if (opts.noise || opts.weight) {
    const p = await readPlane((opts.noise ?? opts.weight)!, width, height, opts.noise ? 'noise map' : 'weight map', opts.strict);
    const v = toFloat32(p.data);
    const NO = maskBit('NO_DATA');
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!;
      const variance = opts.noise ? x * x : 1 / x;
      if (!(Number.isFinite(variance) && variance > 0)) {
        mi.mask[i]! |= NO;
        mi.variance[i] = 0;
      } else mi.variance[i] = variance;
    }
    varianceSource = opts.noise ? 'noise-map' : 'weight-map';
  } else {
    const gain = opts.gain ?? header.number('GAIN') ?? header.number('EGAIN');
    const rn = opts.readNoise ?? header.number('RDNOISE') ?? header.number('READNOIS') ?? header.number('RON');
    const { median, mad } = medianAndMad(mi.image, { mask: mi.mask, badBits: maskBit('SAT') });
    const skyStd = mad * MAD_TO_SIGMA;
    if (gain !== undefined && gain > 0) {
      // Poisson variance of what was counted (sky + sources) in ADU², plus read noise.
      const rn2 = rn !== undefined ? (rn / gain) ** 2 : 0;
      let skyAdd = opts.sky ?? 0;
      // A sky-subtracted image (median ≈ 0) has lost its sky: recover its Poisson term from the
      // observed scatter so the variance is not underestimated.
      if (opts.sky === undefined && Math.abs(median) < 3 * skyStd) {
        skyAdd = Math.max(0, (skyStd * skyStd - rn2) * gain);
        warnings.push(`image looks sky-subtracted (median ${median.toPrecision(4)}); sky of ${skyAdd.toPrecision(4)} ADU inferred from its scatter for the Poisson term`);
      }
      for (let i = 0; i < mi.image.length; i++) mi.variance[i] = Math.max(mi.image[i]! + skyAdd, 0) / gain + rn2;
      varianceSource = 'gain';
    } else {
      if (!(skyStd > 0)) throw new FitsError('BAD_VALUE', 'cannot estimate noise: the image has no scatter', { file: path });
      warnings.push(`no GAIN or noise map: variance set to the sky's robust variance ${(skyStd * skyStd).toPrecision(4)} everywhere (sources' Poisson noise ignored)`);
      mi.variance.fill(skyStd * skyStd);
      varianceSource = 'image-statistics';
    }
  }
  markNoData(mi);
  return { mi, header, varianceSource, warnings };
}

/**
 * The headers of an LSST-style MEF: the primary (the exposure's cards without structure) and what
 * every extension carries (the WCS and epoch, and LTV1/LTV2 when the origin is not 0, afw's
 * convention: LTV gives the offset from parent to local pixel coordinates).
 */
export function exposureHeaders(header: Header, x0: number, y0: number): { primary: Header; wcs: Header } {
  const wcs = new Header(header.cards.filter((c) => c.kind !== 'commentary' && WCS_KEY.test(c.key)).map((c) => ({ ...c })));
  if (x0 !== 0 || y0 !== 0) {
    wcs.set('LTV1', -x0, 'parent x0 = -LTV1');
    wcs.set('LTV2', -y0, 'parent y0 = -LTV2');
  }
  return { primary: cleanHeader(header), wcs };
}

/** The MASK extension's header: the extensions' cards and the MP_<NAME> plane cards. */
export function maskHeader(wcs: Header): Header {
  const mh = wcs.clone();
  for (const c of maskPlaneCards()) mh.set(c.key, c.value, c.comment);
  return mh;
}

/** Write an exposure as an LSST-style MEF: empty primary (provenance), IMAGE, MASK, VARIANCE. */
export async function writeExposure(path: string, mi: MaskedImage, header: Header = new Header(), opts: { checksum?: boolean } = {}): Promise<void> {
  await writeExposureToSink(await FileSink.create(path), mi, header, opts);
}

/**
 * writeExposure into any ByteSink (e.g. a StorageSink streaming to S3); the bytes are the same as
 * writeExposure's. The sink is committed on success and aborted on failure. { checksum: true }
 * needs a sink with patch() (FitsError UNSUPPORTED otherwise).
 */
export async function writeExposureToSink(sink: ByteSink, mi: MaskedImage, header: Header = new Header(), opts: { checksum?: boolean } = {}): Promise<void> {
  let w: FitsWriter;
  try {
    w = new FitsWriter(sink, { checksum: opts.checksum });
  } catch (e) {
    await sink.abort().catch(() => undefined);
    throw e;
  }
  try {
    const { primary, wcs } = exposureHeaders(header, mi.x0, mi.y0);
    await w.writeEmptyPrimary(primary);
    const axes = [mi.width, mi.height];
    await w.writeImage(mi.image, axes, wcs, 'IMAGE');
    await w.writeImage(mi.mask, axes, maskHeader(wcs), 'MASK');
    await w.writeImage(mi.variance, axes, wcs, 'VARIANCE');
    await w.close();
  } catch (e) {
    await w.abort().catch(() => undefined);
    throw e;
  }
}
