/**
 * Malformed FITS inputs for test/fits-malformed.test.ts: a named corpus built in memory from real
 * files (test/data), from our writer and from Debian's fpack, plus the seeded mutator the fuzz test
 * uses. Nothing here writes outside a temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FitsReader, FitsWriter, MemorySink, type FitsErrorCode, type OpenOptions } from '../../core/fits/index.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const DATA = join(HERE, '..', 'data');

export const PATHS = {
  uint16: join(DATA, 'pydia-kb13475-saao1m', 'pairA', 'science.fits'),
  float32: join(DATA, 'ztf-alert-cutouts', 'ZTF17aaacxxf_739260766315010006_sci.fits'),
  float64: join(DATA, 'sfft-decam-mini', 'DEC-OBS04a.mini.fits'),
  quirky: join(DATA, 'ztf-alert-cutouts', 'quirky_raw', 'ZTF17aaacxxf_739260766315010006_sci.raw.fits'),
};

export interface Sources {
  /** science.fits: 505×510 uint16 (BITPIX 16 + BZERO), 2-block header. */
  uint16: Uint8Array;
  /** ZTF cutout: 63×63 float32, 1-block header. */
  float32: Uint8Array;
  /** DECam mini: 256×256 float64 with a TPV header (4 blocks). */
  float64: Uint8Array;
  /** ZTF raw cutout whose SIMPLE card is not in fixed format. */
  quirky: Uint8Array;
  /** Our writer: float32 primary, int16 IMAGE extension, BINTABLE. */
  mef: Uint8Array;
  /** Our writer: empty primary + BINTABLE with J, 1PJ (varlen), 8A, E columns. */
  table: Uint8Array;
  /** fpack -r of science.fits: empty primary + RICE_1 compressed image (one tile per row). */
  rice: Uint8Array;
}

// ------------------------------------------------------------------------------------------------
// sources

async function writerMef(): Promise<Uint8Array> {
  const s = new MemorySink();
  const w = new FitsWriter(s);
  const img = new Float32Array(16 * 8).map((_, i) => i * 0.5);
  await w.writeImage(img, [16, 8]);
  await w.writeImage(new Int16Array(8 * 4).map((_, i) => i - 10), [8, 4], undefined, 'EXT1');
  await w.writeTable([{ name: 'id', values: new Int32Array([1, 2, 3]) }, { name: 'flux', values: new Float64Array([1.5, 2.5, 3.5]) }], 3, undefined, 'CAT');
  await w.close();
  return s.bytes();
}

async function writerTable(): Promise<Uint8Array> {
  const s = new MemorySink();
  const w = new FitsWriter(s);
  await w.writeTable(
    [
      { name: 'id', values: new Int32Array([1, 2, 3]) },
      { name: 'arr', format: '1PJ', values: [new Int32Array([1, 2]), new Int32Array([3, 4, 5]), new Int32Array([6])] },
      { name: 'label', format: '8A', values: ['alpha', 'beta', 'gamma'] },
      { name: 'mag', values: new Float32Array([20.1, 21.2, 22.3]) },
    ],
    3,
    undefined,
    'OBJECTS',
  );
  await w.close();
  return s.bytes();
}

