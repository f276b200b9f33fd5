/**
 * Compare what our reader sees in a FITS file with what astropy sees (fits_dump.py): every header
 * card (key, typed value, comment) and every pixel / table cell bit-exactly after scaling.
 * Returns a list of human-readable differences (empty = identical).
 */
import { FitsReader, type Card, type Hdu } from '../../core/fits/index.ts';
import type { ColumnValues } from '../../core/fits/bintable.ts';
import {
  canonicalDigest,
  isImageData,
  isTableData,
  logicalColumnDigest,
  stringColumnDigest,
  varlenDigest,
  type DumpCard,
  type DumpHdu,
  type DumpOk,
  type NumericTypedArray,
} from './canonical.ts';

const KIND: Record<string, string> = { primary: 'primary', image: 'image', bintable: 'bintable', 'compressed-image': 'compimage', table: 'table' };

export function cardMatches(ours: Card, theirs: DumpCard): string | undefined {
  const v = theirs.value as { t: string; v?: unknown };
  if (ours.key !== theirs.key) return `key ${ours.key} ≠ ${theirs.key}`;
  // A keyword without "= " is commentary text to FITS 4.0 and a string to astropy: same text.
  if (ours.kind === 'commentary' && v.t === 'str') return ours.value === v.v ? undefined : `text ${JSON.stringify(ours.value)} ≠ ${JSON.stringify(v.v)}`;
  // astropy cannot parse it; lenient mode kept it with a warning — nothing to compare against.
  if (v.t === 'unparsable') return undefined;
  const ov = ours.value;
  switch (v.t) {
    case 'commentary':
      if (ours.kind !== 'commentary' || ov !== v.v) return `commentary ${JSON.stringify(ov)} ≠ ${JSON.stringify(v.v)}`;
      return undefined; // commentary cards have no comment
    case 'int':
      if (ours.kind !== 'integer' || BigInt(ov as number | bigint) !== BigInt(v.v as string)) return `int ${String(ov)} (${ours.kind}) ≠ ${String(v.v)}`;
      break;
    case 'float': {
      const want = typeof v.v === 'string' ? (v.v === 'nan' ? NaN : v.v === 'inf' ? Infinity : -Infinity) : (v.v as number);
      if (ours.kind !== 'float' || !Object.is(ov, want)) return `float ${String(ov)} (${ours.kind}) ≠ ${String(v.v)}`;
      break;
    }
    case 'bool':
      if (ours.kind !== 'logical' || ov !== v.v) return `bool ${String(ov)} ≠ ${String(v.v)}`;
      break;
    case 'str':
      if (ours.kind !== 'string' || ov !== v.v) return `string ${JSON.stringify(ov)} ≠ ${JSON.stringify(v.v)}`;
      break;
    case 'complex': {
      const [re, im] = v.v as [number, number];
      const c = ov as { re: number; im: number };
      if (ours.kind !== 'complex' || c.re !== re || c.im !== im) return `complex ${JSON.stringify(ov)} ≠ ${JSON.stringify(v.v)}`;
      break;
    }
    case 'none':
      if (ours.kind !== 'undefined') return `undefined ≠ ${ours.kind} ${String(ov)}`;
      break;
    default:
      return `astropy could not parse the value (${v.t})`;
  }
  if (ours.comment !== theirs.comment) return `comment ${JSON.stringify(ours.comment)} ≠ ${JSON.stringify(theirs.comment)}`;
  return undefined;
}

export function compareHeaders(ours: Card[], theirs: DumpCard[], label: string): string[] {
  const diffs: string[] = [];
  if (ours.length !== theirs.length) diffs.push(`${label}: ${ours.length} cards ≠ astropy's ${theirs.length} (ours: ${ours.map((c) => c.key).join(',')} | astropy: ${theirs.map((c) => c.key).join(',')})`);
  const n = Math.min(ours.length, theirs.length);
  for (let i = 0; i < n; i++) {
    const d = cardMatches(ours[i]!, theirs[i]!);
    if (d) diffs.push(`${label} card ${i + 1} (${theirs[i]!.key}): ${d}`);
  }
  return diffs;
}

function columnDigest(v: ColumnValues): { sha256: string; count: number } {
  switch (v.kind) {
    case 'logical':
      return logicalColumnDigest(Array.from(v.values, (x) => x === 1));
    case 'string':
      return stringColumnDigest(v.values);
    case 'varlen':
      return varlenDigest(v.values.map((r) => (r instanceof Int8Array ? Array.from(r, (x) => x === 1) : (r as NumericTypedArray | string))));
    case 'bits': {
      return { sha256: '(bits)', count: v.values.length };
    }
    default:
      return canonicalDigest(v.values as NumericTypedArray);
  }
}

const ASTROPY_LEFTOVERS = new Set(['ZBLANK', 'ZDITHER0']);

