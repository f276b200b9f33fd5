/**
 * Streaming FITS writer: each HDU is a header followed by its data, written row band by row band
 * in order, padded to 2880 bytes. Memory is bounded by the band the caller holds, never by the
 * image. Optional CHECKSUM/DATASUM are computed on the fly and patched into the header at the end
 * of the HDU (the sink must support patch: files and memory do).
 */
import { encodeTable, type ColumnInput } from './bintable.ts';
import { encodeChecksum, onesComplementSum } from './checksum.ts';
import { FitsError } from './errors.ts';
import { BLOCK, Header, serializeHeader, type Card } from './header.ts';
import { encodePixels, storageFor, type Bitpix, type PixelArray } from './image-data.ts';
import { FileSink, type ByteSink } from './sink.ts';

export interface WriterOptions {
  /**
   * Write CHECKSUM and DATASUM in every HDU: true computes them on the fly and patches the header
   * (the sink must support patch); 'given' writes them with the header from each image's
   * ImageSpec.dataSum (e.g. combined from tiles: the sum is over 32-bit words, so parts add up)
   * and checks the rows against it — for sinks that cannot patch, such as an S3 upload.
   */
  checksum?: boolean | 'given';
}

export interface ImageSpec {
  /** Element type of the rows that will be written; BITPIX/BZERO follow from it. */
  type: 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64';
  /** NAXIS1..n; rows are NAXIS1 elements, written in order over NAXIS2 × NAXIS3 × … */
  axes: number[];
  /** Other cards (WCS, provenance…); structural ones are replaced by the writer's own. */
  header?: Header;
  extname?: string;
  /** The data unit's ones' complement sum (big-endian words, no padding), with checksum 'given'. */
  dataSum?: number;
}

/** Cards the writer owns: never copied from a caller's header. */
const STRUCTURAL = /^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|GROUPS|BSCALE|BZERO|BLANK|CHECKSUM|DATASUM|THEAP|TFIELDS|T(TYPE|FORM|UNIT|NULL|DISP|SCAL|ZERO|DIM|DMIN|DMAX|LMIN|LMAX)\d+|Z\w+|LONGSTRN|END)$/;

const TYPE_SAMPLE: Record<ImageSpec['type'], PixelArray> = {
  uint8: new Uint8Array(0),
  int8: new Int8Array(0),
  int16: new Int16Array(0),
  uint16: new Uint16Array(0),
  int32: new Int32Array(0),
  uint32: new Uint32Array(0),
  int64: new BigInt64Array(0),
  uint64: new BigUint64Array(0),
  float32: new Float32Array(0),
  float64: new Float64Array(0),
};

export class FitsWriter {
  private hduCount = 0;
  private position = 0;
  private open: ImageStream | undefined;
  private failed = false;

  constructor(
    private readonly sink: ByteSink,
    private readonly opts: WriterOptions = {},
  ) {
    if (opts.checksum === true && !sink.patch) throw new FitsError('UNSUPPORTED', 'CHECKSUM needs a sink that can patch its header', { file: sink.name });
  }

  static async toFile(path: string, opts: WriterOptions = {}): Promise<FitsWriter> {
    return new FitsWriter(await FileSink.create(path), opts);
  }

  get name(): string {
    return this.sink.name;
  }

