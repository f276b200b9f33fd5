/**
 * Tile-compressed images (FITS 4.0 §10): an image stored as a BINTABLE with ZIMAGE = T, one row per
 * tile. Supports RICE_1, GZIP_1, GZIP_2 and NOCOMPRESS, integer images and quantized floats
 * (NO_DITHER, SUBTRACTIVE_DITHER_1/2), with the fallback GZIP_COMPRESSED_DATA and UNCOMPRESSED_DATA
 * columns. A band of rows reads only the table rows of the tiles that cover it and one span of
 * the heap.
 */
import { BITPIX_OF, ELEMENT_BYTES, readDescriptor, tableLayout, type ColumnInfo } from './bintable.ts';
import { gunzipTile, unshuffleGzip2 } from './compress/gzip.ts';
import { unquantize, type QuantizeMethod } from './compress/quantize.ts';
import { riceDecode } from './compress/rice.ts';
import { FitsError, MAX_ALLOCATION } from './errors.ts';
import { Header, type Card } from './header.ts';
import { bytesPerPixel, decodePixels, isBitpix, swapInPlace, type Bitpix, type PixelArray, type Scaling } from './image-data.ts';

export interface CompressedLayout {
  zbitpix: Bitpix;
  axes: number[];
  tile: number[];
  /** Tiles along each axis. */
  grid: number[];
  cmptype: 'RICE_1' | 'GZIP_1' | 'GZIP_2' | 'NOCOMPRESS';
  blockSize: number;
  bytePix: 1 | 2 | 4 | 8;
  quantize: QuantizeMethod | 'NONE';
  zdither0: number;
  rowBytes: number;
  nrows: number;
  heapOffset: number;
  cols: { compressed?: ColumnInfo; gzip?: ColumnInfo; uncompressed?: ColumnInfo; zscale?: ColumnInfo; zzero?: ColumnInfo; zblank?: ColumnInfo };
  zscaleKey?: number;
  zzeroKey?: number;
  zblankKey?: number;
  /** The image header users see (astropy's CompImageHDU.header). */
  imageHeader: Header;
}

type Where = { file?: string; hdu?: number };

/** Keywords that belong to the table that carries the image, not to the image. */
const TABLE_ONLY = /^(XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|THEAP|T(TYPE|FORM|UNIT|NULL|DISP|SCAL|ZERO|DIM)\d+|ZIMAGE|ZBITPIX|ZNAXIS\d*|ZTILE\d+|ZCMPTYPE|ZNAME\d+|ZVAL\d+|ZQUANTIZ|ZDITHER0|ZSIMPLE|ZTENSION|ZEXTEND|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|ZBLANK|ZSCALE|ZZERO|CHECKSUM|DATASUM)$/;

