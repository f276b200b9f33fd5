/**
 * Random-access FITS reader over a ByteSource. Opening reads every header with a few small reads
 * (it hops from header to header using the data sizes) and no pixel data; pixels are read later,
 * whole or as a band of rows, touching only the bytes (or, for compressed images, the tiles) needed.
 */
import { FileByteSource, MemoryByteSource, type ByteSource } from './bytesource.ts';
import { FitsError, MAX_ALLOCATION } from './errors.ts';
import { BLOCK, CARD, CARDS_PER_BLOCK, Header, parseCards } from './header.ts';
import { decodeTable, type Table } from './bintable.ts';
import { compressedLayout, readCompressedRows, type CompressedLayout } from './compressed.ts';
import { decodePixels, type Bitpix, type PixelArray, type Scaling } from './image-data.ts';
import { analyseStructure, type HduKind } from './structure.ts';

export interface Hdu {
  index: number;
  kind: HduKind;
  /** The header as stored (for a compressed image: the BINTABLE header). */
  header: Header;
  /** EXTNAME (or ZEXTNAME), '' when absent. */
  name: string;
  headerOffset: number;
  dataOffset: number;
  /** Data unit size without padding (table + heap). */
  dataBytes: number;
  bitpix: Bitpix;
  axes: number[];
  pcount: number;
  gcount: number;
  /** Deviations from the standard accepted in lenient mode. */
  warnings: string[];
}

export interface ImageBand {
  data: PixelArray;
  /** FITS order: [NAXIS1, rows, …]. */
  shape: number[];
}

export interface OpenOptions {
  /** Refuse any deviation from FITS 4.0 (default false: accept what astropy accepts, with warnings). */
  strict?: boolean;
}

/** Headers beyond this size are not FITS files but something else wearing a SIMPLE card. */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;
const HEADER_READ = BLOCK * 4;

export class FitsReader {
  readonly hdus: Hdu[] = [];
  /** File-level deviations (trailing bytes, missing padding). */
  readonly warnings: string[] = [];
  private fileSize = 0;

  private constructor(
    readonly source: ByteSource,
    readonly strict: boolean,
  ) {}

  get name(): string {
    return this.source.name;
  }

  /** Open a path or a ByteSource and read all headers. */
  static async open(src: string | ByteSource | Uint8Array, opts: OpenOptions = {}): Promise<FitsReader> {
    const source = typeof src === 'string' ? await FileByteSource.open(src) : src instanceof Uint8Array ? new MemoryByteSource(src) : src;
    const r = new FitsReader(source, opts.strict ?? false);
    try {
      await r.scan();
    } catch (e) {
      if (typeof src === 'string') await source.close().catch(() => undefined);
      throw wrap(e, { file: source.name });
    }
    return r;
  }

  async close(): Promise<void> {
    await this.source.close();
  }

  /** HDU by index or by EXTNAME (case-insensitive; the first match). */
  hdu(which: number | string): Hdu {
    const h = typeof which === 'number' ? this.hdus[which] : this.hdus.find((x) => x.name.toUpperCase() === which.toUpperCase());
    if (!h) throw new FitsError('MISSING_KEY', `no HDU ${typeof which === 'number' ? which : `named ${which}`}`, { file: this.name });
    return h;
  }

