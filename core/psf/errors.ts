/**
 * Errors of the PSF / star-finding module. NO_STARS is an ordinary outcome for empty or hopeless
 * images, so it carries the counts that explain why (peaks found, how many each cut removed): the
 * caller can report them rather than a bare "failed".
 */
export type PsfErrorCode = 'NO_STARS' | 'BAD_ARGUMENT';

export class PsfError extends Error {
  override readonly name = 'PsfError';
  readonly code: PsfErrorCode;
  readonly counts?: Record<string, number>;

  constructor(code: PsfErrorCode, message: string, counts?: Record<string, number>) {
    super(`${message} [${code}]`);
    this.code = code;
    if (counts !== undefined) this.counts = counts;
  }
}
