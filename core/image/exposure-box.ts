/**
 * Exposures read a box at a time, for the tiled pipeline: describeExposure looks at the headers
 * (and, for a plain image without a variance plane, a few row bands for its noise) once; then
 * readExposureBox reads only the rows a tile needs (ranged reads) and crops the columns. The
 * planes are what readExposure (exposure.ts) would give for the same pixels, except that a plain
 * image's sky statistics come from the sampled bands rather than every row.
 *
 * Supported: the LSST layout (IMAGE, MASK, VARIANCE) and a plain image whose variance comes from
 * GAIN/RDNOISE or its own statistics. Noise, weight and mask files are whole-image features
 * (readExposure).
 */
import { FitsError, Header, type FitsReader, type PixelArray } from '../fits/index.ts';
import type { Box } from './box.ts';
import { MASK_PLANES, maskBit, parseMaskPlaneCards, remapMask } from './mask.ts';
import { createMaskedImage, type MaskedImage } from './masked-image.ts';
import { MAD_TO_SIGMA, medianAndMad } from './stats.ts';

/** Cards that describe a file's structure, not the exposure. */
export const STRUCTURAL = /^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|BSCALE|BZERO|BLANK|CHECKSUM|DATASUM|EXTNAME|EXTVER|INHERIT|MP_\w+)$/;

export function toFloat32(a: PixelArray): Float32Array {
  if (a instanceof Float32Array) return a;
  const out = new Float32Array(a.length);
  if (a instanceof BigInt64Array || a instanceof BigUint64Array) for (let i = 0; i < a.length; i++) out[i] = Number(a[i]!);
  else for (let i = 0; i < a.length; i++) out[i] = (a as Float64Array)[i]!;
  return out;
}

/** A header without the structural cards (kept: WCS, provenance, observation). */
export function cleanHeader(h: Header): Header {
  return new Header(h.cards.filter((c) => c.kind === 'commentary' || !STRUCTURAL.test(c.key)).map((c) => ({ ...c })));
}

/** Non-finite pixels (incl. BLANK, read as NaN) → NO_DATA, with finite zeros in their place. */
export function markNoData(mi: MaskedImage): void {
  const NO = maskBit('NO_DATA');
  for (let i = 0; i < mi.image.length; i++) {
    if (!Number.isFinite(mi.image[i]!) || !Number.isFinite(mi.variance[i]!)) {
      mi.mask[i]! |= NO;
      mi.image[i] = 0;
      mi.variance[i] = 0;
    }
  }
}

/** Everything needed to read any box of the exposure: plain JSON (it travels in the plan). */
export interface ExposureLayout {
  kind: 'lsst' | 'plain';
  width: number;
  height: number;
  /** Parent origin (LTV1/LTV2 of an LSST exposure; 0 for a plain image). */
  x0: number;
  y0: number;
  /** HDU indices. */
  image: number;
  mask?: number;
  variance?: number;
  /** Mask planes found in the MASK header (remapped to ours); empty: the bits are ours. */
  maskPlanes?: Record<string, number>;
  /** Plain image: SAT at or above this. */
  saturation?: number;
  /** Plain image: variance = max(image + skyAdd, 0)/gain + rn2, or a constant. */
  varianceModel?: { kind: 'gain'; gain: number; rn2: number; skyAdd: number } | { kind: 'constant'; value: number };
}

export interface DescribedExposure {
  layout: ExposureLayout;
  header: Header;
  warnings: string[];
}

/** Rows sampled for a plain image's sky statistics: this many bands … */
const SAMPLE_BANDS = 8;
/** … of this many rows (or every row of a smaller image). */
const SAMPLE_ROWS = 64;

/** Rows [y0, y1) of the sample bands, evenly spaced and anchored to the image. */
export function sampleBands(height: number, bands = SAMPLE_BANDS, rows = SAMPLE_ROWS): Array<[number, number]> {
  if (height <= bands * rows) return [[0, height]];
  const out: Array<[number, number]> = [];
  for (let b = 0; b < bands; b++) {
    const y0 = Math.round(((height - rows) * b) / (bands - 1));
    out.push([y0, y0 + rows]);
  }
  return out;
}

