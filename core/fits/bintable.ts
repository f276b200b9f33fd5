/**
 * Binary tables (FITS 4.0 §7.3): the column types a catalogue needs (L, X, B, I, J, K, A, E, D,
 * C, M and variable-length P/Q), with TNULL, TUNIT, TDISP, TDIM and TSCAL/TZERO. Values are
 * returned as astropy returns them: unsigned conventions become unsigned types, other scaled
 * columns become float64, strings lose trailing spaces and NULs.
 */
import { FitsError } from './errors.ts';
import { Header, type Card } from './header.ts';
import { decodePixels, encodePixels, pseudoIntegerKind, type Bitpix, type PixelArray } from './image-data.ts';

/** Upper bound on rows × columns decoded at once (a 10-million-row, 13-column catalogue fits). */
export const MAX_TABLE_CELLS = 2 ** 27;
/** Rows of zero bytes hold nothing; millions of them are a corrupt NAXIS2, not a catalogue. */
export const MAX_EMPTY_ROWS = 2 ** 20;

export type ColumnType = 'L' | 'X' | 'B' | 'I' | 'J' | 'K' | 'A' | 'E' | 'D' | 'C' | 'M' | 'P' | 'Q';

export interface ColumnFormat {
  repeat: number;
  type: ColumnType;
  /** For P/Q: the element type and declared maximum length. */
  varType?: Exclude<ColumnType, 'P' | 'Q'>;
  varMax?: number;
  /** Bytes this column occupies in a row. */
  width: number;
}

export const ELEMENT_BYTES: Record<Exclude<ColumnType, 'X' | 'P' | 'Q'>, number> = { L: 1, B: 1, I: 2, J: 4, K: 8, A: 1, E: 4, D: 8, C: 8, M: 16 };
export const BITPIX_OF: Partial<Record<ColumnType, Bitpix>> = { B: 8, I: 16, J: 32, K: 64, E: -32, D: -64, C: -32, M: -64 };

export function parseTform(tform: string): ColumnFormat | undefined {
  const m = /^\s*(\d*)([LXBIJKAEDCMPQ])(.*)$/.exec(tform);
  if (!m) return undefined;
  const repeat = m[1] ? Number(m[1]) : 1;
  if (!Number.isSafeInteger(repeat)) return undefined;
  const type = m[2] as ColumnType;
  if (type === 'P' || type === 'Q') {
    const v = /^([LXBIJKAEDCM])(?:\((\d+)\))?/.exec(m[3]!);
    if (!v) return undefined;
    return { repeat, type, varType: v[1] as ColumnFormat['varType'], varMax: v[2] ? Number(v[2]) : undefined, width: repeat === 0 ? 0 : (type === 'P' ? 8 : 16) };
  }
  if (type === 'X') return { repeat, type, width: Math.ceil(repeat / 8) };
  return { repeat, type, width: repeat * ELEMENT_BYTES[type] };
}

export type ColumnValues =
  /** L: 1 true, 0 false, −1 undefined (a NUL byte); rows × repeat. */
  | { kind: 'logical'; values: Int8Array }
  /** X: packed bits as stored, ceil(repeat/8) bytes per row. */
  | { kind: 'bits'; values: Uint8Array }
  /** B I J K E D (C M interleaved re, im): rows × repeat (× 2 for complex). */
  | { kind: 'number'; values: PixelArray }
  /** A: one string per row. */
  | { kind: 'string'; values: string[] }
  /** P/Q: one array per row. */
  | { kind: 'varlen'; values: Array<PixelArray | Int8Array | string> };

export interface ColumnInfo {
  name: string;
  format: string;
  parsed: ColumnFormat;
  /** Byte offset of this column within a row. */
  offset: number;
  unit?: string;
  null?: number | bigint;
  disp?: string;
  dim?: string;
  scale: number;
  zero: number;
}

export interface Column extends ColumnInfo {
  data: ColumnValues;
}