export function compressedLayout(h: Header, dataBytes: number, where: Where): CompressedLayout {
  const bad = (what: string, key?: string) => new FitsError('BAD_COMPRESSED', what, { ...where, key });
  const zbitpix = h.integer('ZBITPIX');
  if (!isBitpix(zbitpix)) throw bad(`ZBITPIX = ${zbitpix} is not a valid BITPIX`, 'ZBITPIX');
  const znaxis = h.integer('ZNAXIS');
  if (znaxis === undefined || znaxis < 0 || znaxis > 999) throw bad(`ZNAXIS = ${znaxis} is invalid`, 'ZNAXIS');
  const axes: number[] = [];
  const tile: number[] = [];
  for (let i = 1; i <= znaxis; i++) {
    const n = h.integer(`ZNAXIS${i}`);
    if (n === undefined || n < 0) throw bad(`ZNAXIS${i} is missing or negative`, `ZNAXIS${i}`);
    axes.push(n);
    const t = h.integer(`ZTILE${i}`) ?? (i === 1 ? n : 1);
    if (t < 1) throw bad(`ZTILE${i} = ${t} must be positive`, `ZTILE${i}`);
    tile.push(Math.min(t, Math.max(1, n)));
  }
  const grid = axes.map((n, i) => Math.ceil(n / tile[i]!));
  const tilePixels = tile.reduce((a, b) => a * b, 1);
  if (tilePixels * 8 > MAX_ALLOCATION) throw new FitsError('TOO_LARGE', `tiles of ${tilePixels} pixels are absurd`, where);
  let imagePixels = 1;
  for (const n of axes) imagePixels *= n;
  if (imagePixels * bytesPerPixel(zbitpix) > MAX_ALLOCATION) throw new FitsError('TOO_LARGE', `image of ${imagePixels} pixels is too large`, where);

  const cmp = (h.string('ZCMPTYPE') ?? '').trim().toUpperCase();
  const cmptype = cmp === 'RICE_ONE' ? 'RICE_1' : cmp;
  if (cmptype !== 'RICE_1' && cmptype !== 'GZIP_1' && cmptype !== 'GZIP_2' && cmptype !== 'NOCOMPRESS') {
    throw new FitsError('UNSUPPORTED', `compression ${cmp || '(none given)'} is not supported (RICE_1, GZIP_1, GZIP_2 are)`, { ...where, key: 'ZCMPTYPE' });
  }
  const zvals = new Map<string, number>();
  for (let i = 1; h.has(`ZNAME${i}`); i++) {
    const v = h.number(`ZVAL${i}`);
    if (v !== undefined) zvals.set((h.string(`ZNAME${i}`) ?? '').trim().toUpperCase(), v);
  }
  const q = (h.string('ZQUANTIZ') ?? '').trim().toUpperCase();
  const floatImage = zbitpix < 0;
  let quantize: CompressedLayout['quantize'];
  if (!floatImage || q === 'NONE') quantize = 'NONE';
  else if (q === '' || q === 'NO_DITHER') quantize = 'NO_DITHER';
  else if (q === 'SUBTRACTIVE_DITHER_1' || q === 'SUBTRACTIVE_DITHER_2') quantize = q;
  else throw new FitsError('UNSUPPORTED', `ZQUANTIZ = '${q}' is not supported`, { ...where, key: 'ZQUANTIZ' });

  const { rowBytes, nrows, columns } = tableLayout(h, where);
  const expectedTiles = grid.reduce((a, b) => a * b, 1);
  if (nrows !== expectedTiles && imagePixels > 0) throw bad(`table has ${nrows} rows but the image needs ${expectedTiles} tiles`, 'NAXIS2');
  const byName = (n: string) => columns.find((c) => c.name.trim().toUpperCase() === n);
  const cols = {
    compressed: byName('COMPRESSED_DATA'),
    gzip: byName('GZIP_COMPRESSED_DATA'),
    uncompressed: byName('UNCOMPRESSED_DATA'),
    zscale: byName('ZSCALE'),
    zzero: byName('ZZERO'),
    zblank: byName('ZBLANK'),
  };
  if (!cols.compressed && !cols.gzip && !cols.uncompressed) throw bad('no COMPRESSED_DATA column');
  for (const [name, c] of Object.entries(cols)) {
    if (!c) continue;
    const varlen = c.parsed.type === 'P' || c.parsed.type === 'Q';
    const isData = name === 'compressed' || name === 'gzip' || name === 'uncompressed';
    if (isData !== varlen || (!isData && !'BIJKED'.includes(c.parsed.type)) || (varlen && c.parsed.repeat !== 1)) {
      throw bad(`column ${c.name} has format ${c.format}, not what the tiled-image convention requires`);
    }
  }
  const heapOffset = h.integer('THEAP') ?? rowBytes * nrows;
  if (heapOffset > dataBytes) throw bad('THEAP points past the data unit', 'THEAP');

  // Floats are quantized only when a scale exists (column or keyword): ZQUANTIZ alone does not make
  // a lossless GZIP tile quantized.
  if (quantize !== 'NONE' && !cols.zscale && h.number('ZSCALE') === undefined) quantize = 'NONE';
  const defaultBytePix = quantize !== 'NONE' ? 4 : bytesPerPixel(zbitpix);
  const bytePix = (zvals.get('BYTEPIX') ?? defaultBytePix) as 1 | 2 | 4 | 8;
  if (![1, 2, 4, 8].includes(bytePix)) throw bad(`BYTEPIX = ${bytePix} is invalid`);

  return {
    zbitpix,
    axes,
    tile,
    grid,
    cmptype,
    blockSize: zvals.get('BLOCKSIZE') ?? 32,
    bytePix,
    quantize,
    zdither0: h.integer('ZDITHER0') ?? 1,
    rowBytes,
    nrows,
    heapOffset,
    cols,
    zscaleKey: h.number('ZSCALE'),
    zzeroKey: h.number('ZZERO'),
    zblankKey: h.integer('ZBLANK'),
    imageHeader: imageHeaderOf(h, zbitpix, axes),
  };
}

