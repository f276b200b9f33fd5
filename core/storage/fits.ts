/**
 * FITS over Storage: a ByteSource for FitsReader (ranged gets; the size from one HEAD) and a
 * ByteSink for FitsWriter that streams straight into Storage.putStream (multipart on S3) without
 * holding the file.
 *
 * StorageSink has no patch(): an S3 upload cannot rewrite bytes already sent, so FitsWriter with
 * { checksum: true } refuses a StorageSink up front (FitsError UNSUPPORTED, "CHECKSUM needs a sink
 * that can patch its header"). The same holds for local and memory storage, so a run behaves the
 * same whichever backend it uses. Write checksummed files with a FileSink when that is needed.
 */
import { FitsError } from '../fits/errors.ts';
import type { ByteSource } from '../fits/bytesource.ts';
import type { ByteSink } from '../fits/sink.ts';
import { ChunkChannel } from './channel.ts';
import { StorageError } from './errors.ts';
import { checkKey } from './keys.ts';
import type { Storage } from './storage.ts';

/** A storage failure as the FitsError('IO') the ByteSource contract promises (the original is its cause). */
function asFitsError(e: unknown, name: string): unknown {
  if (!(e instanceof StorageError)) return e;
  const fe = new FitsError('IO', `${e.detail} (${e.code}${e.transient ? ', transient' : ''})`, { file: name });
  fe.cause = e;
  return fe;
}

export class StorageByteSource implements ByteSource {
  readonly name: string;
  private sizeCache: number | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly key: string,
    size?: number,
  ) {
    this.name = storage.url(key);
    this.sizeCache = size;
  }

  /** Open and check the object exists (one HEAD), as FileByteSource.open does for files. */
  static async open(storage: Storage, key: string): Promise<StorageByteSource> {
    const s = new StorageByteSource(storage, key);
    await s.size();
    return s;
  }

  async size(): Promise<number> {
    if (this.sizeCache === undefined) {
      try {
        this.sizeCache = await this.storage.size(this.key);
      } catch (e) {
        throw asFitsError(e, this.name);
      }
    }
    return this.sizeCache;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    // Clip to the known size so a read at the end costs no request and never asks past the end.
    const size = await this.size();
    const n = Math.max(0, Math.min(length, size - offset));
    if (n === 0) return new Uint8Array(0);
    try {
      return await this.storage.get(this.key, { offset, length: n });
    } catch (e) {
      throw asFitsError(e, this.name);
    }
  }

  async close(): Promise<void> {}
}

export class StorageSink implements ByteSink {
  readonly name: string;
  private readonly channel = new ChunkChannel();
  /** The putStream's outcome; never rejects, so an abandoned upload cannot become an unhandled rejection. */
  private readonly outcome: Promise<{ error: unknown } | undefined>;
  private state: 'open' | 'committed' | 'aborted' = 'open';

  /**
   * Starts the streamed write at once. Chunks are handed over without copying: do not modify a
   * chunk after writing it (FitsWriter never does; every chunk it writes is freshly encoded).
   */
  constructor(storage: Storage, key: string) {
    this.name = storage.url(key);
    checkKey(key, this.name);
    this.outcome = storage.putStream(key, this.channel).then(
      () => undefined,
      (error: unknown) => {
        this.channel.close(error);
        return { error };
      },
    );
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.state !== 'open') throw new FitsError('IO', 'output already closed', { file: this.name });
    if (chunk.length) await this.channel.write(chunk);
  }

  /** Finish the stream; resolves once the object is visible (rejects with the storage error if not). */
  async commit(): Promise<void> {
    if (this.state !== 'open') throw new FitsError('IO', 'output already closed', { file: this.name });
    this.state = 'committed';
    this.channel.end();
    const r = await this.outcome;
    if (r) throw r.error;
  }

  /** Abandon the stream; when this resolves nothing is visible at the key (an earlier object there stays). */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.channel.fail(new StorageError('ABORTED', this.name, 'write abandoned'));
    await this.outcome;
  }
}
