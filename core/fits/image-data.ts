/**
 * Image pixels: big-endian FITS bytes ⇄ typed arrays, with BSCALE/BZERO/BLANK applied exactly as
 * astropy applies them (so a pixel read here is bit-identical to astropy's):
 *  - no scaling and no BLANK → the raw integer or float type;
 *  - BSCALE = 1 and BZERO = 2^(n−1) (n = 16, 32, 64) or BZERO = −128 for n = 8 → the unsigned
 *    (signed for 8-bit) type, BLANK ignored;
 *  - otherwise floats: BITPIX 8/16 → float32, 32/64 → float64, floats keep their type; the product
 *    and sum are evaluated in that float type; BLANK (integers only) → NaN.
 */
import { FitsError } from './errors.ts';

export type PixelArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

export type Bitpix = 8 | 16 | 32 | 64 | -32 | -64;
export const BITPIX_VALUES: readonly Bitpix[] = [8, 16, 32, 64, -32, -64];

export function isBitpix(v: unknown): v is Bitpix {
  return typeof v === 'number' && (BITPIX_VALUES as readonly number[]).includes(v);
}

export function bytesPerPixel(bitpix: Bitpix): number {
  return Math.abs(bitpix) / 8;
}

export interface Scaling {
  bscale: number;
  bzero: number;
  /** BLANK as written (integers only); bigint for BITPIX 64. */
  blank?: number | bigint;
}

export const NO_SCALING: Scaling = { bscale: 1, bzero: 0 };

/** numpy's name for the element type (used by QA output and by the astropy oracle tests). */
export function dtypeName(a: PixelArray): string {
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof BigUint64Array) return 'uint64';
  if (a instanceof Float32Array) return 'float32';
  return 'float64';
}

/** Which unsigned/signed convention a scaling denotes, if any. */
export function pseudoIntegerKind(bitpix: Bitpix, s: Scaling): 'int8' | 'uint16' | 'uint32' | 'uint64' | undefined {
  if (s.bscale !== 1) return undefined;
  if (bitpix === 8 && s.bzero === -128) return 'int8';
  if (bitpix === 16 && s.bzero === 32768) return 'uint16';
  if (bitpix === 32 && s.bzero === 2147483648) return 'uint32';
  if (bitpix === 64 && s.bzero === 9223372036854775808) return 'uint64';
  return undefined;
}

/** Swap big-endian bytes to the machine's (little-endian) order in place. */
export function swapInPlace(bytes: Uint8Array, size: number): void {
  if (size === 1 || bytes.length === 0) return;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (size === 2) buf.swap16();
  else if (size === 4) buf.swap32();
  else buf.swap64();
}

/** Ensure we own an 8-byte-aligned buffer of exactly these bytes (typed-array views need it). */
function owned(bytes: Uint8Array): Uint8Array {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) return bytes;
  return bytes.slice();
}

/**
 * Decode big-endian pixel bytes (or, with nativeOrder, bytes already in machine order) to physical
 * values. Takes ownership of `bytes` when it is a whole buffer (it is swapped in place); copies otherwise.
 */
export function decodePixels(input: Uint8Array, bitpix: Bitpix, scaling: Scaling = NO_SCALING, nativeOrder = false): PixelArray {
  const bpp = bytesPerPixel(bitpix);
  if (input.length % bpp !== 0) throw new FitsError('TRUNCATED', `pixel data length ${input.length} is not a multiple of ${bpp}`);
  const bytes = owned(input);
  if (!nativeOrder) swapInPlace(bytes, bpp);
  const n = bytes.length / bpp;
  const ab = bytes.buffer;
  const { bscale, bzero, blank } = scaling;

  const pseudo = pseudoIntegerKind(bitpix, scaling);
  if (pseudo) {
    // Adding 2^(n-1) to a two's-complement value is flipping its sign bit.
    switch (pseudo) {
      case 'int8':
        for (let i = 0; i < n; i++) bytes[i]! ^= 0x80;
        return new Int8Array(ab, 0, n);
      case 'uint16': {
        const u = new Uint16Array(ab, 0, n);
        for (let i = 0; i < n; i++) u[i]! ^= 0x8000;
        return u;
      }
      case 'uint32': {
        const u = new Uint32Array(ab, 0, n);
        for (let i = 0; i < n; i++) u[i] = (u[i]! ^ 0x80000000) >>> 0;
        return u;
      }
      case 'uint64': {
        const w = new Uint32Array(ab, 0, n * 2);
        for (let i = 1; i < 2 * n; i += 2) w[i] = (w[i]! ^ 0x80000000) >>> 0;
        return new BigUint64Array(ab, 0, n);
      }
    }
  }

  const raw = rawView(ab, n, bitpix);
  const hasBlank = blank !== undefined && bitpix > 0;
  if (bscale === 1 && bzero === 0 && !hasBlank) return raw;

  if (bitpix < 0) {
    // Floats: astropy scales in the array's own precision.
    if (bitpix === -32) {
      const f = raw as Float32Array;
      const s = Math.fround(bscale);
      const z = Math.fround(bzero);
      for (let i = 0; i < n; i++) {
        let v = f[i]!;
        if (bscale !== 1) v = Math.fround(v * s);
        if (bzero !== 0) v = Math.fround(v + z);
        f[i] = v;
      }
      return f;
    }
    const d = raw as Float64Array;
    for (let i = 0; i < n; i++) {
      let v = d[i]!;
      if (bscale !== 1) v *= bscale;
      if (bzero !== 0) v += bzero;
      d[i] = v;
    }
    return d;
  }

  if (bitpix === 8 || bitpix === 16) {
    const out = new Float32Array(n);
    const s = Math.fround(bscale);
    const z = Math.fround(bzero);
    const src = raw as Uint8Array | Int16Array;
    const b = hasBlank ? Number(blank) : NaN;
    for (let i = 0; i < n; i++) {
      const r = src[i]!;
      if (r === b) {
        out[i] = NaN;
        continue;
      }
      let v = r; // exact in float32
      if (bscale !== 1) v = Math.fround(v * s);
      if (bzero !== 0) v = Math.fround(v + z);
      out[i] = v;
    }
    return out;
  }
  const out = new Float64Array(n);
  if (bitpix === 32) {
    const src = raw as Int32Array;
    const b = hasBlank ? Number(blank) : NaN;
    for (let i = 0; i < n; i++) {
      const r = src[i]!;
      if (r === b) {
        out[i] = NaN;
        continue;
      }
      let v = r;
      if (bscale !== 1) v *= bscale;
      if (bzero !== 0) v += bzero;
      out[i] = v;
    }
    return out;
  }
  const src = raw as BigInt64Array;
  const b = hasBlank ? BigInt(blank!) : undefined;
  for (let i = 0; i < n; i++) {
    const r = src[i]!;
    if (r === b) {
      out[i] = NaN;
      continue;
    }
    let v = Number(r); // round to nearest, as numpy's int64 → float64 cast
    if (bscale !== 1) v *= bscale;
    if (bzero !== 0) v += bzero;
    out[i] = v;
  }
  return out;
}

