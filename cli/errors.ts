/** Exit codes: one per kind of failure, so scripts can tell bad input from a bug. */
import { FitsError } from '../core/fits/errors.ts';
import { KernelError } from '../core/kernel/errors.ts';
import { PsfError } from '../core/psf/errors.ts';
import { StorageError } from '../core/storage/errors.ts';
import { PipelineError } from '../core/pipeline/errors.ts';

export const EXIT = {
  OK: 0,
  /** Bad command line: unknown option or command, missing argument, bad --set/--preset/--mode value. */
  USAGE: 2,
  BAD_FITS: 3,
  /** A file that cannot be read or written (missing input, unwritable output directory). */
  IO: 4,
  /** No usable stars, or too few kernel candidates survive selection and clipping. */
  NO_STARS: 5,
  /** The kernel fit is singular (blank or constant images), or a kernel solution is inconsistent. */
  KERNEL: 6,
  /** The --config file cannot be read, is not JSON, or holds a bad key or value. */
  CONFIG: 7,
  /** Science and template cannot be matched (different sizes or origins, no valid pixels). */
  MISMATCH: 8,
  INTERNAL: 70,
} as const;

/** The exit-code table as --help prints it. */
export const EXIT_HELP = `Exit codes:
  0   ok
  2   usage: unknown command or option, missing argument, bad --set/--preset/--mode value
  3   bad FITS file (not FITS, truncated, malformed header, unsupported layout)
  4   I/O error: missing or unreadable input, unwritable output directory
  5   no usable stars, or too few kernel candidates (NO_STARS, TOO_FEW_CANDIDATES)
  6   kernel fit failed: singular normal equations or inconsistent solution (SINGULAR, BAD_SOLUTION)
  7   bad --config file: unreadable, not JSON, or a bad key/value in it (BAD_CONFIG)
  8   science and template cannot be matched: different pixel grids, no valid pixels (BAD_INPUT)
  70  internal error (a bug: please report it)`;

export function describeError(e: unknown): { code: number; message: string } {
  if (e instanceof FitsError) return { code: e.code === 'IO' ? EXIT.IO : EXIT.BAD_FITS, message: e.message };
  if (e instanceof UsageError) return { code: EXIT.USAGE, message: e.message };
  if (e instanceof IoError) return { code: EXIT.IO, message: e.message };
  if (e instanceof ConfigError) return { code: EXIT.CONFIG, message: e.message };
  if (e instanceof KernelError) {
    const code = {
      NO_STARS: EXIT.NO_STARS,
      TOO_FEW_CANDIDATES: EXIT.NO_STARS,
      SINGULAR: EXIT.KERNEL,
      BAD_SOLUTION: EXIT.KERNEL,
      BAD_CONFIG: EXIT.CONFIG,
      BAD_INPUT: EXIT.MISMATCH,
    }[e.code] ?? EXIT.INTERNAL;
    return { code, message: e.message };
  }
  if (e instanceof StorageError) return { code: EXIT.IO, message: e.message };
  if (e instanceof PipelineError) return { code: e.code === 'BAD_INPUT' ? EXIT.USAGE : EXIT.INTERNAL, message: e.message };
  if (e instanceof PsfError && e.code === 'NO_STARS') return { code: EXIT.NO_STARS, message: e.message };
  return { code: EXIT.INTERNAL, message: `internal error: ${e instanceof Error ? e.message : String(e)}` };
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A file-system failure outside the FITS layer (output directory, JSON outputs); the message names the path. */
export class IoError extends Error {
  override readonly name = 'IoError';
}

/** A --config file that cannot be used; the message names the file. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