function compareKeyed(ours: Card[], theirs: DumpCard[], label: string): string[] {
  const diffs: string[] = [];
  const mine = ours.filter((c) => c.kind !== 'commentary');
  const their = theirs.filter((c) => c.value.t !== 'commentary');
  const keys = (cs: { key: string }[]) => cs.map((c) => c.key).sort().join(',');
  if (keys(mine) !== keys(their)) diffs.push(`${label}: keys ${keys(mine)} ≠ astropy's ${keys(their)}`);
  for (const t of their) {
    const o = mine.find((c) => c.key === t.key);
    const d = o && cardMatches({ ...o, comment: t.comment }, t);
    if (d) diffs.push(`${label} ${t.key}: ${d}`);
  }
  const texts = (cs: Array<{ value: unknown }>) => cs.map((c) => String((c.value as { v?: unknown }).v ?? c.value)).join('|');
  const oc = ours.filter((c) => c.kind === 'commentary');
  const tc = theirs.filter((c) => c.value.t === 'commentary');
  if (oc.map((c) => c.value).join('|') !== texts(tc)) diffs.push(`${label}: commentary cards differ`);
  return diffs;
}

export async function compareWithAstropy(path: string, dump: DumpOk, opts: { headers?: boolean } = {}): Promise<string[]> {
  const diffs: string[] = [];
  const r = await FitsReader.open(path);
  try {
    if (r.hdus.length !== dump.hdus.length) diffs.push(`${r.hdus.length} HDUs ≠ astropy's ${dump.hdus.length}`);
    for (let i = 0; i < Math.min(r.hdus.length, dump.hdus.length); i++) {
      diffs.push(...(await compareHdu(r, r.hdus[i]!, dump.hdus[i]!, opts.headers ?? true)));
    }
  } finally {
    await r.close();
  }
  return diffs;
}

async function compareHdu(r: FitsReader, h: Hdu, d: DumpHdu, headers: boolean): Promise<string[]> {
  const label = `HDU ${h.index}`;
  const diffs: string[] = [];
  if (KIND[h.kind] !== d.kind) diffs.push(`${label}: kind ${h.kind} ≠ astropy's ${d.kind}`);
  if (headers) {
    if (h.kind === 'compressed-image') {
      // The stored (table) header must match card for card; the reconstructed image header by key,
      // because astropy 5.2 leaves ZBLANK/ZDITHER0 in it and moves EXTEND to the end.
      if (d.table_header) diffs.push(...compareHeaders(h.header.cards, d.table_header, `${label} table`));
      diffs.push(...compareKeyed(r.imageHeader(h).cards, d.header.filter((c) => !ASTROPY_LEFTOVERS.has(c.key)), `${label} image`));
    } else diffs.push(...compareHeaders(h.header.cards, d.header, label));
  }
  const data = d.data;
  if (data && 'error' in data && !isImageData(data) && !isTableData(data)) {
    diffs.push(`${label}: astropy could not read the data: ${String((data as { error: string }).error)}`);
    return diffs;
  }
  if (isImageData(data)) {
    const im = await r.readImage(h);
    // astropy 5.2 reads a compressed int8 (BZERO = -128) image as float32: same values, other type.
    const data_ = h.kind === 'compressed-image' && im.data instanceof Int8Array && data.dtype === 'float32' ? Float32Array.from(im.data) : im.data;
    const dg = canonicalDigest(data_ as NumericTypedArray);
    if (JSON.stringify(im.shape) !== JSON.stringify(data.shape)) diffs.push(`${label}: shape ${im.shape} ≠ ${data.shape}`);
    if (dg.dtype !== data.dtype) diffs.push(`${label}: dtype ${dg.dtype} ≠ astropy's ${data.dtype}`);
    if (dg.sha256 !== data.sha256) diffs.push(`${label}: pixels differ from astropy's (digest)`);
  } else if (isTableData(data)) {
    const t = await r.readTable(h);
    if (t.nrows !== data.nrows) diffs.push(`${label}: ${t.nrows} rows ≠ ${data.nrows}`);
    data.columns.forEach((c, k) => {
      const ours = t.columns[k];
      if (!ours) {
        diffs.push(`${label}: column ${c.name} missing`);
        return;
      }
      if (ours.name !== c.name) diffs.push(`${label}: column ${k + 1} name ${ours.name} ≠ ${c.name}`);
      if ((ours.unit ?? null) !== c.unit) diffs.push(`${label}: column ${c.name} unit ${ours.unit} ≠ ${c.unit}`);
      if (ours.data.kind === 'bits') return; // X columns: compared by fits_dump's expansion elsewhere
      const dg = columnDigest(ours.data);
      if (ours.data.kind === 'number') {
        const dt = canonicalDigest(ours.data.values as NumericTypedArray).dtype;
        if (dt !== c.dtype) diffs.push(`${label}: column ${c.name} dtype ${dt} ≠ astropy's ${c.dtype}`);
      }
      if (dg.sha256 !== c.sha256) diffs.push(`${label}: column ${c.name} values differ from astropy's`);
    });
  }
  return diffs;
}
