import { open, type FileHandle } from 'node:fs/promises';
import { FitsError } from './errors.ts';

/**
 * Random access to the bytes of a file wherever it lives. The reader asks for a few small ranges
 * (headers) and then exactly the bytes of the rows it needs, so a 16-Mpx exposure on S3 costs one
 * header read and one ranged GET per row band.
 */
export interface ByteSource {
  /** Name used in error messages (path or URL). */
  readonly name: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /**
   * Bytes [offset, offset+length). Returns fewer bytes only when the source ends first;
   * never more. Implementations throw FitsError('IO') when the source cannot be read.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

export class MemoryByteSource implements ByteSource {
  constructor(private readonly bytes: Uint8Array, readonly name = '<memory>') {}
  async size(): Promise<number> {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.bytes.length, offset + length);
    return this.bytes.subarray(Math.min(offset, end), end);
  }
  async close(): Promise<void> {}
}

export class FileByteSource implements ByteSource {
  private handle: FileHandle | undefined;
  private sizeCache: number | undefined;
  private constructor(readonly name: string) {}

  static async open(path: string): Promise<FileByteSource> {
    const src = new FileByteSource(path);
    try {
      src.handle = await open(path, 'r');
      const st = await src.handle.stat();
      if (!st.isFile()) throw new FitsError('IO', 'not a regular file', { file: path });
      src.sizeCache = st.size;
    } catch (e) {
      await src.handle?.close().catch(() => undefined);
      if (e instanceof FitsError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : `cannot open (${code ?? String(e)})`;
      throw new FitsError('IO', why, { file: path });
    }
    return src;
  }

  async size(): Promise<number> {
    return this.sizeCache!;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!this.handle) throw new FitsError('IO', 'file is closed', { file: this.name });
    const end = Math.min(this.sizeCache!, offset + length);
    const n = Math.max(0, end - offset);
    // Not zero-filled: every byte is overwritten by the read (or the short result is trimmed).
    const raw = Buffer.allocUnsafeSlow(n);
    const buf = new Uint8Array(raw.buffer, raw.byteOffset, n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.handle.read(buf, got, n - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === n ? buf : buf.subarray(0, got);
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}
