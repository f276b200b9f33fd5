/**
 * GZIP_1 / GZIP_2 tile codecs of the FITS tiled-image compression convention (FITS 4.0 §10.4.2).
 * A tile is the gzip (RFC 1952) compression of its pixels as big-endian bytes; GZIP_2 first
 * shuffles those bytes so that the most significant byte of every pixel comes first, then the next
 * byte of every pixel, and so on. Pixel interpretation is left to the caller.
 */
import { gzipSync, unzipSync } from 'node:zlib';
import { FitsError } from '../errors.ts';

/**
 * Inflate one tile that must expand to exactly `expectedBytes` bytes. Accepts gzip and (leniently)
 * zlib-wrapped deflate streams. Output is capped at `expectedBytes`, so a decompression bomb fails
 * quickly without allocating beyond that (plus one internal chunk); corrupt, truncated, oversized
 * or undersized data throws FitsError('BAD_COMPRESSED').
 */
export function gunzipTile(input: Uint8Array, expectedBytes: number): Uint8Array {
  if (!Number.isSafeInteger(expectedBytes) || expectedBytes < 0) {
    throw new FitsError('BAD_COMPRESSED', `GZIP: invalid expected tile size ${expectedBytes}`);
  }
  if (input.length === 0) throw new FitsError('BAD_COMPRESSED', 'GZIP: empty compressed tile');
  let out: Buffer;
  try {
    out = unzipSync(input, {
      maxOutputLength: Math.max(1, expectedBytes),
      chunkSize: Math.max(64, Math.min(expectedBytes, 1 << 16)),
    });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const why = code === 'ERR_BUFFER_TOO_LARGE'
      ? `expands beyond the expected ${expectedBytes} bytes`
      : `corrupt data (${e instanceof Error ? e.message : String(e)})`;
    throw new FitsError('BAD_COMPRESSED', `GZIP: tile ${why}`);
  }
  if (out.length !== expectedBytes) {
    throw new FitsError('BAD_COMPRESSED', `GZIP: tile expands to ${out.length} bytes, expected ${expectedBytes}`);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Gzip one tile (already in big-endian pixel order, shuffled for GZIP_2). */
export function gzipTile(input: Uint8Array, level = 6): Uint8Array {
  const out = gzipSync(input, { level });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

function checkShuffle(what: string, length: number, bytePix: number): void {
  if (!Number.isInteger(bytePix) || bytePix < 1 || bytePix > 8) {
    throw new FitsError('BAD_COMPRESSED', `${what}: invalid bytes per pixel ${bytePix}`);
  }
  if (length % bytePix !== 0) {
    throw new FitsError('BAD_COMPRESSED', `${what}: ${length} bytes is not a whole number of ${bytePix}-byte pixels`);
  }
}

/** GZIP_2 after inflating: bytes [all byte 0s][all byte 1s]… back to pixel order. */
export function unshuffleGzip2(bytes: Uint8Array, bytePix: number): Uint8Array {
  checkShuffle('GZIP_2', bytes.length, bytePix);
  const n = bytes.length / bytePix;
  const out = new Uint8Array(bytes.length);
  for (let k = 0; k < bytePix; k++) {
    const base = k * n;
    for (let i = 0, o = k; i < n; i++, o += bytePix) out[o] = bytes[base + i];
  }
  return out;
}

/** GZIP_2 before deflating: pixel-order bytes to [all byte 0s][all byte 1s]…. */
export function shuffleGzip2(bytes: Uint8Array, bytePix: number): Uint8Array {
  checkShuffle('GZIP_2 shuffle', bytes.length, bytePix);
  const n = bytes.length / bytePix;
  const out = new Uint8Array(bytes.length);
  for (let k = 0; k < bytePix; k++) {
    const base = k * n;
    for (let i = 0, o = k; i < n; i++, o += bytePix) out[base + i] = bytes[o];
  }
  return out;
}
