/**
 * The pipeline's intermediate documents: JSON that also carries typed arrays (bit-exact, as
 * base64 of their little-endian bytes), bigints and non-finite numbers, which plain JSON cannot.
 * Deterministic: the same value always encodes to the same bytes (idempotent steps rely on it).
 */
import { PipelineError } from './errors.ts';

type Tagged = { $t: string; v: string };
const ARRAYS = { Float64Array, Float32Array, Int32Array, Uint8Array } as const;

function encodeValue(_k: string, v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return { $t: 'num', v: String(v) };
  if (typeof v === 'bigint') return { $t: 'big', v: v.toString() };
  for (const [name, C] of Object.entries(ARRAYS)) {
    if (v instanceof C) return { $t: name, v: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  }
  return v;
}

function decodeValue(_k: string, v: unknown): unknown {
  if (v === null || typeof v !== 'object' || !('$t' in v)) return v;
  const t = v as Tagged;
  if (t.$t === 'num') return Number(t.v);
  if (t.$t === 'big') return BigInt(t.v);
  const C = ARRAYS[t.$t as keyof typeof ARRAYS];
  if (!C) return v;
  const b = Buffer.from(t.v, 'base64');
  // Copied into an aligned buffer of its own.
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return new C(copy.buffer, 0, b.length / C.BYTES_PER_ELEMENT);
}

export function encodeDoc(doc: unknown): Uint8Array {
  // Typed arrays have no toJSON, so the replacer sees them whole.
  return new TextEncoder().encode(JSON.stringify(doc, encodeValue));
}

export function decodeDoc<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes), decodeValue) as T;
  } catch (e) {
    throw new PipelineError('BAD_STATE', `${what} is not a pipeline document (${(e as Error).message})`);
  }
}