/** The header of the image the table carries: Z-keywords restored, table keywords dropped. */
function imageHeaderOf(h: Header, zbitpix: Bitpix, axes: number[]): Header {
  const primary = h.bool('ZSIMPLE') === true;
  const cards: Card[] = [
    primary
      ? { key: 'SIMPLE', kind: 'logical', value: true, comment: h.card('ZSIMPLE')?.comment ?? '' }
      : { key: 'XTENSION', kind: 'string', value: (h.string('ZTENSION') ?? 'IMAGE').trim(), comment: h.card('ZTENSION')?.comment ?? 'Image extension' },
    { key: 'BITPIX', kind: 'integer', value: zbitpix, comment: h.card('ZBITPIX')?.comment ?? '' },
    { key: 'NAXIS', kind: 'integer', value: axes.length, comment: h.card('ZNAXIS')?.comment ?? '' },
    ...axes.map((n, i): Card => ({ key: `NAXIS${i + 1}`, kind: 'integer', value: n, comment: h.card(`ZNAXIS${i + 1}`)?.comment ?? '' })),
  ];
  if (primary) {
    if (h.has('ZEXTEND')) cards.push({ key: 'EXTEND', kind: 'logical', value: h.bool('ZEXTEND') ?? true, comment: h.card('ZEXTEND')?.comment ?? '' });
  } else {
    cards.push({ key: 'PCOUNT', kind: 'integer', value: h.integer('ZPCOUNT') ?? 0, comment: h.card('ZPCOUNT')?.comment ?? '' });
    cards.push({ key: 'GCOUNT', kind: 'integer', value: h.integer('ZGCOUNT') ?? 1, comment: h.card('ZGCOUNT')?.comment ?? '' });
  }
  for (const c of h.cards) {
    if (c.kind !== 'commentary' && TABLE_ONLY.test(c.key)) continue;
    // COMPRESSED_IMAGE is the name fpack/astropy give the carrying table, not the image's own name.
    if (c.key === 'EXTNAME' && c.value === 'COMPRESSED_IMAGE') continue;
    cards.push({ ...c });
  }
  if (h.has('ZHECKSUM')) cards.push({ key: 'CHECKSUM', kind: 'string', value: h.string('ZHECKSUM') ?? '', comment: h.card('ZHECKSUM')?.comment ?? '' });
  if (h.has('ZDATASUM')) cards.push({ key: 'DATASUM', kind: 'string', value: h.string('ZDATASUM') ?? '', comment: h.card('ZDATASUM')?.comment ?? '' });
  return new Header(cards);
}

/** What a compressed-image reader needs from the file. */
export interface TableBytes {
  readDataBytes(start: number, length: number): Promise<Uint8Array>;
}

/**
 * Decode rows [y0, y1) (over NAXIS2 × NAXIS3 × …) of a tile-compressed image. Returns physical
 * values with the image header's BSCALE/BZERO/BLANK applied as for uncompressed images.
 */