  private async scan(): Promise<void> {
    const size = await this.source.size();
    this.fileSize = size;
    if (size === 0) throw new FitsError('EMPTY', 'file is empty', { file: this.name });
    let offset = 0;
    while (offset < size) {
      const index = this.hdus.length;
      const where = { file: this.name, hdu: index };
      if (index > 0) {
        // Whatever follows the last HDU must be another header; astropy warns and ignores trailing
        // zero padding or junk, so lenient mode does the same.
        const peek = await this.source.read(offset, 8);
        if (String.fromCharCode(...peek) !== 'XTENSION') {
          const what = `${size - offset} bytes after the last HDU are not an extension (ignored)`;
          if (this.strict) throw new FitsError('BAD_CARD', what, { ...where, offset });
          this.warnings.push(what);
          break;
        }
      }
      const { cards, headerBytes, warnings } = await this.readHeaderCards(offset, index);
      const deviations = [...warnings];
      const header = new Header(parseCards(cards, { strict: this.strict, file: this.name, hdu: index, offset }, deviations));
      const st = analyseStructure(header, index === 0, this.strict, deviations, where);
      const dataOffset = offset + headerBytes;
      if (dataOffset > size) {
        const what = `header ends at byte ${dataOffset} (after its padding) but the file has ${size} bytes`;
        if (this.strict || st.dataBytes > 0) throw new FitsError('TRUNCATED', what, { ...where, offset: size });
        deviations.push(what);
      }
      const padded = Math.ceil(st.dataBytes / BLOCK) * BLOCK;
      if (st.dataBytes > 0 && dataOffset + st.dataBytes > size) {
        throw new FitsError('TRUNCATED', `data unit needs ${st.dataBytes} bytes from byte ${dataOffset} but the file has ${size - dataOffset}`, { ...where, offset: dataOffset });
      }
      if (dataOffset + padded > size) {
        const what = `last data unit is not padded to a multiple of 2880 bytes`;
        if (this.strict) throw new FitsError('TRUNCATED', what, { ...where, offset: size });
        deviations.push(what);
      }
      const name = (st.kind === 'compressed-image' ? header.string('ZEXTNAME') ?? header.string('EXTNAME') : header.string('EXTNAME')) ?? '';
      this.hdus.push({
        index,
        kind: st.kind,
        header,
        name: name.trim(),
        headerOffset: offset,
        dataOffset,
        dataBytes: st.dataBytes,
        bitpix: st.bitpix,
        axes: st.axes,
        pcount: st.pcount,
        gcount: st.gcount,
        warnings: deviations,
      });
      offset = dataOffset + padded;
    }
  }

  /** Read card images up to END; returns them and the header's size in bytes (whole blocks). */
  private async readHeaderCards(offset: number, hdu: number): Promise<{ cards: string[]; headerBytes: number; warnings: string[] }> {
    const cards: string[] = [];
    const warnings: string[] = [];
    let pos = offset;
    for (;;) {
      if (pos - offset >= MAX_HEADER_BYTES) throw new FitsError('TOO_LARGE', `header longer than ${MAX_HEADER_BYTES} bytes without END`, { file: this.name, hdu, offset: pos });
      const chunk = await this.source.read(pos, HEADER_READ);
      if (chunk.length === 0) throw new FitsError('NO_END', 'header has no END card before the end of the file', { file: this.name, hdu, offset: pos });
      const nCards = Math.floor(chunk.length / CARD);
      for (let c = 0; c < nCards; c++) {
        const o = c * CARD;
        if (isEnd(chunk, o)) {
          const cardsInHeader = cards.length + 1;
          const headerBytes = Math.ceil(cardsInHeader / CARDS_PER_BLOCK) * BLOCK;
          // Standard padding after END is spaces; astropy tolerates other fill.
          if (!restIsSpaces(chunk, o + CARD, Math.min(chunk.length, headerBytes - (pos - offset)))) {
            const what = 'header padding after END is not blank';
            if (this.strict) throw new FitsError('BAD_CARD', what, { file: this.name, hdu, offset: pos + o + CARD });
            warnings.push(what);
          }
          if (hdu === 0 && cards.length === 0) throw new FitsError('NOT_FITS', 'header is empty', { file: this.name, hdu, offset });
          return { cards, headerBytes, warnings };
        }
        if (hdu === 0 && cards.length === 0 && !startsWith(chunk, o, 'SIMPLE')) {
          throw new FitsError('NOT_FITS', 'file does not begin with a SIMPLE card', { file: this.name, hdu, offset });
        }
        cards.push(latin1(chunk, o, CARD));
      }
      if (chunk.length % CARD !== 0 || chunk.length < HEADER_READ) {
        throw new FitsError('NO_END', 'header has no END card before the end of the file', { file: this.name, hdu, offset: pos + chunk.length });
      }
      pos += chunk.length;
    }
  }