function fpackRice(path: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'fits-malformed-fpack-'));
  try {
    const out = join(dir, 'out.fz');
    execFileSync('fpack', ['-r', '-O', out, path], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function loadSources(): Promise<Sources> {
  const file = (p: string) => new Uint8Array(readFileSync(p));
  return {
    uint16: file(PATHS.uint16),
    float32: file(PATHS.float32),
    float64: file(PATHS.float64),
    quirky: file(PATHS.quirky),
    mef: await writerMef(),
    table: await writerTable(),
    rice: fpackRice(PATHS.uint16),
  };
}

// ------------------------------------------------------------------------------------------------
// byte-level helpers

const CARD = 80;
const BLOCK = 2880;
const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const pad80 = (s: string) => (s.length > CARD ? s.slice(0, CARD) : s.padEnd(CARD, ' '));

export interface HduLayout {
  headerOffset: number;
  /** Byte offset of the END card. */
  endOffset: number;
  dataOffset: number;
  dataBytes: number;
}

/** Layout of every HDU of a valid file (from our reader, plus the END card position). */
export async function layoutOf(bytes: Uint8Array): Promise<HduLayout[]> {
  const r = await FitsReader.open(bytes);
  const out = r.hdus.map((h) => ({ headerOffset: h.headerOffset, endOffset: endCard(bytes, h.headerOffset), dataOffset: h.dataOffset, dataBytes: h.dataBytes }));
  await r.close();
  return out;
}

function keyAt(b: Uint8Array, o: number): string {
  return String.fromCharCode(...b.subarray(o, o + 8)).trimEnd();
}

function endCard(b: Uint8Array, headerOffset: number): number {
  for (let o = headerOffset; o + CARD <= b.length; o += CARD) if (keyAt(b, o) === 'END') return o;
  throw new Error('no END card');
}

/** Byte offset of the card with this keyword in the header starting at headerOffset. */
export function findCard(b: Uint8Array, headerOffset: number, key: string): number {
  for (let o = headerOffset; o + CARD <= b.length; o += CARD) {
    const k = keyAt(b, o);
    if (k === key) return o;
    if (k === 'END') break;
  }
  throw new Error(`no card ${key} in header at ${headerOffset}`);
}

/** A copy with the card `key` of the header at headerOffset replaced by `text` (padded to 80). */
export function setCard(b: Uint8Array, headerOffset: number, key: string, text: string): Uint8Array {
  const out = b.slice();
  out.set(enc(pad80(text)), findCard(b, headerOffset, key));
  return out;
}

const intCard = (key: string, v: string | number | bigint) => `${key.padEnd(8)}= ${String(v).padStart(20)}`;
const strCard = (key: string, v: string) => `${key.padEnd(8)}= '${v.padEnd(8)}'`;
const commentCard = (text: string) => `COMMENT ${text}`;

// ------------------------------------------------------------------------------------------------
// the corpus

export interface MalformedCase {
  name: string;
  bytes: Uint8Array;
  /** Error codes that are acceptable for this input. */
  codes: FitsErrorCode[];
  strict?: boolean;
  /** The input is readable in this mode (lenient readers accept it with warnings): no error required. */
  lenientOk?: boolean;
  /** Accepted without any warning (a reader weakness worth knowing, not a crash). */
  silentlyAccepted?: string;
  /** A known reader bug (non-FitsError, hang, huge memory): reported as todo, not as a failure. */
  knownBug?: string;
  /** The known bug hangs or exhausts memory: the case is skipped instead of run. */
  hangs?: boolean;
}

export async function buildCorpus(src: Sources): Promise<MalformedCase[]> {
  const cases: MalformedCase[] = [];
  const add = (c: MalformedCase) => cases.push(c);
  const U = src.uint16;
  const [u0] = await layoutOf(U);
  const mef = await layoutOf(src.mef);
  const tab = await layoutOf(src.table);
  const rice = await layoutOf(src.rice);

  // --- not FITS at all
  add({ name: 'empty file', bytes: new Uint8Array(0), codes: ['EMPTY'] });
  add({ name: 'PNG header', bytes: Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, ...new Uint8Array(3000)]), codes: ['NOT_FITS'] });
  add({ name: 'plain text', bytes: enc('Hello, this is not a FITS file.\nSIMPLE = T\n'.repeat(100)), codes: ['NOT_FITS'] });
  add({ name: 'one block of NULs', bytes: new Uint8Array(BLOCK), codes: ['NOT_FITS'] });
  add({ name: 'one block of spaces', bytes: new Uint8Array(BLOCK).fill(0x20), codes: ['NOT_FITS'] });
  add({ name: 'only an END card', bytes: enc(pad80('END').padEnd(BLOCK, ' ')), codes: ['NOT_FITS'] });
  add({ name: 'SIMPLE then END', bytes: enc((pad80('SIMPLE  =                    T') + pad80('END')).padEnd(BLOCK, ' ')), codes: ['MISSING_KEY'] });

  // --- truncation at every structural point
  add({ name: 'truncated inside the first card', bytes: U.slice(0, 40), codes: ['NO_END', 'NOT_FITS', 'TRUNCATED'] });
  add({ name: 'truncated after the first card', bytes: U.slice(0, CARD), codes: ['NO_END', 'TRUNCATED'] });
  add({ name: 'truncated mid-header', bytes: U.slice(0, BLOCK + 17 * CARD + 33), codes: ['NO_END', 'TRUNCATED'] });
  add({ name: 'truncated at a header block boundary', bytes: U.slice(0, BLOCK), codes: ['NO_END', 'TRUNCATED'] });
  add({ name: 'truncated right before END', bytes: U.slice(0, u0!.endOffset), codes: ['NO_END', 'TRUNCATED'] });
  add({ name: 'truncated inside END', bytes: U.slice(0, u0!.endOffset + 3), codes: ['NO_END', 'TRUNCATED'] });
  add({ name: 'truncated right after END', bytes: U.slice(0, u0!.endOffset + CARD), codes: ['TRUNCATED'] });
  add({ name: 'truncated at the data start', bytes: U.slice(0, u0!.dataOffset), codes: ['TRUNCATED'] });
  add({ name: 'truncated inside the data', bytes: U.slice(0, u0!.dataOffset + 100_001), codes: ['TRUNCATED'] });
  add({ name: 'truncated one byte short of the data end', bytes: U.slice(0, u0!.dataOffset + u0!.dataBytes - 1), codes: ['TRUNCATED'] });
  add({ name: 'data end without padding (lenient)', bytes: U.slice(0, u0!.dataOffset + u0!.dataBytes), codes: ['TRUNCATED'], lenientOk: true });
  add({ name: 'data end without padding (strict)', bytes: U.slice(0, u0!.dataOffset + u0!.dataBytes), codes: ['TRUNCATED'], strict: true });
  add({ name: 'truncated inside the 2nd HDU header', bytes: src.mef.slice(0, mef[1]!.headerOffset + 5 * CARD + 7), codes: ['NO_END', 'TRUNCATED'] });
  add({ name: 'truncated inside the 2nd HDU data', bytes: src.mef.slice(0, mef[1]!.dataOffset + 10), codes: ['TRUNCATED'] });
  add({ name: 'truncated inside a BINTABLE', bytes: src.table.slice(0, tab[1]!.dataOffset + 20), codes: ['TRUNCATED'] });
  add({ name: 'truncated inside a BINTABLE heap', bytes: src.table.slice(0, tab[1]!.dataOffset + tab[1]!.dataBytes - 3), codes: ['TRUNCATED'] });
  add({ name: 'truncated inside a compressed tile heap', bytes: src.rice.slice(0, rice[1]!.dataOffset + Math.floor(rice[1]!.dataBytes * 0.6)), codes: ['TRUNCATED'] });
  {
    const b = U.slice();
    b.fill(0x20, u0!.endOffset);
    add({ name: 'missing END (spaces to EOF)', bytes: b, codes: ['NO_END'] });
  }

  // --- structural keywords of an image
  const h0 = u0!.headerOffset;
  add({ name: 'BITPIX = 7', bytes: setCard(U, h0, 'BITPIX', intCard('BITPIX', 7)), codes: ['BAD_VALUE'] });
  add({ name: "BITPIX = 'abc'", bytes: setCard(U, h0, 'BITPIX', strCard('BITPIX', 'abc')), codes: ['BAD_VALUE'] });
  add({ name: 'BITPIX = 16.5', bytes: setCard(U, h0, 'BITPIX', intCard('BITPIX', '16.5')), codes: ['BAD_VALUE'] });
  add({ name: 'BITPIX missing', bytes: setCard(U, h0, 'BITPIX', commentCard('BITPIX was here')), codes: ['MISSING_KEY'] });
  add({ name: 'NAXIS = -1', bytes: setCard(U, h0, 'NAXIS', intCard('NAXIS', -1)), codes: ['BAD_VALUE'] });
  add({ name: 'NAXIS = 1000', bytes: setCard(U, h0, 'NAXIS', intCard('NAXIS', 1000)), codes: ['BAD_VALUE'] });
  add({ name: "NAXIS = 'two'", bytes: setCard(U, h0, 'NAXIS', strCard('NAXIS', 'two')), codes: ['BAD_VALUE'] });
  add({ name: 'NAXIS = 3 (NAXIS3 missing)', bytes: setCard(U, h0, 'NAXIS', intCard('NAXIS', 3)), codes: ['MISSING_KEY'] });
  add({ name: 'NAXIS1 = -5', bytes: setCard(U, h0, 'NAXIS1', intCard('NAXIS1', -5)), codes: ['BAD_VALUE'] });
  add({ name: 'NAXIS1 = 99999999999', bytes: setCard(U, h0, 'NAXIS1', intCard('NAXIS1', 99999999999)), codes: ['TOO_LARGE', 'TRUNCATED'] });
  add({ name: 'NAXIS1 = 2^62', bytes: setCard(U, h0, 'NAXIS1', intCard('NAXIS1', 2n ** 62n)), codes: ['TOO_LARGE'] });
  add({ name: 'NAXIS2 = 2^40', bytes: setCard(U, h0, 'NAXIS2', intCard('NAXIS2', 2 ** 40)), codes: ['TOO_LARGE', 'TRUNCATED'] });
  add({ name: 'NAXIS1 = 5O5 (letter O)', bytes: setCard(U, h0, 'NAXIS1', intCard('NAXIS1', '5O5')), codes: ['BAD_VALUE', 'BAD_CARD'] });
  add({ name: 'NAXIS2 missing', bytes: setCard(U, h0, 'NAXIS2', commentCard('NAXIS2 was here')), codes: ['MISSING_KEY'] });
  add({ name: "BZERO = 'abc'", bytes: setCard(U, h0, 'BZERO', strCard('BZERO', 'abc')), codes: ['BAD_VALUE'] });
  add({ name: 'BSCALE = 0', bytes: setCard(U, h0, 'BSCALE', intCard('BSCALE', 0)), codes: ['BAD_VALUE'] });
  add({ name: 'SIMPLE replaced by a comment', bytes: setCard(U, h0, 'SIMPLE', commentCard('SIMPLE was here')), codes: ['NOT_FITS'] });
  add({ name: 'GROUPS with GCOUNT = 10^15', bytes: setCard(setCard(setCard(U, h0, 'NAXIS1', intCard('NAXIS1', 0)), h0, 'BZERO', 'GROUPS  =                    T'), h0, 'BSCALE', intCard('GCOUNT', 10 ** 15)), codes: ['TOO_LARGE', 'TRUNCATED'] });

  // --- extensions
  const m1 = mef[1]!.headerOffset;
  add({ name: 'IMAGE extension PCOUNT = -1', bytes: setCard(src.mef, m1, 'PCOUNT', intCard('PCOUNT', -1)), codes: ['BAD_VALUE'] });
  add({ name: 'IMAGE extension GCOUNT = 10^14', bytes: setCard(src.mef, m1, 'GCOUNT', intCard('GCOUNT', 10 ** 14)), codes: ['TOO_LARGE', 'TRUNCATED'] });
  add({ name: 'IMAGE extension GCOUNT = 2^70', bytes: setCard(src.mef, m1, 'GCOUNT', intCard('GCOUNT', 2n ** 70n)), codes: ['TOO_LARGE'] });
  add({ name: 'IMAGE extension PCOUNT missing', bytes: setCard(src.mef, m1, 'PCOUNT', commentCard('PCOUNT was here')), codes: ['MISSING_KEY'] });
  add({ name: 'XTENSION missing in 2nd HDU (lenient: trailing junk)', bytes: setCard(src.mef, m1, 'XTENSION', commentCard('XTENSION was here')), codes: ['BAD_CARD', 'MISSING_KEY'], lenientOk: true });
  add({ name: 'XTENSION missing in 2nd HDU (strict)', bytes: setCard(src.mef, m1, 'XTENSION', commentCard('XTENSION was here')), codes: ['BAD_CARD', 'MISSING_KEY'], strict: true });
  add({ name: 'XTENSION = 42', bytes: setCard(src.mef, m1, 'XTENSION', intCard('XTENSION', 42)), codes: ['BAD_VALUE'] });
  {
    const b = new Uint8Array(src.mef.length + BLOCK);
    b.set(src.mef);
    b.fill(0x41, src.mef.length);
    add({ name: 'junk block after the last HDU (strict)', bytes: b, codes: ['BAD_CARD'], strict: true });
  }

  // --- binary tables
  const t1 = tab[1]!.headerOffset;
  const T = src.table;
  add({ name: 'BINTABLE TFIELDS = 5000', bytes: setCard(T, t1, 'TFIELDS', intCard('TFIELDS', 5000)), codes: ['BAD_VALUE'] });
  add({ name: 'BINTABLE TFIELDS = 9 (TFORMs missing)', bytes: setCard(T, t1, 'TFIELDS', intCard('TFIELDS', 9)), codes: ['BAD_TABLE'] });
  add({ name: "BINTABLE TFORM1 = 'Z'", bytes: setCard(T, t1, 'TFORM1', strCard('TFORM1', 'Z')), codes: ['BAD_TABLE'] });
  add({ name: "BINTABLE TFORM2 = '1P'", bytes: setCard(T, t1, 'TFORM2', strCard('TFORM2', '1P')), codes: ['BAD_TABLE'] });
  add({ name: "BINTABLE TFORM1 = '99999999999999999999J'", bytes: setCard(T, t1, 'TFORM1', strCard('TFORM1', '99999999999999999999J')), codes: ['BAD_TABLE'] });
  add({ name: 'BINTABLE NAXIS1 smaller than the TFORMs', bytes: setCard(T, t1, 'NAXIS1', intCard('NAXIS1', 19)), codes: ['BAD_TABLE'] });
  add({ name: 'BINTABLE NAXIS1 larger than the TFORMs', bytes: setCard(T, t1, 'NAXIS1', intCard('NAXIS1', 21)), codes: ['BAD_TABLE', 'TRUNCATED'] });
  add({ name: 'BINTABLE BITPIX = 16', bytes: setCard(T, t1, 'BITPIX', intCard('BITPIX', 16)), codes: ['BAD_VALUE', 'TRUNCATED'] });
  add({ name: 'BINTABLE NAXIS2 = 2^40', bytes: setCard(T, t1, 'NAXIS2', intCard('NAXIS2', 2 ** 40)), codes: ['TOO_LARGE', 'TRUNCATED'] });
  add({ name: 'BINTABLE PCOUNT = -8', bytes: setCard(T, t1, 'PCOUNT', intCard('PCOUNT', -8)), codes: ['BAD_VALUE'] });
  add({ name: 'BINTABLE THEAP past the data', bytes: insertTheap(T, t1, 100000), codes: ['BAD_TABLE'] });
  {
    // Row 2 of column 'arr' (1PJ at byte 4 of each 24-byte row): heap offset → far outside.
    const d = tab[1]!.dataOffset;
    const row = 24;
    const b = T.slice();
    new DataView(b.buffer).setUint32(d + row + 4 + 4, 0x7fff_0000);
    add({ name: 'varlen descriptor offset outside the heap', bytes: b, codes: ['BAD_TABLE'] });
    const c = T.slice();
    new DataView(c.buffer).setUint32(d + row + 4, 0xffff_ffff);
    add({ name: 'varlen descriptor count 2^32-1', bytes: c, codes: ['BAD_TABLE', 'TOO_LARGE'] });
  }

  // --- tile-compressed images (fpack RICE_1)
  const R = src.rice;
  const r1 = rice[1]!.headerOffset;
  add({ name: "ZCMPTYPE = 'LZW_9'", bytes: setCard(R, r1, 'ZCMPTYPE', strCard('ZCMPTYPE', 'LZW_9')), codes: ['UNSUPPORTED'] });
  add({ name: 'ZBITPIX = 12', bytes: setCard(R, r1, 'ZBITPIX', intCard('ZBITPIX', 12)), codes: ['BAD_COMPRESSED'] });
  add({ name: "ZBITPIX = 'x'", bytes: setCard(R, r1, 'ZBITPIX', strCard('ZBITPIX', 'x')), codes: ['BAD_COMPRESSED', 'BAD_VALUE'] });
  add({ name: 'ZNAXIS = -2', bytes: setCard(R, r1, 'ZNAXIS', intCard('ZNAXIS', -2)), codes: ['BAD_COMPRESSED'] });
  add({ name: 'ZNAXIS1 = 99999999999', bytes: setCard(R, r1, 'ZNAXIS1', intCard('ZNAXIS1', 99999999999)), codes: ['TOO_LARGE', 'BAD_COMPRESSED'] });
  add({ name: 'ZNAXIS2 = 2^60', bytes: setCard(R, r1, 'ZNAXIS2', intCard('ZNAXIS2', 2n ** 60n)), codes: ['TOO_LARGE', 'BAD_COMPRESSED'] });
  add({
    name: 'ZNAXIS1 = ZTILE1 = 4000000 (tile count still matches)',
    bytes: setCard(setCard(R, r1, 'ZNAXIS1', intCard('ZNAXIS1', 4_000_000)), r1, 'ZTILE1', intCard('ZTILE1', 4_000_000)),
    codes: ['BAD_COMPRESSED', 'TOO_LARGE'],
  });
  add({ name: 'ZTILE1 = 0', bytes: setCard(R, r1, 'ZTILE1', intCard('ZTILE1', 0)), codes: ['BAD_COMPRESSED'] });
  add({ name: 'ZTILE2 = 7 (tile count mismatch)', bytes: setCard(R, r1, 'ZTILE2', intCard('ZTILE2', 7)), codes: ['BAD_COMPRESSED'] });
  add({ name: 'compressed BYTEPIX = 3', bytes: setZval(R, r1, 'BYTEPIX', 3), codes: ['BAD_COMPRESSED'] });
  add({ name: 'compressed BLOCKSIZE = 0', bytes: setZval(R, r1, 'BLOCKSIZE', 0), codes: ['BAD_COMPRESSED'] });
  {
    const L = await compressedInfo(R);
    const d = rice[1]!.dataOffset;
    const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const desc = d + L.colOffset; // tile 1's COMPRESSED_DATA descriptor
    const n = dv(R).getUint32(desc);
    const off = dv(R).getUint32(desc + 4);
    const tileStart = d + L.heapOffset + off;
    // A split code of fs = 0 followed by zeros: the unary run never ends inside the tile.
    const a = R.slice();
    a[tileStart + 2] = 0x10;
    a.fill(0, tileStart + 3, tileStart + n);
    add({ name: 'corrupted RICE bytes (endless unary run)', bytes: a, codes: ['BAD_COMPRESSED'] });
    const b = R.slice();
    dv(b).setUint32(desc, 2);
    add({ name: 'RICE tile length 2 bytes', bytes: b, codes: ['BAD_COMPRESSED'] });
    const c = R.slice();
    dv(c).setUint32(desc + 4, 0x7000_0000);
    add({ name: 'compressed descriptor outside the heap', bytes: c, codes: ['BAD_COMPRESSED', 'TRUNCATED', 'BAD_TABLE'] });
    const e = R.slice();
    dv(e).setUint32(desc, 0xffff_fff0);
    add({ name: 'compressed descriptor length 2^32-16', bytes: e, codes: ['BAD_COMPRESSED', 'TRUNCATED', 'TOO_LARGE', 'BAD_TABLE'] });
  }

  // --- strict mode card syntax
  const F = src.float32;
  {
    const b = setCard(F, 0, 'BITPIX', `${intCard('BITPIX', -32)} / caf\xe9 cr\xe8me`);
    add({ name: 'non-ASCII bytes in a card (strict)', bytes: b, codes: ['BAD_CARD'], strict: true });
    add({ name: 'non-ASCII bytes in a card (lenient)', bytes: b, codes: ['BAD_CARD'], lenientOk: true });
    const nul = F.slice();
    nul[findCard(F, 0, 'NAXIS2') + 60] = 0;
    add({ name: 'NUL byte in a card (strict)', bytes: nul, codes: ['BAD_CARD'], strict: true });
  }
  add({ name: 'unterminated string (strict)', bytes: insertCard(F, 0, "OBJECT  = 'ZTF17aaacxxf"), codes: ['BAD_CARD'], strict: true });
  add({ name: 'lower-case keyword (strict)', bytes: insertCard(F, 0, intCard('exptime', 30)), codes: ['BAD_CARD'], strict: true });
  add({ name: 'value indicator in column 7 (strict)', bytes: insertCard(F, 0, 'EXPT= 30'), codes: ['BAD_CARD'], strict: true });
  add({ name: 'garbage after a value (strict)', bytes: insertCard(F, 0, `${intCard('EXPTIME', 30)} trailing`), codes: ['BAD_CARD'], strict: true });
  add({ name: 'SIMPLE not in fixed format (strict, quirky_raw)', bytes: src.quirky, codes: ['BAD_CARD'], strict: true });
  add({ name: 'non-blank header padding (strict)', bytes: (() => { const b = F.slice(); b[endCard(F, 0) + CARD + 5] = 0x58; return b; })(), codes: ['BAD_CARD'], strict: true });
  add({ name: 'NAXIS1 out of order (strict)', bytes: swapCards(F, findCard(F, 0, 'NAXIS1'), findCard(F, 0, 'NAXIS2')), codes: ['MISSING_KEY', 'BAD_CARD'], strict: true });

  // --- zero-width BINTABLE columns: the data unit is 0 bytes whatever NAXIS2 says, so the row
  // count alone must be bounded (these once hung the reader).
  const zeroWidth = (tform: string, nrows: number | bigint) =>
    rawFits([
      ['SIMPLE  =                    T', intCard('BITPIX', 8), intCard('NAXIS', 0), 'EXTEND  =                    T'],
      ["XTENSION= 'BINTABLE'", intCard('BITPIX', 8), intCard('NAXIS', 2), intCard('NAXIS1', 0), intCard('NAXIS2', nrows), intCard('PCOUNT', 0), intCard('GCOUNT', 1), intCard('TFIELDS', 1), strCard('TFORM1', tform)],
    ]);
  add({
    name: "BINTABLE TFORM1 = '0J', NAXIS1 = 0, NAXIS2 = 2^33",
    bytes: zeroWidth('0J', 2n ** 33n),
    codes: ['TOO_LARGE', 'BAD_TABLE'],
  });
  add({
    name: "BINTABLE TFORM1 = '0A', NAXIS1 = 0, NAXIS2 = 2^33",
    bytes: zeroWidth('0A', 2n ** 33n),
    codes: ['TOO_LARGE', 'BAD_TABLE'],
  });
  add({
    name: "BINTABLE TFORM1 = '0PJ', NAXIS1 = 0, NAXIS2 = 2^31",
    bytes: zeroWidth('0PJ', 2 ** 31),
    codes: ['TOO_LARGE', 'BAD_TABLE'],
  });
  // Just under the reader's cell limit (MAX_TABLE_CELLS = 2^27): rows of zero bytes are bounded
  // separately (MAX_EMPTY_ROWS), since they once meant per-row work on a 0-byte data unit.
  add({
    name: "BINTABLE TFORM1 = '0J', NAXIS1 = 0, NAXIS2 = 2^27",
    bytes: zeroWidth('0J', 2 ** 27),
    codes: ['TOO_LARGE', 'BAD_TABLE'],
  });
  add({
    name: "BINTABLE TFORM1 = '0A', NAXIS1 = 0, NAXIS2 = 2^27",
    bytes: zeroWidth('0A', 2 ** 27),
    codes: ['TOO_LARGE', 'BAD_TABLE'],
  });
  add({
    name: "BINTABLE TFORM1 = '0PJ', NAXIS1 = 0, NAXIS2 = 2^27",
    bytes: zeroWidth('0PJ', 2 ** 27),
    codes: ['TOO_LARGE', 'BAD_TABLE'],
  });

  // --- found by the fuzzer: GCOUNT = 0 and a non-P/Q COMPRESSED_DATA (once bare RangeErrors)
  add({
    name: 'IMAGE extension GCOUNT = 0',
    bytes: setCard(src.mef, m1, 'GCOUNT', intCard('GCOUNT', 0)),
    codes: ['BAD_VALUE', 'TRUNCATED'],
  });
  add({
    name: 'compressed GCOUNT = 0',
    bytes: setCard(R, r1, 'GCOUNT', intCard('GCOUNT', 0)),
    codes: ['BAD_VALUE', 'TRUNCATED', 'BAD_COMPRESSED', 'BAD_TABLE'],
  });
  add({
    name: "compressed TFORM1 = '1CB(632)' (COMPRESSED_DATA not a P/Q column)",
    bytes: setCard(R, r1, 'TFORM1', strCard('TFORM1', '1CB(632)')),
    codes: ['BAD_COMPRESSED', 'BAD_TABLE'],
  });

  return cases;
}

