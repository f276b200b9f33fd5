/**
 * RICE_1 codec of the FITS tiled-image compression convention (FITS 4.0 §10.4.1).
 *
 * Stream layout (big-endian bit order throughout):
 *   - the first pixel value, raw, in bytePix*8 bits;
 *   - then, for each block of `blockSize` pixels (the last block may be shorter), a split code
 *     of fsBits bits (3/4/5 for bytePix 1/2/4) holding fs+1:
 *       code 0          → low entropy: every difference in the block is 0;
 *       code fsMax+1    → high entropy: each mapped difference stored raw in bytePix*8 bits;
 *       otherwise       → each mapped difference d coded as (d >> fs) zero bits, a one bit,
 *                         and the low fs bits of d.
 *   Differences are taken between consecutive pixels modulo 2^(8*bytePix) (the first difference,
 *   against the first value itself, is 0) and zig-zag mapped (0,-1,1,-2,… → 0,1,2,3,…).
 *
 * Pixel semantics: bytePix 2 and 4 are signed 16/32-bit two's complement (FITS BITPIX 16/32);
 * bytePix 1 is the FITS BITPIX 8 pixel, an UNSIGNED byte, so decoded values are 0…255.
 */
import { FitsError } from '../errors.ts';

/** Split-code width and the largest split for each pixel width (from the convention). */
function params(bytePix: number): { fsBits: number; fsMax: number; bBits: number } {
  switch (bytePix) {
    case 1: return { fsBits: 3, fsMax: 6, bBits: 8 };
    case 2: return { fsBits: 4, fsMax: 14, bBits: 16 };
    case 4: return { fsBits: 5, fsMax: 25, bBits: 32 };
    default: throw new FitsError('BAD_COMPRESSED', `RICE_1: BYTEPIX must be 1, 2 or 4, got ${bytePix}`);
  }
}

function checkCounts(what: string, nPixels: number, blockSize: number): void {
  if (!Number.isSafeInteger(nPixels) || nPixels < 0) {
    throw new FitsError('BAD_COMPRESSED', `${what}: invalid pixel count ${nPixels}`);
  }
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) {
    throw new FitsError('BAD_COMPRESSED', `${what}: invalid BLOCKSIZE ${blockSize}`);
  }
}

function ranOut(): FitsError {
  return new FitsError('BAD_COMPRESSED', 'RICE_1: compressed tile ends before all pixels are decoded');
}

/**
 * Decode one RICE_1 tile of `nPixels` pixels. Values are returned as signed 16/32-bit integers for
 * bytePix 2/4 and as unsigned bytes (0…255) for bytePix 1. Any malformed stream (too short, invalid
 * split code) throws FitsError('BAD_COMPRESSED'); bytes left over after the last pixel are ignored,
 * as cfitsio does. Work is bounded by nPixels + input length; the only allocations are the output
 * and one word copy of the input.
 */