function imageAxes(r: FitsReader, index: number): [number, number] {
  const h = r.hdus[index]!;
  const axes = r.imageInfo(h).axes;
  if (axes.length > 2 && axes.slice(2).some((n) => n !== 1)) {
    throw new FitsError('UNSUPPORTED', `image is ${axes.length}-D (${axes.join('×')}); a 2-D image is needed`, { file: r.name, hdu: index });
  }
  return [axes[0]!, axes[1]!];
}

/** Headers (and for a plain image without GAIN-derived variance, sampled row bands) → the layout. */
export async function describeExposure(r: FitsReader, opts: { gain?: number; readNoise?: number; saturation?: number; sky?: number } = {}): Promise<DescribedExposure> {
  const warnings = r.hdus.flatMap((h) => h.warnings.map((w) => `HDU ${h.index}: ${w}`));
  const names = new Map(r.hdus.map((h) => [h.name.toUpperCase(), h] as const));
  if (names.has('IMAGE') && names.has('MASK') && names.has('VARIANCE')) {
    const hi = names.get('IMAGE')!;
    const [width, height] = imageAxes(r, hi.index);
    for (const p of [names.get('MASK')!, names.get('VARIANCE')!]) {
      const [w, h] = r.imageInfo(p).axes;
      if (w !== width || h !== height) throw new FitsError('BAD_VALUE', `${p.name} is ${w}×${h} but IMAGE is ${width}×${height}`, { file: r.name, hdu: p.index });
    }
    const header = cleanHeader(r.hdus[0]!.header);
    for (const c of r.imageHeader(hi).cards) if (!STRUCTURAL.test(c.key) && !header.has(c.key) && c.kind !== 'commentary') header.add({ ...c });
    const ltv1 = r.imageHeader(hi).integer('LTV1');
    const ltv2 = r.imageHeader(hi).integer('LTV2');
    const mask = names.get('MASK')!;
    return {
      layout: {
        kind: 'lsst', width, height, x0: ltv1 !== undefined ? -ltv1 : 0, y0: ltv2 !== undefined ? -ltv2 : 0,
        image: hi.index, mask: mask.index, variance: names.get('VARIANCE')!.index,
        maskPlanes: parseMaskPlaneCards(r.imageHeader(mask).cards),
      },
      header, warnings,
    };
  }
  const h = r.hdus.find((x) => r.isImage(x) && r.imageInfo(x).axes.length >= 2 && r.imageInfo(x).axes.every((n) => n > 0));
  if (!h) throw new FitsError('UNSUPPORTED', 'no 2-D image in the file', { file: r.name });
  const [width, height] = imageAxes(r, h.index);
  const header = cleanHeader(r.hdus[0]!.header);
  if (h.index !== 0) for (const c of r.imageHeader(h).cards) if (!STRUCTURAL.test(c.key) && c.kind !== 'commentary') header.set(c.key, c.value, c.comment, c.kind);
  const saturation = opts.saturation ?? header.number('SATURATE') ?? header.number('SATLEVEL');
  // Sky statistics from the sample bands (SAT excluded, as readExposure).
  const bands = sampleBands(height);
  const n = bands.reduce((a, [y0, y1]) => a + (y1 - y0) * width, 0);
  const sample = new Float32Array(n);
  const sampleMask = new Int32Array(n);
  let o = 0;
  for (const [y0, y1] of bands) {
    const px = toFloat32((await r.readRows(h, y0, y1)).data);
    sample.set(px, o);
    if (saturation !== undefined) for (let i = 0; i < px.length; i++) if (px[i]! >= saturation) sampleMask[o + i] = maskBit('SAT');
    o += px.length;
  }
  const { median, mad } = medianAndMad(sample, { mask: sampleMask, badBits: maskBit('SAT') });
  const skyStd = mad * MAD_TO_SIGMA;
  const gain = opts.gain ?? header.number('GAIN') ?? header.number('EGAIN');
  const rn = opts.readNoise ?? header.number('RDNOISE') ?? header.number('READNOIS') ?? header.number('RON');
  let varianceModel: ExposureLayout['varianceModel'];
  if (gain !== undefined && gain > 0) {
    const rn2 = rn !== undefined ? (rn / gain) ** 2 : 0;
    let skyAdd = opts.sky ?? 0;
    if (opts.sky === undefined && Math.abs(median) < 3 * skyStd) {
      skyAdd = Math.max(0, (skyStd * skyStd - rn2) * gain);
      warnings.push(`image looks sky-subtracted (median ${median.toPrecision(4)}); sky of ${skyAdd.toPrecision(4)} ADU inferred from its scatter for the Poisson term`);
    }
    varianceModel = { kind: 'gain', gain, rn2, skyAdd };
  } else {
    if (!(skyStd > 0)) throw new FitsError('BAD_VALUE', 'cannot estimate noise: the image has no scatter', { file: r.name });
    warnings.push(`no GAIN or noise map: variance set to the sky's robust variance ${(skyStd * skyStd).toPrecision(4)} everywhere (sources' Poisson noise ignored)`);
    varianceModel = { kind: 'constant', value: skyStd * skyStd };
  }
  return { layout: { kind: 'plain', width, height, x0: 0, y0: 0, image: h.index, ...(saturation !== undefined ? { saturation } : {}), varianceModel }, header, warnings };
}