/** A file from header card texts only (every HDU without data). */
function rawFits(headers: string[][]): Uint8Array {
  let s = '';
  for (const cards of headers) {
    const h = cards.map(pad80).join('') + pad80('END');
    s += h.padEnd(Math.ceil(h.length / BLOCK) * BLOCK, ' ');
  }
  return enc(s);
}

/** Put a card just before END (the header of F has room in its last block). */
function insertCard(b: Uint8Array, headerOffset: number, text: string): Uint8Array {
  const end = endCard(b, headerOffset);
  if ((end - headerOffset) % BLOCK === BLOCK - CARD) throw new Error('no room for another card');
  const out = b.slice();
  out.set(enc(pad80(text)), end);
  out.set(enc(pad80('END')), end + CARD);
  return out;
}

function insertTheap(b: Uint8Array, headerOffset: number, theap: number): Uint8Array {
  return insertCard(b, headerOffset, intCard('THEAP', theap));
}

function swapCards(b: Uint8Array, a: number, c: number): Uint8Array {
  const out = b.slice();
  out.set(b.subarray(a, a + CARD), c);
  out.set(b.subarray(c, c + CARD), a);
  return out;
}

/** Set ZVALn for the ZNAMEn = name of a compressed header. */
function setZval(b: Uint8Array, headerOffset: number, name: string, v: number): Uint8Array {
  for (let i = 1; i < 10; i++) {
    const o = findCard(b, headerOffset, `ZNAME${i}`);
    const text = String.fromCharCode(...b.subarray(o, o + CARD));
    if (text.includes(`'${name}`)) return setCard(b, headerOffset, `ZVAL${i}`, intCard(`ZVAL${i}`, v));
  }
  throw new Error(`no ZNAME ${name}`);
}