export interface Table {
  nrows: number;
  columns: Column[];
}

/** The column layout declared by a BINTABLE header. */
export function tableLayout(h: Header, where: { file?: string; hdu?: number } = {}): { rowBytes: number; nrows: number; columns: ColumnInfo[] } {
  const bad = (what: string, key?: string) => new FitsError('BAD_TABLE', what, { ...where, key });
  const rowBytes = h.integer('NAXIS1') ?? 0;
  const nrows = h.integer('NAXIS2') ?? 0;
  const tfields = h.integer('TFIELDS') ?? 0;
  const columns: ColumnInfo[] = [];
  let offset = 0;
  for (let i = 1; i <= tfields; i++) {
    const format = h.string(`TFORM${i}`);
    if (format === undefined) throw bad(`TFORM${i} is missing`, `TFORM${i}`);
    const parsed = parseTform(format);
    if (!parsed) throw bad(`TFORM${i} = '${format}' is not a valid binary table format`, `TFORM${i}`);
    const nullCard = h.card(`TNULL${i}`);
    columns.push({
      name: h.string(`TTYPE${i}`) ?? '',
      format,
      parsed,
      offset,
      unit: h.string(`TUNIT${i}`),
      null: nullCard && nullCard.kind === 'integer' ? (nullCard.value as number | bigint) : undefined,
      disp: h.string(`TDISP${i}`),
      dim: h.string(`TDIM${i}`),
      scale: h.number(`TSCAL${i}`) ?? 1,
      zero: h.number(`TZERO${i}`) ?? 0,
    });
    offset += parsed.width;
  }
  if (offset !== rowBytes) throw bad(`columns need ${offset} bytes per row but NAXIS1 = ${rowBytes}`, 'NAXIS1');
  // Rows cost time and memory even when they hold no bytes (zero-width columns, descriptors):
  // refuse tables whose cell count no catalogue reaches, before looping over them.
  if (nrows * Math.max(1, columns.length) > MAX_TABLE_CELLS || (rowBytes === 0 && nrows > MAX_EMPTY_ROWS)) {
    throw new FitsError('TOO_LARGE', `table of ${nrows} rows × ${columns.length} columns is beyond ${MAX_TABLE_CELLS} cells`, { ...where, key: 'NAXIS2' });
  }
  return { rowBytes, nrows, columns };
}

/** Decode a whole table from its data unit bytes (main table followed by the heap). */
export function decodeTable(h: Header, data: Uint8Array, where: { file?: string; hdu?: number } = {}): Table {
  const { rowBytes, nrows, columns } = tableLayout(h, where);
  const theap = h.integer('THEAP') ?? rowBytes * nrows;
  if (rowBytes * nrows > data.length) throw new FitsError('TRUNCATED', 'table data shorter than NAXIS1 × NAXIS2', where);
  const heap = data.subarray(theap);
  return { nrows, columns: columns.map((c) => ({ ...c, data: decodeColumn(c, data, rowBytes, nrows, heap, where) })) };
}

/** Gather one column's bytes from every row into a contiguous buffer. */
function gather(c: ColumnInfo, data: Uint8Array, rowBytes: number, nrows: number): Uint8Array {
  const w = c.parsed.width;
  if (w === 0) return new Uint8Array(0);
  const out = new Uint8Array(w * nrows);
  for (let r = 0; r < nrows; r++) out.set(data.subarray(r * rowBytes + c.offset, r * rowBytes + c.offset + w), r * w);
  return out;
}