  private layouts = new Map<number, CompressedLayout>();

  /** Tile layout of a compressed image HDU (parsed once). */
  compressed(h: Hdu): CompressedLayout {
    let L = this.layouts.get(h.index);
    if (!L) {
      try {
        L = compressedLayout(h.header, h.dataBytes, { file: this.name, hdu: h.index });
      } catch (e) {
        throw wrap(e, { file: this.name, hdu: h.index });
      }
      this.layouts.set(h.index, L);
    }
    return L;
  }

  /** The header of the image an HDU holds (compressed images: the reconstructed image header). */
  imageHeader(h: Hdu): Header {
    return h.kind === 'compressed-image' ? this.compressed(h).imageHeader : h.header;
  }

  /** Image geometry: BITPIX and NAXISn of the image (not of the table carrying a compressed one). */
  imageInfo(h: Hdu): { bitpix: Bitpix; axes: number[] } {
    if (h.kind === 'compressed-image') {
      const L = this.compressed(h);
      return { bitpix: L.zbitpix, axes: L.axes };
    }
    return { bitpix: h.bitpix, axes: h.axes };
  }

  /** True for HDUs whose data is an image (primary, IMAGE, tile-compressed). */
  isImage(h: Hdu): boolean {
    return h.kind === 'primary' || h.kind === 'image' || h.kind === 'compressed-image';
  }

  /** BSCALE/BZERO/BLANK of an image HDU. */
  scaling(h: Hdu): Scaling {
    const header = this.imageHeader(h);
    const bitpix = this.imageInfo(h).bitpix;
    const num = (key: string, dflt: number): number => {
      if (!header.has(key)) return dflt;
      const v = header.number(key);
      if (v === undefined || !Number.isFinite(v) || (key === 'BSCALE' && v === 0)) {
        throw new FitsError('BAD_VALUE', `${key} = ${String(header.get(key))} is not a usable number`, { file: this.name, hdu: h.index, key });
      }
      return v;
    };
    const bscale = num('BSCALE', 1);
    const bzero = num('BZERO', 0);
    const blankCard = header.card('BLANK');
    const blank = blankCard && blankCard.kind === 'integer' && bitpix > 0 ? (blankCard.value as number | bigint) : undefined;
    return { bscale, bzero, blank };
  }

  /** Decode a BINTABLE HDU. */
  async readTable(h: Hdu): Promise<Table> {
    if (h.kind !== 'bintable' && h.kind !== 'compressed-image') {
      throw new FitsError('UNSUPPORTED', `HDU ${h.index} is a ${h.kind}, not a binary table`, { file: this.name, hdu: h.index });
    }
    const data = await this.readDataBytes(h);
    try {
      return decodeTable(h.header, data, { file: this.name, hdu: h.index });
    } catch (e) {
      throw wrap(e, { file: this.name, hdu: h.index });
    }
  }

  /** Raw bytes of an HDU's data unit (unpadded). */
  async readDataBytes(h: Hdu, start = 0, length = h.dataBytes - start): Promise<Uint8Array> {
    if (start < 0 || length < 0 || start + length > h.dataBytes) throw new RangeError('byte range outside the data unit');
    if (length > MAX_ALLOCATION) throw new FitsError('TOO_LARGE', `refusing to read ${length} bytes at once`, { file: this.name, hdu: h.index });
    const bytes = await this.source.read(h.dataOffset + start, length);
    if (bytes.length !== length) throw new FitsError('TRUNCATED', `expected ${length} bytes, file ended after ${bytes.length}`, { file: this.name, hdu: h.index, offset: h.dataOffset + start + bytes.length });
    return bytes;
  }

