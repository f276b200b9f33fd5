/** Storage: local filesystem, memory and S3 behind one interface, plus FITS adapters over it. */
export { StorageError, isStorageError, type StorageErrorCode } from './errors.ts';
export { type Storage, type ByteRange, concatChunks } from './storage.ts';
export { checkKey, joinKey } from './keys.ts';
export { MemoryStorage } from './memory.ts';
export { LocalStorage } from './local.ts';
export { S3Storage, type S3StorageOptions } from './s3.ts';
export { isTransientS3Error } from './s3-errors.ts';
export { parseLocation, type Location, type LocationOptions } from './location.ts';
export { StorageByteSource, StorageSink } from './fits.ts';
