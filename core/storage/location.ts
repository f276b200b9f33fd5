/**
 * "Where is it" strings from the command line or an event → a Storage and a key in it.
 * s3://bucket/a/b.fits → S3Storage for the bucket, key 'a/b.fits'; a local path or file:// URL →
 * LocalStorage at the filesystem root, key = the absolute path without its leading '/'. Either
 * way the storage is the root of its namespace, so sibling keys are reachable with joinKey.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StorageError } from './errors.ts';
import { LocalStorage } from './local.ts';
import { BUCKET_NAME, S3Storage, type S3StorageOptions } from './s3.ts';
import type { Storage } from './storage.ts';

export interface Location {
  storage: Storage;
  /** May be '' (the whole bucket) or end in '/' when the string named a "directory"; use it as a list prefix then. */
  key: string;
}

export type LocationOptions = Omit<S3StorageOptions, 'bucket' | 'prefix'>;

export function parseLocation(urlOrPath: string, opts: LocationOptions = {}): Location {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(urlOrPath)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/s.exec(urlOrPath);
    const bucket = m?.[1] ?? '';
    if (!bucket) throw new StorageError('BAD_URL', urlOrPath, 'no bucket in s3:// URL');
    if (!BUCKET_NAME.test(bucket)) throw new StorageError('BAD_URL', urlOrPath, `bad bucket name ${JSON.stringify(bucket)}`);
    return { storage: new S3Storage({ ...opts, bucket }), key: m?.[2] ?? '' };
  }
  if (scheme === 'file') {
    let path: string;
    try {
      path = fileURLToPath(urlOrPath);
    } catch (e) {
      throw new StorageError('BAD_URL', urlOrPath, `bad file URL (${(e as Error).message})`);
    }
    return local(path, urlOrPath);
  }
  if (scheme !== undefined) throw new StorageError('BAD_URL', urlOrPath, `unsupported scheme ${scheme}:// (use a path, file:// or s3://)`);
  if (urlOrPath === '') throw new StorageError('BAD_URL', urlOrPath, 'empty location');
  return local(urlOrPath, urlOrPath);
}

function local(path: string, original: string): Location {
  const abs = resolve(path);
  const dirLike = /[/\\]$/.test(original) && abs !== '/';
  return { storage: new LocalStorage('/'), key: abs.slice(1) + (dirLike ? '/' : '') };
}
