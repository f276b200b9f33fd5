/**
 * Floating-point quantization of the FITS tiled-image compression convention (FITS 4.0 §10.2):
 * float pixels are stored as integers q with  value = (q - r + 0.5) * ZSCALE + ZZERO  when
 * subtractive dithering is used (r from a fixed pseudo-random sequence), or
 * value = q * ZSCALE + ZZERO  without dithering.
 *
 * The arithmetic follows the reference implementation exactly (double precision, the sequence
 * values being single precision, the result rounded once to the output type), so decoded pixels are
 * bit-identical to cfitsio/funpack/astropy.
 */
import { FitsError } from '../errors.ts';

export type QuantizeMethod = 'NO_DITHER' | 'SUBTRACTIVE_DITHER_1' | 'SUBTRACTIVE_DITHER_2';

/** Quantized value that marks an undefined (NaN) pixel. */
export const NULL_VALUE = -2147483647;
/** Quantized value that marks an exact 0.0 pixel under SUBTRACTIVE_DITHER_2. */
export const ZERO_VALUE = -2147483646;

const N_RANDOM = 10000;
let sequence: Float32Array | undefined;

/**
 * The 10000 dithering values: a Park–Miller generator (a = 16807, m = 2^31 - 1) started from
 * seed 1, each value seed/m rounded to single precision. Computed once; the same array is returned
 * on every call and must not be modified.
 */
export function randomSequence(): Float32Array {
  if (sequence) return sequence;
  const a = 16807;
  const m = 2147483647;
  const r = new Float32Array(N_RANDOM);
  let seed = 1;
  for (let i = 0; i < N_RANDOM; i++) {
    const t = a * seed;
    seed = t - m * Math.trunc(t / m);
    r[i] = seed / m;
  }
  // The convention's self-check: the 10000th seed is 1043618065.
  if (seed !== 1043618065) throw new Error('dithering sequence self-check failed');
  sequence = r;
  return r;
}

/**
 * Index into the sequence where a run starting at sequence entry `iseed` begins. The reference
 * computes `(int)(r[iseed] * 500)` with a single-precision product, reproduced by fround.
 */
function startOffset(r: Float32Array, iseed: number): number {
  return Math.trunc(Math.fround(r[iseed] * 500));
}

/** First sequence entry used for a tile: (ZDITHER0 + tile row - 2) mod 10000. */
function firstSeed(zdither0: number, tileIndex1: number): number {
  if (!Number.isSafeInteger(zdither0) || !Number.isSafeInteger(tileIndex1)) {
    throw new FitsError('BAD_COMPRESSED', `invalid dithering seed ${zdither0} or tile row ${tileIndex1}`);
  }
  const k = (zdither0 + tileIndex1 - 2) % N_RANDOM;
  return k < 0 ? k + N_RANDOM : k;
}

/**
 * Convert one tile of quantized integers back to floats.
 *
 * - `q` is the tile's integer pixels, `out` receives them (out.length >= q.length; a Float32Array
 *   gets the double result rounded once, as the reference does for ZBITPIX = -32).
 * - NO_DITHER:             out = q * zscale + zzero
 * - SUBTRACTIVE_DITHER_1/2: out = (q - r[k] + 0.5) * zscale + zzero, where the tile's run starts at
 *   sequence entry iseed = (zdither0 + tileIndex1 - 2) mod 10000, k starts at
 *   trunc(r[iseed] * 500) and advances by one per pixel (null pixels included); when k reaches 10000
 *   iseed advances (mod 10000) and k restarts at trunc(r[iseed] * 500).
 * - q == -2147483647 (NULL_VALUE), or q == zblank when given, gives NaN.
 * - SUBTRACTIVE_DITHER_2: q == -2147483646 (ZERO_VALUE) gives exactly 0.0.
 * `tileIndex1` is the 1-based row of the tile in the compressed table; `zdither0` is ZDITHER0
 * (1 when the keyword is absent).
 */