async function compressedInfo(bytes: Uint8Array): Promise<{ colOffset: number; heapOffset: number; rowBytes: number }> {
  const r = await FitsReader.open(bytes);
  const L = r.compressed(r.hdus[1]!);
  await r.close();
  return { colOffset: L.cols.compressed!.offset, heapOffset: L.heapOffset, rowBytes: L.rowBytes };
}

// ------------------------------------------------------------------------------------------------
// what a user does with a file

export interface Outcome {
  /** Errors thrown by open and by each read, in order (open's error ends the sequence). */
  errors: unknown[];
  ops: number;
}

/** Open, then read every HDU the way a user would; collect whatever each step throws. */
export async function exercise(src: Parameters<typeof FitsReader.open>[0], opts: OpenOptions): Promise<Outcome> {
  const errors: unknown[] = [];
  let ops = 1;
  let r: FitsReader;
  try {
    r = await FitsReader.open(src, opts);
  } catch (e) {
    return { errors: [e], ops };
  }
  const step = async (f: () => Promise<unknown> | unknown) => {
    ops++;
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  try {
    for (const h of r.hdus) {
      if (r.isImage(h)) {
        await step(async () => {
          const n = r.rows(h);
          await r.readRows(h, 0, Math.min(1, n));
          await r.readRows(h, n >> 1, n);
        });
        await step(() => r.readImage(h));
      }
      if (h.kind === 'bintable' || h.kind === 'compressed-image') await step(() => r.readTable(h));
    }
  } finally {
    await step(() => r.close());
  }
  return { errors, ops };
}

// ------------------------------------------------------------------------------------------------
// the fuzzer

/** mulberry32: small, fast, deterministic. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const FUZZ_SOURCES = ['uint16', 'float32', 'float64', 'mef', 'table', 'rice'] as const;

export interface Mutant {
  source: (typeof FUZZ_SOURCES)[number];
  bytes: Uint8Array;
  strict: boolean;
  /** Human-readable list of the mutations applied, for the failure report. */
  mutations: string[];
}