export async function readCompressedRows(src: TableBytes, L: CompressedLayout, scaling: Scaling, y0: number, y1: number, where: Where): Promise<PixelArray> {
  const width = L.axes[0] ?? 0;
  const outPixels = (y1 - y0) * width;
  const floatOut = L.zbitpix < 0;
  // Raw (pre-BSCALE) values in machine order; quantized floats are restored straight into floats.
  const raw = makeRaw(L.zbitpix, outPixels);
  if (outPixels === 0) return decodePixels(new Uint8Array(0), L.zbitpix, scaling, true);

  // Tiles are numbered with axis 1 fastest. Rows of the image span axes 2..n flattened.
  const rowAxes = L.axes.slice(1);
  const tileRowAxes = L.tile.slice(1);
  const gridRow = L.grid.slice(1);
  const tilesPerRowBand = L.grid[0]!;
  // The set of tile indices whose pixels intersect the band.
  const needed: number[] = [];
  {
    const firstCoord = unflatten(y0, rowAxes);
    const lastCoord = unflatten(y1 - 1, rowAxes);
    // Enumerate tile coordinates along axes 2..n between the tiles of the first and last rows.
    const lo = firstCoord.map((c, i) => Math.floor(c / tileRowAxes[i]!));
    const hi = lastCoord.map((c, i) => Math.floor(c / tileRowAxes[i]!));
    const loFlat = flatten(lo, gridRow);
    const hiFlat = flatten(hi, gridRow);
    for (let t = loFlat; t <= hiFlat; t++) for (let tx = 0; tx < tilesPerRowBand; tx++) needed.push(t * tilesPerRowBand + tx);
  }
  const t0 = needed[0]!;
  const t1 = needed[needed.length - 1]! + 1;
  const rows = await src.readDataBytes(t0 * L.rowBytes, (t1 - t0) * L.rowBytes);
  const dv = new DataView(rows.buffer, rows.byteOffset, rows.length);

  // One heap span covering every variable-length array the tiles use.
  let hMin = Infinity;
  let hMax = 0;
  const descr = (t: number, c: ColumnInfo | undefined) => {
    if (!c || c.parsed.width === 0) return { n: 0, off: 0 };
    return readDescriptor(dv, (t - t0) * L.rowBytes + c.offset, c.parsed.type as 'P' | 'Q');
  };
  for (let t = t0; t < t1; t++) {
    for (const c of [L.cols.compressed, L.cols.gzip, L.cols.uncompressed]) {
      if (!c) continue;
      const d = descr(t, c);
      if (d.n === 0) continue;
      hMin = Math.min(hMin, d.off);
      hMax = Math.max(hMax, d.off + d.n * elementBytes(c));
    }
  }
  let heap: Uint8Array = new Uint8Array(0);
  if (hMax > 0) {
    if (hMax - hMin > MAX_ALLOCATION) throw new FitsError('TOO_LARGE', 'compressed tiles span an absurd heap range', where);
    try {
      heap = await src.readDataBytes(L.heapOffset + hMin, hMax - hMin);
    } catch (e) {
      if (e instanceof RangeError) throw new FitsError('BAD_COMPRESSED', 'tile descriptor points outside the heap', where);
      throw e;
    }
  }
  const heapSlice = (off: number, len: number) => heap.subarray(off - hMin, off - hMin + len);

  const cell = (t: number, c: ColumnInfo | undefined): number | undefined => {
    if (!c) return undefined;
    const o = (t - t0) * L.rowBytes + c.offset;
    switch (c.parsed.type) {
      case 'D':
        return dv.getFloat64(o);
      case 'E':
        return dv.getFloat32(o);
      case 'J':
        return dv.getInt32(o);
      case 'I':
        return dv.getInt16(o);
      case 'K':
        return Number(dv.getBigInt64(o));
      default:
        return undefined;
    }
  };

  for (const t of needed) {
    // Tile origin and size.
    const coord = unflatten(t, L.grid);
    const origin = coord.map((c, i) => c * L.tile[i]!);
    const size = origin.map((o, i) => Math.min(L.tile[i]!, L.axes[i]! - o));
    const nPix = size.reduce((a, b) => a * b, 1);
    const values = decodeTile(L, t, nPix, descr, heapSlice, cell, where);
    // Scatter the tile's rows that fall in the band.
    const tw = size[0]!;
    const nTileRows = nPix / tw;
    for (let r = 0; r < nTileRows; r++) {
      const local = unflatten(r, size.slice(1));
      const global = local.map((c, i) => c + origin[i + 1]!);
      const imageRow = flatten(global, rowAxes);
      if (imageRow < y0 || imageRow >= y1) continue;
      const dst = (imageRow - y0) * width + origin[0]!;
      for (let x = 0; x < tw; x++) (raw as Float64Array)[dst + x] = values[r * tw + x] as number;
    }
  }
  if (floatOut && L.quantize !== 'NONE') {
    // Already physical; BSCALE on a quantized float image is not used by any writer we know.
    return raw;
  }
  return decodePixels(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), L.zbitpix, scaling, true);
}

/** Bytes per element of a variable-length column's arrays. */
function elementBytes(c: ColumnInfo): number {
  const t = c.parsed.varType ?? 'B';
  return t === 'X' ? 1 : ELEMENT_BYTES[t];
}

function makeRaw(bitpix: Bitpix, n: number): PixelArray {
  switch (bitpix) {
    case 8:
      return new Uint8Array(n);
    case 16:
      return new Int16Array(n);
    case 32:
      return new Int32Array(n);
    case 64:
      return new BigInt64Array(n);
    case -32:
      return new Float32Array(n);
    case -64:
      return new Float64Array(n);
  }
}

