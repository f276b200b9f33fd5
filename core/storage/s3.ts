/**
 * Storage in an S3 bucket (optionally under a key prefix). Objects are atomic per PUT or per
 * completed multipart upload, so nothing partial is ever visible. Ranged reads always ask for an
 * explicit `bytes=a-b` (never a suffix range, which some S3-compatible servers get wrong) and trim
 * whatever comes back to exactly what was asked.
 */
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StorageError } from './errors.ts';
import { checkKey, checkPrefix, compareKeys, joinKey } from './keys.ts';
import { s3Error } from './s3-errors.ts';
import { checkRange, type ByteRange, type Storage } from './storage.ts';

export interface S3StorageOptions {
  bucket: string;
  /** Keys live under this prefix in the bucket ('runs/42' → 'runs/42/<key>'). */
  prefix?: string;
  /** Defaults to AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1 (never probed from instance metadata). */
  region?: string;
  /** An S3-compatible server (MinIO, s3rver, LocalStack…). */
  endpoint?: string;
  /** Path-style URLs (http://host/bucket/key); defaults to true when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Explicit credentials; otherwise the SDK's default chain (env, profile, container/instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Multipart part size in bytes (S3 minimum 5 MiB) and how many parts upload at once. */
  partSize?: number;
  queueSize?: number;
  /** SDK attempts per request (default 3). */
  maxAttempts?: number;
  /** Use this client instead of building one (the options above that configure a client are then ignored). */
  client?: S3Client;
}

const MIB = 1024 * 1024;
/** S3's bucket naming rules, short form (3–63 of lowercase letters, digits, '.', '-'). */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class S3Storage implements Storage {
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(opts: S3StorageOptions) {
    if (!BUCKET_NAME.test(opts.bucket)) throw new StorageError('BAD_URL', `s3://${opts.bucket}`, `bad bucket name ${JSON.stringify(opts.bucket)}`);
    this.bucket = opts.bucket;
    const p = joinKey(opts.prefix ?? '');
    if (p) checkKey(p, `s3://${opts.bucket}/${opts.prefix}`);
    this.prefix = p ? p + '/' : '';
    this.partSize = Math.max(5 * MIB, opts.partSize ?? 8 * MIB);
    this.queueSize = Math.max(1, opts.queueSize ?? 4);
    this.client = opts.client ?? new S3Client(clientConfig(opts));
  }

  url(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private objectKey(key: string): string {
    checkKey(key, this.url(key));
    return this.prefix + key;
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const Key = this.objectKey(key);
    if (!range) {
      try {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
        return await out.Body!.transformToByteArray();
      } catch (e) {
        throw s3Error(e, this.url(key), 'get');
      }
    }
    checkRange(range, this.url(key));
    if (range.length === 0) {
      // An empty range cannot be written as bytes=a-b; still report a missing key.
      await this.size(key);
      return new Uint8Array(0);
    }
    const { offset, length } = range;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${offset}-${offset + length - 1}` }));
      const body = await out.Body!.transformToByteArray();
      // 206 says where its bytes start; a 200 (range ignored) starts at 0. Either way return
      // exactly [offset, offset+length) of the object, never more.
      const start = out.ContentRange ? contentRangeStart(out.ContentRange) : 0;
      if (start === undefined || start > offset) throw new StorageError('IO', this.url(key), `server answered range ${out.ContentRange ?? '(none)'} to a request for bytes ${offset}-${offset + length - 1}`);
      return body.subarray(offset - start, offset - start + length);
    } catch (e) {
      // 416: the range starts at or past the end of an existing object.
      if ((e as { name?: string }).name === 'InvalidRange' || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) return new Uint8Array(0);
      throw s3Error(e, this.url(key), 'ranged get');
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: bytes, ContentLength: bytes.length }));
    } catch (e) {
      throw s3Error(e, this.url(key), 'put');
    }
  }

  async putStream(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const Key = this.objectKey(key);
    // Remember the producer's own failure: when it throws, lib-storage aborts the multipart upload
    // and may report the abort's outcome instead of the reason.
    let producerError: { error: unknown } | undefined;
    const body = Readable.from(
      (async function* () {
        try {
          for await (const c of chunks) if (c.length) yield c;
        } catch (error) {
          producerError = { error };
          throw error;
        }
      })(),
    );
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key, Body: body },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (e) {
      body.destroy();
      if (producerError) throw producerError.error;
      throw s3Error(e, this.url(key), 'streamed put');
    }
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix, this.url(prefix));
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
        for (const o of out.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key.slice(this.prefix.length));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw s3Error(e, this.url(prefix), 'list');
    }
    return keys.sort(compareKeys);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.size(key);
      return true;
    } catch (e) {
      if (e instanceof StorageError && e.code === 'NOT_FOUND') return false;
      throw e;
    }
  }

  async size(key: string): Promise<number> {
    const Key = this.objectKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      if (out.ContentLength === undefined) throw new StorageError('IO', this.url(key), 'HEAD answer has no Content-Length');
      return out.ContentLength;
    } catch (e) {
      throw s3Error(e, this.url(key), 'head');
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (e) {
      throw s3Error(e, this.url(key), 'delete');
    }
  }

  /** Close the client's connections (tests; a Lambda just lets them go). */
  destroy(): void {
    this.client.destroy();
  }
}

function clientConfig(opts: S3StorageOptions): S3ClientConfig {
  return {
    region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint: opts.endpoint,
    forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
    credentials: opts.credentials,
    maxAttempts: opts.maxAttempts,
  };
}

function contentRangeStart(h: string): number | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(h.trim());
  return m ? Number(m[1]) : undefined;
}