function decodeColumn(c: ColumnInfo, data: Uint8Array, rowBytes: number, nrows: number, heap: Uint8Array, where: { file?: string; hdu?: number }): ColumnValues {
  const t = c.parsed.type;
  const raw = gather(c, data, rowBytes, nrows);
  switch (t) {
    case 'L':
      return { kind: 'logical', values: decodeLogical(raw) };
    case 'X':
      return { kind: 'bits', values: raw };
    case 'A': {
      const values: string[] = new Array(nrows);
      const w = c.parsed.width;
      for (let r = 0; r < nrows; r++) values[r] = decodeString(raw.subarray(r * w, r * w + w));
      return { kind: 'string', values };
    }
    case 'P':
    case 'Q': {
      const values: Array<PixelArray | Int8Array | string> = new Array(nrows);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
      const w = c.parsed.width;
      for (let r = 0; r < nrows; r++) {
        if (w === 0) {
          values[r] = new Uint8Array(0);
          continue;
        }
        const { n, off } = readDescriptor(dv, r * w, t);
        values[r] = decodeVarElement(c, heap, n, off, where);
      }
      return { kind: 'varlen', values };
    }
    default:
      return { kind: 'number', values: scaleColumn(t, raw, c) };
  }
}

export function readDescriptor(dv: DataView, o: number, t: 'P' | 'Q'): { n: number; off: number } {
  if (t === 'P') return { n: dv.getUint32(o), off: dv.getUint32(o + 4) };
  const n = dv.getBigUint64(o);
  const off = dv.getBigUint64(o + 8);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || off > BigInt(Number.MAX_SAFE_INTEGER)) return { n: Number.MAX_SAFE_INTEGER, off: 0 };
  return { n: Number(n), off: Number(off) };
}

function decodeVarElement(c: ColumnInfo, heap: Uint8Array, n: number, off: number, where: { file?: string; hdu?: number }): PixelArray | Int8Array | string {
  const vt = c.parsed.varType!;
  const size = vt === 'X' ? Math.ceil(n / 8) : n * ELEMENT_BYTES[vt];
  if (off + size > heap.length || size < 0) throw new FitsError('BAD_TABLE', `variable-length array of column ${c.name} points outside the heap`, where);
  const bytes = heap.slice(off, off + size);
  if (vt === 'L') return decodeLogical(bytes);
  if (vt === 'A') return decodeString(bytes);
  if (vt === 'X') return bytes;
  return scaleColumn(vt, bytes, c);
}

function decodeLogical(raw: Uint8Array): Int8Array {
  const out = new Int8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw[i] === 0x54 ? 1 : raw[i] === 0x46 ? 0 : -1;
  return out;
}

function decodeString(b: Uint8Array): string {
  let end = b.length;
  const nul = b.indexOf(0);
  if (nul >= 0) end = nul;
  while (end > 0 && b[end - 1] === 0x20) end--;
  return Buffer.from(b.buffer, b.byteOffset, end).toString('latin1');
}

/** Numbers with TSCAL/TZERO as astropy applies them: unsigned conventions exact, else float64. */
function scaleColumn(t: ColumnType, raw: Uint8Array, c: { scale: number; zero: number }): PixelArray {
  const bitpix = BITPIX_OF[t]!;
  const s = { bscale: c.scale, bzero: c.zero };
  if (c.scale === 1 && c.zero === 0) return decodePixels(raw, bitpix);
  if (bitpix > 0 && pseudoIntegerKind(bitpix, s)) return decodePixels(raw, bitpix, s);
  const v = decodePixels(raw, bitpix);
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Number(v[i]!) * c.scale + c.zero;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface ColumnInput {
  name: string;
  /** TFORM, e.g. 'K', '3E', '20A', '1PB'. Omit to infer from the values (repeat 1). */
  format?: string;
  unit?: string;
  null?: number | bigint;
  disp?: string;
  /** Column description written as the TTYPEn comment (LSST and astropy show it). */
  description?: string;
  values:
    | PixelArray
    | Int8Array
    | boolean[]
    | Array<boolean | null>
    | string[]
    | Array<PixelArray | Int8Array | string>;
}

function inferFormat(v: ColumnInput['values']): string {
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === 'string') return `${Math.max(1, ...(v as string[]).map((s) => s.length))}A`;
    if (v.length === 0 || typeof v[0] === 'boolean' || v[0] === null) return 'L';
    throw new FitsError('BAD_TABLE', 'cannot infer a format for variable-length data: give TFORM');
  }
  if (v instanceof Float64Array) return 'D';
  if (v instanceof Float32Array) return 'E';
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) return 'K';
  if (v instanceof Int32Array || v instanceof Uint32Array) return 'J';
  if (v instanceof Int16Array || v instanceof Uint16Array) return 'I';
  return 'B';
}