export function riceDecode(input: Uint8Array, nPixels: number, bytePix: 1 | 2 | 4, blockSize: number): Int32Array {
  const { fsBits, fsMax, bBits } = params(bytePix);
  checkCounts('RICE_1', nPixels, blockSize);
  const out = new Int32Array(nPixels);
  if (nPixels === 0) return out;
  const len = input.length;
  if (len < bytePix + 1) throw ranOut();
  // bit positions are handled as unsigned 32-bit numbers
  if (len > 0x1ffffff0) throw new FitsError('TOO_LARGE', `RICE_1: compressed tile of ${len} bytes`);

  // Big-endian 32-bit words of the input plus three zero words: reads may run up to one word past
  // the data before the overrun is detected, and the 32-bit window reads the word after that.
  const nw = (len + 3) >>> 2;
  const words = new Int32Array(nw + 3);
  const full = len >>> 2;
  for (let w = 0, q = 0; w < full; w++, q += 4) {
    words[w] = (input[q] << 24) | (input[q + 1] << 16) | (input[q + 2] << 8) | input[q + 3];
  }
  if (full < nw) {
    let v = 0;
    for (let q = full * 4, s = 24; q < len; q++, s -= 8) v |= input[q] << s;
    words[full] = v;
  }
  const totalBits = len * 8;

  // Values are kept sign-extended to their width: (x << sh) >> sh wraps x to the pixel width.
  const sh = 32 - bBits;
  let last = words[0] >> sh;

  // `p` is the absolute bit position of the next unread bit. The 32 bits starting there are
  //   (words[p >>> 5] << s) | ((words[(p >>> 5) + 1] >>> 1) >>> (31 - s)),  s = p & 31
  // (the double shift makes the second term vanish when s = 0).
  // Invariant, checked at every block end and in the unbounded loops: p <= totalBits + 25.
  let p = bBits;
  let w: number, s: number, win: number;
  let i = 0;
  while (i < nPixels) {
    w = p >>> 5;
    s = p & 31;
    win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
    const code = win >>> (32 - fsBits);
    p += fsBits;
    const fs = code - 1;
    const imax = Math.min(i + blockSize, nPixels);

    if (fs < 0) {
      // low entropy: every difference in the block is zero
      out.fill(last, i, imax);
      i = imax;
    } else if (fs === fsMax) {
      // high entropy: mapped differences stored raw in bBits bits
      for (; i < imax; i++) {
        if (p + bBits > totalBits) throw ranOut();
        w = p >>> 5;
        s = p & 31;
        win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
        const d = win >>> sh;
        p += bBits;
        last = ((last + ((d >>> 1) ^ -(d & 1))) << sh) >> sh;
        out[i] = last;
      }
    } else if (fs > fsMax) {
      throw new FitsError('BAD_COMPRESSED', `RICE_1: invalid split code ${code} for BYTEPIX ${bytePix}`);
    } else if (fs === 0) {
      // no split bits: a difference is just its unary count of zeros
      for (; i < imax; i++) {
        w = p >>> 5;
        s = p & 31;
        win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
        let d: number;
        if (win !== 0) {
          d = Math.clz32(win);
          p += d + 1;
        } else {
          d = 0;
          do {
            p += 32;
            d += 32;
            if (p >= totalBits) throw ranOut();
            w = p >>> 5;
            s = p & 31;
            win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
          } while (win === 0);
          const z = Math.clz32(win);
          d += z;
          p += z + 1;
        }
        last = ((last + ((d >>> 1) ^ -(d & 1))) << sh) >> sh;
        out[i] = last;
      }
    } else {
      // Rice coding: unary high part (zeros ended by a one), then fs raw low bits
      const fsShift = 32 - fs;
      for (; i < imax; i++) {
        w = p >>> 5;
        s = p & 31;
        win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
        const z = Math.clz32(win);
        let d: number;
        if (z + fs <= 31) {
          // the whole code word lies inside the window
          d = (z << fs) | (((win << z) << 1) >>> fsShift);
          p += z + 1 + fs;
        } else {
          let nz = 0;
          while (win === 0) {
            p += 32;
            nz += 32;
            if (p >= totalBits) throw ranOut();
            w = p >>> 5;
            s = p & 31;
            win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
          }
          const zz = Math.clz32(win);
          nz += zz;
          p += zz + 1;
          w = p >>> 5;
          s = p & 31;
          win = (words[w] << s) | ((words[w + 1] >>> 1) >>> (31 - s));
          d = (nz << fs) | (win >>> fsShift);
          p += fs;
        }
        last = ((last + ((d >>> 1) ^ -(d & 1))) << sh) >> sh;
        out[i] = last;
      }
    }
    if (p > totalBits) throw ranOut();
  }

  if (bytePix === 1) for (let k = 0; k < nPixels; k++) out[k] &= 0xff;
  return out;
}