  /** Start an image HDU (primary if it is the first). Rows follow through the returned stream. */
  async beginImage(spec: ImageSpec): Promise<ImageStream> {
    this.assertIdle();
    for (const n of spec.axes) if (!Number.isSafeInteger(n) || n < 0) throw new FitsError('BAD_VALUE', `image axis ${n} is not a non-negative integer`, { file: this.name });
    const sample = TYPE_SAMPLE[spec.type];
    const { bitpix, scaling } = storageFor(sample);
    const primary = this.hduCount === 0;
    const cards: Card[] = primary
      ? [
          { key: 'SIMPLE', kind: 'logical', value: true, comment: 'conforms to FITS standard' },
          ...axisCards(bitpix, spec.axes),
          { key: 'EXTEND', kind: 'logical', value: true, comment: 'extensions may follow' },
        ]
      : [
          { key: 'XTENSION', kind: 'string', value: 'IMAGE', comment: 'image extension' },
          ...axisCards(bitpix, spec.axes),
          { key: 'PCOUNT', kind: 'integer', value: 0, comment: 'number of parameters' },
          { key: 'GCOUNT', kind: 'integer', value: 1, comment: 'number of groups' },
        ];
    if (scaling.bzero !== 0) {
      cards.push({ key: 'BSCALE', kind: 'integer', value: 1, comment: '' });
      cards.push({ key: 'BZERO', kind: 'integer', value: bitpix === 64 ? 9223372036854775808n : scaling.bzero, comment: 'offset data range to that of unsigned integers' });
    }
    const header = this.assembleHeader(cards, spec.header, spec.extname);
    const dataBytes = spec.axes.length === 0 ? 0 : spec.axes.reduce((a, b) => a * b, 1) * (Math.abs(bitpix) / 8);
    if (this.opts.checksum === 'given') {
      const given = dataBytes === 0 ? 0 : spec.dataSum;
      if (given === undefined || !Number.isInteger(given) || given < 0 || given > 0xffffffff) throw new FitsError('BAD_VALUE', 'checksum \'given\' needs each image\'s dataSum (an unsigned 32-bit integer)', { file: this.name });
      fillChecksum(header, given);
    }
    const headerOffset = this.position;
    const headerBytes = await this.writeHeader(header);
    const stream = new ImageStream(this, sample.constructor.name, spec.axes, dataBytes, header, headerOffset, headerBytes.length, this.opts.checksum === 'given' ? (dataBytes === 0 ? 0 : spec.dataSum!) : undefined);
    this.open = stream;
    this.hduCount++;
    return stream;
  }

  /** Write a whole image HDU from one typed array (its type decides BITPIX/BZERO). */
  async writeImage(data: PixelArray, axes: number[], header?: Header, extname?: string): Promise<void> {
    const type = typeNameOf(data);
    const s = await this.beginImage({ type, axes, header, extname });
    await s.writeRows(data);
    await s.end();
  }

  /** An HDU without data (an empty primary before extensions, as LSST exposures have). */
  async writeEmptyPrimary(header?: Header): Promise<void> {
    const s = await this.beginImage({ type: 'int16', axes: [], header });
    await s.end();
  }

  /** Write a BINTABLE HDU (a primary without data is added first when needed). */
  async writeTable(columns: ColumnInput[], nrows: number, header?: Header, extname?: string): Promise<void> {
    this.assertIdle();
    if (this.hduCount === 0) await this.writeEmptyPrimary();
    const { cards, data } = encodeTable(columns, nrows);
    const h = this.assembleHeader(cards, header, extname);
    // The table is in memory: its sum is known before the header goes out.
    if (this.opts.checksum) fillChecksum(h, onesComplementSum(padTo4(data)));
    await this.writeHeader(h);
    await this.writeRaw(data);
    const pad = padding(data.length);
    await this.writeRaw(pad);
    this.hduCount++;
  }

  private assembleHeader(cards: Card[], extra: Header | undefined, extname: string | undefined): Header {
    const h = new Header(cards);
    if (extname !== undefined) h.add({ key: 'EXTNAME', kind: 'string', value: extname, comment: 'extension name' });
    for (const c of normaliseUserCards(extra?.cards ?? [])) {
      if (STRUCTURAL.test(c.key) && c.kind !== 'commentary') continue;
      if (c.key === 'EXTNAME' && (extname !== undefined || h.has('EXTNAME'))) continue;
      h.add({ ...c });
    }
    if (this.opts.checksum) {
      h.add({ key: 'CHECKSUM', kind: 'string', value: '0000000000000000', comment: 'HDU checksum' });
      h.add({ key: 'DATASUM', kind: 'string', value: '0', comment: 'data unit checksum' });
    }
    return h;
  }