  /** Number of rows of an image: NAXIS2 × NAXIS3 × … (1 for a 1-D image). */
  rows(h: Hdu): number {
    return FitsReader.rows(this.imageInfo(h));
  }

  static rows(h: { axes: number[] }): number {
    if (h.axes.length === 0) return 0;
    let r = 1;
    for (let i = 1; i < h.axes.length; i++) r *= h.axes[i]!;
    return r;
  }

  /** The whole image of a primary, IMAGE or tile-compressed HDU. */
  async readImage(h: Hdu): Promise<ImageBand> {
    const band = await this.readRows(h, 0, this.rows(h));
    return { data: band.data, shape: this.imageInfo(h).axes.slice() };
  }

  /** Rows [y0, y1) of an image (over NAXIS2 × NAXIS3 × … for cubes); compressed: only the covering tiles are read. */
  async readRows(h: Hdu, y0: number, y1: number): Promise<ImageBand> {
    if (!this.isImage(h)) {
      throw new FitsError('UNSUPPORTED', `HDU ${h.index} is a ${h.kind}, not an image`, { file: this.name, hdu: h.index });
    }
    const nRows = this.rows(h);
    if (!(Number.isInteger(y0) && Number.isInteger(y1) && 0 <= y0 && y0 <= y1 && y1 <= nRows)) {
      throw new RangeError(`row band [${y0}, ${y1}) outside the image's ${nRows} rows`);
    }
    if (h.kind === 'compressed-image') {
      const L = this.compressed(h);
      try {
        const data = await readCompressedRows({ readDataBytes: (s, n) => this.readDataBytes(h, s, n) }, L, this.scaling(h), y0, y1, { file: this.name, hdu: h.index });
        return { data, shape: [L.axes[0] ?? 0, y1 - y0] };
      } catch (e) {
        throw wrap(e, { file: this.name, hdu: h.index });
      }
    }
    const width = h.axes[0] ?? 0;
    const bpp = Math.abs(h.bitpix) / 8;
    if (nRows * width * bpp > h.dataBytes) {
      // e.g. GCOUNT = 0: the data unit is empty although NAXISn describe pixels.
      throw new FitsError('BAD_VALUE', `data unit holds ${h.dataBytes} bytes but NAXISn describe ${nRows * width * bpp}`, { file: this.name, hdu: h.index, key: 'GCOUNT' });
    }
    const bytes = await this.readDataBytes(h, y0 * width * bpp, (y1 - y0) * width * bpp);
    try {
      return { data: decodePixels(bytes, h.bitpix, this.scaling(h)), shape: [width, y1 - y0] };
    } catch (e) {
      throw wrap(e, { file: this.name, hdu: h.index });
    }
  }
}

function isEnd(b: Uint8Array, o: number): boolean {
  if (b[o] !== 0x45 || b[o + 1] !== 0x4e || b[o + 2] !== 0x44) return false; // "END"
  for (let i = 3; i < 8; i++) if (b[o + i] !== 0x20) return false;
  return true;
}

function startsWith(b: Uint8Array, o: number, s: string): boolean {
  for (let i = 0; i < s.length; i++) if (b[o + i] !== s.charCodeAt(i)) return false;
  return true;
}

function restIsSpaces(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0x20) return false;
  return true;
}

function latin1(b: Uint8Array, o: number, n: number): string {
  return Buffer.from(b.buffer, b.byteOffset + o, n).toString('latin1');
}

/** Any error from inside the reader becomes a FitsError that names the file. */
export function wrap(e: unknown, where: { file?: string; hdu?: number }): FitsError {
  if (e instanceof FitsError) return e.withWhere(where);
  if (e instanceof RangeError && /allocation|Array buffer|Invalid typed array length/i.test(e.message)) {
    return new FitsError('TOO_LARGE', e.message, where);
  }
  if (e instanceof RangeError) throw e; // a caller's mistake (bad row band), not a bad file
  return new FitsError('IO', e instanceof Error ? e.message : String(e), where);
}
