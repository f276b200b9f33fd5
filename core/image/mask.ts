/**
 * Mask planes: one bit per condition in an Int32Array per pixel. Names, meanings and the default
 * bit numbers of the first nine follow LSST afw, so our masks read correctly in LSST tools and
 * theirs in ours; the rest are the planes ip_diffim adds. A file may assign other bit numbers
 * (afw lets a butler repo define its own), which is why the header cards are read back and masks
 * can be remapped.
 */
import { ImageError } from './masked-image.ts';

export type MaskPlane =
  | 'BAD'
  | 'SAT'
  | 'INTRP'
  | 'CR'
  | 'EDGE'
  | 'DETECTED'
  | 'DETECTED_NEGATIVE'
  | 'SUSPECT'
  | 'NO_DATA'
  | 'SAT_TEMPLATE'
  | 'HIGH_VARIANCE'
  | 'INJECTED'
  | 'INJECTED_TEMPLATE'
  | 'STREAK';

/** Default bit NUMBER of each plane (the bit value is 1 << number). */
export const MASK_PLANES: Readonly<Record<MaskPlane, number>> = Object.freeze({
  BAD: 0,
  SAT: 1,
  INTRP: 2,
  CR: 3,
  EDGE: 4,
  DETECTED: 5,
  DETECTED_NEGATIVE: 6,
  SUSPECT: 7,
  NO_DATA: 8,
  SAT_TEMPLATE: 9,
  HIGH_VARIANCE: 10,
  INJECTED: 11,
  INJECTED_TEMPLATE: 12,
  STREAK: 13,
});

/**
 * One line per plane. Kept short so that `HIERARCH MP_<NAME> = n / <description>` fits an
 * 80-character card.
 */
export const MASK_PLANE_DESCRIPTIONS: Readonly<Record<MaskPlane, string>> = Object.freeze({
  BAD: 'Known bad pixel (e.g. dead amplifier)',
  SAT: 'Saturated, possibly with bleed trail',
  INTRP: 'Interpolated over; other planes say why',
  CR: 'Hit by a cosmic ray',
  EDGE: 'Too near an edge to process properly',
  DETECTED: 'Inside a detected source footprint',
  DETECTED_NEGATIVE: 'Inside a negative-detection footprint',
  SUSPECT: 'Untrustworthy (e.g. beyond linearity)',
  NO_DATA: 'No input data at this pixel',
  SAT_TEMPLATE: 'Saturated in the template',
  HIGH_VARIANCE: 'Variance unusually high',
  INJECTED: 'Fake source injected in science image',
  INJECTED_TEMPLATE: 'Fake source injected in template',
  STREAK: 'On a satellite or meteor streak',
});

export function isMaskPlane(name: string): name is MaskPlane {
  return Object.prototype.hasOwnProperty.call(MASK_PLANES, name);
}

/** The integer bit value (1 << default bit number) of a plane. */
export function maskBit(name: MaskPlane): number {
  if (!isMaskPlane(name)) throw new ImageError('BAD_MASK_PLANE', `unknown mask plane '${String(name)}'`);
  return 1 << MASK_PLANES[name];
}

/** The OR of several planes' bit values (0 for none). */
export function maskOf(...names: MaskPlane[]): number {
  let bits = 0;
  for (const n of names) bits |= maskBit(n);
  return bits;
}

export interface MaskPlaneCard {
  key: string;
  value: number;
  comment: string;
}

// Int32 holds bits 0..31; bit 31 is the sign bit, which bitwise operators handle correctly.
function checkBitNumber(name: string, bit: unknown): number {
  if (typeof bit !== 'number' || !Number.isInteger(bit) || bit < 0 || bit > 31) {
    throw new ImageError('BAD_MASK_PLANE', `mask plane ${name}: bit number must be an integer 0..31, got ${String(bit)}`);
  }
  return bit;
}

const PLANE_NAME = /^[A-Z0-9_]+$/;

/**
 * Header cards describing a plane→bit-number mapping as afw writes them: key `MP_<NAME>`, value
 * the bit NUMBER. Sorted by bit number so the output is deterministic. Keys longer than eight
 * characters (most of them) need the HIERARCH convention: that is the FITS writer's job.
 */