function toInt32(a: PixelArray): Int32Array {
  return a instanceof Int32Array ? a : Int32Array.from(a as ArrayLike<number>, Number);
}

/** Rows read per request: bounds the full-width band held at once (8192 columns × 256 rows × 4 B = 8 MB). */
const CHUNK_ROWS = 256;

/**
 * Read rows [ly, ly + height) of an HDU in chunks and copy columns [lx, lx + out width) of each
 * into `out` (height × width, row-major).
 */
async function readCropped<T extends Float32Array | Int32Array>(r: FitsReader, index: number, L: ExposureLayout, lx: number, ly: number, width: number, height: number, out: T, convert: (a: PixelArray) => T): Promise<void> {
  for (let y = 0; y < height; y += CHUNK_ROWS) {
    const n = Math.min(CHUNK_ROWS, height - y);
    const band = convert((await r.readRows(r.hdus[index]!, ly + y, ly + y + n)).data);
    for (let j = 0; j < n; j++) out.set(band.subarray(j * L.width + lx, j * L.width + lx + width) as never, (y + j) * width);
  }
}

/** The part of the exposure inside `b` (parent coordinates; must lie inside the exposure). */
export async function readExposureBox(r: FitsReader, L: ExposureLayout, b: Box): Promise<MaskedImage> {
  const lx = b.x0 - L.x0;
  const ly = b.y0 - L.y0;
  if (lx < 0 || ly < 0 || lx + b.width > L.width || ly + b.height > L.height) {
    throw new RangeError(`box ${b.width}×${b.height} at (${b.x0}, ${b.y0}) is not inside the ${L.width}×${L.height} exposure at (${L.x0}, ${L.y0})`);
  }
  const mi = createMaskedImage(b.width, b.height, b.x0, b.y0);
  await readCropped(r, L.image, L, lx, ly, b.width, b.height, mi.image, toFloat32);
  if (L.kind === 'lsst') {
    await readCropped(r, L.variance!, L, lx, ly, b.width, b.height, mi.variance, toFloat32);
    await readCropped(r, L.mask!, L, lx, ly, b.width, b.height, mi.mask, toInt32);
    if (L.maskPlanes && Object.keys(L.maskPlanes).length) mi.mask.set(remapMask(mi.mask, L.maskPlanes, MASK_PLANES));
  } else {
    const SAT = maskBit('SAT');
    if (L.saturation !== undefined) for (let i = 0; i < mi.image.length; i++) if (mi.image[i]! >= L.saturation) mi.mask[i]! |= SAT;
    const vm = L.varianceModel!;
    if (vm.kind === 'gain') for (let i = 0; i < mi.image.length; i++) mi.variance[i] = Math.max(mi.image[i]! + vm.skyAdd, 0) / vm.gain + vm.rn2;
    else mi.variance.fill(vm.value);
  }
  markNoData(mi);
  return mi;
}
