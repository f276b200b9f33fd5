/**
 * FITS CHECKSUM/DATASUM (the checksum convention adopted in FITS 4.0 §4.4.2.7): a 32-bit ones'
 * complement sum of the HDU's big-endian 32-bit words, and its 16-character ASCII encoding chosen
 * so that the whole HDU (header with CHECKSUM included) sums to −0.
 */

/** Ones' complement sum of big-endian 32-bit words, continuing from `sum`. Length must be a multiple of 4. */
export function onesComplementSum(bytes: Uint8Array, sum = 0): number {
  let hi = sum >>> 16;
  let lo = sum & 0xffff;
  const n = bytes.length & ~3;
  // Sum 16-bit halves separately and fold the carries at the end (exact for inputs < 2^37 bytes).
  for (let i = 0; i < n; i += 4) {
    hi += (bytes[i]! << 8) | bytes[i + 1]!;
    lo += (bytes[i + 2]! << 8) | bytes[i + 3]!;
  }
  for (;;) {
    const hiCarry = Math.floor(hi / 65536);
    const loCarry = Math.floor(lo / 65536);
    if (hiCarry === 0 && loCarry === 0) break;
    hi = (hi % 65536) + loCarry;
    lo = (lo % 65536) + hiCarry;
  }
  return ((hi << 16) | lo) >>> 0;
}

const EXCLUDED = new Set([0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60]);

/**
 * Encode the complement of `sum` as 16 printable characters (alphanumerics only): each byte is
 * spread over four characters around '0', nudged away from punctuation in pairs that keep the sum,
 * and the result rotated one place right so that it sums correctly at its column in the card.
 */
export function encodeChecksum(sum: number): string {
  const value = ~sum >>> 0;
  const asc = new Array<number>(16);
  for (let i = 0; i < 4; i++) {
    const byte = (value >>> (24 - 8 * i)) & 0xff;
    const q = (byte >> 2) + 0x30;
    const r = byte & 3;
    const ch = [q + r, q, q, q];
    let changed = true;
    while (changed) {
      changed = false;
      for (let j = 0; j < 4; j += 2) {
        if (EXCLUDED.has(ch[j]!) || EXCLUDED.has(ch[j + 1]!)) {
          ch[j]!++;
          ch[j + 1]!--;
          changed = true;
        }
      }
    }
    for (let j = 0; j < 4; j++) asc[4 * j + i] = ch[j]!;
  }
  let out = '';
  for (let i = 0; i < 16; i++) out += String.fromCharCode(asc[(i + 15) % 16]!);
  return out;
}

/** Ones' complement sum of two sums (of word-aligned parts of one data unit, in any order). */
export function addOnesComplement(a: number, b: number): number {
  const s = a + b;
  return s > 0xffffffff ? s - 0xffffffff : s;
}