/**
 * Encode pixel values as one RICE_1 tile. Values are taken modulo 2^(8*bytePix) (so bytePix 1
 * accepts both -128…127 and 0…255). The block split choice follows the reference encoder, so the
 * output is byte-identical to cfitsio/fpack for the same pixels and block size.
 */
export function riceEncode(values: Int32Array, bytePix: 1 | 2 | 4, blockSize: number): Uint8Array {
  const { fsBits, fsMax, bBits } = params(bytePix);
  const n = values.length;
  checkCounts('RICE_1 encode', n, blockSize);
  if (n === 0) return new Uint8Array(0);
  const sh = 32 - bBits;

  let buf = new Uint8Array(bytePix + 16 + Math.ceil(n * (bBits + 1) / 8));
  let pos = 0;
  let acc = 0; // pending bits (fewer than 8 after every write), right-aligned
  let nacc = 0;

  const ensure = (moreBits: number): void => {
    const needBytes = pos + Math.ceil((nacc + moreBits) / 8) + 8;
    if (needBytes > buf.length) {
      const grown = new Uint8Array(Math.max(needBytes, buf.length * 2));
      grown.set(buf.subarray(0, pos));
      buf = grown;
    }
  };
  /** Append the low k bits of v (0 <= k <= 24). */
  const put = (v: number, k: number): void => {
    acc = (acc << k) | (v & ((1 << k) - 1));
    nacc += k;
    while (nacc >= 8) {
      nacc -= 8;
      buf[pos++] = acc >>> nacc;
    }
    acc &= (1 << nacc) - 1;
  };
  const putWide = (v: number, k: number): void => {
    if (k > 16) {
      put(v >>> 16, k - 16);
      put(v & 0xffff, 16);
    } else put(v, k);
  };

  const diff = new Uint32Array(blockSize);
  let last = (values[0] << sh) >> sh;
  putWide(last, bBits);

  for (let i = 0; i < n; i += blockSize) {
    const thisBlock = Math.min(blockSize, n - i);
    let pixelSum = 0;
    for (let j = 0; j < thisBlock; j++) {
      const next = (values[i + j] << sh) >> sh;
      const pd = ((next - last) << sh) >> sh;
      const d = ((pd << 1) ^ (pd >> 31)) >>> 0;
      diff[j] = d;
      pixelSum += d;
      last = next;
    }
    // split level from the mean mapped difference, exactly as the reference encoder chooses it
    let dpsum = (pixelSum - Math.floor(thisBlock / 2) - 1) / thisBlock;
    if (dpsum < 0) dpsum = 0;
    let psum = Math.floor(Math.floor(dpsum) / 2);
    let fs = 0;
    while (psum > 0) {
      psum = Math.floor(psum / 2);
      fs++;
    }

    if (fs >= fsMax) {
      ensure(fsBits + thisBlock * bBits);
      put(fsMax + 1, fsBits);
      for (let j = 0; j < thisBlock; j++) putWide(diff[j], bBits);
    } else if (fs === 0 && pixelSum === 0) {
      ensure(fsBits);
      put(0, fsBits);
    } else {
      let bits = fsBits + thisBlock * (fs + 1);
      for (let j = 0; j < thisBlock; j++) bits += Math.floor(diff[j] / 2 ** fs);
      ensure(bits);
      put(fs + 1, fsBits);
      const mask = fs === 0 ? 0 : (1 << fs) - 1;
      for (let j = 0; j < thisBlock; j++) {
        const d = diff[j];
        let top = Math.floor(d / 2 ** fs);
        while (top >= 16) {
          put(0, 16);
          top -= 16;
        }
        put(1, top + 1);
        if (fs > 0) put(d & mask, fs);
      }
    }
  }
  if (nacc > 0) {
    ensure(8);
    buf[pos++] = (acc << (8 - nacc)) & 0xff;
  }
  return buf.slice(0, pos);
}