/**
 * Encode columns as a BINTABLE: the structural and column cards, and the data unit (rows + heap,
 * unpadded). Unsigned typed arrays are written with the TZERO convention.
 */
export function encodeTable(columns: ColumnInput[], nrows: number): { cards: Card[]; data: Uint8Array; pcount: number } {
  const formats = columns.map((c) => {
    const format = c.format ?? inferFormat(c.values);
    const p = parseTform(format);
    if (!p) throw new FitsError('BAD_TABLE', `column ${c.name}: invalid TFORM '${format}'`);
    return { format, p };
  });
  const rowBytes = formats.reduce((a, f) => a + f.p.width, 0);
  const heapParts: Uint8Array[] = [];
  let heapSize = 0;
  const main = new Uint8Array(rowBytes * nrows);
  const extraCards: Card[][] = [];
  let off = 0;
  columns.forEach((c, i) => {
    const { p } = formats[i]!;
    const extra: Card[] = [];
    const bytes = encodeColumn(c, p, nrows, extra, (chunk) => {
      const at = heapSize;
      heapParts.push(chunk);
      heapSize += chunk.length;
      return at;
    });
    for (let r = 0; r < nrows; r++) main.set(bytes.subarray(r * p.width, (r + 1) * p.width), r * rowBytes + off);
    off += p.width;
    extraCards.push(extra);
  });
  const data = new Uint8Array(main.length + heapSize);
  data.set(main);
  let h = main.length;
  for (const part of heapParts) {
    data.set(part, h);
    h += part.length;
  }
  const cards: Card[] = [
    { key: 'XTENSION', kind: 'string', value: 'BINTABLE', comment: 'binary table extension' },
    { key: 'BITPIX', kind: 'integer', value: 8, comment: 'array data type' },
    { key: 'NAXIS', kind: 'integer', value: 2, comment: 'number of array dimensions' },
    { key: 'NAXIS1', kind: 'integer', value: rowBytes, comment: 'length of dimension 1' },
    { key: 'NAXIS2', kind: 'integer', value: nrows, comment: 'length of dimension 2' },
    { key: 'PCOUNT', kind: 'integer', value: heapSize, comment: 'number of group parameters' },
    { key: 'GCOUNT', kind: 'integer', value: 1, comment: 'number of groups' },
    { key: 'TFIELDS', kind: 'integer', value: columns.length, comment: 'number of table fields' },
  ];
  columns.forEach((c, i) => {
    const n = i + 1;
    cards.push({ key: `TTYPE${n}`, kind: 'string', value: c.name, comment: c.description ?? '' });
    cards.push({ key: `TFORM${n}`, kind: 'string', value: formats[i]!.format, comment: '' });
    if (c.unit) cards.push({ key: `TUNIT${n}`, kind: 'string', value: c.unit, comment: '' });
    if (c.null !== undefined) cards.push({ key: `TNULL${n}`, kind: 'integer', value: c.null, comment: '' });
    if (c.disp) cards.push({ key: `TDISP${n}`, kind: 'string', value: c.disp, comment: '' });
    for (const e of extraCards[i]!) cards.push({ ...e, key: `${e.key}${n}` });
  });
  return { cards, data, pcount: heapSize };
}