export function maskPlaneCards(planes: Readonly<Record<string, number>> = MASK_PLANES): MaskPlaneCard[] {
  const seen = new Map<number, string>();
  const cards: MaskPlaneCard[] = [];
  for (const [name, bit] of Object.entries(planes)) {
    if (!PLANE_NAME.test(name)) throw new ImageError('BAD_MASK_PLANE', `bad mask plane name '${name}'`);
    checkBitNumber(name, bit);
    const other = seen.get(bit);
    if (other !== undefined) throw new ImageError('BAD_MASK_PLANE', `mask planes ${other} and ${name} share bit ${bit}`);
    seen.set(bit, name);
    const comment = isMaskPlane(name) ? MASK_PLANE_DESCRIPTIONS[name] : 'Mask plane bit number';
    cards.push({ key: `MP_${name}`, value: bit, comment });
  }
  cards.sort((a, b) => a.value - b.value);
  return cards;
}

/**
 * The plane→bit-number mapping found in a header's `MP_*` cards (other cards are ignored). Keys
 * may carry a `HIERARCH ` prefix and any case. A malformed value or two planes on one bit is an
 * error: a mask read with a wrong mapping would be silently wrong everywhere downstream.
 */
export function parseMaskPlaneCards(cards: ReadonlyArray<{ key: string; value: unknown }>): Record<string, number> {
  const out: Record<string, number> = {};
  const byBit = new Map<number, string>();
  for (const card of cards) {
    let key = card.key.trim().toUpperCase();
    if (key.startsWith('HIERARCH ')) key = key.slice(9).trim();
    if (!key.startsWith('MP_')) continue;
    const name = key.slice(3);
    if (!PLANE_NAME.test(name)) throw new ImageError('BAD_MASK_PLANE', `bad mask plane card key '${card.key}'`);
    const raw = typeof card.value === 'bigint' ? Number(card.value) : card.value;
    const bit = checkBitNumber(name, raw);
    if (Object.prototype.hasOwnProperty.call(out, name)) {
      if (out[name] !== bit) throw new ImageError('BAD_MASK_PLANE', `mask plane ${name} given bits ${out[name]} and ${bit}`);
      continue;
    }
    const other = byBit.get(bit);
    if (other !== undefined) throw new ImageError('BAD_MASK_PLANE', `mask planes ${other} and ${name} share bit ${bit}`);
    byBit.set(bit, name);
    out[name] = bit;
  }
  return out;
}

/**
 * A new mask with every plane moved from its bit in `from` to its bit in `to` (mappings of
 * name → bit number). Planes named in `from` but not in `to`, and set bits that `from` does not
 * name, are dropped: extend `to` first to keep them.
 */
export function remapMask(
  mask: Int32Array,
  from: Readonly<Record<string, number>>,
  to: Readonly<Record<string, number>>,
): Int32Array {
  // One lookup table per input byte: each maps the byte's 256 possible values to output bits, so
  // a pixel costs four loads and three ORs whatever the number of planes.
  const lut = new Int32Array(4 * 256);
  let identity = true;
  let fromBits = 0;
  for (const [name, src] of Object.entries(from)) {
    checkBitNumber(name, src);
    fromBits |= 1 << src;
    if (!Object.prototype.hasOwnProperty.call(to, name)) {
      identity = false;
      continue;
    }
    const dst = checkBitNumber(name, to[name]);
    if (dst !== src) identity = false;
    const byte = src >> 3;
    const inByte = 1 << (src & 7);
    const table = byte * 256;
    for (let v = 0; v < 256; v++) if (v & inByte) lut[table + v] |= 1 << dst;
  }
  if (identity) {
    // Same bits for every named plane: only unnamed bits need clearing.
    const out = mask.slice();
    if (fromBits !== -1) for (let i = 0; i < out.length; i++) out[i] &= fromBits;
    return out;
  }
  const out = new Int32Array(mask.length);
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i];
    if (v === 0) continue;
    out[i] = lut[v & 255] | lut[256 + ((v >>> 8) & 255)] | lut[512 + ((v >>> 16) & 255)] | lut[768 + (v >>> 24)];
  }
  return out;
}