export function unquantize(
  q: Int32Array,
  out: Float32Array | Float64Array,
  zscale: number,
  zzero: number,
  method: QuantizeMethod,
  zdither0: number,
  tileIndex1: number,
  zblank?: number,
): void {
  const n = q.length;
  if (out.length < n) {
    throw new FitsError('BAD_COMPRESSED', `unquantize: output holds ${out.length} pixels, tile has ${n}`);
  }
  const blank = zblank === undefined ? NULL_VALUE : zblank;

  if (method === 'NO_DITHER') {
    for (let i = 0; i < n; i++) {
      const v = q[i];
      out[i] = v === NULL_VALUE || v === blank ? NaN : v * zscale + zzero;
    }
    return;
  }
  if (method !== 'SUBTRACTIVE_DITHER_1' && method !== 'SUBTRACTIVE_DITHER_2') {
    throw new FitsError('UNSUPPORTED', `unknown quantization method ${String(method)}`);
  }

  const r = randomSequence();
  const zeros = method === 'SUBTRACTIVE_DITHER_2';
  let iseed = firstSeed(zdither0, tileIndex1);
  let k = startOffset(r, iseed);
  for (let i = 0; i < n; i++) {
    const v = q[i];
    if (v === NULL_VALUE || v === blank) out[i] = NaN;
    else if (zeros && v === ZERO_VALUE) out[i] = 0.0;
    else out[i] = (v - r[k] + 0.5) * zscale + zzero;
    if (++k === N_RANDOM) {
      if (++iseed === N_RANDOM) iseed = 0;
      k = startOffset(r, iseed);
    }
  }
}

/** Round half away from zero, then clamp to the int32 range. */
function nint(x: number): number {
  const t = x >= 0 ? Math.trunc(x + 0.5) : Math.trunc(x - 0.5);
  return t > 2147483647 ? 2147483647 : t < -2147483648 ? -2147483648 : t;
}

/**
 * The matching encoder for a tile whose ZSCALE/ZZERO the caller has chosen:
 * NaN → NULL_VALUE; with SUBTRACTIVE_DITHER_2 an exact 0.0 → ZERO_VALUE; otherwise
 * q = nint((v - zzero) / zscale + r[k] - 0.5) with dithering, q = nint((v - zzero) / zscale) without,
 * with the same sequence walk as `unquantize`. Quantizing cfitsio's input with the ZSCALE/ZZERO it
 * recorded reproduces its integers. Results outside the int32 range are clamped; choosing zscale
 * and zzero so that no value lands near the reserved values is the caller's job.
 */
export function quantize(
  values: Float32Array | Float64Array,
  out: Int32Array,
  zscale: number,
  zzero: number,
  method: QuantizeMethod,
  zdither0: number,
  tileIndex1: number,
): void {
  const n = values.length;
  if (out.length < n) {
    throw new FitsError('BAD_COMPRESSED', `quantize: output holds ${out.length} pixels, tile has ${n}`);
  }
  if (method === 'NO_DITHER') {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      out[i] = v !== v ? NULL_VALUE : nint((v - zzero) / zscale);
    }
    return;
  }
  if (method !== 'SUBTRACTIVE_DITHER_1' && method !== 'SUBTRACTIVE_DITHER_2') {
    throw new FitsError('UNSUPPORTED', `unknown quantization method ${String(method)}`);
  }
  const r = randomSequence();
  const zeros = method === 'SUBTRACTIVE_DITHER_2';
  let iseed = firstSeed(zdither0, tileIndex1);
  let k = startOffset(r, iseed);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== v) out[i] = NULL_VALUE;
    else if (zeros && v === 0) out[i] = ZERO_VALUE;
    else out[i] = nint((v - zzero) / zscale + r[k] - 0.5);
    if (++k === N_RANDOM) {
      if (++iseed === N_RANDOM) iseed = 0;
      k = startOffset(r, iseed);
    }
  }
}
