/**
 * Storage on the local filesystem under a root directory. Writes go to a hidden temporary name in
 * the target's directory and are renamed into place when complete: rename within a directory is
 * atomic, so readers see the old object or the new one, never a partial one. (We do not fsync:
 * the contract is visibility, not durability across a power cut.)
 *
 * Unlike S3, a key cannot be both an object and a "directory" of other keys here ('a' and 'a/b'),
 * and names shaped like our temporary files ('.x.partial-<pid>-<8 hex>') are never listed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { StorageError } from './errors.ts';
import { checkKey, checkPrefix, compareKeys } from './keys.ts';
import { checkRange, type ByteRange, type Storage } from './storage.ts';

/** Temporary files of writes in progress; never listed as keys. */
const TEMP_NAME = /^\..+\.partial-\d+-[0-9a-f]{8}$/;

export class LocalStorage implements Storage {
  readonly root: string;

  constructor(rootDir: string) {
    this.root = resolve(rootDir);
  }

  url(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  private path(key: string): string {
    checkKey(key, this.url(key));
    return this.url(key);
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const p = this.path(key);
    if (range) checkRange(range, p);
    try {
      if (!range) {
        const b = await readFile(p);
        return new Uint8Array(b.buffer, b.byteOffset, b.length);
      }
      const h = await open(p, 'r');
      try {
        const size = (await h.stat()).size;
        const start = Math.min(range.offset, size);
        const n = Math.min(size, start + range.length) - start;
        const buf = new Uint8Array(n);
        let got = 0;
        while (got < n) {
          const { bytesRead } = await h.read(buf, got, n - got, start + got);
          if (bytesRead === 0) break; // shrunk under us: return what there was
          got += bytesRead;
        }
        return got === n ? buf : buf.subarray(0, got);
      } finally {
        await h.close();
      }
    } catch (e) {
      throw fsError(e, p, 'read');
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    await this.putStream(key, (async function* () {
      yield bytes;
    })());
  }

  async putStream(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const p = this.path(key);
    const temp = join(dirname(p), `.${basename(p)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
    let h: FileHandle | undefined;
    try {
      await mkdir(dirname(p), { recursive: true });
      h = await open(temp, 'wx');
      for await (const c of chunks) {
        let done = 0;
        while (done < c.length) done += (await h.write(c, done, c.length - done)).bytesWritten;
      }
      await h.close();
      h = undefined;
      await rename(temp, p);
    } catch (e) {
      await h?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      // An error thrown by the producer's iterable is the producer's: pass it on unchanged.
      throw isErrno(e) ? fsError(e, p, 'write') : e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix, this.url(prefix));
    // Walk only the directory the prefix is in; the rest of the prefix filters names.
    const cut = prefix.lastIndexOf('/') + 1;
    const base = prefix.slice(0, cut);
    const out: string[] = [];
    const walk = async (dirKey: string): Promise<void> => {
      const dir = join(this.root, ...dirKey.split('/').filter(Boolean));
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        throw fsError(e, dir, 'list');
      }
      for (const d of entries) {
        const k = dirKey + d.name;
        if (TEMP_NAME.test(d.name)) continue;
        if (!k.startsWith(prefix) && !prefix.startsWith(k + '/')) continue;
        let isDir = d.isDirectory();
        let isFile = d.isFile();
        if (d.isSymbolicLink()) {
          const st = await stat(join(dir, d.name)).catch(() => undefined);
          isDir = !!st?.isDirectory();
          isFile = !!st?.isFile();
        }
        if (isDir) await walk(k + '/');
        else if (isFile && k.startsWith(prefix)) out.push(k);
      }
    };
    await walk(base);
    return out.sort(compareKeys);
  }

  async exists(key: string): Promise<boolean> {
    const p = this.path(key);
    try {
      return (await stat(p)).isFile();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw fsError(e, p, 'stat');
    }
  }

  async size(key: string): Promise<number> {
    const p = this.path(key);
    try {
      const st = await stat(p);
      if (!st.isFile()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      return st.size;
    } catch (e) {
      throw fsError(e, p, 'stat');
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.path(key);
    try {
      await unlink(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(e, p, 'delete');
    }
  }
}

function isErrno(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

const TRANSIENT_FS = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EINTR']);

function fsError(e: unknown, path: string, what: string): StorageError {
  if (e instanceof StorageError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (what === 'write' && (code === 'EEXIST' || code === 'EISDIR' || code === 'ENOTDIR')) {
    return new StorageError('IO', path, `cannot write (${code}): on local storage a key cannot be both an object and a prefix of other keys`, { cause: e });
  }
  // When reading, a directory (or a file used as a directory) at the key is "no such object" in S3 terms.
  if (what !== 'write' && (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR')) return new StorageError('NOT_FOUND', path, 'no such object', { cause: e });
  if (code === 'EACCES' || code === 'EPERM') return new StorageError('ACCESS', path, `permission denied (${what})`, { cause: e });
  return new StorageError('IO', path, `cannot ${what} (${code ?? String(e)})`, { transient: code !== undefined && TRANSIENT_FS.has(code), cause: e });
}
