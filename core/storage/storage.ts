/**
 * One interface over where pipeline data lives: the local filesystem, memory (tests), or S3.
 * Keys are '/'-separated relative names (see keys.ts). Every write is all-or-nothing: an object
 * becomes visible only once complete, so a reader never sees half a tile and a failed step leaves
 * nothing behind.
 */
import { StorageError } from './errors.ts';

export interface ByteRange {
  offset: number;
  length: number;
}

export interface Storage {
  /**
   * The object's bytes, or bytes [offset, offset+length) of it. A range running past the end
   * returns what there is (possibly nothing); a missing key is StorageError NOT_FOUND.
   */
  get(key: string, range?: ByteRange): Promise<Uint8Array>;
  /** Create or replace the object in one step. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Create or replace the object from a stream of chunks without holding it all (multipart on
   * S3). If the iterable throws, the write is abandoned and nothing becomes visible. Chunks may be
   * held until the write ends: do not reuse a chunk's memory after yielding it.
   */
  putStream(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** Every key that starts with `prefix` (a plain string prefix, as in S3), in byte order. */
  list(prefix: string): Promise<string[]>;
  exists(key: string): Promise<boolean>;
  /** Size in bytes; NOT_FOUND when missing. */
  size(key: string): Promise<number>;
  /** Remove the object; removing a missing key is not an error (as on S3). */
  delete(key: string): Promise<void>;
  /** The key's location for messages and for handing to another process (path or s3:// URL). */
  url(key: string): string;
}

export function checkRange(range: ByteRange, where: string): void {
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new StorageError('BAD_RANGE', where, `bad byte range offset ${offset}, length ${length}`);
  }
}

/** Concatenate chunks into one array (used where a whole object is needed at once). */
export function concatChunks(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  const n = total ?? chunks.reduce((s, c) => s + c.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