  private async writeHeader(h: Header): Promise<Uint8Array> {
    const bytes = serializeHeader(h);
    await this.writeRaw(bytes);
    return bytes;
  }

  /** @internal */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    try {
      await this.sink.write(bytes);
    } catch (e) {
      this.failed = true;
      throw e;
    }
    this.position += bytes.length;
  }

  /** @internal Fill DATASUM and CHECKSUM into a header already written. */
  async patchChecksum(h: Header, offset: number, length: number, dataSum: number): Promise<void> {
    const bytes = fillChecksum(h, dataSum);
    if (bytes.length !== length) throw new Error('header size changed while patching CHECKSUM');
    await this.sink.patch!(offset, bytes);
  }

  /** @internal */
  finished(s: ImageStream): void {
    if (this.open === s) this.open = undefined;
  }

  get checksum(): boolean {
    return !!this.opts.checksum;
  }

  get checksumGiven(): boolean {
    return this.opts.checksum === 'given';
  }

  private assertIdle(): void {
    if (this.failed) throw new FitsError('IO', 'an earlier write failed', { file: this.name });
    if (this.open) throw new FitsError('IO', 'the previous image HDU is not finished', { file: this.name });
  }

  /** Finish the file and publish it at its final name. */
  async close(): Promise<void> {
    if (this.open) {
      await this.abort();
      throw new FitsError('TRUNCATED', 'closed before all rows of the last image were written', { file: this.name });
    }
    if (this.hduCount === 0) await this.writeEmptyPrimary();
    await this.sink.commit();
  }

  /** Discard the output: nothing is left at the final name. */
  async abort(): Promise<void> {
    this.open = undefined;
    this.failed = true;
    await this.sink.abort();
  }
}

export class ImageStream {
  private written = 0;
  private dataSum = 0;
  private pending = new Uint8Array(0); // bytes not yet summed (checksum works on 4-byte words)

  constructor(
    private readonly w: FitsWriter,
    private readonly arrayType: string,
    readonly axes: number[],
    readonly dataBytes: number,
    private readonly header: Header,
    private readonly headerOffset: number,
    private readonly headerLength: number,
    /** With checksum 'given': the sum the rows must add up to. */
    private readonly expectedSum?: number,
  ) {}

  /** Append rows (any whole number of NAXIS1 elements) of the declared element type. */
  async writeRows(rows: PixelArray): Promise<void> {
    if (rows.constructor.name !== this.arrayType) throw new FitsError('BAD_VALUE', `rows are ${rows.constructor.name}, the HDU was declared ${this.arrayType}`, { file: this.w.name });
    const bytes = encodePixels(rows);
    if (this.written + bytes.length > this.dataBytes) throw new FitsError('BAD_VALUE', `more rows than the image holds (${this.dataBytes} bytes)`, { file: this.w.name });
    await this.w.writeRaw(bytes);
    this.written += bytes.length;
    if (this.w.checksum) this.sum(bytes);
  }

  /** Append rows already encoded as the data unit holds them (big-endian, the declared type). */
  async writeBytes(bytes: Uint8Array): Promise<void> {
    if (this.written + bytes.length > this.dataBytes) throw new FitsError('BAD_VALUE', `more rows than the image holds (${this.dataBytes} bytes)`, { file: this.w.name });
    await this.w.writeRaw(bytes);
    this.written += bytes.length;
    if (this.w.checksum) this.sum(bytes);
  }

  private sum(bytes: Uint8Array): void {
    let b = bytes;
    if (this.pending.length) {
      const joined = new Uint8Array(this.pending.length + bytes.length);
      joined.set(this.pending);
      joined.set(bytes, this.pending.length);
      b = joined;
    }
    const whole = b.length & ~3;
    this.dataSum = onesComplementSum(b.subarray(0, whole), this.dataSum);
    this.pending = b.slice(whole);
  }

