/** Exit codes: one per kind of failure, so scripts can tell bad input from a bug. */
import { FitsError } from '../core/fits/errors.ts';

export const EXIT = {
  OK: 0,
  USAGE: 2,
  BAD_FITS: 3,
  IO: 4,
  INTERNAL: 70,
} as const;

export function describeError(e: unknown): { code: number; message: string } {
  if (e instanceof FitsError) return { code: e.code === 'IO' ? EXIT.IO : EXIT.BAD_FITS, message: e.message };
  if (e instanceof UsageError) return { code: EXIT.USAGE, message: e.message };
  return { code: EXIT.INTERNAL, message: `internal error: ${e instanceof Error ? e.message : String(e)}` };
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}