function rawView(ab: ArrayBufferLike, n: number, bitpix: Bitpix): PixelArray {
  switch (bitpix) {
    case 8:
      return new Uint8Array(ab, 0, n);
    case 16:
      return new Int16Array(ab, 0, n);
    case 32:
      return new Int32Array(ab, 0, n);
    case 64:
      return new BigInt64Array(ab, 0, n);
    case -32:
      return new Float32Array(ab, 0, n);
    case -64:
      return new Float64Array(ab, 0, n);
  }
}

/** The BITPIX and scaling that store a typed array losslessly (unsigned types use the BZERO convention). */
export function storageFor(a: PixelArray): { bitpix: Bitpix; scaling: Scaling } {
  if (a instanceof Uint8Array) return { bitpix: 8, scaling: NO_SCALING };
  if (a instanceof Int8Array) return { bitpix: 8, scaling: { bscale: 1, bzero: -128 } };
  if (a instanceof Int16Array) return { bitpix: 16, scaling: NO_SCALING };
  if (a instanceof Uint16Array) return { bitpix: 16, scaling: { bscale: 1, bzero: 32768 } };
  if (a instanceof Int32Array) return { bitpix: 32, scaling: NO_SCALING };
  if (a instanceof Uint32Array) return { bitpix: 32, scaling: { bscale: 1, bzero: 2147483648 } };
  if (a instanceof BigInt64Array) return { bitpix: 64, scaling: NO_SCALING };
  if (a instanceof BigUint64Array) return { bitpix: 64, scaling: { bscale: 1, bzero: 9223372036854775808 } };
  if (a instanceof Float32Array) return { bitpix: -32, scaling: NO_SCALING };
  return { bitpix: -64, scaling: NO_SCALING };
}

/**
 * Encode a typed array as big-endian FITS bytes for its natural BITPIX (see storageFor):
 * unsigned types are shifted by the BZERO convention; others are stored as they are.
 */
export function encodePixels(a: PixelArray): Uint8Array {
  const bpp = a.BYTES_PER_ELEMENT;
  const out = new Uint8Array(a.length * bpp);
  out.set(new Uint8Array(a.buffer, a.byteOffset, a.length * bpp));
  if (a instanceof Int8Array) for (let i = 0; i < out.length; i++) out[i]! ^= 0x80;
  else if (a instanceof Uint16Array) {
    const u = new Uint16Array(out.buffer);
    for (let i = 0; i < u.length; i++) u[i]! ^= 0x8000;
  } else if (a instanceof Uint32Array) {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < u.length; i++) u[i] = (u[i]! ^ 0x80000000) >>> 0;
  } else if (a instanceof BigUint64Array) {
    const w = new Uint32Array(out.buffer);
    for (let i = 1; i < w.length; i += 2) w[i] = (w[i]! ^ 0x80000000) >>> 0;
  }
  swapInPlace(out, bpp);
  return out;
}

/** A new typed array of the same kind and the given length. */
export function sameKind(a: PixelArray, n: number): PixelArray {
  return new (a.constructor as new (n: number) => PixelArray)(n);
}