  /** Finish the HDU: check every row arrived, pad, fill the checksum. */
  async end(): Promise<void> {
    if (this.written !== this.dataBytes) {
      await this.w.abort();
      throw new FitsError('TRUNCATED', `image HDU ended after ${this.written} of ${this.dataBytes} data bytes`, { file: this.w.name });
    }
    const pad = padding(this.dataBytes);
    if (pad.length) await this.w.writeRaw(pad);
    if (this.w.checksum) {
      if (this.pending.length) this.dataSum = onesComplementSum(padTo4(this.pending), this.dataSum);
      if (this.expectedSum !== undefined) {
        // -0 and +0 are one value in ones' complement.
        const norm = (v: number) => (v === 0xffffffff ? 0 : v);
        if (norm(this.dataSum) !== norm(this.expectedSum)) {
          await this.w.abort();
          throw new FitsError('BAD_VALUE', `image data sum ${this.dataSum} differs from the DATASUM given up front (${this.expectedSum})`, { file: this.w.name });
        }
      } else await this.w.patchChecksum(this.header, this.headerOffset, this.headerLength, this.dataSum);
    }
    this.w.finished(this);
  }
}

/** Set DATASUM and CHECKSUM in a header for a data unit of this sum; returns the header's bytes. */
function fillChecksum(h: Header, dataSum: number): Uint8Array {
  h.set('DATASUM', String(dataSum));
  h.set('CHECKSUM', '0000000000000000');
  const sum = onesComplementSum(serializeHeader(h), dataSum);
  h.set('CHECKSUM', encodeChecksum(sum));
  return serializeHeader(h);
}

/**
 * Cards copied from an input header, made fitsverify-clean: a keyword that appears twice keeps its
 * first value (the one every reader returns), the deprecated EPOCH becomes EQUINOX, and WCSAXES
 * moves ahead of the other WCS keywords.
 */
export function normaliseUserCards(cards: readonly Card[]): Card[] {
  const seen = new Set<string>();
  const hasEquinox = cards.some((c) => c.key === 'EQUINOX');
  const out: Card[] = [];
  for (const c of cards) {
    if (c.kind === 'commentary') {
      out.push(c);
      continue;
    }
    let card = c;
    if (c.key === 'EPOCH') {
      if (hasEquinox) continue;
      card = { ...c, key: 'EQUINOX' };
    }
    if (seen.has(card.key)) continue;
    seen.add(card.key);
    out.push(card);
  }
  // WCSAXES must precede every other WCS keyword (WCS Paper I); input files sometimes have it last.
  const w = out.findIndex((c) => c.key === 'WCSAXES' && c.kind !== 'commentary');
  if (w > 0) out.unshift(...out.splice(w, 1));
  return out;
}

function axisCards(bitpix: Bitpix, axes: number[]): Card[] {
  return [
    { key: 'BITPIX', kind: 'integer', value: bitpix, comment: 'array data type' },
    { key: 'NAXIS', kind: 'integer', value: axes.length, comment: 'number of array dimensions' },
    ...axes.map((n, i): Card => ({ key: `NAXIS${i + 1}`, kind: 'integer', value: n, comment: '' })),
  ];
}

function padding(n: number): Uint8Array {
  return new Uint8Array((BLOCK - (n % BLOCK)) % BLOCK);
}

function padTo4(b: Uint8Array): Uint8Array {
  if (b.length % 4 === 0) return b;
  const out = new Uint8Array(b.length + (4 - (b.length % 4)));
  out.set(b);
  return out;
}

export function typeNameOf(a: PixelArray): ImageSpec['type'] {
  for (const [k, v] of Object.entries(TYPE_SAMPLE)) if (v.constructor === a.constructor) return k as ImageSpec['type'];
  throw new FitsError('BAD_VALUE', `unsupported array type ${a.constructor.name}`);
}
