/**
 * Where written bytes go. A sink publishes its output only on commit(): a file sink writes to a
 * hidden temporary name beside the target and renames it at the end, so a failed or interrupted
 * write never leaves a partial file where the final output belongs.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FitsError } from './errors.ts';

export interface ByteSink {
  readonly name: string;
  write(chunk: Uint8Array): Promise<void>;
  /** Overwrite bytes already written (used to fill CHECKSUM into a header). Not all sinks can. */
  patch?(offset: number, bytes: Uint8Array): Promise<void>;
  /** Make the output visible at its final name. */
  commit(): Promise<void>;
  /** Discard everything written; nothing appears at the final name. */
  abort(): Promise<void>;
}

export class MemorySink implements ByteSink {
  private chunks: Uint8Array[] = [];
  private length = 0;
  private result: Uint8Array | undefined;
  constructor(readonly name = '<memory>') {}

  async write(chunk: Uint8Array): Promise<void> {
    this.chunks.push(chunk.slice());
    this.length += chunk.length;
  }

  async patch(offset: number, bytes: Uint8Array): Promise<void> {
    const all = this.concat();
    all.set(bytes, offset);
  }

  private concat(): Uint8Array {
    if (this.chunks.length !== 1) {
      const all = new Uint8Array(this.length);
      let o = 0;
      for (const c of this.chunks) {
        all.set(c, o);
        o += c.length;
      }
      this.chunks = [all];
    }
    return this.chunks[0] ?? new Uint8Array(0);
  }

  async commit(): Promise<void> {
    this.result = this.concat();
  }

  async abort(): Promise<void> {
    this.chunks = [];
    this.length = 0;
  }

  /** The committed bytes. */
  bytes(): Uint8Array {
    if (!this.result) throw new Error('MemorySink not committed');
    return this.result;
  }
}

export class FileSink implements ByteSink {
  private handle: FileHandle | undefined;
  private position = 0;
  private readonly temp: string;

  private constructor(readonly name: string) {
    this.temp = join(dirname(name), `.${basename(name)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  static async create(path: string): Promise<FileSink> {
    const s = new FileSink(path);
    try {
      s.handle = await open(s.temp, 'w');
    } catch (e) {
      throw new FitsError('IO', `cannot create output (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file: path });
    }
    return s;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (!this.handle) throw new FitsError('IO', 'output already closed', { file: this.name });
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, done, chunk.length - done, this.position + done);
      done += bytesWritten;
    }
    this.position += chunk.length;
  }

  async patch(offset: number, bytes: Uint8Array): Promise<void> {
    if (!this.handle) throw new FitsError('IO', 'output already closed', { file: this.name });
    await this.handle.write(bytes, 0, bytes.length, offset);
  }

  async commit(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (!h) throw new FitsError('IO', 'output already closed', { file: this.name });
    try {
      await h.sync();
      await h.close();
      await rename(this.temp, this.name);
    } catch (e) {
      await unlink(this.temp).catch(() => undefined);
      throw new FitsError('IO', `cannot finish output (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file: this.name });
    }
  }

  async abort(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close().catch(() => undefined);
    await unlink(this.temp).catch(() => undefined);
  }
}