/**
 * Mutant number `round` for `seed`: fully determined by (seed, round), so one failing round can
 * be replayed alone with `mutate(await loadSources(), layouts, seed, round)`.
 */
export function mutate(src: Sources, layouts: Record<string, HduLayout[]>, seed: number, round: number): Mutant {
  const rnd = mulberry32((seed ^ Math.imul(round + 1, 0x9e3779b1)) >>> 0);
  const int = (n: number) => Math.floor(rnd() * n);
  const source = FUZZ_SOURCES[int(FUZZ_SOURCES.length)]!;
  let b = src[source].slice();
  const lay = layouts[source]!;
  const mutations: string[] = [];
  const hdu = () => lay[int(lay.length)]!;
  /** A card slot inside some header (END included). */
  const cardSlot = () => {
    const h = hdu();
    const n = (h.endOffset - h.headerOffset) / CARD + 1;
    return h.headerOffset + CARD * int(n);
  };
  const printable = (n: number) => Array.from({ length: n }, () => String.fromCharCode(0x20 + int(95))).join('');
  const count = 1 + int(3);
  for (let k = 0; k < count; k++) {
    const kind = int(8);
    switch (kind) {
      case 0: {
        // flip random bytes, mostly in headers (and the first bytes of each data unit)
        const nFlips = 1 + int(8);
        const at: number[] = [];
        for (let i = 0; i < nFlips && b.length; i++) {
          const h = hdu();
          const pos = rnd() < 0.7 ? h.headerOffset + int(h.dataOffset - h.headerOffset + 64) : int(b.length);
          if (pos >= b.length) continue;
          b[pos] ^= 1 + int(255);
          at.push(pos);
        }
        mutations.push(`flip bytes at ${at.join(',')}`);
        break;
      }
      case 1: {
        const o = cardSlot();
        if (o + CARD > b.length) break;
        const text = rnd() < 0.5 ? printable(CARD) : `${printable(8)}= ${printable(70)}`;
        b.set(enc(text), o);
        mutations.push(`overwrite card at ${o} with ${JSON.stringify(text)}`);
        break;
      }
      case 2: {
        const len = int(b.length);
        b = b.slice(0, len);
        mutations.push(`truncate to ${len}`);
        break;
      }
      case 3: {
        const o = cardSlot();
        if (o + CARD > b.length) break;
        const out = new Uint8Array(b.length + CARD);
        out.set(b.subarray(0, o + CARD));
        out.set(b.subarray(o, o + CARD), o + CARD);
        out.set(b.subarray(o + CARD), o + 2 * CARD);
        b = out;
        mutations.push(`duplicate card at ${o}`);
        break;
      }
      case 4: {
        const o = cardSlot();
        if (o + CARD > b.length) break;
        const out = new Uint8Array(b.length - CARD);
        out.set(b.subarray(0, o));
        out.set(b.subarray(o + CARD), o);
        b = out;
        mutations.push(`delete card at ${o}`);
        break;
      }
      case 5:
      case 6: {
        // insert random digits into a structural integer (NAXISn, PCOUNT, ZNAXISn, TFIELDS, …)
        const keys = ['NAXIS', 'NAXIS1', 'NAXIS2', 'PCOUNT', 'GCOUNT', 'TFIELDS', 'ZNAXIS1', 'ZNAXIS2', 'ZTILE1', 'ZTILE2', 'ZVAL1', 'ZVAL2', 'BITPIX', 'ZBITPIX', 'THEAP'];
        const key = keys[int(keys.length)]!;
        const h = hdu();
        let o: number;
        try {
          o = findCard(b, h.headerOffset, key);
        } catch {
          break;
        }
        if (o + CARD > b.length) break;
        const old = String.fromCharCode(...b.subarray(o + 10, o + 30)).trim();
        const digits = String(int(10 ** (1 + int(12))));
        const p = int(old.length + 1);
        const value = rnd() < 0.2 ? `-${digits}` : old.slice(0, p) + digits + old.slice(p);
        b.set(enc(pad80(intCard(key, value)).slice(0, 30)), o);
        mutations.push(`${key} of HDU at ${h.headerOffset}: ${old} -> ${value}`);
        break;
      }
      case 7: {
        // corrupt a run of bytes in a data unit (heap, tiles, pixels)
        const h = hdu();
        if (h.dataBytes === 0) break;
        const start = h.dataOffset + int(h.dataBytes);
        const len = 1 + int(64);
        for (let i = start; i < Math.min(b.length, start + len); i++) b[i] = int(256);
        mutations.push(`randomize ${len} data bytes at ${start}`);
        break;
      }
    }
  }
  return { source, bytes: b, strict: rnd() < 0.3, mutations };
}

/** Write bytes to a temporary file named after the case, for opening by path. */
export function tempCaseFile(dir: string, name: string, bytes: Uint8Array): string {
  const p = join(dir, `case-${name.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '')}.fits`);
  writeFileSync(p, bytes);
  return p;
}