/** Decode one tile to raw values (numbers; bigint for 64-bit integers). */
function decodeTile(
  L: CompressedLayout,
  t: number,
  nPix: number,
  descr: (t: number, c: ColumnInfo | undefined) => { n: number; off: number },
  heapSlice: (off: number, len: number) => Uint8Array,
  cell: (t: number, c: ColumnInfo | undefined) => number | undefined,
  where: Where,
): ArrayLike<number | bigint> {
  const tileWhere = { ...where };
  const fail = (what: string) => new FitsError('BAD_COMPRESSED', `tile ${t + 1}: ${what}`, tileWhere);
  const main = descr(t, L.cols.compressed);
  const quantized = L.quantize !== 'NONE';
  const zscale = cell(t, L.cols.zscale) ?? L.zscaleKey ?? 1;
  const zzero = cell(t, L.cols.zzero) ?? L.zzeroKey ?? 0;
  const zblank = cell(t, L.cols.zblank) ?? L.zblankKey;

  const finishInts = (ints: Int32Array): ArrayLike<number> => {
    if (!quantized) return ints;
    const out = L.zbitpix === -32 ? new Float32Array(nPix) : new Float64Array(nPix);
    unquantize(ints, out, zscale, zzero, L.quantize as QuantizeMethod, L.zdither0, t + 1, zblank);
    return out;
  };

  try {
    if (main.n > 0) {
      const bytes = heapSlice(main.off, main.n);
      if (bytes.length !== main.n) throw fail('compressed bytes missing from the heap');
      if (L.cmptype === 'RICE_1') {
        if (L.bytePix === 8) throw fail('RICE_1 does not support 8-byte pixels');
        return finishInts(riceDecode(bytes, nPix, L.bytePix, L.blockSize));
      }
      const pixBytes = quantized ? 4 : Math.abs(L.zbitpix) / 8;
      let plain: Uint8Array;
      if (L.cmptype === 'NOCOMPRESS') plain = bytes.slice();
      else {
        plain = gunzipTile(bytes, nPix * pixBytes);
        if (L.cmptype === 'GZIP_2') plain = unshuffleGzip2(plain, pixBytes);
      }
      if (plain.length !== nPix * pixBytes) throw fail(`decompressed to ${plain.length} bytes, expected ${nPix * pixBytes}`);
      if (quantized) {
        swapInPlace(plain, 4);
        return finishInts(new Int32Array(plain.buffer, plain.byteOffset, nPix));
      }
      return nativeValues(plain, L.zbitpix, nPix);
    }
    const gz = descr(t, L.cols.gzip);
    if (gz.n > 0) {
      // Tiles the primary algorithm could not handle (e.g. floats that would not quantize): gzip of raw pixels.
      const pixBytes = Math.abs(L.zbitpix) / 8;
      const plain = gunzipTile(heapSlice(gz.off, gz.n), nPix * pixBytes);
      if (plain.length !== nPix * pixBytes) throw fail('GZIP_COMPRESSED_DATA has the wrong size');
      return nativeValues(plain, L.zbitpix, nPix);
    }
    const un = descr(t, L.cols.uncompressed);
    if (un.n > 0) {
      const c = L.cols.uncompressed!;
      const plain = heapSlice(un.off, un.n * elementBytes(c)).slice();
      if (un.n !== nPix) throw fail('UNCOMPRESSED_DATA has the wrong size');
      const bp = BITPIX_OF[c.parsed.varType ?? 'B'];
      if (bp === undefined) throw fail(`UNCOMPRESSED_DATA of type ${c.parsed.varType} is not a pixel type`);
      return nativeValues(plain, bp, nPix);
    }
  } catch (e) {
    if (e instanceof FitsError) throw e.withWhere(where);
    throw fail(e instanceof Error ? e.message : String(e));
  }
  throw fail('tile has no data in any column');
}

function nativeValues(bigEndian: Uint8Array, bitpix: Bitpix, n: number): ArrayLike<number | bigint> {
  const b = bigEndian.byteOffset % 8 === 0 ? bigEndian : bigEndian.slice();
  swapInPlace(b, Math.abs(bitpix) / 8);
  const ab = b.buffer;
  const o = b.byteOffset;
  switch (bitpix) {
    case 8:
      return new Uint8Array(ab, o, n);
    case 16:
      return new Int16Array(ab, o, n);
    case 32:
      return new Int32Array(ab, o, n);
    case 64:
      return new BigInt64Array(ab, o, n);
    case -32:
      return new Float32Array(ab, o, n);
    case -64:
      return new Float64Array(ab, o, n);
  }
}

function unflatten(i: number, dims: number[]): number[] {
  const out: number[] = [];
  for (const d of dims) {
    out.push(i % d);
    i = Math.floor(i / d);
  }
  return out;
}

function flatten(c: number[], dims: number[]): number {
  let i = 0;
  for (let k = dims.length - 1; k >= 0; k--) i = i * dims[k]! + c[k]!;
  return i;
}