function encodeColumn(c: ColumnInput, p: ColumnFormat, nrows: number, extra: Card[], heapPut: (b: Uint8Array) => number): Uint8Array {
  const bad = (what: string) => new FitsError('BAD_TABLE', `column ${c.name}: ${what}`);
  const v = c.values;
  const n = nrows * (p.type === 'X' ? p.width : p.type === 'P' || p.type === 'Q' ? 1 : p.repeat);
  if (p.type === 'P' || p.type === 'Q') {
    const arr = v as Array<PixelArray | Int8Array | string>;
    if (arr.length !== nrows) throw bad(`${arr.length} values for ${nrows} rows`);
    const out = new Uint8Array(p.width * nrows);
    const dv = new DataView(out.buffer);
    for (let r = 0; r < nrows; r++) {
      const el = arr[r]!;
      let bytes: Uint8Array;
      let count: number;
      if (typeof el === 'string') {
        bytes = Buffer.from(el, 'latin1');
        count = bytes.length;
      } else if (p.varType === 'L') {
        bytes = encodeLogical(el as Int8Array);
        count = el.length;
      } else {
        bytes = encodePixels(el as PixelArray);
        count = el.length;
      }
      const at = heapPut(bytes);
      if (p.type === 'P') {
        dv.setUint32(r * 8, count);
        dv.setUint32(r * 8 + 4, at);
      } else {
        dv.setBigUint64(r * 16, BigInt(count));
        dv.setBigUint64(r * 16 + 8, BigInt(at));
      }
    }
    return out;
  }
  if (p.type === 'A') {
    const arr = v as string[];
    if (arr.length !== nrows) throw bad(`${arr.length} values for ${nrows} rows`);
    const out = new Uint8Array(p.width * nrows).fill(0x20);
    for (let r = 0; r < nrows; r++) {
      const s = arr[r]!;
      if (!/^[\x20-\x7e]*$/.test(s)) throw bad('strings must be printable ASCII');
      if (s.length > p.width) throw bad(`string of ${s.length} characters exceeds ${c.format}`);
      for (let k = 0; k < s.length; k++) out[r * p.width + k] = s.charCodeAt(k);
    }
    return out;
  }
  if (p.type === 'L') {
    const arr = v instanceof Int8Array ? v : Int8Array.from(v as Array<boolean | null>, (b) => (b === null ? -1 : b ? 1 : 0));
    if (arr.length !== n) throw bad(`${arr.length} values for ${nrows} rows × ${p.repeat}`);
    return encodeLogical(arr);
  }
  if (p.type === 'X') {
    const arr = v as Uint8Array;
    if (arr.length !== n) throw bad(`${arr.length} bytes for ${nrows} rows`);
    return arr.slice();
  }
  const arr = v as PixelArray;
  const mult = p.type === 'C' || p.type === 'M' ? 2 : 1;
  if (arr.length !== n * mult) throw bad(`${arr.length} values for ${nrows} rows × ${p.repeat}`);
  const want: Record<string, string[]> = {
    B: ['Uint8Array', 'Int8Array'],
    I: ['Int16Array', 'Uint16Array'],
    J: ['Int32Array', 'Uint32Array'],
    K: ['BigInt64Array', 'BigUint64Array'],
    E: ['Float32Array'],
    D: ['Float64Array'],
    C: ['Float32Array'],
    M: ['Float64Array'],
  };
  if (!want[p.type]!.includes(arr.constructor.name)) throw bad(`${arr.constructor.name} does not match TFORM ${p.type}`);
  const zero = arr instanceof Int8Array ? -128 : arr instanceof Uint16Array ? 32768 : arr instanceof Uint32Array ? 2147483648 : arr instanceof BigUint64Array ? 9223372036854775808 : undefined;
  if (zero !== undefined) {
    extra.push({ key: 'TSCAL', kind: 'integer', value: 1, comment: '' });
    extra.push({ key: 'TZERO', kind: 'integer', value: zero === 9223372036854775808 ? 9223372036854775808n : zero, comment: 'offset for unsigned integers' });
  }
  return encodePixels(arr);
}

function encodeLogical(a: Int8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] === 1 ? 0x54 : a[i] === 0 ? 0x46 : 0;
  return out;
}

