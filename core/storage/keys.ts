/**
 * Keys are '/'-separated relative names, the same on every backend. We refuse anything a
 * filesystem would normalise differently from S3 ('a//b', './a', 'a/../b', '/a', 'a/'), so a key
 * that works locally names exactly the same object on S3.
 */
import { StorageError } from './errors.ts';

export function checkKey(key: string, where: string): void {
  const why = keyProblem(key);
  if (why) throw new StorageError('BAD_KEY', where, `bad key ${JSON.stringify(key)}: ${why}`);
}

function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'empty';
  if (key.startsWith('/')) return 'starts with /';
  if (key.includes('\0')) return 'contains a NUL character';
  for (const seg of key.split('/')) {
    if (seg === '') return 'has an empty segment (// or trailing /)';
    if (seg === '.' || seg === '..') return `has a '${seg}' segment`;
  }
  if (Buffer.byteLength(key) > 1024) return 'longer than 1024 bytes (the S3 limit)';
  return undefined;
}

/** A list prefix may be empty or end in '/', but must not climb out or start at '/'. */
export function checkPrefix(prefix: string, where: string): void {
  if (prefix === '') return;
  const body = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const why = keyProblem(body);
  if (why) throw new StorageError('BAD_KEY', where, `bad prefix ${JSON.stringify(prefix)}: ${why}`);
}

/** Join key parts with '/', dropping empty parts (so joinKey('', 'a') is 'a'). */
export function joinKey(...parts: string[]): string {
  return parts.flatMap((p) => p.split('/')).filter((s) => s !== '').join('/');
}

/** Byte order of the UTF-8 encodings: the order S3 lists keys in. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
