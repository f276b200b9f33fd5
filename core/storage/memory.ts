/** In-memory Storage for tests and single-process runs; copies on the way in and out. */
import { StorageError } from './errors.ts';
import { checkKey, checkPrefix, compareKeys } from './keys.ts';
import { checkRange, concatChunks, type ByteRange, type Storage } from './storage.ts';

export class MemoryStorage implements Storage {
  private readonly objects = new Map<string, Uint8Array>();

  url(key: string): string {
    return `memory://${key}`;
  }

  private object(key: string): Uint8Array {
    checkKey(key, this.url(key));
    const o = this.objects.get(key);
    if (!o) throw new StorageError('NOT_FOUND', this.url(key), 'no such object');
    return o;
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const o = this.object(key);
    if (!range) return o.slice();
    checkRange(range, this.url(key));
    const start = Math.min(range.offset, o.length);
    return o.slice(start, Math.min(o.length, start + range.length));
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    checkKey(key, this.url(key));
    this.objects.set(key, bytes.slice());
  }

  async putStream(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    checkKey(key, this.url(key));
    const parts: Uint8Array[] = [];
    for await (const c of chunks) parts.push(c.slice());
    // Only a stream that ended normally replaces the object.
    this.objects.set(key, concatChunks(parts));
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix, this.url(prefix));
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
  }

  async exists(key: string): Promise<boolean> {
    checkKey(key, this.url(key));
    return this.objects.has(key);
  }

  async size(key: string): Promise<number> {
    return this.object(key).length;
  }

  async delete(key: string): Promise<void> {
    checkKey(key, this.url(key));
    this.objects.delete(key);
  }
}
