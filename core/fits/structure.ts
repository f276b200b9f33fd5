/**
 * The structural keywords of an HDU (FITS 4.0 §4.4.1): what kind of HDU it is, how big its data
 * unit is, and whether the mandatory cards are present, in order and sane. Everything the reader
 * allocates is derived from here, so every absurd value stops here with a typed error.
 */
import { FitsError } from './errors.ts';
import type { Header } from './header.ts';
import { isBitpix, type Bitpix } from './image-data.ts';

export type HduKind = 'primary' | 'image' | 'bintable' | 'table' | 'compressed-image' | 'random-groups' | 'unknown';

export interface HduStructure {
  kind: HduKind;
  bitpix: Bitpix;
  /** NAXIS1..NAXISn (FITS order). */
  axes: number[];
  pcount: number;
  gcount: number;
  /** Bytes in the data unit before padding (main table/array + heap). */
  dataBytes: number;
  extension?: string;
}

const MAX_NAXIS = 999;

export function analyseStructure(
  h: Header,
  isPrimary: boolean,
  strict: boolean,
  deviations: string[],
  where: { file?: string; hdu?: number },
): HduStructure {
  const err = (code: 'MISSING_KEY' | 'BAD_VALUE' | 'TOO_LARGE', what: string, key?: string) =>
    new FitsError(code, what, { ...where, key, card: key ? cardNumber(h, key) : undefined });
  const orderDeviation = (what: string) => {
    if (strict) throw new FitsError('MISSING_KEY', what, where);
    deviations.push(what);
  };

  const first = h.cards[0];
  let extension: string | undefined;
  if (isPrimary) {
    if (!first || first.key !== 'SIMPLE') throw new FitsError('NOT_FITS', 'first card is not SIMPLE', where);
    if (first.value !== true) orderDeviation('SIMPLE = F: file does not conform to the standard');
  } else {
    if (!first || first.key !== 'XTENSION') throw err('MISSING_KEY', 'extension header does not start with XTENSION', 'XTENSION');
    if (first.kind !== 'string') throw err('BAD_VALUE', 'XTENSION is not a string', 'XTENSION');
    extension = String(first.value).trim();
  }

  const intKey = (key: string, pos: number | undefined): number => {
    const c = h.card(key);
    if (!c) throw err('MISSING_KEY', `mandatory keyword ${key} is missing`, key);
    if (c.kind !== 'integer') throw err('BAD_VALUE', `${key} must be an integer`, key);
    if (typeof c.value === 'bigint') throw err('TOO_LARGE', `${key} = ${c.value} is absurdly large`, key);
    if (pos !== undefined && h.cards[pos]?.key !== key) orderDeviation(`${key} is not card ${pos + 1} as the standard requires`);
    return c.value as number;
  };

  const bitpix = intKey('BITPIX', 1);
  if (!isBitpix(bitpix)) throw err('BAD_VALUE', `BITPIX = ${bitpix} is not one of 8, 16, 32, 64, -32, -64`, 'BITPIX');
  const naxis = intKey('NAXIS', 2);
  if (naxis < 0 || naxis > MAX_NAXIS) throw err('BAD_VALUE', `NAXIS = ${naxis} is outside 0..999`, 'NAXIS');
  const axes: number[] = [];
  for (let i = 1; i <= naxis; i++) {
    const v = intKey(`NAXIS${i}`, 2 + i);
    if (v < 0) throw err('BAD_VALUE', `NAXIS${i} = ${v} is negative`, `NAXIS${i}`);
    axes.push(v);
  }

  let pcount = 0;
  let gcount = 1;
  let kind: HduKind;
  if (isPrimary) {
    kind = h.bool('GROUPS') === true && axes[0] === 0 ? 'random-groups' : 'primary';
    if (kind === 'random-groups') {
      pcount = h.has('PCOUNT') ? intKey('PCOUNT', undefined) : 0;
      gcount = h.has('GCOUNT') ? intKey('GCOUNT', undefined) : 1;
    }
  } else {
    pcount = intKey('PCOUNT', 3 + naxis);
    gcount = intKey('GCOUNT', 4 + naxis);
    if (pcount < 0) throw err('BAD_VALUE', `PCOUNT = ${pcount} is negative`, 'PCOUNT');
    if (gcount < 0) throw err('BAD_VALUE', `GCOUNT = ${gcount} is negative`, 'GCOUNT');
    if (extension === 'IMAGE') kind = 'image';
    else if (extension === 'BINTABLE' || extension === 'A3DTABLE') {
      kind = h.bool('ZIMAGE') === true ? 'compressed-image' : 'bintable';
      if (bitpix !== 8) throw err('BAD_VALUE', `BINTABLE must have BITPIX = 8, not ${bitpix}`, 'BITPIX');
      if (naxis !== 2) throw err('BAD_VALUE', `BINTABLE must have NAXIS = 2, not ${naxis}`, 'NAXIS');
      const tfields = intKey('TFIELDS', 7);
      if (tfields < 0 || tfields > 999) throw err('BAD_VALUE', `TFIELDS = ${tfields} is outside 0..999`, 'TFIELDS');
    } else if (extension === 'TABLE') kind = 'table';
    else kind = 'unknown';
  }

  // Size of the data unit, computed exactly (BigInt) before anything is trusted.
  let elems = 0n;
  if (naxis > 0) {
    elems = 1n;
    for (let i = kind === 'random-groups' ? 1 : 0; i < axes.length; i++) elems *= BigInt(axes[i]!);
  }
  const bits = BigInt(Math.abs(bitpix)) * BigInt(gcount) * (BigInt(pcount) + elems);
  const total = bits / 8n;
  if (naxis === 0 && pcount === 0) {
    return { kind, bitpix, axes, pcount, gcount, dataBytes: 0, extension };
  }
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw err('TOO_LARGE', `data unit of ${total} bytes is absurd`, 'NAXIS');
  return { kind, bitpix, axes, pcount, gcount, dataBytes: Number(total), extension };
}

function cardNumber(h: Header, key: string): number | undefined {
  const i = h.cards.findIndex((c) => c.key === key);
  return i >= 0 ? i + 1 : undefined;
}
